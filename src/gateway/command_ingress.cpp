#include "gateway/command_ingress.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include "common/clock.hpp"
#include "common/retry_after.hpp"
#include "gatehouse/client/envelope.hpp"
#include "gatehouse/codec_error.hpp"
#include "gateway/gateway_tracing.hpp"
#include "gateway/json_text.hpp"
#include "gateway/session.hpp"
#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

// Message types of the gateway's own control messages (docs/protocol.md section 6).
constexpr std::string_view reserved_prefix = "gatehouse.";

// How often a presence entry the bus refused is logged, at most (a bus that is down refuses
// every connection's: the metric counts them all).
constexpr std::int64_t presence_failure_log_interval_ms = 10000;

// The `traceparent` header of `POST /commands` (docs/protocol.md 6.8): the value when there is
// exactly one and it is a valid W3C traceparent (as the codecs judge an envelope's), else
// empty: a header given twice names no single parent, and an invalid one is ignored.
std::string_view traceparent_header(const http_request& request) noexcept {
    std::string_view found;
    bool seen = false;
    for (const auto& [name, value] : request.headers) {
        if (!iequals(name, "traceparent")) continue;
        if (seen) return {};
        seen = true;
        found = value;
    }
    return client::is_valid_traceparent(found) ? found : std::string_view();
}

// The envelope the calling thread decodes into, when the gateway bound one (scratch_binding).
thread_local envelope* bound_scratch = nullptr;

// Where a WebSocket command's answer goes once the bus replied: its session, held weakly (a
// session that closed meanwhile has no one to tell, and a bus that keeps a callback must not
// keep a session).
struct session_reply {
    std::weak_ptr<session> target;

    static metric_counter& accepted_counter(gateway_metrics& m) { return m.commands_accepted; }
    static metric_histogram& ack_histogram(gateway_metrics& m) { return m.command_ack_ws; }
    void accepted(std::string_view entry_id, std::string_view correlation_id,
                  const log_sink& log) const {
        const auto s = target.lock();
        if (!s) return;
        std::string payload = "{\"stream_id\":";
        append_json_string(payload, entry_id);
        payload += '}';
        s->reply("ack", std::move(payload), correlation_id, log);
        finish(*s);
    }
    void unavailable(std::string_view correlation_id, const log_sink& log) const {
        const auto s = target.lock();
        if (!s) return;
        s->reply_error("bus_unavailable", "the command bus did not accept it; retry later",
                       correlation_id, log);
        finish(*s);
    }
    static void finish(session& s) {
        // The last answer of a draining session lets it close (docs/protocol.md section 1).
        if (s.end_command()) s.close_drained();
    }
};

// Where a `POST /commands` answer goes: its HTTP exchange (the responder holds it weakly).
struct http_reply {
    http_responder respond;

    static metric_counter& accepted_counter(gateway_metrics& m) { return m.http_commands_accepted; }
    static metric_histogram& ack_histogram(gateway_metrics& m) { return m.command_ack_http; }
    void accepted(std::string_view entry_id, std::string_view correlation_id,
                  const log_sink&) const {
        std::string body = "{\"correlation_id\":";
        append_json_string(body, correlation_id);
        body += ",\"stream_id\":";
        append_json_string(body, entry_id);
        body += '}';
        respond(http_response::json(202, std::move(body)));
    }
    void unavailable(std::string_view, const log_sink&) const {
        respond(http_response::problem(503, "bus_unavailable",
                                       "the command bus did not accept it; retry later"));
    }
};

// The WebSocket side of a command before it reaches the bus: refusals are error frames.
struct session_answer {
    const std::shared_ptr<session>& s;
    const log_sink& log;
    const session_control& control;
    static constexpr std::string_view transport = "websocket";

    void invalid(std::string_view code, std::string_view message,
                 std::string_view correlation_id) const {
        s->reply_error(code, message, correlation_id, log);
    }
    void rate_limited(std::chrono::milliseconds, std::string_view correlation_id) const {
        s->reply_error("rate_limited", "over the connection's command rate; not accepted",
                       correlation_id, log);
    }
    void fill_origin(envelope& command) const {
        const auto& setup = s->setup();
        // Set on every command: the envelope is reused for the connection's next message.
        command.origin.correlation_assigned = command.correlation_id.empty();
        if (command.origin.correlation_assigned) {
            command.correlation_id = setup.id + "." + std::to_string(s->next_sequence());
        }
        command.origin.player_id = setup.who.player_id;
        command.origin.connection_id = setup.id;
        command.origin.client = setup.who.client;
    }
    // False once shutdown began: the command is neither accepted nor answered (the session's
    // own drain decides: its pending commands keep it open).
    bool begin() const { return s->begin_command(); }
    session_reply detach() const { return session_reply{s}; }
    // A session's control messages (gatehouse.refresh) are answered by the gateway itself.
    bool is_control(std::string_view type) const { return session_control::handles(type); }
    void handle_control(const envelope& message) const { control.handle(s, message); }
};

// The HTTP side: refusals are problem+json answers.
struct http_answer {
    const http_responder& respond;
    const identity& who;
    const std::string& request_id;
    const std::atomic<bool>& accepting;  // the ingress's: false once shutdown began
    static constexpr std::string_view transport = "http";

    void invalid(std::string_view code, std::string_view message, std::string_view) const {
        // The JSON codec reports text that is not JSON at all as a frame error; anything that
        // parsed but breaks the envelope rules of section 3 is an envelope error.
        respond(http_response::problem(
            400, code == "invalid_frame" ? "invalid_json" : "invalid_envelope", message));
    }
    void rate_limited(std::chrono::milliseconds wait, std::string_view) const {
        auto r = http_response::problem(429, "rate_limited",
                                        "over the player's command rate; not accepted");
        r.headers.emplace_back("Retry-After", retry_after_value(wait));
        respond(std::move(r));
    }
    void fill_origin(envelope& command) const {
        command.origin.correlation_assigned = command.correlation_id.empty();
        if (command.origin.correlation_assigned) command.correlation_id = "http:" + request_id;
        command.origin.player_id = who.player_id;
        command.origin.connection_id = "http:" + request_id;
        command.origin.client = who.client;
    }
    // False, answered 503, once shutdown began.
    bool begin() const {
        if (accepting.load()) return true;
        respond(http_response::problem(503, "shutting_down", "the gateway is shutting down"));
        return false;
    }
    http_reply detach() const { return http_reply{respond}; }
    // A control message belongs to a session: over HTTP every reserved type is refused.
    bool is_control(std::string_view) const { return false; }
    void handle_control(const envelope&) const {}
};

}  // namespace

command_ingress::command_ingress(std::shared_ptr<const gateway_options> options,
                                 std::shared_ptr<command_bus> bus,
                                 std::shared_ptr<const codec> json,
                                 std::shared_ptr<gateway_metrics> metrics, token_verifier verify)
    : options_(std::move(options)),
      bus_(std::move(bus)),
      json_(std::move(json)),
      metrics_(std::move(metrics)),
      answers_(std::make_shared<answer_context>()),
      control_(options_, std::move(verify), metrics_) {
    answers_->options = options_;
    answers_->metrics = metrics_;
}

command_ingress::scratch_binding::scratch_binding(envelope& scratch) noexcept
    : previous_(bound_scratch) {
    bound_scratch = &scratch;
}

command_ingress::scratch_binding::~scratch_binding() { bound_scratch = previous_; }

void command_ingress::on_message(const std::shared_ptr<session>& s, bool text,
                                 std::string_view bytes) {
    // One clock read for both the idle timer and the ack latency.
    const auto received = std::chrono::steady_clock::now();
    s->touch(
        std::chrono::duration_cast<std::chrono::milliseconds>(received.time_since_epoch()).count());
    // After shutdown began nothing more is read: no ack, no error (docs/protocol.md section 1).
    if (s->draining()) return;
    const std::int64_t started_ns = options_->tracing ? unix_now_ns() : 0;
    const auto& setup = s->setup();
    const codec& reader = text ? *setup.text_codec : *setup.binary_codec;
    std::optional<envelope> local;
    envelope& command = bound_scratch != nullptr ? *bound_scratch : local.emplace();
    const auto decoded = reader.decode(bytes, command);
    // Every message takes a token, valid or not, so a flood of garbage is limited too.
    const bool within_rate = s->bucket().try_take();
    accept(decoded, within_rate, {}, command, session_answer{s, options_->log, control_}, received,
           started_ns);
}

void command_ingress::on_http_command(const http_request& request, const identity& who,
                                      const http_responder& respond) {
    const auto received = std::chrono::steady_clock::now();
    if (!request.content_type_is("application/json")) {
        respond(http_response::problem(415, "unsupported_media_type",
                                       "the body must be application/json"));
        return;
    }
    const std::int64_t started_ns = options_->tracing ? unix_now_ns() : 0;
    envelope command;
    const auto decoded = json_->decode(request.body, command);
    // The envelope's own traceparent wins over the header's (docs/protocol.md 6.8).
    if (!decoded && command.traceparent.empty()) command.traceparent = traceparent_header(request);
    bool within_rate = true;
    std::chrono::milliseconds wait{};
    if (!decoded) {
        // Only a well-formed command takes a token: a client fixing its body is not punished.
        const auto now = steady_now_ms();
        std::lock_guard<std::mutex> lock(http_buckets_mutex_);
        const double rate = options_->ws_rate_limit;
        auto& entry = http_buckets_.try_emplace(who.player_id, http_bucket{{rate, 2 * rate}, now})
                          .first->second;
        entry.last_used_ms = now;
        within_rate = entry.bucket.try_take();
        if (!within_rate) {
            wait = std::chrono::duration_cast<std::chrono::milliseconds>(
                entry.bucket.time_until_available());
        }
    }
    const auto request_id =
        options_->gateway_id + "-r" +
        std::to_string(http_request_counter_.fetch_add(1, std::memory_order_relaxed) + 1);
    accept(decoded, within_rate, wait, command, http_answer{respond, who, request_id, accepting_},
           received, started_ns);
}

// The one acceptance path. `Answer` is how the sender is told (session_answer, http_answer):
// the steps, their order and their metrics are the same for both.
template <class Answer>
void command_ingress::accept(std::error_code decoded, bool within_rate,
                             std::chrono::milliseconds retry_after, envelope& command,
                             Answer answer, std::chrono::steady_clock::time_point received,
                             std::int64_t started_ns) {
    // Tracing off: an empty span, and nothing below does more than test it.
    ingress_span traced = options_->tracing ? ingress_span(options_->tracing, started_ns, command,
                                                           decoded, Answer::transport)
                                            : ingress_span();
    if (decoded) {
        const auto code = protocol_error_code(decoded);
        (code == "invalid_envelope" ? metrics_->refused_invalid_envelope
                                    : metrics_->refused_invalid_frame)
            .add();
        answer.invalid(code, decoded.message(), command.correlation_id);
        return;
    }
    if (command.type.compare(0, reserved_prefix.size(), reserved_prefix) == 0) {
        // docs/protocol.md 6: the gateway's own control messages; none is a command for the bus. A
        // session's own (gatehouse.refresh) counts against its rate like a command (6.3).
        if (answer.is_control(command.type)) {
            if (!within_rate) {
                metrics_->refused_rate_limited.add();
                traced.refused("rate_limited");
                answer.rate_limited(retry_after, command.correlation_id);
                return;
            }
            answer.handle_control(command);
            return;
        }
        metrics_->refused_invalid_envelope.add();
        traced.refused("invalid_envelope");
        answer.invalid("invalid_envelope", "message types beginning with gatehouse. are reserved",
                       command.correlation_id);
        return;
    }
    if (!within_rate) {
        metrics_->refused_rate_limited.add();
        traced.refused("rate_limited");
        answer.rate_limited(retry_after, command.correlation_id);
        return;
    }
    answer.fill_origin(command);
    command.origin.accepted_at_ms = unix_now_ms();
    // Counted before `begin` checks for shutdown, so that the drain sees it (stop_accepting).
    answers_->tracker.appended();
    if (!answer.begin()) {
        answers_->tracker.withdrawn();
        traced.refused("shutting_down");
        return;
    }
    bus_->append(command, [answers = answers_, reply = answer.detach(),
                           correlation_id = command.correlation_id, trace = traced.to_bus(command),
                           received](std::error_code error, std::string_view entry_id) {
        if (answers->tracker.handling()) {
            const auto& log = answers->options->log;
            if (error) {
                answers->metrics->refused_bus_unavailable.add();
                reply.unavailable(correlation_id, log);
            } else {
                reply.accepted_counter(*answers->metrics).add();
                reply.accepted(entry_id, correlation_id, log);
                reply.ack_histogram(*answers->metrics)
                    .observe(std::chrono::steady_clock::now() - received);
            }
        }
        // Ended once the client was answered: the span covers decode, append and ack.
        if (trace) end_ingress_span(*answers->options->tracing, *trace, error, entry_id);
        answers->tracker.answered();
    });
}

bool command_ingress::append_presence(const session_setup& setup, bool connected) {
    // The gateway is done with the bus once its drain cancelled what was pending: an entry
    // now would be answered to no one, perhaps by a bus the embedder is tearing down.
    if (!options_->presence_events || answers_->tracker.cancelled()) return false;
    envelope entry;
    entry.type = connected ? "gatehouse.connected" : "gatehouse.disconnected";
    entry.payload = "{\"connection_id\":";
    append_json_string(entry.payload, setup.id);
    entry.payload += ",\"client\":";
    append_json_string(entry.payload, bus_client_name(setup.who.client));
    entry.payload += ",\"codec\":";
    append_json_string(entry.payload, setup.wire_codec->name());
    entry.payload += '}';
    entry.format = payload_format::json;
    // Unique per connection and event (a session's own assigned ids are `<id>.<n>`), and made
    // up by the gateway: never de-duplicated (docs/protocol.md 6.5).
    entry.correlation_id = setup.id + (connected ? ".connected" : ".disconnected");
    entry.origin.player_id = setup.who.player_id;
    entry.origin.connection_id = setup.id;
    entry.origin.client = client_kind::system;
    entry.origin.accepted_at_ms = unix_now_ms();
    entry.origin.correlation_assigned = true;
    answers_->tracker.appended();
    bus_->append(entry, [answers = answers_](std::error_code error, std::string_view) {
        if (answers->tracker.handling()) {
            if (error) {
                answers->metrics->presence_failed.add();
                answers->presence_refused(error);
            } else {
                answers->metrics->presence_appended.add();
            }
        }
        answers->tracker.answered();
    });
    return true;
}

void command_ingress::answer_context::presence_refused(std::error_code error) {
    presence_failures_unlogged.fetch_add(1);
    const auto now = steady_now_ms();
    auto last = presence_failure_logged_ms.load();
    if (last != 0 && now - last < presence_failure_log_interval_ms) return;
    // One thread wins the right to log for this interval, and reports every failure since the
    // last report (its own included).
    if (!presence_failure_logged_ms.compare_exchange_strong(last, now)) return;
    const auto count = std::max<std::uint64_t>(presence_failures_unlogged.exchange(0), 1);
    if (options->log) {
        options->log(log_level::warn, "presence entries not appended: " + error.message() + " (" +
                                          std::to_string(count) + " since the last report)");
    }
}

void command_ingress::forget_idle_buckets(std::int64_t now_ms) {
    // A bucket unused for a minute is full again (the burst refills in two seconds at any
    // rate): forgetting it changes nothing for that player and bounds the map.
    const auto forget_before = now_ms - 60000;
    std::lock_guard<std::mutex> lock(http_buckets_mutex_);
    for (auto it = http_buckets_.begin(); it != http_buckets_.end();) {
        it = it->second.last_used_ms < forget_before ? http_buckets_.erase(it) : std::next(it);
    }
}

}  // namespace gatehouse::detail
