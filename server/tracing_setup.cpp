#include "tracing_setup.hpp"

#include <memory>
#include <utility>

namespace gatehouse_server {

void add_tracing(const config& c, gatehouse::gateway_options& options) {
    if (c.otlp_endpoint.empty()) return;
    gatehouse::tracer_options tracing;
    tracing.endpoint = c.otlp_endpoint;
    tracing.service_name = c.otlp_service_name;
    tracing.resource_attributes.emplace_back("service.instance.id", options.gateway_id);
    tracing.log = options.log;
    options.tracing = std::make_shared<gatehouse::tracer>(std::move(tracing));
}

}  // namespace gatehouse_server
