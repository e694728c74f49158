#include "gateway/gateway_core.hpp"

#include <iterator>
#include <stdexcept>
#include <utility>

#include "common/clock.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/update.hpp"
#include "gateway/gateway_id.hpp"
#include "gateway/gateway_tracing.hpp"
#include "gateway/json_text.hpp"
#include "gateway/metrics_endpoint.hpp"
#include "gateway/openapi_document.hpp"
#include "gateway/origin_policy.hpp"
#include "gateway/update_router.hpp"
#include "gateway/upgrade_authorizer.hpp"
#include "http/text.hpp"
#include "transport/client_address.hpp"

namespace gatehouse::detail {
namespace {

// The options as every part shares them, checked once (throwing for bad configuration) and
// with the gateway id filled in.
std::shared_ptr<const gateway_options> checked(gateway_options options, bool have_bus) {
    if (!have_bus) throw std::invalid_argument("gateway: a bus and a listener are needed");
    if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
        throw std::invalid_argument("gateway: TLS needs both a certificate and a key");
    }
    if (options.gateway_id.empty()) options.gateway_id = make_gateway_id();
    if (!is_valid_gateway_id(options.gateway_id)) {
        throw std::invalid_argument("gateway: gateway_id must be 1-64 of [A-Za-z0-9_.:-]");
    }
    trusted_proxies proxies;
    std::string bad;
    if (proxies.parse(options.trusted_proxies, bad)) {
        throw std::invalid_argument("gateway: trusted_proxies entry \"" + bad +
                                    "\" is not ADDRESS or ADDRESS/PREFIX");
    }
    const origin_policy origins(options.allowed_origins);  // throws naming a bad entry
    for (const auto& [name, key] : options.bot_keys) {
        if (name.empty() || key.empty()) {
            throw std::invalid_argument("gateway: bot keys need a name and a key");
        }
    }
    return std::make_shared<const gateway_options>(std::move(options));
}

// Whether a route's answer carries CORS headers of its own.
bool answers_cors(const http_response& r) noexcept {
    for (const auto& header : r.headers) {
        if (iequals(header.first, "Access-Control-Allow-Origin")) return true;
    }
    return false;
}

}  // namespace

gateway_core::gateway_core(gateway_options options, codec_registry codecs,
                           std::shared_ptr<command_bus> bus,
                           std::shared_ptr<pubsub_listener> listener,
                           std::shared_ptr<update_log> log)
    : options_(checked(std::move(options), bus && listener)),
      bus_(std::move(bus)),
      listener_(std::move(listener)),
      log_(std::move(log)),
      connections_(std::make_shared<connection_manager>(options_->connections)),
      metrics_(std::make_shared<gateway_metrics>(connections_, bus_)),
      authorizer_(std::make_shared<upgrade_authorizer>(options_, std::move(codecs))),
      sessions_(std::make_shared<session_registry>(options_, connections_, metrics_, log_)),
      ingress_(std::make_shared<command_ingress>(
          options_, bus_, authorizer_->json_codec(), metrics_,
          // The refresh's check is the upgrade's; the authorizer is const and outlives nothing.
          [authorizer = authorizer_](std::string_view token, identity& who) {
              return authorizer->authenticate(token, who);
          })),
      updates_(std::make_shared<update_router>(options_, connections_, metrics_)),
      cors_(options_->allowed_origins),
      access_(sessions_->access()),
      router_(options_->log) {
    add_builtin_routes();
    if (options_->tracing) register_tracer_metrics(metrics_->registry(), options_->tracing);
}

gateway_core::~gateway_core() {
    stop_listener();
    // Whatever the bus still owes is dropped, and the sessions still registered let go of the
    // registry and the ingress: nothing outlives the core by holding a piece of it that could
    // call back into a transport that is gone.
    ingress_->cancel_appends();
    sessions_->abandon_all();
}

void gateway_core::log(log_level level, std::string_view message) const {
    if (options_->log) options_->log(level, message);
}

// ------------------------------------------------------------------------------------------
// Upgrades and event streams

upgrade_decision gateway_core::refuse(int status, std::string_view code, std::string_view detail) {
    upgrade_decision decision;
    decision.refusal = http_response::problem(status, code, detail);
    return decision;
}

upgrade_decision gateway_core::accept(session_setup setup, std::string subprotocol, double rate,
                                      std::unique_ptr<session_access> access) {
    if (!sessions_->reserve_slot()) {
        metrics_->upgrades_over_capacity.add();
        return refuse(503, "over_capacity", "this gateway holds as many connections as it may");
    }
    setup.id = sessions_->next_connection_id();
    setup.access = std::move(access);
    upgrade_decision decision;
    decision.accepted = true;
    decision.subprotocol = std::move(subprotocol);
    decision.handler = std::make_shared<session>(sessions_, ingress_, std::move(setup), rate,
                                                 2 * rate, options_->session_expiry);
    return decision;
}

upgrade_decision gateway_core::authorize_upgrade(const upgrade_request& request) {
    const std::int64_t started_ns = options_->tracing ? unix_now_ns() : 0;
    const bool logged = access_->enabled();
    // A refusal is an HTTP answer, timed even without a sink.
    const bool reported = access_->reports_http();
    const auto started =
        reported ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    upgrade_decision decision;
    if (!cors_.allows_stream({request.origin, request.several_origins}, request.host)) {
        // A page on another origin, not listed: the browser would let it open the socket.
        metrics_->upgrades_origin_not_allowed.add();
        decision.refusal = cors::refusal();
    } else if (sessions_->refusing_new()) {
        metrics_->upgrades_shutting_down.add();
        decision = refuse(503, "shutting_down", "the gateway is shutting down");
    } else {
        session_setup setup;
        std::string subprotocol;
        const auto verdict = authorizer_->authorize_websocket(request, setup, subprotocol);
        if (verdict) {
            std::unique_ptr<session_access> access;
            if (logged) {
                access = std::make_unique<session_access>(*access_, access_record::kind::websocket,
                                                          request.path, request.query,
                                                          std::string(request.remote_address));
            }
            decision = accept(std::move(setup), std::move(subprotocol), options_->ws_rate_limit,
                              std::move(access));
        } else {
            (verdict.status == 404   ? metrics_->upgrades_not_found
             : verdict.status == 400 ? metrics_->upgrades_bad_codec
                                     : metrics_->upgrades_unauthorized)
                .add();
            decision = refuse(verdict.status, verdict.code, verdict.detail);
        }
    }
    if (!decision.accepted) {
        // At debug: the access line says the same at info.
        log(log_level::debug, "upgrade " + redact_target(request.path) + " from " +
                                  std::string(request.remote_address) + " refused with " +
                                  std::to_string(decision.refusal.status));
        if (reported) {
            report_refusal(*access_, started, request.path, request.query,
                           websocket_route(request.path), request.remote_address, decision.refusal);
        }
    }
    if (options_->tracing) {
        trace_decision(started_ns, request.traceparent, request.path, request.remote_address,
                       decision, 101);
    }
    return decision;
}

void gateway_core::trace_decision(std::int64_t started_ns, std::string_view traceparent,
                                  std::string_view path, std::string_view remote_address,
                                  const upgrade_decision& decision, int accepted_status) const {
    std::string_view connection_id;
    std::string_view codec;
    if (decision.accepted) {
        // accept() made the handler: a session.
        const auto& setup = static_cast<const session&>(*decision.handler).setup();
        connection_id = setup.id;
        codec = setup.wire_codec->name();
    }
    trace_upgrade(*options_->tracing, started_ns, traceparent, path, remote_address,
                  decision.accepted ? accepted_status : decision.refusal.status, connection_id,
                  codec);
}

bool gateway_core::is_event_stream_request(const http_request& request) const noexcept {
    return options_->event_streams && request.path == "/sse/player" && request.method == "GET";
}

upgrade_decision gateway_core::authorize_event_stream(const http_request& request) {
    const std::int64_t started_ns = options_->tracing ? unix_now_ns() : 0;
    const bool logged = access_->enabled();
    const bool reported = access_->reports_http();  // as for upgrades
    const auto started =
        reported ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    // Without allowed origins (v1) no header is looked at.
    const bool checked = cors_.origins().enabled();
    const auto origin = checked ? origin_of(request) : origin_header{};
    const auto host = checked ? request.header("Host") : std::string_view{};
    const bool origin_allowed = !checked || cors_.allows_stream(origin, host);
    upgrade_decision decision;
    if (!origin_allowed) {
        decision.refusal = cors::refusal();
    } else if (sessions_->refusing_new()) {
        decision = refuse(503, "shutting_down", "the gateway is shutting down");
    } else {
        session_setup setup;
        if (const auto verdict = authorizer_->authorize_event_stream(request, setup); !verdict) {
            decision = refuse(verdict.status, verdict.code, verdict.detail);
        } else {
            std::unique_ptr<session_access> access;
            if (logged) {
                access = std::make_unique<session_access>(
                    *access_, access_record::kind::event_stream, request.path, request.query,
                    request.remote_address);
            }
            // An event stream carries no commands: its bucket is never used.
            decision = accept(std::move(setup), {}, 0, std::move(access));
        }
    }
    if (checked && origin_allowed) {
        // EventSource reads a stream from another origin only with CORS headers; a page reads
        // why it was refused the same way.
        cors_.add_response_headers(origin, host,
                                   decision.accepted ? decision.headers : decision.refusal.headers);
    }
    if (reported && !decision.accepted) {
        report_refusal(*access_, started, request.path, request.query, "/sse/player",
                       request.remote_address, decision.refusal);
    }
    if (options_->tracing) {
        trace_decision(started_ns, request.header("traceparent"), request.path,
                       request.remote_address, decision, 200);
    }
    return decision;
}

void gateway_core::answered_by_transport(std::string_view method, std::string_view target,
                                         std::string_view client_address,
                                         const http_response& response,
                                         std::chrono::microseconds duration) {
    if (!access_->reports_http()) return;
    const std::string redacted = access_->enabled() ? redact_target(target) : std::string();
    access_record r;
    r.method = method;
    r.target = redacted;
    r.route = "other";
    r.status = response.status;
    r.duration = duration;
    r.bytes_sent = response.body.size();
    r.client_address = client_address;
    access_->request_finished(r);
}

std::error_code gateway_core::authenticate(std::string_view token, identity& who) const {
    auto ec = authorizer_->authenticate(token, who);
    // A route authenticating its request (the settings routes): its access line names whom.
    if (!ec && access_->enabled()) note_http_player(who.player_id);
    return ec;
}

// ------------------------------------------------------------------------------------------
// HTTP

void gateway_core::add_route(std::string method, std::string path, http_handler handler) {
    router_.add(std::move(method), std::move(path), std::move(handler));
}

void gateway_core::handle_http(const http_request& request, http_responder respond) {
    if (options_->tracing) {
        respond =
            traced_http(options_->tracing, request, router_.route_of(request), std::move(respond));
    }
    if (!access_->reports_http()) {
        route_http(request, std::move(respond));
        return;
    }
    const auto access = std::make_shared<http_access>(access_, request, router_.route_of(request));
    const http_access::scope scope(*access);
    route_http(request, access->wrap(std::move(respond)));
}

// CORS (preflight answers, headers on every answer to a listed origin), then the routes.
void gateway_core::route_http(const http_request& request, http_responder respond) {
    if (!cors_.origins().enabled()) {
        // No allowed origins configured (v1): no header is looked at.
        router_.handle(request, respond);
        return;
    }
    if (cors_.is_preflight(request)) {
        respond(cors_.preflight(request, router_.methods(request.path)));
        return;
    }
    header_list headers;
    cors_.add_response_headers(origin_of(request), request.header("Host"), headers);
    router_.handle(request, [respond = std::move(respond),
                             headers = std::move(headers)](http_response r) mutable {
        // A handler that answers CORS itself keeps its own headers: a second
        // Access-Control-Allow-Origin would make the browser refuse the answer.
        if (!answers_cors(r)) {
            r.headers.insert(r.headers.end(), std::make_move_iterator(headers.begin()),
                             std::make_move_iterator(headers.end()));
        }
        respond(std::move(r));
    });
}

void gateway_core::add_builtin_routes() {
    // Each route holds the parts it uses; none holds the core.
    router_.add_builtin("GET", "/health", health_route());
    router_.add_builtin(
        "GET", "/ready",
        [options = options_, sessions = sessions_, bus = bus_, listener = listener_](
            const http_request&, const http_responder& respond) {
            // From the drain's start (docs/protocol.md 6.7): the balancer stops sending new
            // clients.
            const bool shutting_down = sessions->refusing_new();
            const bool bus_up = bus->connected() && listener->connected();
            const bool extra_up = !options->extra_ready || options->extra_ready();
            auto r = !shutting_down && bus_up && extra_up
                         ? http_response::json(200, "{\"status\":\"ready\"}")
                         : http_response::problem(503, "not_ready",
                                                  shutting_down ? "the gateway is shutting down"
                                                  : !bus_up     ? "the bus is not connected"
                                                                : options->extra_ready_reason);
            // The embedder's members (which store and bus, whether each is up) before the `}`.
            const std::string fields = options->ready_fields ? options->ready_fields() : "";
            if (!fields.empty()) r.body.insert(r.body.size() - 1, "," + fields);
            respond(std::move(r));
        });
    // With a metrics listener, /metrics is served there only (gateway_options::metrics_listen):
    // here it is an unknown path, 404.
    if (options_->metrics_listen.empty()) {
        router_.add_builtin("GET", "/metrics", metrics_route(metrics_));
    }
    router_.add_prefix("/ws/", [](const http_request&, const http_responder& respond) {
        auto r =
            http_response::problem(426, "upgrade_required", "this endpoint speaks WebSocket only");
        r.headers.emplace_back("Upgrade", "websocket");
        respond(std::move(r));
    });
    if (options_->http_commands) {
        router_.add_builtin(
            "POST", "/commands",
            [sessions = sessions_, authorizer = authorizer_, ingress = ingress_](
                const http_request& request, const http_responder& respond) {
                if (sessions->shutting_down()) {
                    respond(http_response::problem(503, "shutting_down",
                                                   "the gateway is shutting down"));
                    return;
                }
                identity who;
                if (const auto verdict = authorizer->authorize_command(request, who); !verdict) {
                    respond(http_response::problem(verdict.status, verdict.code, verdict.detail));
                    return;
                }
                note_http_player(who.player_id);
                ingress->on_http_command(request, who, respond);
            });
    }
    if (!options_->publish_key.empty() && log_) add_publish_route();
    if (options_->event_streams) {
        // The transport streams a GET itself (is_event_stream_request); what reaches the router
        // is a HEAD (answered as GET) or another method, and no body is coming for either.
        router_.add_builtin("GET", "/sse/player",
                            [](const http_request&, const http_responder& respond) {
                                auto r = http_response::problem(405, "method_not_allowed");
                                r.headers.emplace_back("Allow", "GET");
                                respond(std::move(r));
                            });
    }
    // Its text is filled by routes_complete() when start() finds the table final.
    if (options_->openapi) {
        openapi_text_ = std::make_shared<std::string>();
        // An embedder's own GET /openapi.json (describing its routes too) takes its place.
        router_.add_default("GET", "/openapi.json", openapi_handler(openapi_text_));
    }
}

// POST /updates (docs/protocol.md 6.4): a service's update through the log, as FCALL
// gatehouse_publish would; only with a publish key, so a default deployment exposes no way to
// push to clients.
void gateway_core::add_publish_route() {
    router_.add_builtin(
        "POST", "/updates",
        [options = options_, log = log_, metrics = metrics_](const http_request& request,
                                                             const http_responder& respond) {
            if (!request.bearer_token_matches(options->publish_key)) {
                respond(http_response::problem(401, "unauthorized",
                                               "POST /updates needs the publish key"));
                return;
            }
            if (!request.content_type_is("application/json")) {
                respond(http_response::problem(415, "unsupported_media_type",
                                               "the body must be application/json"));
                return;
            }
            // Checked here too, so a malformed body is answered without a round trip to the log.
            update parsed;
            if (auto ec = parse_update(request.body, parsed)) {
                metrics->updates_malformed.add();
                respond(http_response::problem(400, "invalid_update", ec.message()));
                return;
            }
            log->publish_logged(request.body, [respond, metrics](std::error_code error,
                                                                 update_ids ids) {
                if (error == errc::invalid_update) {
                    metrics->updates_malformed.add();
                    respond(http_response::problem(400, "invalid_update", error.message()));
                } else if (error) {
                    respond(http_response::problem(
                        503, "bus_unavailable", "the update log did not accept it; retry later"));
                } else {
                    std::string body = "{\"update_ids\":{";
                    for (std::size_t i = 0; i < ids.size(); ++i) {
                        if (i > 0) body += ',';
                        append_json_string(body, ids[i].first);
                        body += ':';
                        append_json_string(body, ids[i].second);
                    }
                    body += "}}";
                    respond(http_response::json(202, std::move(body)));
                }
            });
        });
}

// ------------------------------------------------------------------------------------------
// Keepalive

void gateway_core::sweep() {
    const auto now = steady_now_ms();
    ingress_->forget_idle_buckets(now);
    sessions_->sweep(now, unix_now_ms());
}

std::chrono::milliseconds gateway_core::sweep_interval() const noexcept {
    return sessions_->sweep_interval();
}

// ------------------------------------------------------------------------------------------
// Lifecycle

void gateway_core::routes_complete() {
    if (openapi_text_) *openapi_text_ = openapi_for_routes(openapi_document(), router_.routes());
}

void gateway_core::start_listener() {
    if (listener_started_.exchange(true)) return;
    // Updates published while the subscription was down are in the log but were never routed,
    // and the next live one would move each client's last id past them (docs/protocol.md 6.4): so
    // every connection is closed, and its client resumes from the last update it got.
    // Synchronously, on the listener's thread, before it routes the first update of the new
    // subscription: no connection open now gets a live update after the missed ones (each is
    // unregistered from routing here, and closed once its commands are answered). A connection
    // registered later reads the log after this, so it misses nothing either.
    listener_->on_resubscribed([sessions = std::weak_ptr<session_registry>(sessions_),
                                metrics = std::weak_ptr<gateway_metrics>(metrics_),
                                log = options_->log] {
        const auto s = sessions.lock();
        const auto m = metrics.lock();
        if (!s || !m) return;
        m->update_link_restored.add();
        const auto closing = s->interrupt_updates();
        if (log) {
            log(log_level::warn, "update subscription restored: closing " +
                                     std::to_string(closing) +
                                     " connections (1012) so that their clients resume");
        }
    });
    // Held weakly: the listener keeps its handler, and routing must not keep the core's parts.
    listener_->start([weak = std::weak_ptr<update_router>(updates_)](std::string_view message) {
        if (const auto updates = weak.lock()) updates->route(message);
    });
}

void gateway_core::stop_listener() {
    if (listener_started_.exchange(false)) listener_->stop();
}

std::size_t gateway_core::begin_drain(std::chrono::milliseconds spread) {
    const auto told = sessions_->begin_drain(spread);
    log(log_level::info,
        "draining: " + std::to_string(told) + " connection(s) told to reconnect within " +
            std::to_string(spread.count()) + " ms; serving them until then, refusing new ones");
    return told;
}

bool gateway_core::wait_for_spread(std::chrono::steady_clock::time_point deadline) {
    return sessions_->wait_for_spread(deadline);
}

void gateway_core::end_spread() { sessions_->end_spread(); }

void gateway_core::begin_shutdown() {
    ingress_->stop_accepting();
    sessions_->begin_shutdown();
}

bool gateway_core::shutting_down() const noexcept { return sessions_->shutting_down(); }

bool gateway_core::wait_for_sessions(std::chrono::steady_clock::time_point deadline) {
    return sessions_->wait_for_sessions(deadline);
}

bool gateway_core::shutdown(std::chrono::steady_clock::time_point deadline) {
    begin_shutdown();
    const bool sessions_closed = sessions_->wait_for_sessions(deadline);
    // POST /commands still waiting for the bus (WebSocket ones kept their sessions open).
    const bool appends_answered = ingress_->wait_for_appends(deadline);
    ingress_->cancel_appends();
    stop_listener();
    return sessions_closed && appends_answered;
}

bool gateway_core::ready() const noexcept {
    return !sessions_->refusing_new() && bus_->connected() && listener_->connected() &&
           (!options_->extra_ready || options_->extra_ready());
}

}  // namespace gatehouse::detail
