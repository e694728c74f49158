#pragma once
// --otlp-endpoint and --otlp-service-name: the gateway's tracer (docs/operations.md,
// "Tracing").

#include "gatehouse/gateway.hpp"
#include "server_config.hpp"

namespace gatehouse_server {

// With --otlp-endpoint, sets `options.tracing` to a tracer exporting there (service.name
// --otlp-service-name, service.instance.id the gateway id, failures logged to `options.log`:
// call after both are set, and after settle_config() checked both flags, as the tracer throws
// std::invalid_argument for an endpoint they would have refused).
void add_tracing(const config& c, gatehouse::gateway_options& options);

}  // namespace gatehouse_server
