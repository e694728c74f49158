#pragma once
// A lean RFC 6455 client connection for the load generator: nonblocking connect, one upgrade
// request, masked frames out, server frames parsed in place. What it leaves out on purpose:
// TLS, extensions (no permessage-deflate is offered), and subprotocol negotiation (players
// default to JSON, docs/protocol.md section 3). Writes are buffered and leave in one send() per
// event-loop batch, so a thousand acks answered in one batch cost one syscall per connection.

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "event_loop.hpp"

namespace gatehouse_load {

class ws_connection;

/// What a connection reports, on the loop's thread.
class ws_listener {
public:
    virtual ~ws_listener() = default;
    /// The upgrade succeeded (101). The server's welcome frame comes as a message.
    virtual void on_open(ws_connection& c) = 0;
    /// One whole text or binary message (fragments joined). The view lives until return.
    virtual void on_message(ws_connection& c, std::string_view message, bool text) = 0;
    /// The connection is over: refused upgrade, reset, close frame, or protocol error.
    virtual void on_closed(ws_connection& c, const char* why) = 0;
};

class ws_connection final : public io_handler {
public:
    enum class state : std::uint8_t { idle, connecting, upgrading, open, closed };

    /// `index` is the caller's name for this connection (its slot in the caller's table).
    ws_connection(event_loop& loop, ws_listener& listener, std::size_t index);
    ~ws_connection() override;
    ws_connection(const ws_connection&) = delete;
    ws_connection& operator=(const ws_connection&) = delete;

    /// Starts a nonblocking connect to `addr` and queues the upgrade request for `path`.
    /// With `source` (not null), the socket is bound to that local address first (port left to
    /// the kernel at connect time), so more than one ephemeral port range's worth of
    /// connections can reach one server port. Returns false (and reports nothing) when no
    /// socket could be made; every later failure is reported through `on_closed`.
    bool start(const sockaddr_in& addr, const std::string& host_header, const std::string& path,
               const in_addr* source = nullptr);

    /// Queues one masked text frame; sent at the end of the loop's batch.
    void send_text(std::string_view payload);

    /// Closes the socket at once (no close handshake: the generator is done with it).
    void close_now();

    std::size_t index() const noexcept { return index_; }
    state current_state() const noexcept { return state_; }
    /// When start() was called (now_ns()).
    std::int64_t started_at() const noexcept { return started_at_; }

    void on_io(std::uint32_t events) override;
    void flush() override;

private:
    void queue_frame(std::uint8_t opcode, std::string_view payload);
    void read_available();
    bool parse_upgrade();
    bool parse_frames();
    void fail(const char* why);
    void request_flush();

    event_loop& loop_;
    ws_listener& listener_;
    std::size_t index_;
    int fd_ = -1;
    state state_ = state::idle;
    bool flush_queued_ = false;
    bool want_out_ = false;  // EPOLLOUT registered: the socket buffer was full
    std::int64_t started_at_ = 0;
    std::uint32_t mask_seed_;
    std::string in_;
    std::size_t in_begin_ = 0;
    std::string out_;
    std::size_t out_begin_ = 0;
    std::string fragments_;
    std::uint8_t fragment_opcode_ = 0;
};

}  // namespace gatehouse_load
