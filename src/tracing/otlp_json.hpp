#pragma once
// Spans in the OTLP/HTTP JSON encoding (opentelemetry-proto's ExportTraceServiceRequest as
// protobuf's JSON mapping, with OTLP's exceptions): one resourceSpans with the tracer's
// resource, one scopeSpans named `gatehouse`, ids as lower-case hex, times and 64-bit
// integers as decimal strings, enums as numbers.

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "gatehouse/tracing.hpp"

namespace gatehouse::detail {

// Writes `count` spans from `spans` into `out` (replacing what it held; its capacity is kept,
// so an exporter that reuses one string does not allocate a request body per batch).
// `resource`: (key, value) string attributes, `service.name` first.
void encode_otlp_json(const std::vector<std::pair<std::string, std::string>>& resource,
                      const span* spans, std::size_t count, std::string& out);

}  // namespace gatehouse::detail
