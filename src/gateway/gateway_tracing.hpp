#pragma once
// The gateway's spans (docs/operations.md, "Tracing"), made only when
// `gateway_options::tracing` holds a tracer: every caller tests that one pointer first, so
// a gateway without tracing pays a branch and nothing else.
//   - HTTP requests: a server span per request, named by its route, never by its raw path.
//   - WebSocket upgrades and event streams: a server span for the authorization.
//   - Command ingress: decode, bus append and ack in one producer span, whose traceparent
//     replaces the client's on the stream entry, so a service continues the trace.
//   - Update routing: a consumer span per update routed, a child of the update's traceparent.

#include <cstdint>
#include <memory>
#include <string_view>
#include <system_error>

#include "gatehouse/connection_manager.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/http.hpp"
#include "gatehouse/metrics.hpp"
#include "gatehouse/tracing.hpp"
#include "gatehouse/update.hpp"

namespace gatehouse::detail {

// A command's ingress span while the gateway holds the command; ends it (as refused, or as
// whatever `refused` said) when destroyed unless `to_bus` handed it on.
class ingress_span {
public:
    ingress_span() = default;
    // Starts the span once the command is decoded: its start is `started_ns` (before the
    // decode), its parent the command's traceparent (the client's), if any.
    ingress_span(const std::shared_ptr<tracer>& t, std::int64_t started_ns, const envelope& command,
                 std::error_code decoded, std::string_view transport);
    ingress_span(ingress_span&&) = default;
    ingress_span& operator=(ingress_span&&) = delete;
    ingress_span(const ingress_span&) = delete;
    ~ingress_span();

    // The command was answered with error `code` before reaching the bus.
    void refused(std::string_view code);
    // The command goes to the bus: its traceparent becomes this span's, and the span is handed
    // to the bus callback (shared, as an append_handler must be copyable).
    std::shared_ptr<span> to_bus(envelope& command);

private:
    tracer* tracer_ = nullptr;  // the options hold it for the gateway's life
    std::shared_ptr<span> span_;
};

// Ends an ingress span the bus answered: the entry id, or the bus's error.
void end_ingress_span(tracer& t, span& s, std::error_code error, std::string_view entry_id);

// `respond`, wrapped to end an HTTP server span with the response's status. `route` is the
// matched route (`/commands`, `/ws/`), or `other` (or empty) for a path no route serves.
http_responder traced_http(const std::shared_ptr<tracer>& t, const http_request& request,
                           std::string_view route, http_responder respond);

// The route of an upgrade or event-stream request as spans name it: its path with the token or
// key replaced (`/ws/player/{token}`), so no secret reaches a span.
std::string_view upgrade_route(std::string_view path) noexcept;

// A span for an upgrade or event-stream authorization that answered `status` (101 or 200 when
// accepted), for connection `connection_id` (empty when refused) speaking `codec`.
void trace_upgrade(tracer& t, std::int64_t started_ns, std::string_view traceparent,
                   std::string_view path, std::string_view remote_address, int status,
                   std::string_view connection_id, std::string_view codec);

// A span for one update routed: `parsed` (when `malformed` is empty) and what became of it.
void trace_update(tracer& t, std::int64_t started_ns, std::size_t bytes, const update* parsed,
                  std::string_view malformed, const delivery_result& result);

// The tracer's counters on `/metrics` (`gatehouse_trace_*`).
void register_tracer_metrics(metrics_registry& registry, const std::shared_ptr<tracer>& t);

}  // namespace gatehouse::detail
