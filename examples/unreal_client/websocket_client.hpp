#pragma once
// websocket_client: a minimal RFC 6455 client over a `transport`, driven by tick() from the
// game loop: it never blocks and never starts a thread. Opening handshake with the
// Sec-WebSocket-Accept check, masked frames out, fragmented messages in, pings answered with
// pongs, and the closing handshake. No extensions (no permessage-deflate), no TLS (put a TLS
// transport under it for wss://).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "transport.hpp"
#include "ws_frames.hpp"

namespace gh_client {

/// Thread safety: none; call every member from the thread that ticks it. Callbacks run inside
/// tick() (or send/close), and may call send() and close(). Lifetime: the transport must
/// outlive the client.
class websocket_client {
public:
    enum class state : std::uint8_t { idle, handshaking, open, closing, closed };

    struct callbacks {
        /// The upgrade succeeded; `subprotocol` is the one the server chose.
        std::function<void(std::string_view subprotocol)> on_open;
        /// One whole message (fragments joined).
        std::function<void(bool text, std::string_view data)> on_message;
        /// The connection ended: the server's close code, 1006 when it broke or the handshake
        /// failed, or the code we closed with after a protocol violation. Called once.
        std::function<void(std::uint16_t code, std::string_view why)> on_closed;
    };

    websocket_client(transport& t, callbacks cb, std::size_t max_message_bytes = 1 << 20)
        : transport_(t), callbacks_(std::move(cb)), reader_(max_message_bytes) {}

    /// Sends the upgrade request for `path` on an already connected transport. `host` is the
    /// Host header; `subprotocol` (may be empty) must be echoed by the server.
    void open(std::string_view host, std::string_view path, std::string_view subprotocol);

    /// Does whatever I/O is possible now and runs the callbacks it leads to.
    void tick();

    /// Queues one message; false unless the connection is open.
    bool send(bool text, std::string_view data);

    /// Starts the closing handshake; the server's close frame (or a 2 s limit) ends it.
    void close(std::uint16_t code = 1000, std::string_view reason = {});

    state current() const noexcept { return state_; }
    /// The HTTP status of the upgrade answer (101 on success, 401 for a bad token...); 0 before.
    int handshake_status() const noexcept { return handshake_status_; }
    /// Pings the server sent and this client answered.
    std::uint64_t pings_answered() const noexcept { return pings_answered_; }

private:
    void on_bytes(const char* data, std::size_t size);
    void read_handshake();
    void process_events();
    void send_frame(opcode op, std::string_view payload);
    void flush();
    void finish(std::uint16_t code, std::string_view why);

    transport& transport_;
    callbacks callbacks_;
    frame_reader reader_;
    state state_ = state::idle;
    std::string key_;
    std::string subprotocol_;
    std::string handshake_;  // the upgrade answer until its blank line
    std::string out_;        // bytes the transport has not taken yet
    int handshake_status_ = 0;
    std::uint64_t pings_answered_ = 0;
    std::chrono::steady_clock::time_point close_deadline_;
};

}  // namespace gh_client
