#include "gateway/gateway_metrics.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "gateway/session.hpp"
#include "metrics/label_text.hpp"
#include "metrics/standard_metrics.hpp"

namespace gatehouse::detail {
namespace {

constexpr std::string_view closed_help =
    "WebSocket connections closed, by close code (1006: without a closing handshake).";

metric_counter& upgrade_refusals(metrics_registry& m, std::string_view reason) {
    return m.counter("gatehouse_upgrades_refused_total", "WebSocket upgrades refused, by reason.",
                     "reason=\"" + std::string(reason) + "\"");
}

metric_counter& command_refusals(metrics_registry& m, std::string_view reason) {
    return m.counter("gatehouse_commands_refused_total",
                     "Commands answered with an error, by code.",
                     "reason=\"" + std::string(reason) + "\"");
}

metric_counter& refresh_outcomes(metrics_registry& m, std::string_view outcome) {
    return m.counter("gatehouse_token_refreshes_total",
                     "In-band gatehouse.refresh messages (docs/protocol.md 6.3), by outcome: ok "
                     "(gatehouse.refreshed) or refused (invalid_token).",
                     "outcome=\"" + std::string(outcome) + "\"");
}

metric_histogram& command_ack(metrics_registry& m, std::string_view transport) {
    return m.histogram("gatehouse_command_ack_seconds",
                       "Time from a command's arrival (before decoding) to its ack being queued "
                       "(WebSocket) or its 202 handed over (POST /commands), by transport; "
                       "commands the bus accepted only.",
                       "transport=\"" + std::string(transport) + "\"");
}

// A label value in the text format. Routes are paths an embedder registered, so any byte may
// be in one.
std::string label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    append_label_value(out, v);
    return out;
}

metric_counter& closed_counter(metrics_registry& m, std::uint16_t code) {
    return m.counter("gatehouse_connections_closed_total", closed_help,
                     "code=\"" + std::to_string(code) + "\"");
}

}  // namespace

gateway_metrics::gateway_metrics(const std::shared_ptr<const connection_manager>& connections,
                                 const std::shared_ptr<const command_bus>& bus)
    : registry_(std::make_unique<metrics_registry>()),
      player_connections(registry_->gauge("gatehouse_connections", "Open WebSocket connections.",
                                          "client=\"player\"")),
      bot_connections(registry_->gauge("gatehouse_connections", "Open WebSocket connections.",
                                       "client=\"bot\"")),
      event_streams(registry_->gauge("gatehouse_event_streams", "Open GET /sse/player streams.")),
      connections_opened(registry_->counter("gatehouse_connections_opened_total",
                                            "WebSocket connections opened.")),
      upgrades_unauthorized(upgrade_refusals(*registry_, "unauthorized")),
      upgrades_bad_codec(upgrade_refusals(*registry_, "bad_codec")),
      upgrades_shutting_down(upgrade_refusals(*registry_, "shutting_down")),
      upgrades_not_found(upgrade_refusals(*registry_, "not_found")),
      upgrades_over_capacity(upgrade_refusals(*registry_, "over_capacity")),
      upgrades_origin_not_allowed(upgrade_refusals(*registry_, "origin_not_allowed")),
      commands_accepted(registry_->counter("gatehouse_commands_accepted_total",
                                           "Commands the bus accepted (and that were acked).")),
      http_commands_accepted(registry_->counter("gatehouse_http_commands_accepted_total",
                                                "POST /commands the bus accepted (202).")),
      refused_invalid_frame(command_refusals(*registry_, "invalid_frame")),
      refused_invalid_envelope(command_refusals(*registry_, "invalid_envelope")),
      refused_rate_limited(command_refusals(*registry_, "rate_limited")),
      refused_bus_unavailable(command_refusals(*registry_, "bus_unavailable")),
      updates_received(registry_->counter("gatehouse_updates_received_total",
                                          "Update messages received from the bus.")),
      updates_malformed(registry_->counter("gatehouse_updates_malformed_total",
                                           "Update messages dropped as malformed.")),
      idle_closed(registry_->counter("gatehouse_idle_closed_total",
                                     "Connections closed by the idle timeout.")),
      resumes_replayed(registry_->counter("gatehouse_resumes_total",
                                          "Resumes (docs/protocol.md 6.4), by outcome.",
                                          "outcome=\"replayed\"")),
      resumes_gap(registry_->counter("gatehouse_resumes_total",
                                     "Resumes (docs/protocol.md 6.4), by outcome.",
                                     "outcome=\"gap\"")),
      updates_replayed(registry_->counter("gatehouse_updates_replayed_total",
                                          "Logged updates replayed to resuming clients.")),
      update_link_restored(registry_->counter("gatehouse_update_link_restored_total",
                                              "Update subscriptions re-established after a loss; "
                                              "each closed every connection (1012).")),
      presence_appended(
          registry_->counter("gatehouse_presence_entries_total",
                             "Presence entries (docs/protocol.md 6.8) for the command "
                             "bus, by outcome.",
                             "outcome=\"appended\"")),
      presence_failed(registry_->counter("gatehouse_presence_entries_total",
                                         "Presence entries (docs/protocol.md 6.8) for the command "
                                         "bus, by outcome.",
                                         "outcome=\"failed\"")),
      sessions_expired(registry_->counter("gatehouse_sessions_expired_total",
                                          "Sessions ended because their access token expired "
                                          "(WebSockets closed 4001, event streams ended).")),
      refreshes_ok(refresh_outcomes(*registry_, "ok")),
      refreshes_refused(refresh_outcomes(*registry_, "refused")),
      command_ack_ws(command_ack(*registry_, "ws")),
      command_ack_http(command_ack(*registry_, "http")),
      update_delivery(registry_->histogram(
          "gatehouse_update_delivery_seconds",
          "Time from a logged update's publish (the time in its update id, docs/protocol.md 6.4; "
          "millisecond resolution, the publisher's clock) to its frames being queued here, once "
          "per update that reached a connection. Unlogged updates carry no publish time.")) {
    // The close codes the gateway itself uses, and 1000/1006 from clients, are listed from the
    // start so that dashboards see the family before the first close.
    for (const int code : {1000, 1001, 1006, 1007, 1008, 1009}) {
        closed_counter(*registry_, static_cast<std::uint16_t>(code));
    }
    // Read at render time; weakly held, so a render racing the gateway's teardown reads 0.
    const std::weak_ptr<const connection_manager> weak_connections = connections;
    const auto stat = [weak_connections](auto member) {
        return [weak_connections, member] {
            const auto c = weak_connections.lock();
            return c ? static_cast<double>(c->stats().*member) : 0.0;
        };
    };
    auto& r = *registry_;
    r.counter_callback("gatehouse_updates_routed_total",
                       "Updates delivered to at least one connection here.",
                       stat(&connection_manager_stats::updates_routed));
    r.counter_callback("gatehouse_updates_unrouted_total",
                       "Updates for players or rooms with no connection here.",
                       stat(&connection_manager_stats::updates_unrouted));
    r.counter_callback(
        "gatehouse_updates_oversized_total",
        "Updates not sent to some connections: their frame is larger than the send buffer.",
        stat(&connection_manager_stats::updates_oversized));
    r.counter_callback("gatehouse_frames_sent_total", "Frames queued on connections.",
                       stat(&connection_manager_stats::frames_sent));
    r.counter_callback("gatehouse_send_queue_dropped_total",
                       "Frames dropped for a full send buffer (droppable, or policy drop).",
                       stat(&connection_manager_stats::frames_dropped));
    r.counter_callback("gatehouse_slow_consumers_closed_total",
                       "Connections closed as slow consumers (1008 policy close, 4008 past "
                       "twice the send buffer).",
                       stat(&connection_manager_stats::slow_consumers_closed));
    // docs/protocol.md 6.6: one count per connection an update was for, by delivery class and what
    // became of it there.
    constexpr std::string_view delivered_help =
        "Update frames by delivery class and outcome, one per connection reached.";
    const auto outcome_stat = [weak_connections](delivery_outcomes connection_manager_stats::*cls,
                                                 std::uint64_t delivery_outcomes::*what) {
        return [weak_connections, cls, what] {
            const auto c = weak_connections.lock();
            return c ? static_cast<double>(c->stats().*cls.*what) : 0.0;
        };
    };
    for (const auto& [cls, cls_name] :
         {std::pair{&connection_manager_stats::reliable, "reliable"},
          std::pair{&connection_manager_stats::droppable, "droppable"},
          std::pair{&connection_manager_stats::latest, "latest"}}) {
        for (const auto& [what, what_name] : {std::pair{&delivery_outcomes::sent, "sent"},
                                              std::pair{&delivery_outcomes::dropped, "dropped"},
                                              std::pair{&delivery_outcomes::coalesced, "coalesced"},
                                              std::pair{&delivery_outcomes::closed, "closed"}}) {
            r.counter_callback("gatehouse_updates_delivered_total", delivered_help,
                               outcome_stat(cls, what),
                               "delivery=\"" + std::string(cls_name) + "\",outcome=\"" +
                                   std::string(what_name) + "\"");
        }
    }
    r.counter_callback("gatehouse_update_encode_failures_total",
                       "Update/codec pairs that could not be encoded.",
                       stat(&connection_manager_stats::encode_failures));
    const std::weak_ptr<const command_bus> weak_bus = bus;
    r.gauge_callback("gatehouse_bus_connected", "1 while the command bus is connected.",
                     [weak_bus] {
                         const auto b = weak_bus.lock();
                         return b && b->connected() ? 1.0 : 0.0;
                     });
    // Build info and the process families: every gateway's /metrics has them, an embedder's
    // too.
    register_standard_metrics(r);
}

metric_gauge& gateway_metrics::open_gauge(const session_setup& setup) noexcept {
    if (setup.event_stream) return event_streams;
    return setup.who.client == client_kind::bot ? bot_connections : player_connections;
}

void gateway_metrics::observe_http(std::string_view route, int status,
                                   std::chrono::steady_clock::duration duration) {
    metric_histogram* h = nullptr;
    {
        std::lock_guard<std::mutex> lock(http_mutex_);
        for (const auto& s : http_series_) {
            if (s.status == status && s.route == route) {
                h = s.histogram;
                break;
            }
        }
        if (h == nullptr) {
            h = &registry_->histogram(
                "gatehouse_http_request_duration_seconds",
                "HTTP requests answered, by route pattern (other: no route matched) and status: "
                "the request read to its answer handed to the connection.",
                "route=\"" + label_value(route) + "\",status=\"" + std::to_string(status) + "\"");
            http_series_.push_back({std::string(route), status, h});
        }
    }
    h->observe(duration);
}

void gateway_metrics::count_close(std::uint16_t code) {
    // Registration takes the registry's lock: fine once per connection, and the set of codes
    // seen in practice is small.
    closed_counter(*registry_, code).add();
}

}  // namespace gatehouse::detail
