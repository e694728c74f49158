#pragma once
// The gateway's own metric families, registered once when the gateway is built and then
// updated through references (lock-free): no name lookup on a hot path. Every part of the
// core shares one `gateway_metrics`; the registry it wraps is the one `gateway::metrics()`
// exposes, so an embedder's metrics render beside these.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/command_bus.hpp"
#include "gatehouse/connection_manager.hpp"
#include "gatehouse/metrics.hpp"

namespace gatehouse::detail {

struct session_setup;

// Thread safety: every member may be used from any thread.
// Lifetime: the callbacks it registers (connection-manager counts, bus state) hold those
// objects weakly, so rendering never reaches one that is gone.
class gateway_metrics {
public:
    gateway_metrics(const std::shared_ptr<const connection_manager>& connections,
                    const std::shared_ptr<const command_bus>& bus);
    gateway_metrics(const gateway_metrics&) = delete;
    gateway_metrics& operator=(const gateway_metrics&) = delete;

    metrics_registry& registry() noexcept { return *registry_; }

    // The open-connection gauge a session counts in: event streams, bots or players.
    metric_gauge& open_gauge(const session_setup& setup) noexcept;
    // Counts one WebSocket closed with `code` (its series registered on first use).
    void count_close(std::uint16_t code);
    // gatehouse_http_request_duration_seconds{route,status}: one HTTP request answered, under
    // its route pattern (`other` when no route matched). A pair's series is registered on
    // its first request; both labels are bounded (the router's patterns, status codes).
    void observe_http(std::string_view route, int status,
                      std::chrono::steady_clock::duration duration);

private:
    // Declared first: every reference below points into it.
    std::unique_ptr<metrics_registry> registry_;

    // The HTTP duration series seen so far: a short list, so a scan under a lock that only
    // HTTP answers take (not the registry's, which /metrics holds while rendering).
    struct http_series {
        std::string route;
        int status = 0;
        metric_histogram* histogram = nullptr;
    };
    std::mutex http_mutex_;
    std::vector<http_series> http_series_;

public:
    metric_gauge& player_connections;
    metric_gauge& bot_connections;
    metric_gauge& event_streams;
    metric_counter& connections_opened;
    metric_counter& upgrades_unauthorized;
    metric_counter& upgrades_bad_codec;
    metric_counter& upgrades_shutting_down;
    metric_counter& upgrades_not_found;
    metric_counter& upgrades_over_capacity;
    metric_counter& upgrades_origin_not_allowed;
    metric_counter& commands_accepted;
    metric_counter& http_commands_accepted;
    metric_counter& refused_invalid_frame;
    metric_counter& refused_invalid_envelope;
    metric_counter& refused_rate_limited;
    metric_counter& refused_bus_unavailable;
    metric_counter& updates_received;
    metric_counter& updates_malformed;
    metric_counter& idle_closed;
    metric_counter& resumes_replayed;
    metric_counter& resumes_gap;
    metric_counter& updates_replayed;
    metric_counter& update_link_restored;
    metric_counter& presence_appended;
    metric_counter& presence_failed;
    metric_counter& sessions_expired;
    metric_counter& refreshes_ok;
    metric_counter& refreshes_refused;
    // A command's decode to its ack queued (202 handed over), by transport; acks only.
    metric_histogram& command_ack_ws;
    metric_histogram& command_ack_http;
    // A logged update's publish (its update id's time) to its frames queued here.
    metric_histogram& update_delivery;
};

}  // namespace gatehouse::detail
