#include "transport/http_exchange.hpp"

#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "gatehouse/log.hpp"
#include "http/text.hpp"
#include "transport/response_text.hpp"
#include "transport/ws_deflate.hpp"
#include "transport/ws_protocol.hpp"

namespace gatehouse::detail {
namespace {

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return {target, {}};
    return {target.substr(0, q), target.substr(q + 1)};
}

std::shared_ptr<const std::string> shared_text(std::string text) {
    return std::make_shared<const std::string>(std::move(text));
}

void append_headers(std::string& out,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
    for (const auto& [name, value] : headers) {
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
}

}  // namespace

http_exchange::http_exchange(http_exchange_host& host, transport_events& events,
                             const transport_options& options, std::string peer)
    : host_(host), events_(events), options_(options), peer_(std::move(peer)) {}

http_exchange::progress http_exchange::consume(std::string_view& data) {
    in_consume_ = true;
    const auto result = consume_requests(data);
    in_consume_ = false;
    return result;
}

http_exchange::progress http_exchange::consume_requests(std::string_view& data) {
    while (!data.empty()) {
        if (response_pending_) {
            // A pipelined request waits behind the response being prepared; reading stops
            // until it is sent, so at most one read's worth waits here.
            pending_input_.append(data.data(), data.size());
            return progress::paused;
        }
        if (!parser_) parser_ = std::make_unique<http_request_parser>(limits());
        const bool was_in_progress = parser_->in_progress();
        std::size_t used = 0;
        const auto result = parser_->parse(data, used);
        data.remove_prefix(used);
        if (!was_in_progress && parser_->in_progress()) {
            request_started_ = std::chrono::steady_clock::now();
            host_.set_deadline_at(steady_now_ms() + options_.http_header_timeout.count());
        }
        if (result == http_request_parser::result::need_more) {
            if (parser_->headers_complete()) {
                arm_idle_deadline();  // a body on its way
                continue_if_expected();
            }
            return progress::reading;
        }
        if (result == http_request_parser::result::error) {
            if (!was_in_progress) request_started_ = std::chrono::steady_clock::now();
            refuse_and_close(&parser_->request(), peer_,
                             http_response::problem(parser_->error_status(), parser_->error_code(),
                                                    parser_->error_detail()));
            return progress::paused;
        }
        continue_sent_ = false;
        handle_request(parser_->request());
        if (switch_.kind != stream_kind::http) {
            // Upgraded (or streaming): the bytes after the request are the stream's.
            parser_.reset();
            return progress::switched;
        }
        parser_->reset();
        if (!host_.is_open()) return progress::paused;
    }
    if (!response_pending_ && !(parser_ && parser_->in_progress())) {
        // Between requests an idle connection keeps no parser.
        parser_.reset();
    }
    return progress::reading;
}

// RFC 9110 section 10.1.1: a client that sent `Expect: 100-continue` may wait for a
// 100 (Continue) before sending the body (curl does, for a second, past 1 KiB).
void http_exchange::continue_if_expected() {
    if (continue_sent_) return;
    const auto expect = parser_->request().header("Expect");
    if (!iequals(expect, "100-continue")) return;
    continue_sent_ = true;
    static const auto interim = shared_text("HTTP/1.1 100 Continue\r\n\r\n");
    host_.queue_bytes(interim);
}

http_limits http_exchange::limits() const {
    http_limits l;
    l.max_body = options_.max_message_bytes;
    return l;
}

void http_exchange::handle_request(parsed_request& parsed) {
    keep_alive_ = parsed.keep_alive;
    http_1_0_ = parsed.version_minor == 0;
    host_.set_deadline_at(0);
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
    events_.log(log_level::debug, request.method + " " + redact_target(parsed.target) + " from " +
                                      request.remote_address);
    if (events_.is_event_stream_request(request)) {
        start_event_stream(request);
        return;
    }
    // HEAD is GET without the body (RFC 9110 section 9.3.2): the router answers it as GET
    // (http_router::handle), and the response's body is left out here.
    head_request_ = request.method == "HEAD";
    response_pending_ = true;
    events_.handle_http(request, host_.responder(++request_sequence_));
}

http_exchange::after_response http_exchange::on_response(std::uint64_t sequence,
                                                         const http_response& response,
                                                         std::string& input) {
    if (sequence != request_sequence_ || !response_pending_) return after_response::nothing;
    response_pending_ = false;
    const bool close = !keep_alive_;
    write_response(response, close);
    if (close) return after_response::nothing;
    arm_idle_deadline();
    if (in_consume_) return after_response::nothing;  // answered inline: consume() carries on
    // Requests that arrived behind this one, then the socket again.
    input = std::move(pending_input_);
    pending_input_ = std::string();
    return after_response::resume;
}

void http_exchange::write_response(const http_response& response, bool close) {
    response_framing framing;
    framing.head = head_request_;
    framing.close = close;
    framing.keep_alive_1_0 = http_1_0_ && !close;
    host_.queue_bytes(shared_text(response_text(response, framing)));
    if (close) host_.end_after_output();
}

// The gateway refused an upgrade or event stream: the refusal answers this request, and the
// connection stays usable as HTTP.
void http_exchange::answer_refusal(const http_response& refusal) {
    head_request_ = false;
    write_response(refusal, !keep_alive_);
}

void http_exchange::refuse_and_close(const parsed_request* request, const std::string& client,
                                     const http_response& response) {
    events_.answered_by_transport(request ? std::string_view(request->method) : std::string_view(),
                                  request ? std::string_view(request->target) : std::string_view(),
                                  client, response, since_request_started());
    answer_and_close(response);
}

// A response after which the connection ends (a refused request, a parser error, 408).
void http_exchange::answer_and_close(const http_response& response) {
    closing_answered_ = true;
    head_request_ = false;
    keep_alive_ = false;
    response_pending_ = false;
    write_response(response, true);
}

std::chrono::microseconds http_exchange::since_request_started() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 request_started_);
}

void http_exchange::connection_ended() {
    // A request still waiting for its answer is the gateway's to report (http_access); one
    // whose headers never completed is not told apart from a port probe.
    if (closing_answered_ || response_pending_ || !parser_ || !parser_->in_progress() ||
        !parser_->headers_complete()) {
        return;
    }
    closing_answered_ = true;
    http_response not_answered;
    not_answered.status = 0;
    const auto& request = parser_->request();
    events_.answered_by_transport(request.method, request.target, remote_address(request),
                                  not_answered, since_request_started());
}

bool http_exchange::header_deadline_passed() {
    if (!parser_ || !parser_->in_progress() || parser_->headers_complete() || response_pending_) {
        return false;
    }
    // RFC 9110 section 15.5.9: the server would not wait longer for the request.
    host_.set_deadline_at(0);
    refuse_and_close(
        &parser_->request(), peer_,
        http_response::problem(408, "request_timeout", "the request's headers took too long"));
    return true;
}

void http_exchange::arm_idle_deadline() {
    host_.set_deadline_at(steady_now_ms() + options_.http_idle_timeout.count());
}

// The client address of the request being handled: the peer, or whom a trusted proxy says it
// forwards for.
std::string http_exchange::remote_address(const parsed_request& request) const {
    const auto& proxies = options_.proxies;
    if (proxies.empty()) return peer_;
    std::vector<std::string_view> forwarded;
    for (const auto& [name, value] : request.headers) {
        if (iequals(name, "X-Forwarded-For")) forwarded.push_back(value);
    }
    return proxies.client_address(peer_, forwarded);
}

// ------------------------------------------------------------------------------------------
// WebSocket upgrade (RFC 6455 section 4.2)

void http_exchange::handle_upgrade(parsed_request& parsed) {
    const auto refuse = [this, &parsed](int status, std::string_view code,
                                        std::string_view detail) {
        auto r = http_response::problem(status, code, detail);
        if (status == 426) r.headers.emplace_back("Sec-WebSocket-Version", "13");
        refuse_and_close(&parsed, remote_address(parsed), r);
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
    request.origin = parsed.header("Origin");
    request.host = parsed.header("Host");
    request.traceparent = parsed.header("traceparent");
    std::vector<std::string_view> extension_offers;
    int origins = 0;
    for (const auto& [name, value] : parsed.headers) {
        if (iequals(name, "Origin")) {
            request.several_origins = ++origins > 1;
        } else if (iequals(name, "Sec-WebSocket-Protocol")) {
            split_header_tokens(value, request.offered_subprotocols);
        } else if (iequals(name, "Sec-WebSocket-Extensions")) {
            extension_offers.push_back(value);
        }
    }
    const std::string remote = remote_address(parsed);
    request.remote_address = remote;
    auto decision = events_.authorize_upgrade(request);
    if (!decision.accepted) return answer_refusal(decision.refusal);
    deflate_offer_result deflate;
    if (options_.ws_compression) deflate = negotiate_deflate(extension_offers);

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
    append_headers(answer, decision.headers);
    answer += "\r\n";
    host_.queue_bytes(shared_text(std::move(answer)));

    switch_.kind = stream_kind::websocket;
    switch_.handler = std::move(decision.handler);
    switch_.deflate = deflate.accepted;
}

// ------------------------------------------------------------------------------------------
// Event streams: a response that stays open (RFC 9112 section 6.3: no Content-Length, no
// chunking, the body ends with the connection), which is how EventSource clients read.

void http_exchange::start_event_stream(const http_request& request) {
    auto decision = events_.authorize_event_stream(request);
    if (!decision.accepted) return answer_refusal(decision.refusal);
    std::string answer =
        "HTTP/1.1 200 OK\r\nServer: gatehouse\r\nContent-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n";
    append_headers(answer, decision.headers);
    answer += "\r\n";
    host_.queue_bytes(shared_text(std::move(answer)));
    switch_.kind = stream_kind::event_stream;
    switch_.handler = std::move(decision.handler);
}

}  // namespace gatehouse::detail
