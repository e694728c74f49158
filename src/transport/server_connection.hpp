#pragma once
// One accepted TCP (or TLS) connection, composed of its parts: persistent HTTP/1.1
// (http_exchange.hpp) until it becomes a WebSocket (websocket_stream.hpp) or an event stream,
// the corked, bounded write side (connection_writer.hpp), and here the connection's own life:
// the read loop, the switch from HTTP to a stream, deadlines and the ending. Included by
// server.cpp only, which instantiates it for plain and TLS sockets.
//
// Threads. Everything that reads the socket or changes the connection's mode runs on the
// connection's strand; writes come from any thread (connection_writer.hpp). The socket is
// closed only on the strand and under the writer's mutex. The strand is Asio's
// io_context::strand, whose state comes from a fixed pool per io_context (193 entries, picked
// by hashing) rather than one allocation per connection as asio::strand<> makes (about 110
// bytes of an idle connection). Connections that share an entry never run their handlers at
// once; with one I/O thread nothing runs at once anyway, and with a few the pool is far larger
// than the number of threads. Handlers reach a connection's strand from its own socket
// operations, the sweep's timer and the answer to its own HTTP request, so a shared entry only
// serialises two connections: it would run one inside the other's handler only if a route
// answered another connection's request inline, which none does.
//
// Memory. A plain connection reads into one buffer per I/O thread after the socket is
// readable; an idle connection holds no read buffer, and the parsers hold bytes only while a
// request or frame is partial.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include <asio/bind_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/io_context_strand.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>

#include "common/clock.hpp"
#include "gatehouse/connection.hpp"
#include "gatehouse/http.hpp"
#include "transport/connection_socket.hpp"
#include "transport/connection_writer.hpp"
#include "transport/http_exchange.hpp"
#include "transport/listener_state.hpp"
#include "transport/transport_events.hpp"
#include "transport/websocket_stream.hpp"

namespace gatehouse::detail {

template <bool Tls>
class server_connection final : public stream_link,
                                public swept_connection,
                                public std::enable_shared_from_this<server_connection<Tls>>,
                                public connection_writer<server_connection<Tls>, Tls>,
                                public websocket_stream<server_connection<Tls>>,
                                private http_exchange_host,
                                private tls_read_buffer<Tls> {
    using tcp = asio::ip::tcp;
    using strand_type = asio::io_context::strand;
    using writer = connection_writer<server_connection, Tls>;
    using websocket = websocket_stream<server_connection>;
    friend writer;
    friend websocket;

public:
    server_connection(std::shared_ptr<listener_state> state, transport_socket socket,
                      asio::ssl::context* tls)
        : state_(std::move(state)),
          strand_(socket.get_executor().context()),
          socket_(make_connection_stream<Tls>(std::move(socket), tls)) {}

    // Starts the TLS handshake or the first read.
    void start() {
        std::error_code ec;
        const auto remote = lowest_layer().remote_endpoint(ec).address();
        http_ = std::make_unique<http_exchange>(static_cast<http_exchange_host&>(*this), events(),
                                                options(), remote.to_string());
        lowest_layer().set_option(tcp::no_delay(true), ec);
        if constexpr (Tls) {
            // The handshake counts against the header deadline: a peer that never finishes
            // one holds no slot for long.
            set_deadline(steady_now_ms() + options().http_header_timeout.count());
            socket_.async_handshake(
                asio::ssl::stream_base::server,
                asio::bind_executor(strand_, [self = this->shared_from_this()](std::error_code e) {
                    if (e) return self->finish();
                    if (self->http_) self->http_->arm_idle_deadline();
                    self->arm_read();
                }));
        } else {
            // Non-blocking from the start: reads and direct sends never block an I/O thread.
            lowest_layer().non_blocking(true, ec);
            http_->arm_idle_deadline();
            arm_read();
        }
    }

    // --- stream_link ---

    send_status send(const shared_frame& frame) override {
        if (!frame.bytes) return send_status::closed;
        const bool queued =
            this->enqueue(stream_mode() == stream_kind::websocket ? websocket::data_frame(frame)
                                                                  : out_item{frame.bytes});
        return queued ? send_status::queued : send_status::closed;
    }

    send_status send_keyed(const shared_frame& frame, std::string_view key, bool replace) override {
        if (!frame.bytes) return send_status::closed;
        return this->enqueue_keyed(stream_mode() == stream_kind::websocket
                                       ? websocket::data_frame(frame)
                                       : out_item{frame.bytes},
                                   key, replace);
    }

    std::size_t buffered_bytes() const noexcept override { return this->buffered(); }

    void close(close_code code, std::string_view reason) override {
        if (stream_mode() == stream_kind::websocket) {
            this->send_close_frame(static_cast<std::uint16_t>(code), reason);
        } else {
            // An event stream has no close frame: what is queued goes out, then the socket
            // closes.
            this->end_output();
        }
    }

    bool ping() override {
        if (stream_mode() == stream_kind::event_stream) {
            static const auto comment = std::make_shared<const std::string>(": keep-alive\n\n");
            out_item item;
            item.bytes = comment;
            return this->enqueue(std::move(item));
        }
        return this->send_control(ws_opcode::ping, {});
    }

    // --- swept_connection ---

    void expire() override {
        asio::dispatch(strand_, [self = this->shared_from_this()] { self->on_deadline(); });
    }

    void sever() override {
        std::lock_guard<std::mutex> lock(this->out_mutex_);
        // Under the writer's mutex: no sender posts to the strand after this.
        this->drop_output_locked();
        std::error_code ec;
        lowest_layer().close(ec);
    }

private:
    enum class phase : std::uint8_t { open, lingering, closed };

    transport_socket& lowest_layer() noexcept { return tcp_layer(socket_); }
    transport_events& events() const noexcept { return state_->events; }
    const transport_options& options() const noexcept { return state_->options; }
    stream_kind stream_mode() const noexcept { return mode_flag_.load(std::memory_order_acquire); }
    bool is_closed() const noexcept { return phase_ == phase::closed; }

    // The bound applies to streams; HTTP responses are exempt: one is queued at a time,
    // whatever size its route made it.
    bool output_bounded() const noexcept { return stream_mode() != stream_kind::http; }

    // Past the one bound on everything queued (docs/protocol.md 6.6): a WebSocket is closed with
    // 4008, whose frame may go past the bound by its few bytes; anything else ends after what
    // is queued. Either way the close deadline ends a peer that does not read.
    void output_overflow_locked() {
        if (stream_mode() == stream_kind::websocket) {
            this->send_close_frame_locked(static_cast<std::uint16_t>(close_code::slow_consumer),
                                          "slow consumer");
        } else {
            this->end_output_locked();
        }
    }

    // --- http_exchange_host (on the strand) ---

    void queue_bytes(std::shared_ptr<const std::string> bytes) override {
        out_item item;
        item.bytes = std::move(bytes);
        this->enqueue(std::move(item));
    }
    void end_after_output() override { this->end_output(); }
    void set_deadline_at(std::int64_t at_ms) override { set_deadline(at_ms); }
    bool is_open() const override { return phase_ == phase::open; }
    http_responder responder(std::uint64_t sequence) override {
        std::weak_ptr<server_connection> weak = this->shared_from_this();
        return [weak, sequence](http_response response) {
            if (auto self = weak.lock()) self->respond(sequence, std::move(response));
        };
    }

    // From any thread; the first answer to the current request wins. Counted in flight so
    // that the listener's destruction (listener_state::sever_all) waits for the hand-off.
    void respond(std::uint64_t sequence, http_response response) {
        auto& state = *state_;
        state.answers_in_flight.fetch_add(1);
        if (!state.severed.load()) {
            asio::dispatch(strand_, [self = this->shared_from_this(), sequence,
                                     response = std::move(response)] {
                self->on_response(sequence, response);
            });
        }
        state.answers_in_flight.fetch_sub(1);
    }

    void on_response(std::uint64_t sequence, const http_response& response) {
        if (!http_ || phase_ != phase::open) return;
        std::string input;
        if (http_->on_response(sequence, response, input) !=
            http_exchange::after_response::resume) {
            return;
        }
        if (!input.empty() && !consume(input)) return;
        arm_read();
    }

    // ----------------------------------------------------------------------------------------
    // Reading (on the strand)

    void arm_read() {
        if (phase_ == phase::closed || reading_) return;
        // Resumed by the writer once the backlog drains.
        if (phase_ == phase::open && this->output_backlogged()) return;
        reading_ = true;
        if constexpr (Tls) {
            if (!this->tls_buffer_) this->tls_buffer_ = std::make_unique<std::array<char, 4096>>();
            socket_.async_read_some(
                asio::buffer(*this->tls_buffer_),
                asio::bind_executor(
                    strand_, [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                        self->reading_ = false;
                        if (ec) return self->finish();
                        if (self->consume({self->tls_buffer_->data(), n})) self->arm_read();
                    }));
        } else {
            // Not bound to the strand but dispatched to it, which is the same path (a bound
            // handler's completion dispatches through the strand too): the operation an idle
            // connection keeps pending is then 32 bytes smaller, without a copy of the strand.
            socket_.async_wait(transport_socket::wait_read,
                               [self = this->shared_from_this()](std::error_code ec) mutable {
                                   auto& strand = self->strand_;
                                   asio::dispatch(strand, [self = std::move(self), ec] {
                                       self->reading_ = false;
                                       self->on_readable(ec);
                                   });
                               });
        }
    }

    void on_readable(std::error_code ec) {
        if (ec) return finish();
        const auto buffer = thread_read_buffer();
        this->cork();
        struct uncork_at_exit {
            server_connection& c;
            ~uncork_at_exit() { c.uncork(); }
        } cork{*this};
        // A few reads per wake-up, then back to the event loop, so one busy client cannot
        // starve the others on this thread.
        for (int round = 0; round < 4; ++round) {
            if (phase_ == phase::closed) return;
            const std::size_t n = socket_.read_some(buffer, ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) break;
            if (ec) return finish();
            if (!consume({static_cast<const char*>(buffer.data()), n})) return;
            if (n < buffer.size()) break;
        }
        arm_read();
    }

    // Returns false when reading must stop (closed, or paused behind a pending response).
    bool consume(std::string_view data) {
        switch (phase_) {
            case phase::closed: return false;
            case phase::lingering: return true;  // discarded until the peer closes its end
            case phase::open: break;
        }
        switch (mode_) {
            case stream_kind::http: return consume_http(data);
            case stream_kind::websocket: return this->consume_frames(data);
            case stream_kind::event_stream: return true;  // a client sends nothing on a stream
        }
        return false;
    }

    bool consume_http(std::string_view data) {
        switch (http_->consume(data)) {
            case http_exchange::progress::reading: return true;
            case http_exchange::progress::paused: return false;
            case http_exchange::progress::switched: break;
        }
        become(std::move(http_->switch_to()));
        if (phase_ != phase::open) return false;
        // The bytes after the upgrade request are frames.
        return mode_ == stream_kind::websocket ? this->consume_frames(data) : true;
    }

    // The handshake answer is queued: the stream belongs to its handler now, and the HTTP
    // exchange (its parser, the peer's address) is let go.
    void become(stream_switch to) {
        http_.reset();
        this->release_queue_when_written();
        set_deadline(0);
        mode_ = to.kind;
        mode_flag_.store(to.kind, std::memory_order_release);
        this->deflate_ = to.deflate;
        handler_ = std::move(to.handler);
        handler_->on_open(this->shared_from_this());
    }

    // ----------------------------------------------------------------------------------------
    // Ending (on the strand)

    // Everything is written and this side is done: send FIN and wait (bounded) for the peer's,
    // reading and dropping what it still sends, so that a response is not cut short by a
    // reset (RFC 9112 section 9.6).
    void linger() {
        if (phase_ != phase::open) return;
        phase_ = phase::lingering;
        notify_closed();
        std::error_code ec;
        lowest_layer().shutdown(transport_socket::shutdown_send, ec);
        if (ec) return finish();
        set_deadline(steady_now_ms() + options().close_timeout.count());
        arm_read();
    }

    void on_deadline() {
        const auto at = deadline_ms();
        if (at == 0 || at > steady_now_ms() || phase_ == phase::closed) return;
        if (phase_ == phase::open && mode_ == stream_kind::http && http_ &&
            http_->header_deadline_passed()) {
            return;
        }
        finish();
    }

    // Closes the socket (once) and tells the handler.
    void finish() {
        if (phase_ == phase::closed) return;
        phase_ = phase::closed;
        set_deadline(0);
        {
            std::lock_guard<std::mutex> lock(this->out_mutex_);
            this->drop_output_locked();
            std::error_code ec;
            lowest_layer().shutdown(transport_socket::shutdown_both, ec);
            lowest_layer().close(ec);
        }
        if (http_) http_->connection_ended();
        http_.reset();
        this->reader_.reset();
        notify_closed();
    }

    void notify_closed() {
        auto handler = std::move(handler_);
        handler_.reset();
        if (!handler) return;
        handler->on_close(mode_ == stream_kind::websocket ? this->close_code_for_handler() : 0);
    }

    // ----------------------------------------------------------------------------------------

    std::shared_ptr<listener_state> state_;
    strand_type strand_;
    connection_stream<Tls> socket_;
    std::unique_ptr<http_exchange> http_;      // while the connection speaks HTTP
    std::shared_ptr<stream_handler> handler_;  // once it is a stream

    // On the strand.
    stream_kind mode_ = stream_kind::http;
    phase phase_ = phase::open;
    bool reading_ = false;
    // Read from any thread.
    std::atomic<stream_kind> mode_flag_{stream_kind::http};
};

}  // namespace gatehouse::detail
