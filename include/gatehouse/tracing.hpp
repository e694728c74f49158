#pragma once
/// @file
/// `tracer`: spans of the gateway's work (HTTP requests, upgrades, command ingress, update
/// routing) with W3C Trace Context ids, exported in batches over OTLP/HTTP (JSON encoding)
/// by a thread of their own. A gateway traces when `gateway_options::tracing` holds one.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "gatehouse/log.hpp"

namespace gatehouse {

/// A trace id (16 bytes) or a span id (8 bytes); all zero means none.
using trace_id = std::array<std::uint8_t, 16>;
using span_id = std::array<std::uint8_t, 8>;

/// The W3C Trace Context of one span: its trace, its own id and the trace flags.
///
/// Thread safety: a plain value.
struct trace_context {
    gatehouse::trace_id trace{};
    gatehouse::span_id span{};
    std::uint8_t flags = 0x01;  ///< Bit 0: sampled.

    /// The context a `traceparent` names (`00-<32 hex>-<16 hex>-<2 hex>`, as
    /// `client::is_valid_traceparent` accepts), or nothing for any other text.
    static std::optional<trace_context> parse(std::string_view traceparent) noexcept;
    /// `00-<trace>-<span>-<flags>` in lower-case hex (55 characters).
    std::string traceparent() const;
};

/// What a span stands for (OTLP `SpanKind`).
enum class span_kind : std::uint8_t {
    internal = 1,
    server = 2,  ///< An HTTP request or an upgrade, as its server.
    client = 3,
    producer = 4,  ///< A command the gateway puts on the bus.
    consumer = 5,  ///< An update the gateway takes from the bus.
};

/// A span's outcome (OTLP `Status.code`).
enum class span_status : std::uint8_t { unset = 0, ok = 1, error = 2 };

/// One attribute: a key and a string, integer, boolean or floating-point value.
struct span_attribute {
    std::string key;
    std::variant<std::string, std::int64_t, bool, double> value;
};

/// Something that happened at a moment of a span (OTLP `Span.Event`), without attributes.
struct span_event {
    std::string name;
    std::int64_t time_unix_ns = 0;
};

/// One span, built by its owner while the work runs and handed to `tracer::end` once done.
///
/// Thread safety: a plain value.
struct span {
    trace_context context;             ///< Its trace and its own id.
    gatehouse::span_id parent_span{};  ///< The parent's id; all zero for a root span.
    std::string name;
    span_kind kind = span_kind::internal;
    std::int64_t start_unix_ns = 0;
    std::int64_t end_unix_ns = 0;  ///< 0 until ended.
    std::vector<span_attribute> attributes;
    std::vector<span_event> events;
    std::vector<trace_context> links;  ///< Related spans of other traces.
    span_status status = span_status::unset;
    std::string status_message;  ///< With `span_status::error`.

    /// Adds an attribute (no check for a repeated key).
    void set(std::string key, std::string value) {
        attributes.push_back({std::move(key), std::move(value)});
    }
    void set(std::string key, std::string_view value) {
        attributes.push_back({std::move(key), std::string(value)});
    }
    void set(std::string key, const char* value) {
        attributes.push_back({std::move(key), std::string(value)});
    }
    void set(std::string key, bool value) { attributes.push_back({std::move(key), value}); }
    void set(std::string key, double value) { attributes.push_back({std::move(key), value}); }
    /// Any integer but `bool`, as a 64-bit one (an unsigned value above 2^63 wraps).
    template <class Int,
              std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>, int> = 0>
    void set(std::string key, Int value) {
        attributes.push_back({std::move(key), static_cast<std::int64_t>(value)});
    }
    /// Adds an event at the current time.
    void add_event(std::string event_name);
    /// The `traceparent` a service continuing this span's work should carry: this span's trace
    /// and id as the parent.
    std::string traceparent() const { return context.traceparent(); }
};

/// Settings of a `tracer`.
struct tracer_options {
    /// `http://HOST[:PORT][/PATH]` of an OTLP/HTTP collector; PATH defaults to `/v1/traces`.
    /// Plain HTTP only (a collector beside the gateway, or a sidecar, as OpenTelemetry
    /// deployments usually run one).
    std::string endpoint;
    /// The `service.name` resource attribute of every span.
    std::string service_name = "gatehouse";
    /// More resource attributes (`service.instance.id` = the gateway id, for one).
    std::vector<std::pair<std::string, std::string>> resource_attributes;
    /// Spans waiting for export at most; a span ended while that many wait is dropped and
    /// counted (`tracer_stats::spans_dropped`), so that a collector that is down costs memory
    /// up to this bound and never blocks the gateway.
    std::size_t max_queued_spans = 16384;
    /// Spans per export request at most; a full batch is sent at once.
    std::size_t max_batch_spans = 512;
    /// A batch that is not full is sent this long after its first span ended.
    std::chrono::milliseconds export_interval{2000};
    /// Longest one export request may take (connect, send and answer).
    std::chrono::milliseconds export_timeout{5000};
    /// Failed exports are logged there (warn, at most once per ten seconds); empty: nowhere.
    log_sink log;
};

/// Counts since the tracer was built (relaxed reads).
struct tracer_stats {
    std::uint64_t spans_exported = 0;   ///< Spans in batches the collector accepted (2xx).
    std::uint64_t spans_dropped = 0;    ///< Spans dropped: the queue was full.
    std::uint64_t spans_failed = 0;     ///< Spans in batches whose export failed.
    std::uint64_t export_failures = 0;  ///< Export requests that failed (no answer, not 2xx).
};

/// True when `url` is an endpoint `tracer_options::endpoint` accepts
/// (`http://HOST[:PORT][/PATH]`): the tracer's own check, without starting anything, so that
/// a server can validate its settings before opening anything.
bool valid_otlp_endpoint(std::string_view url);

/// Makes spans and exports them.
///
/// Thread safety: every member may be called from any thread. `end` takes a short lock to
/// queue the span and never waits for the network: the export runs on the tracer's own
/// thread. Lifetime: the destructor sends what is queued and joins that thread, which takes at
/// most two `export_timeout`s (an export in flight, then one final batch; after a failure the
/// rest is given up); share the tracer (`std::shared_ptr`) with every gateway that uses it.
/// A gateway's pending bus answers hold it too: keep your own reference until the bus is
/// gone, so that the last one is not dropped on a bus thread, which would then wait for that
/// final export.
class tracer {
public:
    /// Starts the export thread. Throws `std::invalid_argument` when `endpoint` is not an
    /// `http://HOST[:PORT][/PATH]` URL or a size or interval is 0.
    explicit tracer(tracer_options options);
    ~tracer();
    tracer(const tracer&) = delete;
    tracer& operator=(const tracer&) = delete;

    /// A span starting now: a child of `parent` when given, else the root of a new trace.
    /// Its ids come from a per-thread random generator (no lock).
    span start(std::string name, span_kind kind, const trace_context* parent = nullptr) const;
    /// As `start`, a child of the span `traceparent` names, or a root when it names none
    /// (empty or invalid).
    span start(std::string name, span_kind kind, std::string_view traceparent) const;
    /// Ends `s` now (unless its end time is set) and queues it for export; when the queue
    /// is full, drops it and counts it. Never blocks on the network; never throws.
    void end(span&& s) noexcept;
    /// Sends everything ended before the call; returns once sent or given up on, or after
    /// `timeout`. True when nothing is left queued. For tests and orderly shutdown.
    bool flush(std::chrono::milliseconds timeout);

    tracer_stats stats() const noexcept;
    const tracer_options& options() const noexcept;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace gatehouse
