#pragma once
// The routes that expose a gateway's state to its operators, `GET /metrics` and `GET /health`,
// and the listener-side end of `gateway_options::metrics_listen`: a `transport_events` that
// serves those two routes and nothing else, so that metrics need not be reachable where the
// clients are. A second transport server on the gateway's I/O threads calls it; it knows
// nothing of sessions, the bus or the embedder's routes.

#include <memory>
#include <string_view>

#include "gatehouse/http.hpp"
#include "gatehouse/log.hpp"
#include "gateway/gateway_metrics.hpp"
#include "gateway/http_router.hpp"
#include "transport/transport_events.hpp"

namespace gatehouse::detail {

// `GET /metrics`: the registry in the Prometheus text format 0.0.4.
http_handler metrics_route(std::shared_ptr<gateway_metrics> metrics);
// `GET /health`: 200 while the process serves.
http_handler health_route();

// Thread safety: every member may be called from any thread. Lifetime: the transport server
// that calls it must be destroyed first (as the gateway's own core outlives its listener).
class metrics_endpoint final : public transport_events {
public:
    metrics_endpoint(std::shared_ptr<gateway_metrics> metrics, log_sink log);

    void handle_http(const http_request& request, http_responder respond) override;
    // Neither WebSockets nor event streams are served here: 404, as for any unknown path.
    upgrade_decision authorize_upgrade(const upgrade_request& request) override;
    bool is_event_stream_request(const http_request& request) const noexcept override;
    upgrade_decision authorize_event_stream(const http_request& request) override;
    void log(log_level level, std::string_view message) const override;

private:
    log_sink log_;
    http_router router_;
};

}  // namespace gatehouse::detail
