#pragma once
/// @file
/// `metrics_registry`: counters, gauges and histograms rendered in the Prometheus text
/// exposition format.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse {

/// A monotonically increasing count.
/// Thread safety: `add` and `value` may be called from any thread (relaxed atomics).
class metric_counter {
public:
    void add(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down.
/// Thread safety: as `metric_counter`.
class metric_gauge {
public:
    void add(std::int64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
    std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> value_{0};
};

/// A distribution of observed values in fixed buckets, as a Prometheus histogram: per upper
/// bound `le` the number of observations at most that bound (rendered cumulatively, with
/// `+Inf`), their sum and their count. Durations are observed in seconds, the base unit.
///
/// `observe` is lock-free and wait-free apart from the sum (a compare-and-swap loop on a
/// double): one relaxed increment of the bucket the value falls in, plus the sum. The count is
/// the buckets' total, so a render never shows a `_count` different from the `+Inf` bucket.
///
/// Thread safety: `observe` and the readers may be called from any thread (relaxed atomics;
/// a reader racing observations sees each bucket at some recent value).
class metric_histogram {
public:
    /// The default upper bounds, in seconds: 100 µs to 10 s in steps of about 2.5x, for
    /// latencies from a Redis round trip on one host to a password hash on a slow core.
    static const std::vector<double>& default_latency_bounds();

    /// A histogram with these finite upper bounds, strictly increasing (a trailing `+Inf`
    /// is allowed and dropped: the `+Inf` bucket is always there). Empty: the default ones.
    /// Throws `std::invalid_argument` for bounds that are NaN, infinite (but a last `+Inf`)
    /// or not strictly increasing.
    explicit metric_histogram(std::vector<double> upper_bounds = {});
    ~metric_histogram();
    metric_histogram(const metric_histogram&) = delete;
    metric_histogram& operator=(const metric_histogram&) = delete;

    /// Counts `v` in the first bucket whose bound is at least `v` (else `+Inf`) and adds it
    /// to the sum. A NaN is ignored: it would turn the sum into NaN for good.
    void observe(double v) noexcept;
    /// Observes a duration in seconds.
    template <class Rep, class Period>
    void observe(std::chrono::duration<Rep, Period> d) noexcept {
        observe(std::chrono::duration<double>(d).count());
    }

    /// The upper bounds, without `+Inf`.
    const std::vector<double>& upper_bounds() const noexcept { return bounds_; }
    /// Observations in bucket `i` alone (not cumulative); `i == upper_bounds().size()` is the
    /// `+Inf` bucket (above the last bound). 0 for any other `i`.
    std::uint64_t bucket(std::size_t i) const noexcept;
    /// All observations (the sum of every bucket).
    std::uint64_t count() const noexcept;
    /// The sum of all observed values.
    double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1
    std::atomic<double> sum_{0.0};
};

/// Named metrics of one gateway (no global registry). A metric is a name, a help text and
/// an optional label set such as `reason="rate_limited"`; the same name with different
/// labels is one Prometheus metric family. Names and label text are used verbatim: the
/// caller passes valid Prometheus names and escaped label values. A family keeps the help
/// text and the type (counter, gauge or histogram) it was first registered with; a later
/// registration of the same name as another type does not throw, it gets a working metric
/// that is never rendered (a `gauge_callback` of that kind is ignored).
///
/// Thread safety: registration takes a lock; the returned references stay valid for the
/// registry's life and are updated lock-free. `render` may run concurrently with updates.
class metrics_registry {
public:
    metrics_registry();
    ~metrics_registry();
    metrics_registry(const metrics_registry&) = delete;
    metrics_registry& operator=(const metrics_registry&) = delete;

    /// The counter `name{labels}`, created on first use; the same object for the same name
    /// and labels. `labels` is Prometheus label text without braces, e.g.
    /// `reason="invalid_frame"`; empty for none.
    metric_counter& counter(std::string_view name, std::string_view help,
                            std::string_view labels = {});
    /// The gauge `name{labels}`, created on first use; the same object for the same name and
    /// labels (not rendered when those labels already belong to a `gauge_callback`).
    metric_gauge& gauge(std::string_view name, std::string_view help, std::string_view labels = {});
    /// A gauge whose value is read from `read` at render time (e.g. a queue length).
    /// Registering the same name and labels again replaces `read`; an empty `read` is
    /// ignored, as is one whose labels already belong to a `gauge()`. `read` runs on the
    /// rendering thread under the registry's lock, so it must not call into the registry;
    /// if it throws, the value is rendered as `NaN`.
    void gauge_callback(std::string_view name, std::string_view help, std::function<double()> read,
                        std::string_view labels = {});
    /// A counter whose value is read from `read` at render time: for counts another object
    /// keeps (e.g. `connection_manager_stats`). `read` must never decrease; otherwise as
    /// `gauge_callback`, with the roles of counters and gauges exchanged.
    void counter_callback(std::string_view name, std::string_view help,
                          std::function<double()> read, std::string_view labels = {});

    /// The histogram `name{labels}`, created on first use with `upper_bounds` (empty: the
    /// default latency bounds); the same object for the same name and labels, whatever bounds
    /// a later call gives. Name it in base units with the unit as suffix
    /// (`..._seconds`); `name_bucket`, `name_sum` and `name_count` are rendered from it.
    /// Throws `std::invalid_argument` for bounds `metric_histogram` refuses.
    metric_histogram& histogram(std::string_view name, std::string_view help,
                                std::string_view labels = {},
                                std::vector<double> upper_bounds = {});
    /// Renders `histogram`, which another object owns (and shares with the registry), as
    /// `name{labels}`: for a histogram that must outlive a gateway's registry, such as a
    /// bus's or a worker pool's, whichever is destroyed first. Ignored when `histogram` is
    /// null or those labels already belong to a histogram of this family.
    void add_histogram(std::string_view name, std::string_view help,
                       std::shared_ptr<const metric_histogram> histogram,
                       std::string_view labels = {});

    /// All metrics as Prometheus text exposition format 0.0.4, families in registration
    /// order, each with its `# HELP` (backslash and newline escaped) and `# TYPE` lines once,
    /// then one `name{labels} value` line per label set in registration order; a histogram's
    /// series as `name_bucket{labels,le="B"}` per bound (cumulative, ending with
    /// `le="+Inf"`), then `name_sum{labels}` and `name_count{labels}`. Callback values and
    /// sums are the shortest text that reads back exactly, integral ones without a decimal
    /// point, and `NaN`, `+Inf`, `-Inf`; bounds as Prometheus's own clients write them
    /// (`0.0001`, `0.25`, `1`, `1e-05`).
    std::string render() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gatehouse
