#pragma once
// One accepted TCP (or TLS) connection: persistent HTTP/1.1 until it upgrades to a WebSocket or
// becomes an event stream. Included by server.cpp only, which instantiates it for plain and TLS
// sockets.
//
// Threads. Everything that reads the socket or changes the connection's mode runs on the
// connection's strand. Writes come from any thread: a sender takes `out_mutex_` and appends to
// the queue. Frames are never written one syscall each: on the strand, what a read batch
// provokes (acks, errors, pongs) leaves in one gathered write when the batch ends (a cork, as
// in uWebSockets); from another thread (fan-out, bus callbacks), the first frame of a batch
// posts one write to the strand and the frames queued behind it ride along, so a hand-off is
// paid per batch, not per frame, and fan-out is written by the I/O threads. Only what the
// kernel would not take waits for writability. The socket is closed only on the strand and
// under `out_mutex_`. A TLS stream is not safe for a read and a write at once, so its writes
// always go through the strand.
//
// Memory. A plain connection reads into one buffer per I/O thread after the socket is
// readable; an idle connection holds no read buffer, and the parsers hold bytes only while a
// request or frame is partial.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include <asio/bind_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/dispatch.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>

#include "gatehouse/connection.hpp"
#include "gatehouse/http.hpp"
#include "gatehouse/log.hpp"
#include "http/text.hpp"
#include "transport/http_parser.hpp"
#include "transport/listener_state.hpp"
#include "transport/response_text.hpp"
#include "transport/transport_events.hpp"
#include "transport/ws_deflate.hpp"
#include "transport/ws_protocol.hpp"

namespace gatehouse::detail {

inline std::int64_t transport_now_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// A TCP socket on the io_context's own executor rather than Asio's default type-erased
// any_io_executor, which every socket and every pending operation would carry (tens of bytes
// per idle connection).
using transport_socket = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;

// The read buffer of the calling I/O thread (plain sockets).
inline asio::mutable_buffer thread_read_buffer() {
    constexpr std::size_t size = std::size_t{64} * 1024;
    thread_local std::unique_ptr<char[]> buffer(new char[size]);
    return {buffer.get(), size};
}

template <bool Tls>
class server_connection final : public stream_link,
                                public swept_connection,
                                public std::enable_shared_from_this<server_connection<Tls>> {
    using tcp = asio::ip::tcp;
    using socket_type =
        std::conditional_t<Tls, asio::ssl::stream<transport_socket>, transport_socket>;
    using strand_type = asio::strand<asio::io_context::executor_type>;

public:
    server_connection(std::shared_ptr<listener_state> state, transport_socket socket,
                      asio::ssl::context* tls)
        : state_(std::move(state)),
          strand_(asio::make_strand(socket.get_executor())),
          socket_(make_socket(std::move(socket), tls)) {}

    // Starts the TLS handshake or the first read.
    void start() {
        std::error_code ec;
        remote_ = lowest_layer().remote_endpoint(ec).address();
        lowest_layer().set_option(tcp::no_delay(true), ec);
        if constexpr (Tls) {
            // The handshake counts against the header deadline: a peer that never finishes
            // one holds no slot for long.
            set_deadline(transport_now_ms() + state_->options.http_header_timeout.count());
            socket_.async_handshake(
                asio::ssl::stream_base::server,
                asio::bind_executor(strand_, [self = this->shared_from_this()](std::error_code e) {
                    if (e) return self->finish();
                    self->arm_idle_deadline();
                    self->arm_read();
                }));
        } else {
            // Non-blocking from the start: reads and direct sends never block an I/O thread.
            lowest_layer().non_blocking(true, ec);
            arm_idle_deadline();
            arm_read();
        }
    }

    // --- stream_link ---

    send_status send(const shared_frame& frame) override {
        if (!frame.bytes) return send_status::closed;
        out_item item;
        item.bytes = frame.bytes;
        if (mode_flag_.load(std::memory_order_acquire) == stream_kind::websocket) {
            item.header_len = static_cast<std::uint8_t>(encode_frame_header(
                item.header, frame.type == frame_type::text ? ws_opcode::text : ws_opcode::binary,
                frame.bytes->size()));
        }
        return enqueue(std::move(item)) ? send_status::queued : send_status::closed;
    }

    std::size_t buffered_bytes() const noexcept override {
        return buffered_.load(std::memory_order_relaxed);
    }

    void close(close_code code, std::string_view reason) override {
        const auto kind = mode_flag_.load(std::memory_order_acquire);
        if (kind == stream_kind::websocket) {
            send_close_frame(static_cast<std::uint16_t>(code), reason);
        } else {
            // An event stream has no close frame: what is queued goes out, then the socket
            // closes.
            std::lock_guard<std::mutex> lock(out_mutex_);
            if (output_closed_) return;
            output_closed_ = true;
            close_after_flush_locked();
        }
    }

    bool ping() override {
        const auto kind = mode_flag_.load(std::memory_order_acquire);
        if (kind == stream_kind::event_stream) {
            static const auto comment = std::make_shared<const std::string>(": keep-alive\n\n");
            out_item item;
            item.bytes = comment;
            return enqueue(std::move(item));
        }
        return send_control(ws_opcode::ping, {});
    }

    // --- swept_connection ---

    void expire() override {
        asio::dispatch(strand_, [self = this->shared_from_this()] { self->on_deadline(); });
    }

private:
    enum class stream_kind : std::uint8_t { http, websocket, event_stream };
    enum class phase : std::uint8_t { open, lingering, closed };

    struct out_item {
        std::shared_ptr<const std::string> bytes;
        unsigned char header[14] = {};
        std::uint8_t header_len = 0;
        std::size_t size() const noexcept { return header_len + bytes->size(); }
    };

    static socket_type make_socket(transport_socket socket, asio::ssl::context* tls) {
        if constexpr (Tls) {
            return socket_type(std::move(socket), *tls);
        } else {
            static_cast<void>(tls);
            return socket;
        }
    }

    transport_socket& lowest_layer() noexcept {
        if constexpr (Tls) {
            return socket_.next_layer();
        } else {
            return socket_;
        }
    }

    transport_events& events() const noexcept { return state_->events; }
    const transport_options& options() const noexcept { return state_->options; }

    // ----------------------------------------------------------------------------------------
    // Reading (on the strand)

    void arm_read() {
        if (phase_ == phase::closed || reading_) return;
        if (output_backlogged()) return;  // resumed by bytes_written() once it drains
        reading_ = true;
        if constexpr (Tls) {
            if (!tls_buffer_) tls_buffer_ = std::make_unique<std::array<char, 4096>>();
            socket_.async_read_some(
                asio::buffer(*tls_buffer_),
                asio::bind_executor(
                    strand_, [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                        self->reading_ = false;
                        if (ec) return self->peer_gone();
                        if (self->consume({self->tls_buffer_->data(), n})) self->arm_read();
                    }));
        } else {
            socket_.async_wait(
                transport_socket::wait_read,
                asio::bind_executor(strand_, [self = this->shared_from_this()](std::error_code ec) {
                    self->reading_ = false;
                    self->on_readable(ec);
                }));
        }
    }

    void on_readable(std::error_code ec) {
        if (ec) return peer_gone();
        const auto buffer = thread_read_buffer();
        corked_ = true;
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
            if (ec) return peer_gone();
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
            case stream_kind::websocket: return consume_frames(data);
            case stream_kind::event_stream: return true;  // a client sends nothing on a stream
        }
        return false;
    }

    // True (and reading paused) while more than read_pause_bytes wait unwritten. The writer
    // that drains the queue below the mark resumes reading; the exchange on read_paused_
    // makes exactly one of the two sides do it when they race.
    bool output_backlogged() {
        const auto mark = options().read_pause_bytes;
        if (mark == 0 || phase_ != phase::open ||
            buffered_.load(std::memory_order_acquire) < mark) {
            return false;
        }
        read_paused_.store(true, std::memory_order_release);
        if (buffered_.load(std::memory_order_acquire) < mark &&
            read_paused_.exchange(false, std::memory_order_acq_rel)) {
            return false;
        }
        return true;
    }

    // A read failed or the peer closed its end.
    void peer_gone() { finish(); }

    // ----------------------------------------------------------------------------------------
    // HTTP

    bool consume_http(std::string_view data) {
        in_consume_ = true;
        const bool go_on = consume_http_requests(data);
        in_consume_ = false;
        return go_on;
    }

    bool consume_http_requests(std::string_view data) {
        while (!data.empty()) {
            if (response_pending_) {
                // A pipelined request waits behind the response being prepared; reading stops
                // until it is sent, so at most one read's worth waits here.
                pending_input_.append(data.data(), data.size());
                return false;
            }
            if (!parser_) parser_ = std::make_unique<http_request_parser>(limits());
            const bool was_in_progress = parser_->in_progress();
            std::size_t used = 0;
            const auto result = parser_->parse(data, used);
            data.remove_prefix(used);
            if (!was_in_progress && parser_->in_progress()) {
                set_deadline(transport_now_ms() + options().http_header_timeout.count());
            }
            if (result == http_request_parser::result::need_more) {
                if (parser_->headers_complete()) {
                    arm_idle_deadline();  // a body on its way
                    continue_if_expected();
                }
                return true;
            }
            if (result == http_request_parser::result::error) {
                answer_and_close(http_response::problem(
                    parser_->error_status(), parser_->error_code(), parser_->error_detail()));
                return false;
            }
            continue_sent_ = false;
            handle_request(parser_->request());
            if (mode_ != stream_kind::http) {
                // Upgraded (or streaming): the bytes after the request are frames.
                parser_.reset();
                if (phase_ != phase::open) return false;
                return mode_ == stream_kind::websocket ? consume_frames(data) : true;
            }
            parser_->reset();
            if (phase_ != phase::open) return false;
        }
        if (!response_pending_ && !(parser_ && parser_->in_progress())) {
            // Between requests an idle connection keeps no parser.
            parser_.reset();
        }
        return true;
    }

    // RFC 9110 section 10.1.1: a client that sent `Expect: 100-continue` may wait for a
    // 100 (Continue) before sending the body (curl does, for a second, past 1 KiB).
    void continue_if_expected() {
        if (continue_sent_) return;
        const auto expect = parser_->request().header("Expect");
        if (!iequals(expect, "100-continue")) return;
        continue_sent_ = true;
        static const auto interim =
            std::make_shared<const std::string>("HTTP/1.1 100 Continue\r\n\r\n");
        out_item item;
        item.bytes = interim;
        enqueue(std::move(item));
    }

    http_limits limits() const {
        http_limits l;
        l.max_body = options().max_message_bytes;
        return l;
    }

    static std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
        const auto q = target.find('?');
        if (q == std::string_view::npos) return {target, {}};
        return {target.substr(0, q), target.substr(q + 1)};
    }

    void handle_request(parsed_request& parsed) {
        keep_alive_ = parsed.keep_alive;
        http_1_0_ = parsed.version_minor == 0;
        set_deadline(0);
        if (parsed.method == "GET" && parsed.has_token("Upgrade", "websocket")) {
            handle_upgrade(parsed);
            return;
        }
        http_request request;
        request.remote_address = remote_address(parsed);
        request.method = std::move(parsed.method);
        const auto [path, query] = split_target(parsed.target);
        request.path = path;
        request.query = query;
        request.headers = std::move(parsed.headers);
        request.body = std::move(parsed.body);
        events().log(log_level::debug, request.method + " " + redact_target(parsed.target) +
                                           " from " + request.remote_address);
        if (events().is_event_stream_request(request)) {
            start_event_stream(request);
            return;
        }
        // HEAD is GET without the body (RFC 9110 section 9.3.2): the router answers it as GET.
        head_request_ = request.method == "HEAD";
        if (head_request_) request.method = "GET";
        response_pending_ = true;
        const auto sequence = ++request_sequence_;
        std::weak_ptr<server_connection> weak = this->shared_from_this();
        events().handle_http(request, [weak, sequence](http_response response) {
            if (auto self = weak.lock()) self->respond(sequence, std::move(response));
        });
    }

    // From any thread; the first answer to the current request wins.
    void respond(std::uint64_t sequence, http_response response) {
        asio::dispatch(strand_, [self = this->shared_from_this(), sequence,
                                 response = std::move(response)]() mutable {
            self->on_response(sequence, std::move(response));
        });
    }

    void on_response(std::uint64_t sequence, http_response response) {
        if (sequence != request_sequence_ || !response_pending_ || phase_ != phase::open) return;
        response_pending_ = false;
        const bool close = !keep_alive_;
        write_response(response, close);
        if (close) return;
        arm_idle_deadline();
        if (in_consume_) return;  // answered inline: the consume loop carries on
        // Requests that arrived behind this one, then the socket again.
        std::string input = std::move(pending_input_);
        pending_input_ = std::string();
        if (!input.empty() && !consume(input)) return;
        arm_read();
    }

    void write_response(const http_response& response, bool close) {
        response_framing framing;
        framing.head = head_request_;
        framing.close = close;
        framing.keep_alive_1_0 = http_1_0_ && !close;
        out_item item;
        item.bytes = std::make_shared<const std::string>(response_text(response, framing));
        enqueue(std::move(item));
        if (close) {
            std::lock_guard<std::mutex> lock(out_mutex_);
            output_closed_ = true;
            close_after_flush_locked();
        }
    }

    // The gateway refused an upgrade or event stream: the refusal answers this request, and the
    // connection stays usable as HTTP.
    void answer_refusal(const http_response& refusal) {
        head_request_ = false;
        write_response(refusal, !keep_alive_);
    }

    // A response after which the connection ends (a refused request, a parser error, 408).
    void answer_and_close(const http_response& response) {
        head_request_ = false;
        keep_alive_ = false;
        response_pending_ = false;
        write_response(response, true);
    }

    void arm_idle_deadline() {
        set_deadline(mode_ == stream_kind::http
                         ? transport_now_ms() + options().http_idle_timeout.count()
                         : 0);
    }

    // The client address of the request being handled: the peer, or whom a trusted proxy
    // says it forwards for.
    std::string remote_address(const parsed_request& request) const {
        std::string peer = remote_.to_string();
        const auto& proxies = options().proxies;
        if (proxies.empty()) return peer;
        std::vector<std::string_view> forwarded;
        for (const auto& [name, value] : request.headers) {
            if (iequals(name, "X-Forwarded-For")) forwarded.push_back(value);
        }
        return proxies.client_address(peer, forwarded);
    }

    // ----------------------------------------------------------------------------------------
    // WebSocket upgrade (RFC 6455 section 4.2)

    void handle_upgrade(parsed_request& parsed) {
        const auto refuse = [this](int status, std::string_view code, std::string_view detail) {
            auto r = http_response::problem(status, code, detail);
            if (status == 426) r.headers.emplace_back("Sec-WebSocket-Version", "13");
            answer_and_close(r);
        };
        if (parsed.version_minor != 1 || !parsed.has_token("Connection", "upgrade")) {
            return refuse(400, "bad_request",
                          "a WebSocket upgrade needs HTTP/1.1 and Connection: Upgrade");
        }
        if (parsed.header("Sec-WebSocket-Version") != "13") {
            return refuse(426, "upgrade_required", "only WebSocket version 13 is spoken here");
        }
        const auto key = parsed.header("Sec-WebSocket-Key");
        if (!is_valid_websocket_key(key)) {
            return refuse(400, "bad_request", "Sec-WebSocket-Key must be 16 bytes in base64");
        }
        upgrade_request request;
        const auto [path, query] = split_target(parsed.target);
        request.path = path;
        request.query = query;
        request.authorization = parsed.header("Authorization");
        std::vector<std::string_view> extension_offers;
        for (const auto& [name, value] : parsed.headers) {
            if (iequals(name, "Sec-WebSocket-Protocol")) {
                split_header_tokens(value, request.offered_subprotocols);
            } else if (iequals(name, "Sec-WebSocket-Extensions")) {
                extension_offers.push_back(value);
            }
        }
        const std::string remote = remote_address(parsed);
        request.remote_address = remote;
        auto decision = events().authorize_upgrade(request);
        if (!decision.accepted) return answer_refusal(decision.refusal);
        deflate_offer_result deflate;
        if (options().ws_compression) deflate = negotiate_deflate(extension_offers);

        std::string answer =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Server: gatehouse\r\nSec-WebSocket-Accept: ";
        answer += websocket_accept(key);
        answer += "\r\n";
        if (!decision.subprotocol.empty()) {
            answer += "Sec-WebSocket-Protocol: ";
            answer += decision.subprotocol;
            answer += "\r\n";
        }
        if (deflate.accepted) {
            answer += "Sec-WebSocket-Extensions: ";
            answer += deflate.response;
            answer += "\r\n";
        }
        answer += "\r\n";
        out_item item;
        item.bytes = std::make_shared<const std::string>(std::move(answer));
        enqueue(std::move(item));

        deflate_ = deflate.accepted;
        become(stream_kind::websocket, std::move(decision.handler));
    }

    // ----------------------------------------------------------------------------------------
    // Event streams: a response that stays open (RFC 9112 section 6.3: no Content-Length, no
    // chunking, the body ends with the connection), which is how EventSource clients read.

    void start_event_stream(const http_request& request) {
        auto decision = events().authorize_event_stream(request);
        if (!decision.accepted) return answer_refusal(decision.refusal);
        out_item item;
        item.bytes = std::make_shared<const std::string>(
            "HTTP/1.1 200 OK\r\nServer: gatehouse\r\nContent-Type: text/event-stream\r\n"
            "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n");
        enqueue(std::move(item));
        become(stream_kind::event_stream, std::move(decision.handler));
    }

    // On the strand: the handshake answer is queued; the stream belongs to its handler now.
    void become(stream_kind kind, std::shared_ptr<stream_handler> handler) {
        pending_input_ = std::string();
        set_deadline(0);
        mode_ = kind;
        mode_flag_.store(kind, std::memory_order_release);
        handler_ = std::move(handler);
        handler_->on_open(this->shared_from_this());
    }

    // ----------------------------------------------------------------------------------------
    // WebSocket frames (on the strand)

    bool consume_frames(std::string_view input) {
        // Every buffer consume() is handed is this thread's read buffer or the connection's
        // own, never a caller's constant: the reader may unmask in place (no copy for a whole
        // frame that arrived in one read).
        char* data = const_cast<char*>(input.data());
        std::size_t size = input.size();
        // Until `none`, even with no bytes left, so the reader frees its last event's buffer.
        while (phase_ == phase::open) {
            std::size_t used = 0;
            if (!reader_) {
                ws_reader_options reader_options;
                reader_options.max_message_bytes = options().max_message_bytes;
                reader_options.deflate = deflate_;
                reader_ = std::make_unique<ws_reader>(reader_options);
            }
            const ws_event event = reader_->next(data, size, used);
            data += used;
            size -= used;
            switch (event.type) {
                case ws_event::kind::none:
                    // Between messages an idle connection keeps no reader (it is made again
                    // when the next bytes arrive): about 150 bytes per idle connection.
                    if (reader_->idle()) reader_.reset();
                    return true;
                case ws_event::kind::message:
                    // After this side sent its close frame, data is read and dropped
                    // (RFC 6455 section 5.5.1) until the peer's close arrives.
                    if (!close_sent_.load(std::memory_order_acquire) && handler_) {
                        handler_->on_message(event.text, event.payload);
                    }
                    break;
                case ws_event::kind::ping:
                    send_control(ws_opcode::pong, event.payload);
                    if (handler_) handler_->on_activity();
                    break;
                case ws_event::kind::pong:
                    if (handler_) handler_->on_activity();
                    break;
                case ws_event::kind::close:
                    // Echo the peer's code (RFC 6455 section 5.5.1), none when it sent none.
                    send_close_frame(event.close_code == 1005 ? 0 : event.close_code, {});
                    close_after_flush();
                    return false;
                case ws_event::kind::fail:
                    send_close_frame(event.close_code, event.reason);
                    close_after_flush();
                    return false;
            }
        }
        return false;
    }

    bool send_control(ws_opcode op, std::string_view payload) {
        out_item item;
        item.bytes = std::make_shared<const std::string>(payload);
        item.header_len =
            static_cast<std::uint8_t>(encode_frame_header(item.header, op, payload.size()));
        return enqueue(std::move(item));
    }

    // Queues this side's close frame once (code 0: an empty close payload). From any thread.
    void send_close_frame(std::uint16_t code, std::string_view reason) {
        std::lock_guard<std::mutex> lock(out_mutex_);
        send_close_frame_locked(code, reason);
    }

    void send_close_frame_locked(std::uint16_t code, std::string_view reason) {
        if (close_sent_.load(std::memory_order_relaxed) || output_closed_) return;
        close_sent_.store(true, std::memory_order_release);
        close_code_sent_.store(code == 0 ? 1005 : code, std::memory_order_relaxed);
        out_item item;
        item.bytes = std::make_shared<const std::string>(code == 0 ? std::string()
                                                                   : close_payload(code, reason));
        item.header_len = static_cast<std::uint8_t>(
            encode_frame_header(item.header, ws_opcode::close, item.bytes->size()));
        push_locked(std::move(item));
        // Nothing may follow a close frame.
        output_closed_ = true;
        // The peer has close_timeout to answer with its own.
        set_deadline(transport_now_ms() + options().close_timeout.count());
        flush_locked();
    }

    // ----------------------------------------------------------------------------------------
    // Writing (any thread)

    bool enqueue(out_item item) {
        std::lock_guard<std::mutex> lock(out_mutex_);
        if (output_closed_ || broken_) return false;
        // HTTP responses are exempt: one is queued at a time, whatever size its route made it.
        const auto bound = options().max_queued_bytes;
        if (bound != 0 && mode_flag_.load(std::memory_order_relaxed) != stream_kind::http &&
            buffered_.load(std::memory_order_relaxed) + item.size() > bound) {
            overflow_locked();
            return false;
        }
        push_locked(std::move(item));
        flush_locked();
        return true;
    }

    // Past the one bound on everything queued (PROTOCOL.md 6.6): a WebSocket is closed with
    // 4008, whose frame may go past the bound by its few bytes; anything else ends after what
    // is queued. Either way the close deadline ends a peer that does not read.
    void overflow_locked() {
        if (mode_flag_.load(std::memory_order_acquire) == stream_kind::websocket) {
            send_close_frame_locked(static_cast<std::uint16_t>(close_code::slow_consumer),
                                    "slow consumer");
        } else {
            output_closed_ = true;
            close_after_flush_locked();
        }
    }

    void push_locked(out_item item) {
        buffered_.fetch_add(item.size(), std::memory_order_relaxed);
        queue_.push_back(std::move(item));
    }

    void flush_locked() {
        if constexpr (Tls) {
            if (writing_ || flush_posted_ || queue_.empty()) return;
            flush_posted_ = true;
            asio::post(strand_, [self = this->shared_from_this()] { self->tls_write(); });
        } else {
            if (write_armed_ || broken_) return;
            if (strand_.running_in_this_thread()) {
                // On the connection's own strand: inside a read batch, what its messages
                // provoke (acks, errors, pongs) leaves in one write at the batch's end (a cork,
                // as uWebSockets does); otherwise it goes now.
                if (corked_) {
                    cork_pending_ = true;
                    return;
                }
                write_plain_locked();
                return;
            }
            // From another thread (the update listener's fan-out, a bus callback): one hand-off
            // per batch, not per frame. Everything queued until the strand runs leaves in one
            // gathered write, on the connection's own I/O thread, so a fan-out is spread over
            // the I/O threads instead of being written by the thread that routes it.
            if (flush_posted_) return;
            flush_posted_ = true;
            asio::post(strand_, [self = this->shared_from_this()] { self->posted_flush(); });
        }
    }

    void posted_flush() {
        std::lock_guard<std::mutex> lock(out_mutex_);
        flush_posted_ = false;
        if (!write_armed_ && !broken_) write_plain_locked();
    }

    // The end of a read batch: write what its messages queued.
    void uncork() {
        corked_ = false;
        if (!cork_pending_) return;
        cork_pending_ = false;
        std::lock_guard<std::mutex> lock(out_mutex_);
        if (!write_armed_ && !broken_) write_plain_locked();
    }

    // Plain sockets: non-blocking gathered sends until the queue is empty or the kernel's
    // buffer is full.
    void write_plain_locked() {
        constexpr std::size_t max_buffers = 64;
        std::array<iovec, max_buffers> buffers{};
        while (head_ < queue_.size()) {
            std::size_t count = 0;
            std::size_t skip = offset_;
            for (std::size_t i = head_; i < queue_.size() && count + 1 < max_buffers; ++i) {
                auto& item = queue_[i];
                if (skip < item.header_len) {
                    buffers[count++] = {item.header + skip, item.header_len - skip};
                    skip = 0;
                } else {
                    skip -= item.header_len;
                }
                if (skip < item.bytes->size()) {
                    // sendmsg only reads through iov_base; the iovec type is not const.
                    buffers[count++] = {const_cast<char*>(item.bytes->data()) + skip,
                                        item.bytes->size() - skip};
                }
                skip = 0;
            }
            msghdr message{};
            message.msg_iov = buffers.data();
            message.msg_iovlen = count;
            const ssize_t n = ::sendmsg(socket_.native_handle(), &message, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    arm_write_locked();
                } else if (errno != EINTR) {
                    fail_output_locked();
                    return;
                }
                if (errno != EINTR) return;
                continue;
            }
            consume_sent_locked(static_cast<std::size_t>(n));
        }
        queue_drained_locked();
    }

    // n more bytes reached the socket: un-count them, and resume reading if it was paused
    // for a backlog that has now drained.
    void bytes_written(std::size_t n) {
        const auto mark = options().read_pause_bytes;
        const auto left = buffered_.fetch_sub(n, std::memory_order_acq_rel) - n;
        if (mark != 0 && left < mark && read_paused_.load(std::memory_order_acquire) &&
            read_paused_.exchange(false, std::memory_order_acq_rel)) {
            asio::post(strand_, [self = this->shared_from_this()] { self->arm_read(); });
        }
    }

    void consume_sent_locked(std::size_t n) {
        bytes_written(n);
        while (n > 0 && head_ < queue_.size()) {
            const std::size_t left = queue_[head_].size() - offset_;
            if (n < left) {
                offset_ += n;
                return;
            }
            n -= left;
            queue_[head_].bytes.reset();
            ++head_;
            offset_ = 0;
        }
    }

    void queue_drained_locked() {
        queue_.clear();
        head_ = 0;
        offset_ = 0;
        // A burst can leave a large queue behind; an idle connection keeps none of it.
        if (queue_.capacity() > 16) queue_ = std::vector<out_item>();
        if (close_after_flush_) {
            asio::post(strand_, [self = this->shared_from_this()] { self->linger(); });
        }
    }

    void arm_write_locked() {
        write_armed_ = true;
        lowest_layer().async_wait(
            transport_socket::wait_write,
            asio::bind_executor(strand_, [self = this->shared_from_this()](std::error_code ec) {
                std::lock_guard<std::mutex> lock(self->out_mutex_);
                self->write_armed_ = false;
                if (ec) {
                    self->fail_output_locked();
                    return;
                }
                self->flush_locked();
            }));
    }

    // TLS: one asio::async_write at a time, on the strand.
    void tls_write() {
        std::vector<asio::const_buffer> buffers;
        std::size_t bytes = 0;
        {
            std::lock_guard<std::mutex> lock(out_mutex_);
            flush_posted_ = false;
            if (writing_ || broken_ || phase_ == phase::closed) return;
            if (queue_.empty()) return;
            in_flight_.swap(queue_);
            for (const auto& item : in_flight_) {
                if (item.header_len > 0)
                    buffers.emplace_back(asio::buffer(item.header, item.header_len));
                buffers.emplace_back(asio::buffer(*item.bytes));
                bytes += item.size();
            }
            writing_ = true;
        }
        asio::async_write(socket_, buffers,
                          asio::bind_executor(strand_, [self = this->shared_from_this(), bytes](
                                                           std::error_code ec, std::size_t) {
                              std::lock_guard<std::mutex> lock(self->out_mutex_);
                              self->writing_ = false;
                              self->in_flight_.clear();
                              self->bytes_written(bytes);
                              if (ec) {
                                  self->fail_output_locked();
                                  return;
                              }
                              if (!self->queue_.empty()) {
                                  self->flush_locked();
                              } else if (self->close_after_flush_) {
                                  asio::post(self->strand_, [self] { self->linger(); });
                              }
                          }));
    }

    // Nothing more will be written: what is queued is dropped and un-counted.
    void drop_output_locked() {
        broken_ = true;
        output_closed_ = true;
        std::size_t unsent = 0;
        for (std::size_t i = head_; i < queue_.size(); ++i) unsent += queue_[i].size();
        buffered_.fetch_sub(unsent - std::min(unsent, offset_), std::memory_order_relaxed);
        queue_.clear();
        head_ = 0;
        offset_ = 0;
    }

    // A write failed: the strand closes the connection.
    void fail_output_locked() {
        drop_output_locked();
        asio::post(strand_, [self = this->shared_from_this()] { self->finish(); });
    }

    void close_after_flush() {
        std::lock_guard<std::mutex> lock(out_mutex_);
        close_after_flush_locked();
    }

    void close_after_flush_locked() {
        if (close_after_flush_) return;
        close_after_flush_ = true;
        set_deadline(transport_now_ms() + options().close_timeout.count());
        const bool idle = queue_.empty() && !writing_;
        if (idle) asio::post(strand_, [self = this->shared_from_this()] { self->linger(); });
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
        set_deadline(transport_now_ms() + options().close_timeout.count());
        arm_read();
    }

    void on_deadline() {
        const auto at = deadline_ms();
        if (at == 0 || at > transport_now_ms() || phase_ == phase::closed) return;
        if (phase_ == phase::open && mode_ == stream_kind::http && parser_ &&
            parser_->in_progress() && !parser_->headers_complete() && !response_pending_) {
            // RFC 9110 section 15.5.9: the server would not wait longer for the request.
            set_deadline(0);
            answer_and_close(http_response::problem(408, "request_timeout",
                                                    "the request's headers took too long"));
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
            std::lock_guard<std::mutex> lock(out_mutex_);
            drop_output_locked();
            std::error_code ec;
            lowest_layer().shutdown(transport_socket::shutdown_both, ec);
            lowest_layer().close(ec);
        }
        parser_.reset();
        reader_.reset();
        pending_input_ = std::string();
        notify_closed();
    }

    void notify_closed() {
        auto handler = std::move(handler_);
        handler_.reset();
        if (!handler) return;
        std::uint16_t code = 0;
        if (mode_ == stream_kind::websocket) {
            // The code this side sent or echoed; 1006 without a closing handshake.
            code = close_sent_.load(std::memory_order_acquire)
                       ? close_code_sent_.load(std::memory_order_relaxed)
                       : std::uint16_t{1006};
        }
        handler->on_close(code);
    }

    // ----------------------------------------------------------------------------------------

    std::shared_ptr<listener_state> state_;
    strand_type strand_;
    socket_type socket_;
    asio::ip::address remote_;

    // On the strand.
    stream_kind mode_ = stream_kind::http;
    phase phase_ = phase::open;
    bool reading_ = false;
    bool response_pending_ = false;
    bool in_consume_ = false;
    bool keep_alive_ = true;
    bool http_1_0_ = false;
    bool head_request_ = false;
    bool continue_sent_ = false;
    bool corked_ = false;        // inside on_readable: sends from the strand wait for its end
    bool cork_pending_ = false;  // and some did
    std::uint64_t request_sequence_ = 0;
    std::unique_ptr<http_request_parser> parser_;
    std::unique_ptr<ws_reader> reader_;  // while a frame or message is partial
    bool deflate_ = false;               // permessage-deflate was negotiated
    std::string pending_input_;
    std::shared_ptr<stream_handler> handler_;
    std::unique_ptr<std::array<char, 4096>> tls_buffer_;  // TLS only

    // Read from any thread.
    std::atomic<stream_kind> mode_flag_{stream_kind::http};
    std::atomic<bool> close_sent_{false};
    std::atomic<std::uint16_t> close_code_sent_{0};
    std::atomic<std::size_t> buffered_{0};
    std::atomic<bool> read_paused_{false};

    // The output side: guarded by out_mutex_.
    std::mutex out_mutex_;
    std::vector<out_item> queue_;
    std::size_t head_ = 0;    // first item not completely written
    std::size_t offset_ = 0;  // bytes of it already written
    bool write_armed_ = false;
    bool output_closed_ = false;
    bool close_after_flush_ = false;
    bool broken_ = false;
    bool flush_posted_ = false;  // a write is posted to the strand
    // TLS only.
    std::vector<out_item> in_flight_;
    bool writing_ = false;
};

}  // namespace gatehouse::detail
