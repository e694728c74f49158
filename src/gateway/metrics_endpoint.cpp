#include "gateway/metrics_endpoint.hpp"

#include <utility>

namespace gatehouse::detail {
namespace {

upgrade_decision not_found() {
    upgrade_decision decision;
    decision.refusal = http_response::problem(404, "not_found");
    return decision;
}

}  // namespace

http_handler metrics_route(std::shared_ptr<gateway_metrics> metrics) {
    return [metrics = std::move(metrics)](const http_request&, const http_responder& respond) {
        http_response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = metrics->registry().render();
        respond(std::move(r));
    };
}

http_handler health_route() {
    return [](const http_request&, const http_responder& respond) {
        respond(http_response::json(200, "{\"status\":\"ok\"}"));
    };
}

metrics_endpoint::metrics_endpoint(std::shared_ptr<gateway_metrics> metrics, log_sink log)
    : log_(log), router_(std::move(log)) {
    router_.add_builtin("GET", "/metrics", metrics_route(std::move(metrics)));
    router_.add_builtin("GET", "/health", health_route());
}

void metrics_endpoint::handle_http(const http_request& request, http_responder respond) {
    router_.handle(request, respond);
}

upgrade_decision metrics_endpoint::authorize_upgrade(const upgrade_request&) { return not_found(); }

bool metrics_endpoint::is_event_stream_request(const http_request&) const noexcept { return false; }

upgrade_decision metrics_endpoint::authorize_event_stream(const http_request&) {
    // Never asked (is_event_stream_request is false).
    return not_found();
}

void metrics_endpoint::log(log_level level, std::string_view message) const {
    if (log_) log_(level, message);
}

}  // namespace gatehouse::detail
