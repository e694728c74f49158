#pragma once
// Spans in the OTLP/HTTP JSON encoding (opentelemetry-proto's ExportTraceServiceRequest as
// protobuf's JSON mapping, with OTLP's exceptions): one resourceSpans with the tracer's
// resource, one scopeSpans named `gatehouse`, ids as lower-case hex, times and 64-bit
// integers as decimal strings, enums as numbers.

#include <string>
#include <utility>
#include <vector>

#include "gatehouse/tracing.hpp"

namespace gatehouse::detail {

// `resource`: (key, value) string attributes, `service.name` first.
std::string encode_otlp_json(const std::vector<std::pair<std::string, std::string>>& resource,
                             const std::vector<span>& spans);

}  // namespace gatehouse::detail
