#include "gatehouse/metrics.hpp"

#include <charconv>
#include <cmath>
#include <deque>
#include <mutex>
#include <vector>

namespace gatehouse {
namespace {

enum class family_type { counter, gauge };

// One `name{labels}` line. Exactly one of the three sources is set.
struct series {
    std::string labels;
    metric_counter* counter = nullptr;
    metric_gauge* gauge = nullptr;
    std::function<double()> read;
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

}  // namespace

struct metrics_registry::impl {
    // Registration and render take this lock; the metrics themselves are atomics.
    mutable std::mutex mutex;
    std::vector<family> families;
    // Deques never move their elements, so handed-out references stay valid.
    std::deque<metric_counter> counters;
    std::deque<metric_gauge> gauges;

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
    if (f) f->members.push_back({std::string(labels), &c, nullptr, {}});
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
    if (f && !existing) f->members.push_back({std::string(labels), nullptr, &g, {}});
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
    f->members.push_back({std::string(labels), nullptr, nullptr, std::move(read)});
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
        out += f.type == family_type::counter ? " counter\n" : " gauge\n";
        for (const auto& s : f.members) {
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
