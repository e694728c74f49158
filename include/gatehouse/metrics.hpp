#pragma once
/// @file
/// `metrics_registry`: counters and gauges rendered in the Prometheus text exposition format.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

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

/// Named metrics of one gateway (no global registry). A metric is a name, a help text and
/// an optional label set such as `reason="rate_limited"`; the same name with different
/// labels is one Prometheus metric family. Names and label text are used verbatim: the
/// caller passes valid Prometheus names and escaped label values. A family keeps the help
/// text and the type (counter or gauge) it was first registered with; a later registration
/// of the same name as the other type does not throw, it gets a working metric that is
/// never rendered (a `gauge_callback` of that kind is ignored).
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

    /// All metrics as Prometheus text exposition format 0.0.4, families in registration
    /// order, each with its `# HELP` (backslash and newline escaped) and `# TYPE` lines once,
    /// then one `name{labels} value` line per label set in registration order. Callback
    /// values are the shortest text that reads back exactly, integral ones without a decimal
    /// point, and `NaN`, `+Inf`, `-Inf`.
    std::string render() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gatehouse
