#pragma once
// websocketpp wired to the gateway core, for one websocketpp config (plain or TLS). Included
// by exactly one .cpp per config, so each instantiation compiles once.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/post.hpp>
#include <websocketpp/server.hpp>

#include "gatehouse/http.hpp"
#include "gatehouse/log.hpp"
#include "gateway/gateway_core.hpp"
#include "gateway/session.hpp"
#include "transport/event_stream.hpp"
#include "transport/frame_message.hpp"
#include "transport/transport_server.hpp"

namespace gatehouse::detail {

// The read buffer websocketpp embeds in every connection object (its default is 16 KiB). It
// dominated the memory of an idle connection, while the commands it reads are small: at this
// size one read still takes about ten pipelined 100-byte commands, and a larger message simply
// arrives over several reads. docs/benchmarks.md has the per-connection figures.
inline constexpr std::size_t read_buffer_bytes = 1024;

// Per-connection user data websocketpp keeps inside each of its connections (the config's
// `connection_base`): the gateway session once the upgrade was accepted.
struct connection_slot {
    std::shared_ptr<session> gateway_session;
};

// websocketpp answers a few requests itself with an empty body: a body over the size cap
// (413), a request it cannot parse (400). Every error of PROTOCOL.md is problem+json, so the
// configs use this response type, which writes one whenever an error status is set on a
// response without a body. Handlers that set their own body afterwards replace it.
class problem_response : public websocketpp::http::parser::response {
public:
    using base = websocketpp::http::parser::response;
    using status = websocketpp::http::status_code::value;

    void set_status(status code) {
        set_status(code, websocketpp::http::status_code::get_string(code));
    }

    void set_status(status code, const std::string& message) {
        // websocketpp's own errors come with an empty reason phrase.
        base::set_status(
            code, message.empty() ? websocketpp::http::status_code::get_string(code) : message);
        const int numeric = static_cast<int>(code);
        if (numeric >= 400 && get_body().empty()) {
            set_body(http_response::problem(numeric, problem_code(numeric)).body);
            replace_header("Content-Type", "application/problem+json");
        }
    }

private:
    static std::string_view problem_code(int status) noexcept {
        switch (status) {
            case 400: return "bad_request";
            case 413: return "payload_too_large";
            case 426: return "upgrade_required";
            case 500: return "internal_error";
            case 503: return "unavailable";
            default: return "http_error";
        }
    }
};

template <class Config>
class ws_server final : public transport_server {
public:
    using server_type = websocketpp::server<Config>;
    using connection_type = typename server_type::connection_type;
    using connection_ptr = typename server_type::connection_ptr;
    using message_ptr = typename server_type::message_ptr;

    ws_server(gateway_core& core, asio::io_context& io) : core_(core), io_(io) {
        // websocketpp's 64-bit byte swap detects the byte order lazily in a function-local
        // static that it writes unsynchronised on first use; using it once here, before any
        // I/O thread runs, leaves only reads for later (ThreadSanitizer found the race when
        // two connections first sent frames over 64 KiB at once).
        static_cast<void>(websocketpp::lib::net::_htonll(0));
        const auto& options = core_.options();
        server_.clear_access_channels(websocketpp::log::alevel::all);
        server_.clear_error_channels(websocketpp::log::elevel::all);
        server_.init_asio(&io_);
        server_.set_reuse_addr(true);
        server_.set_listen_backlog(1024);
        // Acks and updates are small writes. With Nagle's algorithm on, each one waits behind
        // the previous unacknowledged frame for the client's next packet or delayed ACK: a
        // command's ack then arrives one command-interval late (bench/README.md, roundtrip).
        server_.set_tcp_pre_init_handler([this](websocketpp::connection_hdl h) {
            std::error_code ec;
            const auto con = server_.get_con_from_hdl(h, ec);
            if (ec || !con) return;
            con->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
        });
        // websocketpp measures the assembled message, after any extension: N bytes pass,
        // N + 1 close the connection with 1009.
        server_.set_max_message_size(options.max_message_bytes);
        server_.set_max_http_body_size(options.max_message_bytes);
        // Bounded handshakes: a peer that never finishes one holds no slot for long.
        server_.set_open_handshake_timeout(5000);
        server_.set_close_handshake_timeout(2000);

        server_.set_validate_handler([this](websocketpp::connection_hdl h) { return validate(h); });
        server_.set_open_handler([this](websocketpp::connection_hdl h) {
            release_handshake(h);
            if (auto s = session_of(h)) core_.on_open(s);
        });
        server_.set_close_handler([this](websocketpp::connection_hdl h) { closed(h); });
        server_.set_fail_handler([this](websocketpp::connection_hdl h) { closed(h); });
        server_.set_message_handler([this](websocketpp::connection_hdl h, message_ptr msg) {
            if (auto s = session_of(h)) {
                core_.on_message(s, msg->get_opcode() == websocketpp::frame::opcode::text,
                                 msg->get_payload());
            }
        });
        server_.set_pong_handler([this](websocketpp::connection_hdl h, const std::string&) {
            if (auto s = session_of(h)) core_.on_activity(*s);
        });
        server_.set_ping_handler([this](websocketpp::connection_hdl h, const std::string&) {
            if (auto s = session_of(h)) core_.on_activity(*s);
            return true;  // let websocketpp answer with a pong
        });
        server_.set_http_handler([this](websocketpp::connection_hdl h) { serve_http(h); });
    }

    // For the TLS instantiation, which installs its init handler.
    server_type& endpoint() noexcept { return server_; }

    std::error_code listen(const asio::ip::tcp::endpoint& endpoint) override {
        std::error_code ec;
        server_.listen(endpoint, ec);
        if (!ec) server_.start_accept(ec);
        return ec;
    }

    asio::ip::tcp::endpoint local_endpoint() const override {
        std::error_code ec;
        return const_cast<server_type&>(server_).get_local_endpoint(ec);
    }

    void stop_listening() override {
        std::error_code ec;
        server_.stop_listening(ec);
    }

private:
    // The connection `session` sends through. It holds the websocketpp connection weakly:
    // websocketpp owns it, and a session kept by a bus callback must not keep a dead socket.
    //
    // Frames are handed to websocketpp already framed (a server's frames are unmasked, so the
    // header depends only on opcode and size), in a message whose deleter runs once the
    // message is written or dropped. That gives an exact, race-free count of the bytes
    // queued and not yet written, which the slow-consumer policy needs: websocketpp's own
    // get_buffered_amount() reads its counter without the lock that guards it.
    class ws_session final : public session {
    public:
        using message_type = typename Config::message_type;

        ws_session(session_setup setup, double rate, double burst,
                   std::weak_ptr<connection_type> con)
            : session(std::move(setup), rate, burst), con_(std::move(con)) {}

        send_status send(const shared_frame& frame) override {
            const auto con = con_.lock();
            if (!con || !frame.bytes) return send_status::closed;
            const auto op = frame.type == frame_type::text ? websocketpp::frame::opcode::text
                                                           : websocketpp::frame::opcode::binary;
            const std::size_t size = frame.bytes->size();
            buffered_->fetch_add(size, std::memory_order_relaxed);
            // The frame's bytes are shared, not copied: one buffer serves every connection a
            // fan-out reaches (frame_message.hpp).
            std::shared_ptr<message_type> message(
                new message_type(op, frame.bytes), [counter = buffered_, size](message_type* m) {
                    counter->fetch_sub(size, std::memory_order_relaxed);
                    delete m;
                });
            message->set_header(websocketpp::frame::prepare_header(
                websocketpp::frame::basic_header(op, size, true, false),
                websocketpp::frame::extended_header(size)));
            message->set_prepared(true);
            // On failure the message is released here, and its deleter un-counts it.
            return con->send(message) ? send_status::closed : send_status::queued;
        }

        std::size_t buffered_bytes() const noexcept override {
            return buffered_->load(std::memory_order_relaxed);
        }

        void close(close_code code, std::string_view reason) override {
            if (const auto con = con_.lock()) {
                std::error_code ec;  // already closing or closed: nothing to do
                con->close(static_cast<websocketpp::close::status::value>(code),
                           std::string(reason), ec);
            }
        }

        bool ping() override {
            const auto con = con_.lock();
            if (!con) return false;
            std::error_code ec;
            con->ping(std::string{}, ec);
            return !ec;
        }

    private:
        std::weak_ptr<connection_type> con_;
        // Shared with the deleters of messages still queued, which may outlive the session.
        std::shared_ptr<std::atomic<std::size_t>> buffered_ =
            std::make_shared<std::atomic<std::size_t>>(0);
    };

    std::shared_ptr<session> session_of(websocketpp::connection_hdl h) {
        std::error_code ec;
        const auto con = server_.get_con_from_hdl(h, ec);
        return ec || !con ? nullptr : con->gateway_session;
    }

    // websocketpp gives `1.2.3.4:56` or `[::1]:56`; http_request promises the address alone.
    static std::string address_without_port(std::string endpoint) {
        const auto colon = endpoint.rfind(':');
        if (colon == std::string::npos) return endpoint;
        endpoint.resize(colon);
        if (endpoint.size() >= 2 && endpoint.front() == '[' && endpoint.back() == ']') {
            endpoint = endpoint.substr(1, endpoint.size() - 2);
        }
        return endpoint;
    }

    static std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
        const auto q = target.find('?');
        if (q == std::string_view::npos) return {target, {}};
        return {target.substr(0, q), target.substr(q + 1)};
    }

    bool validate(websocketpp::connection_hdl h) {
        std::error_code ec;
        const auto con = server_.get_con_from_hdl(h, ec);
        if (ec || !con) return false;
        const std::string resource = con->get_resource();
        const auto [path, query] = split_target(resource);
        const std::string authorization = con->get_request_header("Authorization");
        upgrade_request request{path, query, authorization, &con->get_requested_subprotocols()};
        auto result = core_.authorize_upgrade(request);
        if (!result.accepted) {
            con->set_status(static_cast<websocketpp::http::status_code::value>(result.status));
            con->set_body(result.body);
            con->replace_header("Content-Type", "application/problem+json");
            core_.log(log_level::info, "upgrade " + redact_target(resource) + " from " +
                                           con->get_remote_endpoint() + " refused with " +
                                           std::to_string(result.status));
            return false;
        }
        if (!result.subprotocol.empty()) con->select_subprotocol(result.subprotocol, ec);
        const auto& options = core_.options();
        const double rate = options.ws_rate_limit;
        con->gateway_session = std::make_shared<ws_session>(std::move(result.setup), rate, 2 * rate,
                                                            std::weak_ptr<connection_type>(con));
        return true;
    }

    // websocketpp keeps the upgrade's parsed request and response (header maps, bodies, the
    // Sec-WebSocket-Protocol list) for the connection's whole life, about 1.2 KiB per idle
    // connection, and has no call to drop them. Nothing reads them once the connection is
    // open: the gateway took what it needs in validate(), and in websocketpp 0.8.2 the last
    // reader, log_open_result(), runs just before the open handler (log_fail_result() only
    // for connections that never opened). The accessors are const only to keep users from
    // editing a handshake in flight; the objects themselves are not const.
    void release_handshake(websocketpp::connection_hdl h) {
        std::error_code ec;
        const auto con = server_.get_con_from_hdl(h, ec);
        if (ec || !con) return;
        using request_type = typename connection_type::request_type;
        using response_type = typename connection_type::response_type;
        const_cast<request_type&>(con->get_request()) = request_type();
        const_cast<response_type&>(con->get_response()) = response_type();
        const_cast<std::vector<std::string>&>(con->get_requested_subprotocols()) = {};
    }

    void closed(websocketpp::connection_hdl h) {
        std::error_code ec;
        const auto con = server_.get_con_from_hdl(h, ec);
        if (ec || !con || !con->gateway_session) return;
        auto s = std::move(con->gateway_session);
        con->gateway_session.reset();
        // The code this side sent (its own close, or the echo of the client's); 1006 when the
        // connection ended without a closing handshake.
        auto code = con->get_local_close_code();
        if (code == websocketpp::close::status::blank ||
            code == websocketpp::close::status::no_status) {
            code = con->get_remote_close_code();
        }
        core_.on_close(s, static_cast<std::uint16_t>(code));
    }

    // An HTTP exchange whose handler may answer at once or later from another thread.
    struct exchange {
        std::mutex mutex;
        bool deferred = false;
        bool answered = false;
        std::optional<http_response> early;
        connection_ptr con;
        asio::io_context* io = nullptr;

        static void apply(connection_type& con, const http_response& r) {
            con.set_status(static_cast<websocketpp::http::status_code::value>(r.status),
                           std::string(http_status_title(r.status)));
            con.set_body(r.body);
            con.replace_header("Content-Type", r.content_type);
            for (const auto& [name, value] : r.headers) con.append_header(name, value);
        }

        void answer(http_response r) {
            std::unique_lock<std::mutex> lock(mutex);
            if (answered) return;
            answered = true;
            if (!deferred) {
                early = std::move(r);
                return;
            }
            lock.unlock();
            // websocketpp's connection is driven from its strand; hop back onto the I/O
            // threads rather than writing from a worker thread.
            asio::post(*io, [c = con, r = std::move(r)] {
                apply(*c, r);
                std::error_code ec;
                c->send_http_response(ec);
            });
        }

        void handler_returned() {
            std::lock_guard<std::mutex> lock(mutex);
            if (early) {
                apply(*con, *early);
                return;
            }
            deferred = true;
            con->defer_http_response();
        }
    };

    void serve_http(websocketpp::connection_hdl h) {
        std::error_code ec;
        const auto con = server_.get_con_from_hdl(h, ec);
        if (ec || !con) return;
        const auto& raw = con->get_request();
        http_request request;
        request.method = raw.get_method();
        const auto [path, query] = split_target(con->get_resource());
        request.path = path;
        request.query = query;
        for (const auto& [name, value] : raw.get_headers())
            request.headers.emplace_back(name, value);
        request.body = raw.get_body();
        request.remote_address = address_without_port(con->get_remote_endpoint());
        core_.log(log_level::debug, request.method + " " + redact_target(con->get_resource()));
        if (core_.is_event_stream_request(request)) {
            start_event_stream(con, request);
            return;
        }

        auto ex = std::make_shared<exchange>();
        ex->con = con;
        ex->io = &io_;
        core_.handle_http(request, [ex](http_response r) { ex->answer(std::move(r)); });
        ex->handler_returned();
    }

    void start_event_stream(const connection_ptr& con, const http_request& request) {
        auto result = core_.authorize_event_stream(request);
        if (!result.accepted) {
            // Not deferred: websocketpp writes this response when the handler returns.
            con->set_status(static_cast<websocketpp::http::status_code::value>(result.status));
            con->set_body(result.body);
            con->replace_header("Content-Type", "application/problem+json");
            return;
        }
        con->defer_http_response();
        auto stream = std::make_shared<event_stream<connection_ptr>>(
            std::move(result.setup), con,
            [this](const std::shared_ptr<session>& s) { core_.on_close(s, 0); });
        stream->start([this, stream] { core_.on_stream_open(stream); });
    }

    gateway_core& core_;
    asio::io_context& io_;
    server_type server_;
};

}  // namespace gatehouse::detail
