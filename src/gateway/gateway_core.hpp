#pragma once
// The transport-independent heart of a gateway: authentication at upgrade, codec
// negotiation, the command path (decode -> rate limit -> bus -> ack), update routing, HTTP
// routing, keepalive and shutdown accounting. The websocketpp server (src/transport/) calls
// into it; it never sees a websocketpp type.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gatehouse/codec_registry.hpp"
#include "gatehouse/command_bus.hpp"
#include "gatehouse/connection_manager.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/http.hpp"
#include "gatehouse/metrics.hpp"
#include "gatehouse/pubsub_listener.hpp"
#include "gatehouse/token_bucket.hpp"
#include "gateway/session.hpp"

namespace gatehouse::detail {

// What the transport read from an upgrade request.
struct upgrade_request {
    std::string_view path;
    std::string_view query;
    std::string_view authorization;  // the Authorization header, possibly empty
    const std::vector<std::string>* offered_subprotocols = nullptr;
};

// What the core decided about it.
struct upgrade_result {
    bool accepted = false;
    int status = 0;           // the HTTP status of a refusal
    std::string body;         // its problem+json body
    std::string subprotocol;  // to echo; empty when the client offered none we support
    session_setup setup;
};

class gateway_core {
public:
    gateway_core(gateway_options options, codec_registry codecs, std::shared_ptr<command_bus> bus,
                 std::shared_ptr<pubsub_listener> listener);
    ~gateway_core();

    const gateway_options& options() const noexcept { return options_; }
    const std::string& gateway_id() const noexcept { return options_.gateway_id; }
    connection_manager& connections() noexcept { return connections_; }
    metrics_registry& metrics() noexcept { return metrics_; }
    void log(log_level level, std::string_view message) const;

    // --- WebSocket ---
    upgrade_result authorize_upgrade(const upgrade_request& request);
    void on_open(const std::shared_ptr<session>& s);
    void on_message(const std::shared_ptr<session>& s, bool text, std::string_view bytes);
    void on_close(const std::shared_ptr<session>& s, std::uint16_t code);
    void on_activity(session& s);
    // Pings quiet sessions and closes idle ones; called periodically by the transport.
    void sweep();
    std::chrono::milliseconds sweep_interval() const noexcept;

    // --- HTTP ---
    void add_route(std::string method, std::string path, http_handler handler);
    void handle_http(const http_request& request, const http_responder& respond);

    // --- event streams (GET /sse/player), which the transport serves itself ---
    // True when the transport should stream this request rather than call handle_http.
    bool is_event_stream_request(const http_request& request) const noexcept;
    // Authenticates it (Bearer or ?token=): accepted with a session setup, or a refusal.
    upgrade_result authorize_event_stream(const http_request& request);
    // The stream's head has been written: register it for routing (no welcome). It ends
    // through on_close like a WebSocket.
    void on_stream_open(const std::shared_ptr<session>& s);

    // --- lifecycle ---
    void start_listener();
    void stop_listener();
    // Stops reading commands; closes (1001) each session once its pending commands are
    // answered.
    void begin_shutdown();
    bool shutting_down() const noexcept { return shutting_down_.load(); }
    // Waits until every session has closed or `deadline` passed; true when all closed.
    bool wait_for_sessions(std::chrono::steady_clock::time_point deadline);
    bool ready() const noexcept;
    std::error_code authenticate(std::string_view token, identity& who) const;

private:
    void accept_command(const std::shared_ptr<session>& s, envelope& command);
    void reply_error(session& s, std::string_view code, std::string_view message,
                     std::string_view correlation_id);
    void reply(session& s, std::string_view type, std::string payload_json,
               std::string_view correlation_id);
    void route_update(std::string_view message);
    void handle_http_command(const http_request& request, const http_responder& respond);
    void register_session(const std::shared_ptr<session>& s);
    metric_gauge& open_gauge(const session_setup& setup) noexcept;
    void close_for_shutdown(session& s);
    bool verify_bot_key(std::string_view key, identity& who) const;
    connection_id next_connection_id();

    gateway_options options_;
    codec_registry codecs_;
    std::shared_ptr<const codec> json_codec_;
    std::shared_ptr<const codec> msgpack_codec_;
    std::shared_ptr<const codec> event_stream_codec_;
    std::shared_ptr<command_bus> bus_;
    std::shared_ptr<pubsub_listener> listener_;
    connection_manager connections_;
    metrics_registry metrics_;

    // route -> method -> handler
    std::map<std::string, std::map<std::string, http_handler>, std::less<>> routes_;

    std::atomic<bool> shutting_down_{false};
    std::atomic<bool> listener_started_{false};
    std::atomic<std::uint64_t> connection_counter_{0};

    // Every open session, for keepalive sweeps and shutdown; not on the send path.
    mutable std::mutex sessions_mutex_;
    std::condition_variable sessions_closed_;
    std::unordered_map<const session*, std::shared_ptr<session>> sessions_;
    // Upgrades accepted whose open handler has not run yet.
    std::size_t opening_ = 0;

    // POST /commands: a token bucket per player (PROTOCOL.md section 2), with when it was
    // last used so that sweep() can forget players who went quiet.
    struct http_bucket {
        token_bucket bucket;
        std::int64_t last_used_ms = 0;
    };
    std::mutex http_buckets_mutex_;
    std::unordered_map<std::string, http_bucket> http_buckets_;
    std::atomic<std::uint64_t> http_request_counter_{0};

    // Metrics, resolved once.
    metric_gauge& player_connections_;
    metric_gauge& bot_connections_;
    metric_gauge& event_streams_;
    metric_counter& connections_opened_;
    metric_counter& upgrades_unauthorized_;
    metric_counter& upgrades_bad_codec_;
    metric_counter& upgrades_shutting_down_;
    metric_counter& upgrades_not_found_;
    metric_counter& commands_accepted_;
    metric_counter& http_commands_accepted_;
    metric_counter& refused_invalid_frame_;
    metric_counter& refused_invalid_envelope_;
    metric_counter& refused_rate_limited_;
    metric_counter& refused_bus_unavailable_;
    metric_counter& updates_received_;
    metric_counter& updates_malformed_;
    metric_counter& idle_closed_;
};

}  // namespace gatehouse::detail
