#include "tracing/otlp_json.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <type_traits>

#include "common/hex.hpp"

namespace gatehouse::detail {
namespace {

using json = nlohmann::ordered_json;

template <std::size_t N>
std::string hex(const std::array<std::uint8_t, N>& bytes) {
    std::string out(2 * N, '0');
    for (std::size_t i = 0; i < N; ++i) {
        out[2 * i] = hex_digits_lower[bytes[i] >> 4];
        out[2 * i + 1] = hex_digits_lower[bytes[i] & 0x0f];
    }
    return out;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& bytes) {
    for (const auto b : bytes) {
        if (b != 0) return false;
    }
    return true;
}

// An AnyValue: int64 as a decimal string (protobuf's JSON mapping of 64-bit integers).
json any_value(const std::variant<std::string, std::int64_t, bool, double>& value) {
    return std::visit(
        [](const auto& v) -> json {
            using t = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<t, std::string>) {
                return {{"stringValue", v}};
            } else if constexpr (std::is_same_v<t, std::int64_t>) {
                return {{"intValue", std::to_string(v)}};
            } else if constexpr (std::is_same_v<t, bool>) {
                return {{"boolValue", v}};
            } else {
                return {{"doubleValue", v}};
            }
        },
        value);
}

json encode_span(const span& s) {
    json out = {{"traceId", hex(s.context.trace)}, {"spanId", hex(s.context.span)}};
    if (!all_zero(s.parent_span)) out["parentSpanId"] = hex(s.parent_span);
    out["flags"] = static_cast<unsigned>(s.context.flags);
    out["name"] = s.name;
    out["kind"] = static_cast<int>(s.kind);
    out["startTimeUnixNano"] = std::to_string(s.start_unix_ns);
    out["endTimeUnixNano"] = std::to_string(s.end_unix_ns);
    json attributes = json::array();
    for (const auto& a : s.attributes) {
        attributes.push_back({{"key", a.key}, {"value", any_value(a.value)}});
    }
    out["attributes"] = std::move(attributes);
    if (!s.events.empty()) {
        json events = json::array();
        for (const auto& e : s.events) {
            events.push_back({{"timeUnixNano", std::to_string(e.time_unix_ns)}, {"name", e.name}});
        }
        out["events"] = std::move(events);
    }
    if (!s.links.empty()) {
        json links = json::array();
        for (const auto& l : s.links) {
            links.push_back({{"traceId", hex(l.trace)}, {"spanId", hex(l.span)}});
        }
        out["links"] = std::move(links);
    }
    json status = {{"code", static_cast<int>(s.status)}};
    if (s.status == span_status::error && !s.status_message.empty()) {
        status["message"] = s.status_message;
    }
    out["status"] = std::move(status);
    return out;
}

}  // namespace

std::string encode_otlp_json(const std::vector<std::pair<std::string, std::string>>& resource,
                             const std::vector<span>& spans) {
    json attributes = json::array();
    for (const auto& [key, value] : resource) {
        attributes.push_back({{"key", key}, {"value", {{"stringValue", value}}}});
    }
    json encoded = json::array();
    for (const auto& s : spans) encoded.push_back(encode_span(s));
    json scope_spans = json::object();
    scope_spans["scope"] = {{"name", "gatehouse"}};
    scope_spans["spans"] = std::move(encoded);
    json resource_spans = json::object();
    resource_spans["resource"] = {{"attributes", std::move(attributes)}};
    resource_spans["scopeSpans"] = json::array({std::move(scope_spans)});
    json request = json::object();
    request["resourceSpans"] = json::array({std::move(resource_spans)});
    // `replace`: a name or attribute echoing client input that is not UTF-8 becomes U+FFFD
    // instead of throwing from dump().
    return request.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace gatehouse::detail
