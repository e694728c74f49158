#include "gateway/access_log.hpp"

#include <utility>

#include "gateway/gateway_metrics.hpp"

namespace gatehouse::detail {
namespace {

// The request whose handler runs on this thread right now (http_access::scope).
thread_local http_access* current_http = nullptr;

std::chrono::microseconds since(std::chrono::steady_clock::time_point started) {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 started);
}

}  // namespace

std::string redacted_target(std::string_view path, std::string_view query) {
    if (query.empty()) return redact_target(path);
    std::string target(path);
    target += '?';
    target += query;
    return redact_target(target);
}

void access_log::request_finished(const access_record& record) const {
    if (metrics_ && record.what == access_record::kind::http) {
        metrics_->observe_http(record.route, record.status, record.duration);
    }
    if (sink_) sink_(record);
}

// ------------------------------------------------------------------------------------------
// HTTP

http_access::http_access(std::shared_ptr<const access_log> log, const http_request& request,
                         std::string_view route)
    : log_(std::move(log)),
      started_(std::chrono::steady_clock::now()),
      // The record's text only for a sink: without one the request is only timed.
      method_(log_->enabled() ? request.method : std::string()),
      target_(log_->enabled() ? redacted_target(request.path, request.query) : std::string()),
      route_(route),
      client_address_(log_->enabled() ? std::string(request.remote_address) : std::string()),
      bytes_received_(request.body.size()) {}

http_access::~http_access() {
    if (reported_.load()) return;
    try {
        http_response not_answered;
        not_answered.status = 0;
        finished(not_answered);
    } catch (...) {
        // An embedder's sink that throws loses this line; a destructor cannot pass it on.
    }
}

http_responder http_access::wrap(http_responder respond) {
    return [self = shared_from_this(), respond = std::move(respond)](http_response response) {
        // Reported before the answer is handed on: whoever reads the log after the answer
        // arrived finds its line.
        self->finished(response);
        respond(std::move(response));
    };
}

void http_access::finished(const http_response& response) {
    if (reported_.exchange(true)) return;
    std::string player;
    {
        std::lock_guard<std::mutex> lock(player_mutex_);
        player = player_id_;
    }
    access_record r;
    r.what = access_record::kind::http;
    r.method = method_;
    r.target = target_;
    r.route = route_;
    r.status = response.status;
    r.duration = since(started_);
    r.bytes_received = bytes_received_;
    // A HEAD's answer leaves the body out (the transport's response_framing).
    r.bytes_sent = method_ == "HEAD" ? 0 : response.body.size();
    r.client_address = client_address_;
    r.player_id = player;
    log_->request_finished(r);
}

void http_access::set_player(std::string_view player_id) {
    if (!log_->enabled()) return;  // only the sink's record names the player
    std::lock_guard<std::mutex> lock(player_mutex_);
    player_id_ = player_id;
}

http_access::scope::scope(http_access& access) noexcept : previous_(current_http) {
    current_http = &access;
}

http_access::scope::~scope() { current_http = previous_; }

void note_http_player(std::string_view player_id) {
    if (current_http) current_http->set_player(player_id);
}

// ------------------------------------------------------------------------------------------
// Streams

session_access::session_access(const access_log& log, access_record::kind what,
                               std::string_view path, std::string_view query,
                               std::string client_address)
    : log_(&log),
      started_(std::chrono::steady_clock::now()),
      client_address_(std::move(client_address)),
      what_(what) {
    std::string_view word;
    if (what == access_record::kind::event_stream) {
        route_ = route::sse_player;
        word = "/sse/player";
    } else {
        word = websocket_route(path);
        route_ = word == "/ws/player" ? route::ws_player
                 : word == "/ws/bot"  ? route::ws_bot
                                      : route::other;
    }
    // redact_target keeps a lone trailing `/` after a route word and redacts anything longer.
    path_tail_ = route_ != route::other && path.size() > word.size() + 1;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        const std::string_view name = param.substr(0, param.find('='));
        if (name == "codec") query_ |= has_codec;
        if (name == "resume") query_ |= has_resume;
        if (name == "token") query_ |= has_token;
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
}

std::string session_access::target(std::string_view codec, const std::string* resume) const {
    std::string raw;
    switch (route_) {
        case route::ws_player: raw = "/ws/player"; break;
        case route::ws_bot: raw = "/ws/bot"; break;
        case route::sse_player: raw = "/sse/player"; break;
        case route::other: raw = "/ws"; break;
    }
    // Any tail stands for the one the client sent: redact_target replaces it whole.
    if (path_tail_) raw += "/x";
    char separator = '?';
    const auto param = [&](std::string_view name, std::string_view value) {
        raw += separator;
        raw += name;
        raw += '=';
        raw += value;
        separator = '&';
    };
    if (query_ & has_codec) param("codec", codec);
    if ((query_ & has_resume) && resume) param("resume", *resume);
    if (query_ & has_token) param("token", "x");
    return redact_target(raw);
}

void session_access::finished(std::uint16_t close_code, std::string_view player_id,
                              std::string_view codec, const std::string* resume) const {
    const bool websocket = what_ == access_record::kind::websocket;
    const std::string rebuilt = target(codec, resume);
    std::string_view route_name = "other";
    switch (route_) {
        case route::ws_player: route_name = "/ws/player"; break;
        case route::ws_bot: route_name = "/ws/bot"; break;
        case route::sse_player: route_name = "/sse/player"; break;
        case route::other: break;
    }
    access_record r;
    r.what = what_;
    r.method = "GET";
    r.target = rebuilt;
    r.route = route_name;
    r.status = websocket ? 101 : 200;
    r.close_code = websocket ? close_code : 0;
    r.duration = since(started_);
    r.bytes_received = bytes_received_;
    r.bytes_sent = bytes_sent_.load(std::memory_order_relaxed);
    r.client_address = client_address_;
    r.player_id = player_id;
    log_->request_finished(r);
}

std::string_view websocket_route(std::string_view path) noexcept {
    constexpr std::string_view player = "/ws/player";
    constexpr std::string_view bot = "/ws/bot/";
    if (path == player || path.substr(0, player.size() + 1) == "/ws/player/") return player;
    if (path.substr(0, bot.size()) == bot) return "/ws/bot";
    return "other";
}

void report_refusal(const access_log& log, std::chrono::steady_clock::time_point started,
                    std::string_view path, std::string_view query, std::string_view route,
                    std::string_view client_address, const http_response& refusal) {
    const std::string target = log.enabled() ? redacted_target(path, query) : std::string();
    access_record r;
    r.what = access_record::kind::http;
    r.method = "GET";
    r.target = target;
    r.route = route;
    r.status = refusal.status;
    r.duration = since(started);
    r.bytes_sent = refusal.body.size();
    r.client_address = client_address;
    log.request_finished(r);
}

}  // namespace gatehouse::detail
