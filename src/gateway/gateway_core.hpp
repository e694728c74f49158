#pragma once
// The transport-independent heart of a gateway: authentication at upgrade, codec
// negotiation, the command path (decode -> rate limit -> bus -> ack), update routing, HTTP
// routing, keepalive and shutdown accounting. The transport (src/transport/) calls into it
// through `transport_events`; it never sees a socket.

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
#include "transport/transport_events.hpp"

namespace gatehouse::detail {

// What the core decided about an upgrade before it becomes a transport answer.
struct upgrade_result {
    bool accepted = false;
    int status = 0;           // the HTTP status of a refusal
    std::string body;         // its problem+json body
    std::string subprotocol;  // to echo; empty when the client offered none we support
    session_setup setup;
};

class gateway_core final : public transport_events {
public:
    gateway_core(gateway_options options, codec_registry codecs, std::shared_ptr<command_bus> bus,
                 std::shared_ptr<pubsub_listener> listener);
    ~gateway_core() override;

    const gateway_options& options() const noexcept { return options_; }
    const std::string& gateway_id() const noexcept { return options_.gateway_id; }
    connection_manager& connections() noexcept { return connections_; }
    metrics_registry& metrics() noexcept { return metrics_; }
    void log(log_level level, std::string_view message) const override;

    // --- transport_events ---
    void handle_http(const http_request& request, http_responder respond) override;
    upgrade_decision authorize_upgrade(const upgrade_request& request) override;
    // True when the transport should stream this request rather than call handle_http.
    bool is_event_stream_request(const http_request& request) const noexcept override;
    // Authenticates it (Bearer or ?token=): accepted with a session, or a refusal.
    upgrade_decision authorize_event_stream(const http_request& request) override;

    // --- a session's life, called by session (its stream_handler side) ---
    void on_open(const std::shared_ptr<session>& s);
    void on_message(const std::shared_ptr<session>& s, bool text, std::string_view bytes);
    void on_close(const std::shared_ptr<session>& s, std::uint16_t code);
    void on_activity(session& s);
    // Pings quiet sessions and closes idle ones; called periodically by the transport.
    void sweep();
    std::chrono::milliseconds sweep_interval() const noexcept;

    // --- HTTP ---
    void add_route(std::string method, std::string path, http_handler handler);

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
    upgrade_result decide_upgrade(const upgrade_request& request);
    upgrade_decision to_decision(upgrade_result result, double rate);
    // Counts an accepted upgrade until it opens or fails; false when over max_connections.
    bool reserve_slot();
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
    metric_counter& upgrades_over_capacity_;
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
