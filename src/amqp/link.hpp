#pragma once
// One AMQP 0-9-1 connection through rabbitmq-c, the calls the bus makes on it: open and log
// in, declare the command topology, consume the updates, publish, read frames. rabbitmq-c is
// blocking and not thread-safe: a link is used on its bus's I/O thread only, never on a
// gateway thread. Every call that waits is bounded by the timeout given to `open`.

#include <amqp.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "amqp/url.hpp"

namespace gatehouse::detail::amqp {

/// The channel commands are published on (confirm mode) and the one updates are consumed on.
inline constexpr amqp_channel_t command_channel = 1;
inline constexpr amqp_channel_t updates_channel = 2;

/// Thread safety: none (one I/O thread). Errors are returned as text for the log: an empty
/// string is success; after any error the link is unusable and is destroyed.
class link {
public:
    link();
    ~link();
    link(const link&) = delete;
    link& operator=(const link&) = delete;

    /// TCP connect, log in (heartbeat `heartbeat_s` seconds), open the command channel in
    /// confirm mode and declare `exchange` (durable topic) with the durable queue of the same
    /// name bound to it by `#`.
    std::string open(const url& where, std::chrono::milliseconds timeout, int heartbeat_s,
                     const std::string& exchange);

    /// Declares `exchange` (durable topic) and the durable queue of the same name bound to it
    /// by `#` (again: after the broker returned a command as unroutable, say because someone
    /// deleted the queue). Confirms arriving meanwhile are kept for `next_frame`.
    std::string declare_commands(const std::string& exchange);

    /// Opens the updates channel, declares the durable fanout `exchange`, an exclusive
    /// server-named queue bound to it, and consumes that queue without acknowledgements.
    std::string consume(const std::string& exchange);

    /// Cancels the updates consumer without waiting for the broker's answer.
    std::string cancel();

    /// Publishes one message on the command channel, persistent and mandatory.
    std::string publish(const std::string& exchange, std::string_view routing_key,
                        const amqp_basic_properties_t& properties, std::string_view body);

    /// The next frame, waiting at most `wait` (zero: only what is already there).
    /// AMQP_STATUS_OK, AMQP_STATUS_TIMEOUT, or an error status (the link is broken).
    int next_frame(amqp_frame_t& frame, std::chrono::milliseconds wait);

    /// True when frames are decoded or bytes read but not handed out yet: poll() on the
    /// socket would not see them.
    bool buffered() const;

    /// Frees the memory of the frames handed out, when none is left queued.
    void release();

    /// The socket, to poll(); -1 before `open`.
    int fd() const;

    /// Closes the connection politely (waits at most `wait` for the broker's answer).
    void close(std::chrono::milliseconds wait);

private:
    amqp_connection_state_t conn_;
    bool open_ = false;
};

/// Text for a rabbitmq-c status code.
std::string describe_status(int status);

}  // namespace gatehouse::detail::amqp
