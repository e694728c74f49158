#pragma once
// The transport-independent heart of a gateway, composed of its parts: the upgrade_authorizer
// (who may connect, in which codec), the session_registry (open sessions, keepalive, drain),
// the command_ingress (commands onto the bus), the update_router (updates to connections), the
// http_router (routes), cors (browser origins) and the gateway_metrics. It implements
// `transport_events`, the seam the transport (src/transport/) calls; it never sees a socket.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/codec_registry.hpp"
#include "gatehouse/command_bus.hpp"
#include "gatehouse/connection_manager.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/http.hpp"
#include "gatehouse/metrics.hpp"
#include "gatehouse/pubsub_listener.hpp"
#include "gatehouse/update_log.hpp"
#include "gateway/access_log.hpp"
#include "gateway/command_ingress.hpp"
#include "gateway/cors.hpp"
#include "gateway/gateway_metrics.hpp"
#include "gateway/http_router.hpp"
#include "gateway/session_registry.hpp"
#include "transport/transport_events.hpp"

namespace gatehouse::detail {

class upgrade_authorizer;
class update_router;

// Thread safety: configure (`add_route`) before the transport starts; the rest may be called
// from any thread. Lifetime: every callback it hands out (to the bus, the listener, sessions)
// holds the parts it needs by shared or weak pointer, and the destructor cancels what the bus
// has not answered, so the core, its bus and its sessions may be destroyed in any order.
class gateway_core final : public transport_events {
public:
    // Throws std::invalid_argument for unusable options (see gateway's constructor).
    gateway_core(gateway_options options, codec_registry codecs, std::shared_ptr<command_bus> bus,
                 std::shared_ptr<pubsub_listener> listener,
                 std::shared_ptr<update_log> log = nullptr);
    ~gateway_core() override;
    gateway_core(const gateway_core&) = delete;
    gateway_core& operator=(const gateway_core&) = delete;

    const gateway_options& options() const noexcept { return *options_; }
    const std::string& gateway_id() const noexcept { return options_->gateway_id; }
    connection_manager& connections() noexcept { return *connections_; }
    metrics_registry& metrics() noexcept { return metrics_->registry(); }
    // For the metrics listener (metrics_endpoint), which renders the same registry.
    const std::shared_ptr<gateway_metrics>& shared_metrics() const noexcept { return metrics_; }
    session_registry& sessions() noexcept { return *sessions_; }
    command_ingress& ingress() noexcept { return *ingress_; }
    void log(log_level level, std::string_view message) const override;

    // --- transport_events ---
    void handle_http(const http_request& request, http_responder respond) override;
    upgrade_decision authorize_upgrade(const upgrade_request& request) override;
    bool is_event_stream_request(const http_request& request) const noexcept override;
    upgrade_decision authorize_event_stream(const http_request& request) override;
    void answered_by_transport(std::string_view method, std::string_view target,
                               std::string_view client_address, const http_response& response,
                               std::chrono::microseconds duration) override;

    // --- HTTP ---
    void add_route(std::string method, std::string path, http_handler handler);
    std::vector<http_route> routes() const { return router_.routes(); }
    // The route table is final (the gateway is starting): builds what describes all of it, the
    // `/openapi.json` answer.
    void routes_complete();

    // --- keepalive: called periodically by the gateway ---
    void sweep();
    std::chrono::milliseconds sweep_interval() const noexcept;

    // --- lifecycle ---
    void start_listener();
    void stop_listener();
    // The reconnect spread (docs/protocol.md 6.7): refuses new upgrades, event streams and `/ready`
    // (503) from now on, and tells every open session when to reconnect, `after_ms` spread over
    // `0..spread`, while they are still served. Logs the start; returns how many were told.
    std::size_t begin_drain(std::chrono::milliseconds spread);
    // Waits until `deadline`, until every session has closed, or until end_spread(); true when
    // every session closed.
    bool wait_for_spread(std::chrono::steady_clock::time_point deadline);
    // Ends wait_for_spread at once (a second signal, the gateway going away). Any thread.
    void end_spread();
    // Stops reading commands; closes (1001) each session once its pending commands are
    // answered.
    void begin_shutdown();
    bool shutting_down() const noexcept;
    // Waits until every session has closed or `deadline` passed; true when all closed.
    bool wait_for_sessions(std::chrono::steady_clock::time_point deadline);
    // The whole drain (docs/protocol.md section 1): begin_shutdown, wait for the sessions and the
    // appends still pending until `deadline`, then cancel what the bus has not answered and
    // stop the listener. True when everything drained in time. After it returns no bus answer
    // touches a session or an HTTP exchange, so the transport may stop.
    bool shutdown(std::chrono::steady_clock::time_point deadline);
    bool ready() const noexcept;
    std::error_code authenticate(std::string_view token, identity& who) const;

private:
    void add_builtin_routes();
    void add_publish_route();
    // `access`: the stream's access-log state, null when the log is off.
    upgrade_decision accept(session_setup setup, std::string subprotocol, double rate,
                            std::unique_ptr<session_access> access);
    // handle_http after the access log: CORS, then the router.
    void route_http(const http_request& request, http_responder respond);
    static upgrade_decision refuse(int status, std::string_view code, std::string_view detail);
    // The span of an upgrade or event stream (tracing on): `accepted_status` when accepted.
    void trace_decision(std::int64_t started_ns, std::string_view traceparent,
                        std::string_view path, std::string_view remote_address,
                        const upgrade_decision& decision, int accepted_status) const;

    const std::shared_ptr<const gateway_options> options_;
    const std::shared_ptr<command_bus> bus_;
    const std::shared_ptr<pubsub_listener> listener_;
    const std::shared_ptr<update_log> log_;
    const std::shared_ptr<connection_manager> connections_;
    const std::shared_ptr<gateway_metrics> metrics_;
    const std::shared_ptr<const upgrade_authorizer> authorizer_;
    const std::shared_ptr<session_registry> sessions_;
    const std::shared_ptr<command_ingress> ingress_;
    const std::shared_ptr<update_router> updates_;
    const cors cors_;
    const std::shared_ptr<const access_log> access_;
    http_router router_;
    // What `GET /openapi.json` answers (null when `options.openapi` is off); filled by
    // routes_complete() before the transport accepts a connection.
    std::shared_ptr<std::string> openapi_text_;
    std::atomic<bool> listener_started_{false};
};

}  // namespace gatehouse::detail
