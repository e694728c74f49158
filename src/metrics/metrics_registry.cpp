#include "gatehouse/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

namespace gatehouse {

// ------------------------------------------------------------------------------------------
// metric_histogram

const std::vector<double>& metric_histogram::default_latency_bounds() {
    static const std::vector<double> bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                            0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                            1,      2.5,     5,      10};
    return bounds;
}

metric_histogram::metric_histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)) {
    if (bounds_.empty()) bounds_ = default_latency_bounds();
    if (!bounds_.empty() && std::isinf(bounds_.back()) && bounds_.back() > 0) bounds_.pop_back();
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
        if (!std::isfinite(bounds_[i])) {
            throw std::invalid_argument("histogram bounds must be finite (but a last +Inf)");
        }
        if (i > 0 && !(bounds_[i - 1] < bounds_[i])) {
            throw std::invalid_argument("histogram bounds must be strictly increasing");
        }
    }
    // Value-initialised: every count starts at 0.
    buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
}

metric_histogram::~metric_histogram() = default;

void metric_histogram::observe(double v) noexcept {
    if (std::isnan(v)) return;
    // `le` is inclusive: the first bound >= v. Past the last bound lands on the +Inf bucket.
    const auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                            bounds_.begin());
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    // C++17 has no fetch_add for atomic<double>. Uncontended this is one load and one CAS.
    double sum = sum_.load(std::memory_order_relaxed);
    while (!sum_.compare_exchange_weak(sum, sum + v, std::memory_order_relaxed)) {
    }
}

std::uint64_t metric_histogram::bucket(std::size_t i) const noexcept {
    return i <= bounds_.size() ? buckets_[i].load(std::memory_order_relaxed) : 0;
}

std::uint64_t metric_histogram::count() const noexcept {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) total += bucket(i);
    return total;
}

// ------------------------------------------------------------------------------------------
// metrics_registry

namespace {

enum class family_type { counter, gauge, histogram };

// One `name{labels}` line (a histogram: its bucket, sum and count lines). Exactly one of the
// four sources is set.
struct series {
    std::string labels;
    metric_counter* counter = nullptr;
    metric_gauge* gauge = nullptr;
    std::function<double()> read;
    std::shared_ptr<const metric_histogram> histogram;
    // The same histogram when the registry made it (histogram()), so it may be handed out
    // again; null for one shared by its owner (add_histogram()).
    metric_histogram* own_histogram = nullptr;
};

struct family {
    std::string name;
    std::string help;
    family_type type = family_type::counter;
    std::vector<series> members;  // Registration order.
};

// HELP text escaping of the text format 0.0.4: only backslash and line feed.
void append_help(std::string& out, std::string_view help) {
    for (const char c : help) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

// Prometheus parses sample values with Go's ParseFloat: shortest round-trip text, with
// integral values written without exponent or decimal point so they read naturally.
void append_double(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    if (v == 0) {  // Also -0.0, which would print as "-0".
        out += '0';
        return;
    }
    char buf[64];
    // 2^63: beyond it an integral double is better read in exponent form.
    const bool integral = std::trunc(v) == v && std::fabs(v) < 9.2233720368547758e18;
    const auto r = integral ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                            : std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

// A bucket bound as the `le` label value, as Go's strconv.FormatFloat(v, 'g', -1, 64) writes
// it, which is what Prometheus's own clients put there (and what dashboards match on):
// shortest round-trip digits, in exponent form below 1e-4 and from 1e6 up.
void append_bound(std::string& out, double v) {
    char buf[64];
    const auto sci = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    const char* e = std::find(buf, sci.ptr, 'e');
    const long exponent = e == sci.ptr ? 0 : std::strtol(e + 1, nullptr, 10);
    if (v == 0 || (exponent >= -4 && exponent < 6)) {
        const auto fixed = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
        out.append(buf, fixed.ptr);
    } else {
        out.append(buf, sci.ptr);
    }
}

void append_labels(std::string& out, std::string_view labels) {
    if (labels.empty()) return;
    out += '{';
    out += labels;
    out += '}';
}

// One histogram series: its cumulative buckets, then _sum and _count. The buckets are read
// once each and the count is their total, so the +Inf bucket always equals _count.
void append_histogram(std::string& out, const std::string& name, std::string_view labels,
                      const metric_histogram& h) {
    const auto& bounds = h.upper_bounds();
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds.size(); ++i) {
        cumulative += h.bucket(i);
        out += name;
        out += "_bucket{";
        if (!labels.empty()) {
            out += labels;
            out += ',';
        }
        out += "le=\"";
        if (i < bounds.size()) {
            append_bound(out, bounds[i]);
        } else {
            out += "+Inf";
        }
        out += "\"} ";
        out += std::to_string(cumulative);
        out += '\n';
    }
    out += name;
    out += "_sum";
    append_labels(out, labels);
    out += ' ';
    append_double(out, h.sum());
    out += '\n';
    out += name;
    out += "_count";
    append_labels(out, labels);
    out += ' ';
    out += std::to_string(cumulative);
    out += '\n';
}

const char* type_name(family_type t) {
    switch (t) {
        case family_type::counter: return "counter";
        case family_type::gauge: return "gauge";
        case family_type::histogram: return "histogram";
    }
    return "untyped";
}

}  // namespace

struct metrics_registry::impl {
    // Registration and render take this lock; the metrics themselves are atomics.
    mutable std::mutex mutex;
    std::vector<family> families;
    // Deques never move their elements, so handed-out references stay valid.
    std::deque<metric_counter> counters;
    std::deque<metric_gauge> gauges;
    // Histograms registered under a name that another type holds: never rendered.
    std::vector<std::shared_ptr<metric_histogram>> orphans;

    family* find_family(std::string_view name) {
        for (auto& f : families) {
            if (f.name == name) return &f;
        }
        return nullptr;
    }

    // The family `name` of `type`, created if new; null when `name` is already a family of
    // the other type.
    family* family_for(std::string_view name, std::string_view help, family_type type) {
        if (family* f = find_family(name)) return f->type == type ? f : nullptr;
        families.push_back({std::string(name), std::string(help), type, {}});
        return &families.back();
    }

    void add_callback(std::string_view name, std::string_view help, std::function<double()> read,
                      std::string_view labels, family_type type);

    static series* find_series(family& f, std::string_view labels) {
        for (auto& s : f.members) {
            if (s.labels == labels) return &s;
        }
        return nullptr;
    }
};

metrics_registry::metrics_registry() : impl_(std::make_unique<impl>()) {}

metrics_registry::~metrics_registry() = default;

metric_counter& metrics_registry::counter(std::string_view name, std::string_view help,
                                          std::string_view labels) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    family* f = impl_->family_for(name, help, family_type::counter);
    if (f) {
        if (series* s = impl::find_series(*f, labels)) {
            // `counter` is set for every series of a counter family.
            return *s->counter;
        }
    }
    // A name already used by a gauge keeps its first type: the caller still gets a working
    // counter, so no code path has to handle a failure, but it is never rendered.
    metric_counter& c = impl_->counters.emplace_back();
    if (f) f->members.push_back({std::string(labels), &c, nullptr, {}, {}, nullptr});
    return c;
}

metric_gauge& metrics_registry::gauge(std::string_view name, std::string_view help,
                                      std::string_view labels) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    family* f = impl_->family_for(name, help, family_type::gauge);
    series* existing = f ? impl::find_series(*f, labels) : nullptr;
    if (existing && existing->gauge) return *existing->gauge;
    // As for counters, a conflicting registration (a counter family, or a callback gauge
    // with these labels) gets a working gauge that is not rendered.
    metric_gauge& g = impl_->gauges.emplace_back();
    if (f && !existing) f->members.push_back({std::string(labels), nullptr, &g, {}, {}, nullptr});
    return g;
}

void metrics_registry::gauge_callback(std::string_view name, std::string_view help,
                                      std::function<double()> read, std::string_view labels) {
    impl_->add_callback(name, help, std::move(read), labels, family_type::gauge);
}

void metrics_registry::counter_callback(std::string_view name, std::string_view help,
                                        std::function<double()> read, std::string_view labels) {
    impl_->add_callback(name, help, std::move(read), labels, family_type::counter);
}

void metrics_registry::impl::add_callback(std::string_view name, std::string_view help,
                                          std::function<double()> read, std::string_view labels,
                                          family_type type) {
    if (!read) return;
    std::lock_guard<std::mutex> lock(mutex);
    family* f = family_for(name, help, type);
    if (!f) return;
    if (series* s = find_series(*f, labels)) {
        // A newer callback replaces an older one (its owner may have been rebuilt); a
        // stored gauge with these labels keeps its place.
        if (s->read) s->read = std::move(read);
        return;
    }
    f->members.push_back({std::string(labels), nullptr, nullptr, std::move(read), {}, nullptr});
}

metric_histogram& metrics_registry::histogram(std::string_view name, std::string_view help,
                                              std::string_view labels,
                                              std::vector<double> upper_bounds) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    family* f = impl_->family_for(name, help, family_type::histogram);
    series* existing = f ? impl::find_series(*f, labels) : nullptr;
    if (existing && existing->own_histogram) return *existing->own_histogram;
    auto h = std::make_shared<metric_histogram>(std::move(upper_bounds));
    metric_histogram& out = *h;
    // As for counters, a conflicting registration (another type's name, or labels whose
    // histogram its owner shares) gets a working histogram, not rendered; the registry keeps
    // it alive all the same.
    if (f && !existing) {
        f->members.push_back({std::string(labels), nullptr, nullptr, {}, std::move(h), &out});
    } else {
        impl_->orphans.push_back(std::move(h));
    }
    return out;
}

void metrics_registry::add_histogram(std::string_view name, std::string_view help,
                                     std::shared_ptr<const metric_histogram> histogram,
                                     std::string_view labels) {
    if (!histogram) return;
    std::lock_guard<std::mutex> lock(impl_->mutex);
    family* f = impl_->family_for(name, help, family_type::histogram);
    if (!f || impl::find_series(*f, labels)) return;
    f->members.push_back(
        {std::string(labels), nullptr, nullptr, {}, std::move(histogram), nullptr});
}

std::string metrics_registry::render() const {
    std::string out;
    std::lock_guard<std::mutex> lock(impl_->mutex);
    for (const auto& f : impl_->families) {
        out += "# HELP ";
        out += f.name;
        out += ' ';
        append_help(out, f.help);
        out += "\n# TYPE ";
        out += f.name;
        out += ' ';
        out += type_name(f.type);
        out += '\n';
        for (const auto& s : f.members) {
            if (s.histogram) {
                append_histogram(out, f.name, s.labels, *s.histogram);
                continue;
            }
            out += f.name;
            if (!s.labels.empty()) {
                out += '{';
                out += s.labels;
                out += '}';
            }
            out += ' ';
            if (s.counter) {
                out += std::to_string(s.counter->value());
            } else if (s.gauge) {
                out += std::to_string(s.gauge->value());
            } else {
                double v = 0;
                try {
                    v = s.read();
                } catch (...) {
                    // A failing reader must not take /metrics down with it.
                    v = std::nan("");
                }
                append_double(out, v);
            }
            out += '\n';
        }
    }
    return out;
}

}  // namespace gatehouse
