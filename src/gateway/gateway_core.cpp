#include "gateway/gateway_core.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <utility>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/client/envelope.hpp"
#include "gatehouse/codec_error.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/jwt.hpp"
#include "gatehouse/update.hpp"
#include "gateway/event_stream_codec.hpp"
#include "gateway/json_text.hpp"
#include "http/text.hpp"
#include "transport/client_address.hpp"

namespace gatehouse::detail {
namespace {

std::int64_t steady_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::int64_t unix_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool is_gateway_id_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

}  // namespace
}  // namespace gatehouse::detail

namespace gatehouse {

// Host name, process id and a random suffix: unique across instances and restarts, and
// short enough that connection ids and assigned correlation ids stay within 128 characters.
std::string make_gateway_id() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    std::string id;
    for (const char* p = host; *p != '\0' && id.size() < 32; ++p) {
        id += detail::is_gateway_id_char(*p) ? *p : '-';
    }
    if (id.empty()) id = "gatehouse";
    unsigned char random[4] = {};
    RAND_bytes(random, sizeof random);
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "-%ld-%02x%02x%02x%02x", static_cast<long>(getpid()),
                  random[0], random[1], random[2], random[3]);
    return id + suffix;
}

}  // namespace gatehouse

namespace gatehouse::detail {
namespace {

std::string_view strip_prefix(std::string_view s, std::string_view prefix) noexcept {
    return s.substr(prefix.size());
}

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
    return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// The first value of `name` in a raw query string (no percent-decoding: codec names are
// plain ASCII); nullopt when the parameter is absent, so `?codec=` is told from no `codec`.
std::optional<std::string_view> query_value(std::string_view query,
                                            std::string_view name) noexcept {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name) {
            return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    // Lengths are not secret enough to hide (keys are configured, not guessed byte by byte);
    // the content comparison is what must not leak through timing.
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

constexpr std::string_view closed_help =
    "WebSocket connections closed, by close code (1006: without a closing handshake).";

// One series of each labelled counter family, by reason.
metric_counter& upgrade_refusals(metrics_registry& m, std::string_view reason) {
    return m.counter("gatehouse_upgrades_refused_total", "WebSocket upgrades refused, by reason.",
                     "reason=\"" + std::string(reason) + "\"");
}

metric_counter& command_refusals(metrics_registry& m, std::string_view reason) {
    return m.counter("gatehouse_commands_refused_total",
                     "Commands answered with an error, by code.",
                     "reason=\"" + std::string(reason) + "\"");
}

upgrade_result refuse(int status, std::string_view code, std::string_view detail) {
    upgrade_result r;
    r.status = status;
    r.body = http_response::problem(status, code, detail).body;
    return r;
}

}  // namespace

gateway_core::gateway_core(gateway_options options, codec_registry codecs,
                           std::shared_ptr<command_bus> bus,
                           std::shared_ptr<pubsub_listener> listener)
    : options_(std::move(options)),
      codecs_(std::move(codecs)),
      bus_(std::move(bus)),
      listener_(std::move(listener)),
      connections_(options_.connections),
      player_connections_(metrics_.gauge("gatehouse_connections", "Open WebSocket connections.",
                                         "client=\"player\"")),
      bot_connections_(
          metrics_.gauge("gatehouse_connections", "Open WebSocket connections.", "client=\"bot\"")),
      event_streams_(metrics_.gauge("gatehouse_event_streams", "Open GET /sse/player streams.")),
      connections_opened_(
          metrics_.counter("gatehouse_connections_opened_total", "WebSocket connections opened.")),
      upgrades_unauthorized_(upgrade_refusals(metrics_, "unauthorized")),
      upgrades_bad_codec_(upgrade_refusals(metrics_, "bad_codec")),
      upgrades_shutting_down_(upgrade_refusals(metrics_, "shutting_down")),
      upgrades_not_found_(upgrade_refusals(metrics_, "not_found")),
      upgrades_over_capacity_(upgrade_refusals(metrics_, "over_capacity")),
      commands_accepted_(metrics_.counter("gatehouse_commands_accepted_total",
                                          "Commands the bus accepted (and that were acked).")),
      http_commands_accepted_(metrics_.counter("gatehouse_http_commands_accepted_total",
                                               "POST /commands the bus accepted (202).")),
      refused_invalid_frame_(command_refusals(metrics_, "invalid_frame")),
      refused_invalid_envelope_(command_refusals(metrics_, "invalid_envelope")),
      refused_rate_limited_(command_refusals(metrics_, "rate_limited")),
      refused_bus_unavailable_(command_refusals(metrics_, "bus_unavailable")),
      updates_received_(metrics_.counter("gatehouse_updates_received_total",
                                         "Update messages received from the bus.")),
      updates_malformed_(metrics_.counter("gatehouse_updates_malformed_total",
                                          "Update messages dropped as malformed.")),
      idle_closed_(metrics_.counter("gatehouse_idle_closed_total",
                                    "Connections closed by the idle timeout.")) {
    if (!bus_ || !listener_)
        throw std::invalid_argument("gateway: a bus and a listener are needed");
    if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
        throw std::invalid_argument("gateway: TLS needs both a certificate and a key");
    }
    if (options_.gateway_id.empty()) options_.gateway_id = make_gateway_id();
    if (options_.gateway_id.size() > 64 ||
        !std::all_of(options_.gateway_id.begin(), options_.gateway_id.end(), is_gateway_id_char)) {
        throw std::invalid_argument("gateway: gateway_id must be 1-64 of [A-Za-z0-9_.:-]");
    }
    {
        trusted_proxies proxies;
        std::string bad;
        if (proxies.parse(options_.trusted_proxies, bad)) {
            throw std::invalid_argument("gateway: trusted_proxies entry \"" + bad +
                                        "\" is not ADDRESS or ADDRESS/PREFIX");
        }
    }
    for (const auto& [name, key] : options_.bot_keys) {
        if (name.empty() || key.empty()) {
            throw std::invalid_argument("gateway: bot keys need a name and a key");
        }
    }
    json_codec_ = codecs_.find("json");
    msgpack_codec_ = codecs_.find("msgpack");
    if (!json_codec_) {
        // Text frames are always JSON (PROTOCOL.md section 3), so a registry without the JSON
        // codec cannot serve the protocol.
        throw std::invalid_argument("gateway: the codec registry needs a \"json\" codec");
    }
    event_stream_codec_ = std::make_shared<event_stream_codec>(json_codec_);

    // The close codes the gateway itself uses, and 1000/1006 from clients, are listed from the
    // start so that dashboards see the family before the first close.
    for (const int code : {1000, 1001, 1006, 1007, 1008, 1009}) {
        metrics_.counter("gatehouse_connections_closed_total", closed_help,
                         "code=\"" + std::to_string(code) + "\"");
    }
    const auto stats = [this](auto member) {
        return [this, member] { return static_cast<double>(connections_.stats().*member); };
    };
    metrics_.counter_callback("gatehouse_updates_routed_total",
                              "Updates delivered to at least one connection here.",
                              stats(&connection_manager_stats::updates_routed));
    metrics_.counter_callback("gatehouse_updates_unrouted_total",
                              "Updates for players or rooms with no connection here.",
                              stats(&connection_manager_stats::updates_unrouted));
    metrics_.counter_callback(
        "gatehouse_updates_oversized_total",
        "Updates not sent to some connections: their frame is larger than the send buffer.",
        stats(&connection_manager_stats::updates_oversized));
    metrics_.counter_callback("gatehouse_frames_sent_total", "Frames queued on connections.",
                              stats(&connection_manager_stats::frames_sent));
    metrics_.counter_callback("gatehouse_send_queue_dropped_total",
                              "Frames dropped for a full send buffer (policy drop).",
                              stats(&connection_manager_stats::frames_dropped));
    metrics_.counter_callback("gatehouse_slow_consumers_closed_total",
                              "Connections closed for a full send buffer (policy close).",
                              stats(&connection_manager_stats::slow_consumers_closed));
    metrics_.counter_callback("gatehouse_update_encode_failures_total",
                              "Update/codec pairs that could not be encoded.",
                              stats(&connection_manager_stats::encode_failures));
    metrics_.gauge_callback("gatehouse_bus_connected", "1 while the command bus is connected.",
                            [this] { return bus_->connected() ? 1.0 : 0.0; });
}

gateway_core::~gateway_core() { stop_listener(); }

void gateway_core::log(log_level level, std::string_view message) const {
    if (options_.log) options_.log(level, message);
}

// ------------------------------------------------------------------------------------------
// Upgrade

upgrade_decision gateway_core::authorize_upgrade(const upgrade_request& request) {
    auto result = decide_upgrade(request);
    if (!result.accepted) {
        log(log_level::info, "upgrade " + redact_target(request.path) + " from " +
                                 std::string(request.remote_address) + " refused with " +
                                 std::to_string(result.status));
    }
    return to_decision(std::move(result), options_.ws_rate_limit);
}

upgrade_decision gateway_core::to_decision(upgrade_result result, double rate) {
    upgrade_decision decision;
    decision.accepted = result.accepted;
    if (!result.accepted) {
        decision.refusal.status = result.status;
        decision.refusal.content_type = "application/problem+json";
        decision.refusal.body = std::move(result.body);
        return decision;
    }
    decision.subprotocol = std::move(result.subprotocol);
    decision.handler = std::make_shared<session>(*this, std::move(result.setup), rate, 2 * rate);
    return decision;
}

bool gateway_core::reserve_slot() {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    const auto cap = options_.max_connections;
    if (cap > 0 && sessions_.size() + opening_ >= cap) return false;
    // Counted from here, not from on_open: a connection whose handshake is still being
    // written when shutdown begins must be waited for and closed with 1001 too.
    ++opening_;
    return true;
}

upgrade_result gateway_core::decide_upgrade(const upgrade_request& request) {
    if (shutting_down_) {
        upgrades_shutting_down_.add();
        return refuse(503, "shutting_down", "the gateway is shutting down");
    }
    identity who;
    std::error_code auth_error;
    bool is_bot = false;
    if (starts_with(request.path, "/ws/player/")) {
        auth_error = authenticate(strip_prefix(request.path, "/ws/player/"), who);
    } else if (request.path == "/ws/player") {
        const auto token = bearer_token_of(request.authorization);
        auth_error =
            token.empty() ? make_error_code(errc::invalid_token) : authenticate(token, who);
    } else if (starts_with(request.path, "/ws/bot/")) {
        is_bot = true;
        if (!verify_bot_key(strip_prefix(request.path, "/ws/bot/"), who)) {
            auth_error = errc::unknown_bot_key;
        }
    } else {
        upgrades_not_found_.add();
        return refuse(404, "not_found", "WebSocket endpoints are /ws/player and /ws/bot/{key}");
    }
    if (auth_error) {
        upgrades_unauthorized_.add();
        log(log_level::info, "upgrade refused: " + auth_error.message());
        return refuse(401, "unauthorized", "a valid access token or bot key is required");
    }

    upgrade_result result;
    // Sec-WebSocket-Protocol: the first offered value naming a codec we have.
    for (const auto& offered : request.offered_subprotocols) {
        if (auto c = codecs_.find_subprotocol(offered)) {
            result.setup.wire_codec = std::move(c);
            result.subprotocol = offered;
            break;
        }
    }
    if (!result.setup.wire_codec) {
        if (const auto requested = query_value(request.query, "codec")) {
            result.setup.wire_codec = codecs_.find(*requested);
            if (!result.setup.wire_codec) {
                upgrades_bad_codec_.add();
                return refuse(400, "unknown_codec", "?codec= names no codec this gateway offers");
            }
        } else {
            result.setup.wire_codec = is_bot && msgpack_codec_ ? msgpack_codec_ : json_codec_;
        }
    }
    const auto& wire = result.setup.wire_codec;
    result.setup.text_codec = wire->frame() == frame_type::text ? wire : json_codec_;
    result.setup.binary_codec =
        wire->frame() == frame_type::binary ? wire : (msgpack_codec_ ? msgpack_codec_ : wire);
    if (!reserve_slot()) {
        upgrades_over_capacity_.add();
        return refuse(503, "over_capacity", "this gateway holds as many connections as it may");
    }
    result.setup.who = std::move(who);
    result.setup.id = next_connection_id();
    result.accepted = true;
    return result;
}

std::error_code gateway_core::authenticate(std::string_view token, identity& who) const {
    if (options_.verify_token) return options_.verify_token(token, who);
    jwt_claims claims;
    if (auto ec = verify_jwt(token, options_.jwt_secret, unix_now_seconds(), claims)) return ec;
    who.player_id = std::move(claims.sub);
    who.client = client_kind::player;
    who.roles = std::move(claims.roles);
    return {};
}

bool gateway_core::verify_bot_key(std::string_view key, identity& who) const {
    bool found = false;
    // Every configured key is compared, so the time taken does not say which one matched.
    for (const auto& [name, expected] : options_.bot_keys) {
        if (constant_time_equal(key, expected) && !found) {
            found = true;
            who.player_id = "bot:" + name;
            who.client = client_kind::bot;
        }
    }
    return found;
}

connection_id gateway_core::next_connection_id() {
    return options_.gateway_id + "-" +
           std::to_string(connection_counter_.fetch_add(1, std::memory_order_relaxed) + 1);
}

// ------------------------------------------------------------------------------------------
// Session life

void session::on_open(const std::shared_ptr<stream_link>& link) {
    link_ = link;
    core_.on_open(shared_from_this());
}

void session::on_message(bool text, std::string_view bytes) {
    core_.on_message(shared_from_this(), text, bytes);
}

void session::on_activity() { core_.on_activity(*this); }

void session::on_close(std::uint16_t code) { core_.on_close(shared_from_this(), code); }

void gateway_core::on_open(const std::shared_ptr<session>& s) {
    s->touch(steady_ms());
    const auto& setup = s->setup();
    if (setup.event_stream) {
        // An event stream has no welcome: it is registered for routing at once.
        register_session(s);
        return;
    }
    // The welcome goes out before the connection is registered for routing, so no update can
    // overtake it (PROTOCOL.md section 3: the welcome comes first).
    std::string payload = "{\"connection_id\":";
    append_json_string(payload, setup.id);
    payload += ",\"player_id\":";
    append_json_string(payload, setup.who.player_id);
    payload += ",\"codec\":";
    append_json_string(payload, setup.wire_codec->name());
    payload += '}';
    reply(*s, "welcome", std::move(payload), {});
    register_session(s);
}

void gateway_core::register_session(const std::shared_ptr<session>& s) {
    const auto& setup = s->setup();
    {
        std::lock_guard<std::mutex> lock(sessions_mutex_);
        --opening_;
        sessions_.emplace(s.get(), s);
    }
    connections_.add(s, connection_info{setup.who.player_id, setup.who.client, setup.wire_codec});
    if (!setup.event_stream) connections_opened_.add();
    open_gauge(setup).add(1);
    // A connection that opened while shutdown began is closed like the others.
    if (shutting_down_ && s->start_draining()) close_for_shutdown(*s);
}

metric_gauge& gateway_core::open_gauge(const session_setup& setup) noexcept {
    if (setup.event_stream) return event_streams_;
    return setup.who.client == client_kind::bot ? bot_connections_ : player_connections_;
}

void gateway_core::on_close(const std::shared_ptr<session>& s, std::uint16_t code) {
    connections_.remove(s->id());
    bool was_open = false;
    {
        std::lock_guard<std::mutex> lock(sessions_mutex_);
        was_open = sessions_.erase(s.get()) > 0;
        if (!was_open) --opening_;  // its handshake failed after it was accepted
        if (sessions_.empty() && opening_ == 0) sessions_closed_.notify_all();
    }
    if (was_open) {
        open_gauge(s->setup()).add(-1);
        if (s->setup().event_stream) return;  // no close code: it is not a WebSocket
        // Registration takes the registry's lock: fine once per connection, and the set of
        // codes seen in practice is small.
        metrics_
            .counter("gatehouse_connections_closed_total", closed_help,
                     "code=\"" + std::to_string(code) + "\"")
            .add();
    }
}

void gateway_core::on_activity(session& s) { s.touch(steady_ms()); }

std::chrono::milliseconds gateway_core::sweep_interval() const noexcept {
    using std::chrono::milliseconds;
    milliseconds shortest{1000};
    for (auto d : {options_.ping_interval, options_.idle_timeout}) {
        if (d.count() > 0) shortest = std::min(shortest, d / 4);
    }
    return std::max(shortest, milliseconds{10});
}

void gateway_core::sweep() {
    {
        // A bucket unused for a minute is full again (the burst refills in two seconds at any
        // rate): forgetting it changes nothing for that player and bounds the map.
        const auto forget_before = steady_ms() - 60000;
        std::lock_guard<std::mutex> lock(http_buckets_mutex_);
        for (auto it = http_buckets_.begin(); it != http_buckets_.end();) {
            it = it->second.last_used_ms < forget_before ? http_buckets_.erase(it) : std::next(it);
        }
    }
    std::vector<std::shared_ptr<session>> live;
    {
        std::lock_guard<std::mutex> lock(sessions_mutex_);
        live.reserve(sessions_.size());
        for (const auto& entry : sessions_) live.push_back(entry.second);
    }
    const auto now = steady_ms();
    const auto ping_after = options_.ping_interval.count();
    const auto idle_after = options_.idle_timeout.count();
    for (const auto& s : live) {
        const auto quiet = now - s->last_seen_ms();
        if (s->setup().event_stream) {
            // A client never writes on an event stream, so it is never idle: the keep-alive
            // comment (every ping interval, or 15 s when pings are off) shows whether it is
            // still there, and a write that fails ends the stream.
            const std::int64_t keepalive = ping_after > 0 ? ping_after : 15000;
            if (quiet >= keepalive && s->ping()) s->touch(now);
            continue;
        }
        if (idle_after > 0 && quiet >= idle_after) {
            if (s->mark_idle_closed()) {
                idle_closed_.add();
                s->close(close_code::policy_violation, "idle timeout");
            }
        } else if (ping_after > 0 && quiet >= ping_after && s->mark_pinged()) {
            s->ping();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Commands

void gateway_core::on_message(const std::shared_ptr<session>& s, bool text,
                              std::string_view bytes) {
    s->touch(steady_ms());
    // After shutdown began nothing more is read: no ack, no error (PROTOCOL.md section 1).
    if (s->draining()) return;
    const auto& setup = s->setup();
    const codec& reader = text ? *setup.text_codec : *setup.binary_codec;
    // One envelope per I/O thread, reused (its strings keep their capacity), rather than one
    // per session: an idle connection holds none. The bus copies what it keeps.
    thread_local envelope scratch;
    envelope& command = scratch;
    const auto decoded = reader.decode(bytes, command);
    // Every message takes a token, valid or not, so a flood of garbage is limited too.
    const bool within_rate = s->bucket().try_take();
    if (decoded) {
        const auto code = protocol_error_code(decoded);
        (code == "invalid_envelope" ? refused_invalid_envelope_ : refused_invalid_frame_).add();
        reply_error(*s, code, decoded.message(), command.correlation_id);
        return;
    }
    if (!within_rate) {
        refused_rate_limited_.add();
        reply_error(*s, "rate_limited", "over the connection's command rate; not accepted",
                    command.correlation_id);
        return;
    }
    accept_command(s, command);
}

void gateway_core::accept_command(const std::shared_ptr<session>& s, envelope& command) {
    const auto& setup = s->setup();
    if (command.correlation_id.empty()) {
        command.correlation_id = setup.id + "." + std::to_string(s->next_sequence());
    }
    command.origin.player_id = setup.who.player_id;
    command.origin.connection_id = setup.id;
    command.origin.client = setup.who.client;
    command.origin.accepted_at_ms = unix_ms();
    if (!s->begin_command()) return;  // shutdown began: neither accepted nor answered

    bus_->append(command, [this, s, correlation_id = command.correlation_id](
                              std::error_code error, std::string_view entry_id) {
        if (error) {
            refused_bus_unavailable_.add();
            reply_error(*s, "bus_unavailable", "the command bus did not accept it; retry later",
                        correlation_id);
        } else {
            commands_accepted_.add();
            std::string payload = "{\"stream_id\":";
            append_json_string(payload, entry_id);
            payload += '}';
            reply(*s, "ack", std::move(payload), correlation_id);
        }
        if (s->end_command()) close_for_shutdown(*s);
    });
}

void gateway_core::reply_error(session& s, std::string_view code, std::string_view message,
                               std::string_view correlation_id) {
    std::string payload = "{\"code\":";
    append_json_string(payload, code);
    payload += ",\"message\":";
    append_json_string(payload, message);
    payload += '}';
    reply(s, "error", std::move(payload), correlation_id);
}

void gateway_core::reply(session& s, std::string_view type, std::string payload_json,
                         std::string_view correlation_id) {
    envelope out;
    out.type = type;
    out.payload = std::move(payload_json);
    out.format = payload_format::json;
    out.correlation_id = correlation_id;
    std::string bytes;
    const auto& wire = *s.setup().wire_codec;
    if (auto ec = wire.encode(out, bytes)) {
        // Our own JSON payloads are representable in every built-in codec; a custom codec
        // that cannot carry them leaves the client without this reply, which is logged.
        log(log_level::error, "cannot encode a " + std::string(type) + " reply with codec " +
                                  std::string(wire.name()) + ": " + ec.message());
        return;
    }
    s.send_reply(make_frame(std::move(bytes), wire.frame()));
}

// ------------------------------------------------------------------------------------------
// Updates

void gateway_core::start_listener() {
    if (listener_started_.exchange(true)) return;
    listener_->start([this](std::string_view message) { route_update(message); });
}

void gateway_core::stop_listener() {
    if (listener_started_.exchange(false)) listener_->stop();
}

void gateway_core::route_update(std::string_view message) {
    updates_received_.add();
    // The listener calls us from one thread at a time, so one parsed update is reused.
    thread_local update parsed;
    if (auto ec = parse_update(message, parsed)) {
        updates_malformed_.add();
        // The message itself is not logged: services may put anything in a payload.
        log(log_level::warn, "dropped a malformed update message of " +
                                 std::to_string(message.size()) + " bytes: " + ec.message());
        return;
    }
    const auto result = connections_.deliver(parsed);
    if (result.oversized > 0) {
        // Sizes only: services may put anything in a payload.
        log(log_level::warn,
            "dropped an update of " + std::to_string(message.size()) + " bytes for " +
                std::to_string(result.oversized) + " connection(s): its frame of " +
                std::to_string(result.oversized_frame_bytes) +
                " bytes is larger than the send buffer (" +
                std::to_string(options_.connections.max_buffered_bytes) + " bytes)");
    }
}

// ------------------------------------------------------------------------------------------
// HTTP

void gateway_core::add_route(std::string method, std::string path, http_handler handler) {
    routes_[std::move(path)][std::move(method)] = std::move(handler);
}

void gateway_core::handle_http(const http_request& request, http_responder respond) {
    if (request.path == "/health" && request.method == "GET") {
        respond(http_response::json(200, "{\"status\":\"ok\"}"));
        return;
    }
    if (request.path == "/ready" && request.method == "GET") {
        const bool bus_up = bus_->connected() && listener_->connected();
        auto r = ready() ? http_response::json(200, "{\"status\":\"ready\"}")
                         : http_response::problem(503, "not_ready",
                                                  shutting_down_ ? "the gateway is shutting down"
                                                  : !bus_up      ? "the bus is not connected"
                                                                 : options_.extra_ready_reason);
        // The embedder's members (which store and bus, whether each is up) before the `}`.
        const std::string fields = options_.ready_fields ? options_.ready_fields() : "";
        if (!fields.empty()) r.body.insert(r.body.size() - 1, "," + fields);
        respond(std::move(r));
        return;
    }
    if (request.path == "/metrics" && request.method == "GET") {
        http_response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = metrics_.render();
        respond(std::move(r));
        return;
    }
    if (starts_with(request.path, "/ws/")) {
        auto r =
            http_response::problem(426, "upgrade_required", "this endpoint speaks WebSocket only");
        r.headers.emplace_back("Upgrade", "websocket");
        respond(std::move(r));
        return;
    }
    if (request.path == "/commands" && options_.http_commands) {
        if (request.method == "POST") {
            handle_http_command(request, respond);
        } else {
            auto r = http_response::problem(405, "method_not_allowed");
            r.headers.emplace_back("Allow", "POST");
            respond(std::move(r));
        }
        return;
    }
    if (request.path == "/sse/player" && options_.event_streams) {
        // A GET was streamed by the transport (is_event_stream_request): only other methods
        // arrive here.
        auto r = http_response::problem(405, "method_not_allowed");
        r.headers.emplace_back("Allow", "GET");
        respond(std::move(r));
        return;
    }
    const auto route = routes_.find(request.path);
    const bool builtin =
        request.path == "/health" || request.path == "/ready" || request.path == "/metrics";
    if (route == routes_.end()) {
        if (builtin) {
            auto r = http_response::problem(405, "method_not_allowed");
            r.headers.emplace_back("Allow", "GET");
            respond(std::move(r));
        } else {
            respond(http_response::problem(404, "not_found"));
        }
        return;
    }
    const auto handler = route->second.find(request.method);
    if (handler == route->second.end()) {
        std::string allow;
        for (const auto& entry : route->second) {
            if (!allow.empty()) allow += ", ";
            allow += entry.first;
        }
        auto r = http_response::problem(405, "method_not_allowed");
        r.headers.emplace_back("Allow", std::move(allow));
        respond(std::move(r));
        return;
    }
    // A route is an embedding team's code: an exception from it answers 500 (ignored when
    // the handler had answered already) instead of unwinding through the I/O thread. The
    // handler gets a copy of `respond`; both complete the same exchange.
    try {
        handler->second(request, respond);
    } catch (...) {
        log(log_level::error,
            "route " + request.method + " " + redact_target(request.path) + " threw an exception");
        respond(http_response::problem(500, "internal_error"));
    }
}

// ------------------------------------------------------------------------------------------
// POST /commands

void gateway_core::handle_http_command(const http_request& request, const http_responder& respond) {
    if (shutting_down_) {
        respond(http_response::problem(503, "shutting_down", "the gateway is shutting down"));
        return;
    }
    identity who;
    const auto token = request.bearer_token();
    if (token.empty() || authenticate(token, who)) {
        respond(http_response::problem(401, "unauthorized",
                                       "a valid access token is required (Authorization: Bearer)"));
        return;
    }
    if (!request.content_type_is("application/json")) {
        respond(http_response::problem(415, "unsupported_media_type",
                                       "the body must be application/json"));
        return;
    }
    envelope command;
    if (const auto ec = json_codec_->decode(request.body, command)) {
        // The JSON codec reports text that is not JSON at all as a frame error; anything that
        // parsed but breaks the envelope rules of section 3 is an envelope error.
        const bool unparsable = protocol_error_code(ec) == "invalid_frame";
        (unparsable ? refused_invalid_frame_ : refused_invalid_envelope_).add();
        respond(http_response::problem(400, unparsable ? "invalid_json" : "invalid_envelope",
                                       ec.message()));
        return;
    }
    const auto now = steady_ms();
    bool within_rate = true;
    std::chrono::steady_clock::duration wait{};
    {
        std::lock_guard<std::mutex> lock(http_buckets_mutex_);
        const double rate = options_.ws_rate_limit;
        auto& entry = http_buckets_.try_emplace(who.player_id, http_bucket{{rate, 2 * rate}, now})
                          .first->second;
        entry.last_used_ms = now;
        within_rate = entry.bucket.try_take();
        if (!within_rate) wait = entry.bucket.time_until_available();
    }
    if (!within_rate) {
        refused_rate_limited_.add();
        auto r = http_response::problem(429, "rate_limited",
                                        "over the player's command rate; not accepted");
        // Whole seconds, rounded up, at least 1 (Retry-After cannot say less).
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait).count();
        r.headers.emplace_back("Retry-After",
                               std::to_string(std::max<long long>(1, (ms + 999) / 1000)));
        respond(std::move(r));
        return;
    }
    const auto request_id =
        options_.gateway_id + "-r" +
        std::to_string(http_request_counter_.fetch_add(1, std::memory_order_relaxed) + 1);
    if (command.correlation_id.empty()) command.correlation_id = "http:" + request_id;
    command.origin.player_id = who.player_id;
    command.origin.connection_id = "http:" + request_id;
    command.origin.client = who.client;
    command.origin.accepted_at_ms = unix_ms();
    bus_->append(command, [this, respond, correlation_id = command.correlation_id](
                              std::error_code error, std::string_view entry_id) {
        if (error) {
            refused_bus_unavailable_.add();
            respond(http_response::problem(503, "bus_unavailable",
                                           "the command bus did not accept it; retry later"));
            return;
        }
        http_commands_accepted_.add();
        std::string body = "{\"correlation_id\":";
        append_json_string(body, correlation_id);
        body += ",\"stream_id\":";
        append_json_string(body, entry_id);
        body += '}';
        respond(http_response::json(202, std::move(body)));
    });
}

// ------------------------------------------------------------------------------------------
// GET /sse/player

bool gateway_core::is_event_stream_request(const http_request& request) const noexcept {
    return options_.event_streams && request.path == "/sse/player" && request.method == "GET";
}

upgrade_decision gateway_core::authorize_event_stream(const http_request& request) {
    if (shutting_down_) {
        return to_decision(refuse(503, "shutting_down", "the gateway is shutting down"), 0);
    }
    identity who;
    const auto bearer = request.bearer_token();
    const std::string token = bearer.empty() ? request.query_param("token") : std::string(bearer);
    if (token.empty() || authenticate(token, who)) {
        return to_decision(
            refuse(401, "unauthorized",
                   "a valid access token is required (Authorization: Bearer or ?token=)"),
            0);
    }
    upgrade_result result;
    result.setup.id = next_connection_id();
    result.setup.who = std::move(who);
    result.setup.wire_codec = event_stream_codec_;
    result.setup.text_codec = json_codec_;
    result.setup.binary_codec = json_codec_;
    result.setup.event_stream = true;
    if (!reserve_slot()) {
        upgrades_over_capacity_.add();
        return to_decision(
            refuse(503, "over_capacity", "this gateway holds as many connections as it may"), 0);
    }
    result.accepted = true;
    return to_decision(std::move(result), 0);
}

// ------------------------------------------------------------------------------------------
// Shutdown

bool gateway_core::ready() const noexcept {
    return !shutting_down_ && bus_->connected() && listener_->connected() &&
           (!options_.extra_ready || options_.extra_ready());
}

void gateway_core::begin_shutdown() {
    if (shutting_down_.exchange(true)) return;
    std::vector<std::shared_ptr<session>> live;
    {
        std::lock_guard<std::mutex> lock(sessions_mutex_);
        for (const auto& entry : sessions_) live.push_back(entry.second);
    }
    for (const auto& s : live) {
        if (s->start_draining()) close_for_shutdown(*s);
    }
}

void gateway_core::close_for_shutdown(session& s) {
    s.close(close_code::going_away, "server shutting down");
}

bool gateway_core::wait_for_sessions(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(sessions_mutex_);
    return sessions_closed_.wait_until(lock, deadline,
                                       [this] { return sessions_.empty() && opening_ == 0; });
}

}  // namespace gatehouse::detail
