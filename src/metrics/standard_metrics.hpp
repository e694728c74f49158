#pragma once
// The families a Prometheus target is expected to have whatever it does: `gatehouse_build_info`
// (which build answers) and the process metrics under the names every Prometheus client library
// uses (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), so that stock
// dashboards and alerts work on a gateway unchanged. The gateway registers them in its own
// registry, so an embedding server gets them too.

#include <string>

#include "gatehouse/metrics.hpp"

namespace gatehouse::detail {

// The label text of `gatehouse_build_info`: `version="0.1.0",compiler="gcc 12.2.0"`, and a
// `revision` label first when the build was given one (GATEHOUSE_REVISION).
std::string build_info_labels();

// Registers `gatehouse_build_info` (always 1) and, on Linux, the process families, each read
// from /proc when /metrics is rendered (a value that cannot be read renders NaN). Elsewhere the
// process families are absent rather than wrong.
void register_standard_metrics(metrics_registry& registry);

}  // namespace gatehouse::detail
