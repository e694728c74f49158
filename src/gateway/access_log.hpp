#pragma once
// The access log's one funnel (gateway_options::access_log): every HTTP request the gateway
// answers and every WebSocket or event stream that ends becomes one access_record, handed to
// access_log::request_finished, which also times HTTP answers for /metrics. Off (no sink), a
// session costs one branch and builds nothing, and an HTTP request only what its timing needs
// (its start, its route): the record's text is made only when a sink will read it.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "gatehouse/http.hpp"
#include "gatehouse/log.hpp"

namespace gatehouse::detail {

class gateway_metrics;

// Thread safety: const after construction; request_finished may run on any thread.
class access_log {
public:
    // `metrics`: where HTTP answers are timed (gatehouse_http_request_duration_seconds); may be
    // null.
    access_log(access_log_sink sink, std::shared_ptr<gateway_metrics> metrics)
        : sink_(std::move(sink)), metrics_(std::move(metrics)) {}

    // Whether finished requests are written to the sink: callers build no stream state, and
    // no text of a record (target, method, client address), otherwise.
    bool enabled() const noexcept { return static_cast<bool>(sink_); }
    // Whether finished HTTP requests are reported at all (to the sink or to the duration
    // histogram): callers build no record otherwise.
    bool reports_http() const noexcept { return sink_ || metrics_; }

    // The one place a finished HTTP request or stream is reported: an HTTP answer is timed
    // under its route and status, then every record goes to the sink.
    void request_finished(const access_record& record) const;

private:
    access_log_sink sink_;
    std::shared_ptr<gateway_metrics> metrics_;
};

// One HTTP request on its way to an answer: what its record needs once the answer comes,
// perhaps later and from a worker thread. Shared by the responder that reports it.
class http_access : public std::enable_shared_from_this<http_access> {
public:
    // `route`: the pattern the router will dispatch `request` to, or `other`.
    http_access(std::shared_ptr<const access_log> log, const http_request& request,
                std::string_view route);
    // A request whose handler let its responder go without answering is reported here, as not
    // answered (status 0), once.
    ~http_access();
    http_access(const http_access&) = delete;
    http_access& operator=(const http_access&) = delete;

    // `respond`, reporting the request at its first call (a handler's later calls are ignored
    // by the transport, and not reported either).
    http_responder wrap(http_responder respond);

    // While a handler runs synchronously on this thread, note_http_player() reaches this
    // request. Not nestable across requests (one handler runs at a time on a thread).
    class scope {
    public:
        explicit scope(http_access& access) noexcept;
        ~scope();
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;

    private:
        http_access* previous_;
    };

    void set_player(std::string_view player_id);

private:
    void finished(const http_response& response);

    const std::shared_ptr<const access_log> log_;
    const std::chrono::steady_clock::time_point started_;
    const std::string method_;
    const std::string target_;  // redacted
    const std::string route_;
    const std::string client_address_;
    const std::uint64_t bytes_received_;
    std::atomic<bool> reported_{false};
    std::mutex player_mutex_;
    std::string player_id_;
};

// A route handler running synchronously on this thread authenticated `player_id`: the access
// record of the request it handles names it. Nothing when no request is tracked here.
void note_http_player(std::string_view player_id);

// The access-log state of one WebSocket or event stream, made at the upgrade when the log is on
// (a session holds none otherwise). Kept small, as every open session holds one: the target is
// not stored but rebuilt at the end from the route, what the path and query held (a path
// credential, `codec`, `resume`, `token`) and the session's codec and resume id; other query
// parameters are not repeated in the record.
// Thread safety: sent() from any thread; received() and finished() from the stream's own calls,
// which never run concurrently (transport_events.hpp).
class session_access {
public:
    // `log` outlives it (session_registry owns it and every session holds the registry).
    session_access(const access_log& log, access_record::kind what, std::string_view path,
                   std::string_view query, std::string client_address);

    void received(std::size_t bytes) noexcept { bytes_received_ += bytes; }
    void sent(std::size_t bytes) noexcept {
        bytes_sent_.fetch_add(bytes, std::memory_order_relaxed);
    }
    // Reports the stream's end. `codec`: the session's wire codec; `resume`: its `?resume=` (or
    // `Last-Event-ID`) as given, null when not asked.
    void finished(std::uint16_t close_code, std::string_view player_id, std::string_view codec,
                  const std::string* resume) const;

    // The target as redact_target would leave it, rebuilt from what the upgrade held.
    std::string target(std::string_view codec, const std::string* resume) const;

private:
    enum class route : std::uint8_t { ws_player, ws_bot, sse_player, other };
    enum query_bit : std::uint8_t { has_codec = 1, has_resume = 2, has_token = 4 };

    const access_log* const log_;
    const std::chrono::steady_clock::time_point started_;
    const std::string client_address_;
    std::uint64_t bytes_received_ = 0;
    std::atomic<std::uint64_t> bytes_sent_{0};
    const access_record::kind what_;
    route route_ = route::other;
    bool path_tail_ = false;  // a segment after the route word (a credential, redacted)
    std::uint8_t query_ = 0;  // query_bit
};

// `path?query` (or `path` without a query) as redact_target leaves it.
std::string redacted_target(std::string_view path, std::string_view query);

// The route pattern of a WebSocket upgrade's path (`/ws/player`, `/ws/bot`), or `other`.
std::string_view websocket_route(std::string_view path) noexcept;

// The access record of an upgrade or event stream the gateway refused (an HTTP answer).
void report_refusal(const access_log& log, std::chrono::steady_clock::time_point started,
                    std::string_view path, std::string_view query, std::string_view route,
                    std::string_view client_address, const http_response& refusal);

}  // namespace gatehouse::detail
