// The tracer: spans queued by whoever ends them, exported in batches by the tracer's own thread
// over OTLP/HTTP, so that the gateway's I/O threads never wait for a collector.
#include "gatehouse/tracing.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "common/clock.hpp"
#include "http/http_client.hpp"
#include "tracing/otlp_json.hpp"
#include "tracing/span_ids.hpp"

namespace gatehouse {
namespace {

// OTLP/HTTP's default path for traces.
constexpr std::string_view default_traces_path = "/v1/traces";
// A collector's answer is a small (often empty) ExportTraceServiceResponse.
constexpr std::size_t max_answer_bytes = std::size_t{64} * 1024;
// How often a failing export is logged, at most.
constexpr std::int64_t failure_log_interval_ms = 10000;

}  // namespace

struct tracer::state {
    tracer_options options;
    detail::http_target target;
    std::vector<std::pair<std::string, std::string>> resource;

    std::mutex mutex;
    std::condition_variable wake;      // the export thread: spans, a flush or the end
    std::condition_variable exported;  // flush(): a batch was handled
    std::vector<span> queue;
    std::chrono::steady_clock::time_point first_queued;  // of the oldest span in `queue`
    std::uint64_t queued_total = 0;                      // spans ever queued
    std::uint64_t handled_total = 0;                     // of those, exported or given up on
    std::uint64_t flush_wanted = 0;  // export at once until handled_total reaches it
    bool stopping = false;

    std::atomic<std::uint64_t> spans_exported{0};
    std::atomic<std::uint64_t> spans_dropped{0};
    std::atomic<std::uint64_t> spans_failed{0};
    std::atomic<std::uint64_t> export_failures{0};
    std::int64_t failure_logged_ms = 0;  // export thread only
    std::uint64_t failures_unlogged = 0;
    std::string body;  // export thread only: reused, so a batch allocates no body

    std::thread thread;

    void run();
    bool send(const span* spans, std::size_t count);
    void failed(const std::string& why);
};

void tracer::state::run() {
    // Swapped with the queue under the lock, so that `end()` never waits while spans are
    // moved, encoded or sent; both keep their capacity, so steady state allocates nothing here.
    std::vector<span> taken;
    bool last_failed = false;
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
        const auto due = [&] {
            return stopping || queue.size() >= options.max_batch_spans ||
                   (!queue.empty() && flush_wanted > handled_total);
        };
        if (queue.empty()) {
            wake.wait(lock, [&] { return stopping || !queue.empty(); });
        }
        if (!queue.empty()) {
            wake.wait_until(lock, first_queued + options.export_interval, due);
        }
        if (queue.empty()) {
            if (stopping) return;
            continue;
        }
        taken.swap(queue);
        const bool ending = stopping;
        lock.unlock();
        for (std::size_t at = 0; at < taken.size(); at += options.max_batch_spans) {
            const auto n = std::min(taken.size() - at, options.max_batch_spans);
            // At the end, once an export failed, the rest is given up on rather than waiting
            // a timeout per batch for a collector that is down.
            const bool ok = !(ending && last_failed) && send(taken.data() + at, n);
            last_failed = !ok;
            (ok ? spans_exported : spans_failed).fetch_add(n, std::memory_order_relaxed);
        }
        const auto handled = taken.size();
        taken.clear();
        lock.lock();
        handled_total += handled;
        exported.notify_all();
    }
}

bool tracer::state::send(const span* spans, std::size_t count) {
    detail::encode_otlp_json(resource, spans, count, body);
    std::string answer;
    const auto failure = detail::http_post(target, {}, "application/json", body,
                                           options.export_timeout, max_answer_bytes, answer);
    if (failure) {
        failed("no answer from the collector (" + failure.error.message() + ")");
        return false;
    }
    const int status = detail::http_answer_status(answer);
    if (status < 200 || status > 299) {
        failed(status == 0 ? std::string("the collector's answer is not HTTP")
                           : "the collector answered " + std::to_string(status));
        return false;
    }
    return true;
}

void tracer::state::failed(const std::string& why) {
    export_failures.fetch_add(1, std::memory_order_relaxed);
    ++failures_unlogged;
    const auto now = detail::steady_now_ms();
    if (failure_logged_ms != 0 && now - failure_logged_ms < failure_log_interval_ms) return;
    failure_logged_ms = now;
    if (options.log) {
        options.log(log_level::warn, "trace export to " + options.endpoint + " failed: " + why +
                                         " (" + std::to_string(failures_unlogged) +
                                         " failed export(s) since the last report)");
    }
    failures_unlogged = 0;
}

bool valid_otlp_endpoint(std::string_view url) {
    return detail::http_target::parse(url).has_value();
}

tracer::tracer(tracer_options options) : state_(std::make_shared<state>()) {
    auto target = detail::http_target::parse(options.endpoint);
    if (!target) {
        throw std::invalid_argument("tracer: endpoint must be http://HOST[:PORT][/PATH]");
    }
    if (options.max_queued_spans == 0 || options.max_batch_spans == 0 ||
        options.export_interval.count() <= 0 || options.export_timeout.count() <= 0) {
        throw std::invalid_argument(
            "tracer: queue and batch sizes, export interval and timeout must be above 0");
    }
    if (target->prefix.empty()) target->prefix = std::string(default_traces_path);
    state_->target = std::move(*target);
    state_->resource.emplace_back("service.name", options.service_name);
    for (const auto& attribute : options.resource_attributes) {
        state_->resource.push_back(attribute);
    }
    state_->options = std::move(options);
    state_->queue.reserve(std::min<std::size_t>(state_->options.max_batch_spans, 4096));
    state_->thread = std::thread([s = state_.get()] { s->run(); });
}

tracer::~tracer() {
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        state_->stopping = true;
    }
    state_->wake.notify_all();
    state_->thread.join();
}

span tracer::start(std::string name, span_kind kind, const trace_context* parent) const {
    span s;
    s.name = std::move(name);
    s.kind = kind;
    if (parent != nullptr) {
        s.context.trace = parent->trace;
        s.context.flags = parent->flags;
        s.parent_span = parent->span;
    } else {
        s.context.trace = detail::new_trace_id();
    }
    s.context.span = detail::new_span_id();
    s.start_unix_ns = detail::unix_now_ns();
    return s;
}

span tracer::start(std::string name, span_kind kind, std::string_view traceparent) const {
    const auto parent = trace_context::parse(traceparent);
    return start(std::move(name), kind, parent ? &*parent : nullptr);
}

void tracer::end(span&& s) noexcept {
    if (s.end_unix_ns == 0) s.end_unix_ns = detail::unix_now_ns();
    auto& st = *state_;
    bool wake = false;
    {
        std::lock_guard<std::mutex> lock(st.mutex);
        if (st.queue.size() >= st.options.max_queued_spans || st.stopping) {
            st.spans_dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (st.queue.empty()) st.first_queued = std::chrono::steady_clock::now();
        try {
            st.queue.push_back(std::move(s));
        } catch (...) {  // out of memory: the span is lost, the gateway goes on
            st.spans_dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        ++st.queued_total;
        // The export thread sleeps until its interval ends; only a first span (to set its
        // timer) or a full batch needs it sooner.
        wake = st.queue.size() == 1 || st.queue.size() == st.options.max_batch_spans;
    }
    if (wake) st.wake.notify_one();
}

bool tracer::flush(std::chrono::milliseconds timeout) {
    auto& st = *state_;
    std::unique_lock<std::mutex> lock(st.mutex);
    const auto target = st.queued_total;
    st.flush_wanted = std::max(st.flush_wanted, target);
    st.wake.notify_one();
    return st.exported.wait_for(lock, timeout, [&] { return st.handled_total >= target; });
}

tracer_stats tracer::stats() const noexcept {
    tracer_stats out;
    out.spans_exported = state_->spans_exported.load(std::memory_order_relaxed);
    out.spans_dropped = state_->spans_dropped.load(std::memory_order_relaxed);
    out.spans_failed = state_->spans_failed.load(std::memory_order_relaxed);
    out.export_failures = state_->export_failures.load(std::memory_order_relaxed);
    return out;
}

const tracer_options& tracer::options() const noexcept { return state_->options; }

}  // namespace gatehouse
