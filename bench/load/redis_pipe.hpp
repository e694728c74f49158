#pragma once
// The generator's own Redis connection for PUBLISH: hiredis's formatter and reply parser on a
// socket the generator's epoll loop drives, so thousands of commands leave pipelined in one
// write per batch and their replies are read as they come, without a second thread.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "event_loop.hpp"

struct redisContext;
struct redisReply;

namespace gatehouse_load {

/// Thread safety: none (the loop's thread only). Replies arrive in command order.
class redis_pipe final : public io_handler {
public:
    explicit redis_pipe(event_loop& loop);
    ~redis_pipe() override;
    redis_pipe(const redis_pipe&) = delete;
    redis_pipe& operator=(const redis_pipe&) = delete;

    /// Connects (blocking, bounded by 2 s) to 127.0.0.1:port. Returns false with `error()` set.
    bool connect(std::uint16_t port);

    /// Blocking, before `start()`: waits until `channel` has at least `count` subscribers
    /// (PUBSUB NUMSUB), at most `timeout_ms`. Returns false when it never did.
    bool wait_subscribers(const std::string& channel, long long count, int timeout_ms);

    /// Switches to nonblocking mode and joins the loop. Every reply then goes to `on_reply`.
    bool start(std::function<void(const redisReply&)> on_reply);

    /// Queues `PUBLISH channel message` (sent at the end of the loop's batch), or with
    /// `logged` `FCALL gatehouse_publish 0 channel message`: the update log's publish.
    void publish(std::string_view channel, std::string_view message, bool logged = false);

    /// Commands queued whose reply has not arrived.
    std::size_t pending() const noexcept { return pending_; }
    bool broken() const noexcept { return broken_; }
    const std::string& error() const noexcept { return error_; }

    void on_io(std::uint32_t events) override;
    void flush() override;

private:
    void fail(const char* why);

    event_loop& loop_;
    redisContext* ctx_ = nullptr;
    std::function<void(const redisReply&)> on_reply_;
    std::size_t pending_ = 0;
    bool flush_queued_ = false;
    bool want_out_ = false;
    bool broken_ = false;
    std::string error_;
};

}  // namespace gatehouse_load
