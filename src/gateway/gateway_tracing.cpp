#include "gateway/gateway_tracing.hpp"

#include <string>
#include <utility>

#include "common/clock.hpp"
#include "gatehouse/codec_error.hpp"

namespace gatehouse::detail {
namespace {

std::string_view target_name(update_target target) noexcept {
    switch (target) {
        case update_target::player: return "player";
        case update_target::connection: return "connection";
        case update_target::players: return "players";
        case update_target::room: return "room";
        case update_target::broadcast: return "broadcast";
        case update_target::join: return "join";
        case update_target::leave: return "leave";
    }
    return "unknown";
}

void set_error(span& s, std::string_view code) {
    s.status = span_status::error;
    s.status_message = std::string(code);
    s.set("gatehouse.error", code);
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Command ingress

ingress_span::ingress_span(const std::shared_ptr<tracer>& t, std::int64_t started_ns,
                           const envelope& command, std::error_code decoded,
                           std::string_view transport)
    : tracer_(t.get()) {
    // A command that did not decode has no trustworthy traceparent: the root of a new trace.
    span_ = std::make_shared<span>(
        t->start("command ingress", span_kind::producer,
                 decoded ? std::string_view() : std::string_view(command.traceparent)));
    span_->start_unix_ns = started_ns;
    // What the span will hold, reserved once (the I/O thread pays for every allocation).
    span_->attributes.reserve(7);
    span_->events.reserve(3);
    span_->set("gatehouse.transport", transport);
    if (decoded) {
        set_error(*span_, protocol_error_code(decoded));
        return;
    }
    span_->add_event("decoded");
    span_->set("gatehouse.command.type", command.type);
    if (!command.correlation_id.empty()) {
        span_->set("gatehouse.correlation_id", command.correlation_id);
    }
}

ingress_span::~ingress_span() {
    if (span_) tracer_->end(std::move(*span_));
}

void ingress_span::refused(std::string_view code) {
    if (span_) set_error(*span_, code);
}

std::shared_ptr<span> ingress_span::to_bus(envelope& command) {
    if (!span_) return nullptr;
    // Filled in by now (an id the gateway assigned included).
    span_->set("gatehouse.correlation_id", command.correlation_id);
    span_->set("gatehouse.player_id", command.origin.player_id);
    span_->set("gatehouse.connection_id", command.origin.connection_id);
    span_->add_event("bus append");
    // The stream entry names this span as its parent (docs/protocol.md 6.8).
    command.traceparent = span_->traceparent();
    return std::move(span_);
}

void end_ingress_span(tracer& t, span& s, std::error_code error, std::string_view entry_id) {
    if (error) {
        set_error(s, "bus_unavailable");
    } else {
        s.add_event("acked");
        s.set("gatehouse.stream_id", entry_id);
    }
    t.end(std::move(s));
}

// ------------------------------------------------------------------------------------------
// HTTP requests, upgrades

http_responder traced_http(const std::shared_ptr<tracer>& t, const http_request& request,
                           std::string_view route, http_responder respond) {
    // The route, not the path: paths are unbounded (and may hold a token under /ws/). A path
    // no route serves (http_router::route_of's `other`) is named by its method alone.
    const bool routed = !route.empty() && route != "other";
    const std::string name = routed ? request.method + " " + std::string(route) : request.method;
    auto s =
        std::make_shared<span>(t->start(name, span_kind::server, request.header("traceparent")));
    s->set("http.request.method", request.method);
    if (routed) s->set("http.route", route);
    s->set("client.address", request.remote_address);
    return [t, s, respond = std::move(respond)](http_response response) {
        // Answered twice (a route that threw after answering): the exchange keeps the first.
        if (s->end_unix_ns != 0) {
            respond(std::move(response));
            return;
        }
        s->set("http.response.status_code", std::int64_t{response.status});
        if (response.status >= 500) s->status = span_status::error;
        // Ended before the answer leaves, which the exchange does at once: the span's end is
        // when the gateway answered.
        t->end(std::move(*s));
        respond(std::move(response));
    };
}

std::string_view upgrade_route(std::string_view path) noexcept {
    constexpr std::string_view player = "/ws/player/";
    constexpr std::string_view bot = "/ws/bot/";
    if (path.substr(0, player.size()) == player) return "/ws/player/{token}";
    if (path.substr(0, bot.size()) == bot) return "/ws/bot/{key}";
    if (path == "/ws/player" || path == "/sse/player") return path;
    return "unknown";
}

void trace_upgrade(tracer& t, std::int64_t started_ns, std::string_view traceparent,
                   std::string_view path, std::string_view remote_address, int status,
                   std::string_view connection_id, std::string_view codec) {
    const auto route = upgrade_route(path);
    auto s = t.start(
        std::string(route == "/sse/player" ? "event stream " : "upgrade ") + std::string(route),
        span_kind::server, traceparent);
    s.start_unix_ns = started_ns;
    s.set("http.route", route);
    s.set("client.address", remote_address);
    s.set("http.response.status_code", std::int64_t{status});
    if (!connection_id.empty()) s.set("gatehouse.connection_id", connection_id);
    if (!codec.empty()) s.set("gatehouse.codec", codec);
    if (status >= 500) s.status = span_status::error;
    t.end(std::move(s));
}

// ------------------------------------------------------------------------------------------
// Update routing

void trace_update(tracer& t, std::int64_t started_ns, std::size_t bytes, const update* parsed,
                  std::string_view malformed, const delivery_result& result) {
    // A child of the publisher's span when the update names one (the trace then runs from a
    // client's command through the service to the delivery); the traceparent itself reaches
    // the clients unchanged.
    auto s = t.start(
        "update route", span_kind::consumer,
        parsed != nullptr ? std::string_view(parsed->message.traceparent) : std::string_view());
    s.start_unix_ns = started_ns;
    s.set("messaging.message.body.size", static_cast<std::int64_t>(bytes));
    if (parsed == nullptr) {
        set_error(s, "invalid_update");
        s.status_message = std::string(malformed);
    } else {
        s.set("gatehouse.update.target", target_name(parsed->target));
        if (!parsed->message.type.empty()) s.set("gatehouse.update.type", parsed->message.type);
        s.set("gatehouse.update.queued", static_cast<std::int64_t>(result.queued));
        s.set("gatehouse.update.dropped", static_cast<std::int64_t>(result.dropped));
        if (result.oversized > 0) {
            s.set("gatehouse.update.oversized", static_cast<std::int64_t>(result.oversized));
        }
    }
    t.end(std::move(s));
}

// ------------------------------------------------------------------------------------------
// Metrics

void register_tracer_metrics(metrics_registry& registry, const std::shared_ptr<tracer>& t) {
    // Held weakly: the registry outlives nothing it reads, and the tracer may be shared.
    const std::weak_ptr<tracer> weak = t;
    const auto read = [weak](std::uint64_t tracer_stats::*field) {
        return [weak, field] {
            const auto locked = weak.lock();
            return locked ? static_cast<double>(locked->stats().*field) : 0.0;
        };
    };
    registry.counter_callback("gatehouse_trace_spans_exported_total",
                              "Trace spans the OTLP collector accepted.",
                              read(&tracer_stats::spans_exported));
    registry.counter_callback("gatehouse_trace_spans_dropped_total",
                              "Trace spans dropped because the export queue was full.",
                              read(&tracer_stats::spans_dropped));
    registry.counter_callback("gatehouse_trace_spans_failed_total",
                              "Trace spans lost in export requests that failed.",
                              read(&tracer_stats::spans_failed));
    registry.counter_callback("gatehouse_trace_export_failures_total",
                              "OTLP export requests that failed (no answer, or not 2xx).",
                              read(&tracer_stats::export_failures));
}

}  // namespace gatehouse::detail
