#include "tracing/otlp_json.hpp"

#include <charconv>
#include <cstddef>
#include <cstdio>
#include <type_traits>

#include "client/internal.hpp"
#include "common/hex.hpp"
#include "gateway/json_text.hpp"

// Written by hand rather than through a JSON DOM: the export thread encodes every span the
// gateway makes, and a DOM costs an allocation per node.

namespace gatehouse::detail {
namespace {

// A JSON string of valid UTF-8 `value`: runs of characters that need no escape are appended
// whole (span text is mostly such runs), the rest as json_text.hpp escapes them.
void append_valid_text(std::string& out, std::string_view value) {
    out += '"';
    std::size_t run = 0;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const auto c = static_cast<unsigned char>(value[i]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out.append(value.data() + run, i - run);
        std::string escaped;
        append_json_string(escaped, value.substr(i, 1));
        out.append(escaped, 1, escaped.size() - 2);  // without its quotes
        run = i + 1;
    }
    out.append(value.data() + run, value.size() - run);
    out += '"';
}

// A JSON string of `value`; bytes that are not UTF-8 (an embedder's attribute, say) become
// U+FFFD, as a collector would refuse the whole request otherwise.
void append_text(std::string& out, std::string_view value) {
    if (client::detail::is_valid_utf8(value)) {
        append_valid_text(out, value);
        return;
    }
    std::string clean;
    clean.reserve(value.size() + 8);
    const auto* p = reinterpret_cast<const unsigned char*>(value.data());
    const auto* end = p + value.size();
    while (p < end) {
        const int n = client::detail::utf8_sequence_length(p, end);
        if (n <= 0) {
            clean += "\xef\xbf\xbd";
            ++p;
        } else {
            clean.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
            p += n;
        }
    }
    append_valid_text(out, clean);
}

template <std::size_t N>
void append_hex(std::string& out, const std::array<std::uint8_t, N>& bytes) {
    out += '"';
    for (const auto b : bytes) {
        out += hex_digits_lower[b >> 4];
        out += hex_digits_lower[b & 0x0f];
    }
    out += '"';
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& bytes) {
    for (const auto b : bytes) {
        if (b != 0) return false;
    }
    return true;
}

// A 64-bit integer as a decimal string: protobuf's JSON mapping of (u)int64 and fixed64.
void append_int_string(std::string& out, std::int64_t value) {
    char buffer[24];
    buffer[0] = '"';
    char* end = std::to_chars(buffer + 1, buffer + sizeof buffer - 1, value).ptr;
    *end++ = '"';
    out.append(buffer, static_cast<std::size_t>(end - buffer));
}

// An AnyValue.
void append_value(std::string& out,
                  const std::variant<std::string, std::int64_t, bool, double>& value) {
    std::visit(
        [&out](const auto& v) {
            using t = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<t, std::string>) {
                out += "{\"stringValue\":";
                append_text(out, v);
            } else if constexpr (std::is_same_v<t, std::int64_t>) {
                out += "{\"intValue\":";
                append_int_string(out, v);
            } else if constexpr (std::is_same_v<t, bool>) {
                out += v ? "{\"boolValue\":true" : "{\"boolValue\":false";
            } else {
                char buffer[32];
                // %.17g round-trips a double; JSON has no NaN or infinity, so those are 0.
                const bool finite = v == v && v - v == 0;
                std::snprintf(buffer, sizeof buffer, "%.17g", finite ? v : 0.0);
                out += "{\"doubleValue\":";
                out += buffer;
            }
            out += '}';
        },
        value);
}

void append_key_value(std::string& out, std::string_view key,
                      const std::variant<std::string, std::int64_t, bool, double>& value) {
    out += "{\"key\":";
    append_text(out, key);
    out += ",\"value\":";
    append_value(out, value);
    out += '}';
}

void append_span(std::string& out, const span& s) {
    out += "{\"traceId\":";
    append_hex(out, s.context.trace);
    out += ",\"spanId\":";
    append_hex(out, s.context.span);
    if (!all_zero(s.parent_span)) {
        out += ",\"parentSpanId\":";
        append_hex(out, s.parent_span);
    }
    out += ",\"flags\":";
    out += std::to_string(s.context.flags);
    out += ",\"name\":";
    append_text(out, s.name);
    out += ",\"kind\":";
    out += std::to_string(static_cast<int>(s.kind));
    out += ",\"startTimeUnixNano\":";
    append_int_string(out, s.start_unix_ns);
    out += ",\"endTimeUnixNano\":";
    append_int_string(out, s.end_unix_ns);
    out += ",\"attributes\":[";
    for (std::size_t i = 0; i < s.attributes.size(); ++i) {
        if (i > 0) out += ',';
        append_key_value(out, s.attributes[i].key, s.attributes[i].value);
    }
    out += ']';
    if (!s.events.empty()) {
        out += ",\"events\":[";
        for (std::size_t i = 0; i < s.events.size(); ++i) {
            if (i > 0) out += ',';
            out += "{\"timeUnixNano\":";
            append_int_string(out, s.events[i].time_unix_ns);
            out += ",\"name\":";
            append_text(out, s.events[i].name);
            out += '}';
        }
        out += ']';
    }
    if (!s.links.empty()) {
        out += ",\"links\":[";
        for (std::size_t i = 0; i < s.links.size(); ++i) {
            if (i > 0) out += ',';
            out += "{\"traceId\":";
            append_hex(out, s.links[i].trace);
            out += ",\"spanId\":";
            append_hex(out, s.links[i].span);
            out += '}';
        }
        out += ']';
    }
    out += ",\"status\":{\"code\":";
    out += std::to_string(static_cast<int>(s.status));
    if (s.status == span_status::error && !s.status_message.empty()) {
        out += ",\"message\":";
        append_text(out, s.status_message);
    }
    out += "}}";
}

}  // namespace

void encode_otlp_json(const std::vector<std::pair<std::string, std::string>>& resource,
                      const span* spans, std::size_t count, std::string& out) {
    out.clear();
    out.reserve(256 + 1024 * count);
    out += "{\"resourceSpans\":[{\"resource\":{\"attributes\":[";
    for (std::size_t i = 0; i < resource.size(); ++i) {
        if (i > 0) out += ',';
        out += "{\"key\":";
        append_text(out, resource[i].first);
        out += ",\"value\":{\"stringValue\":";
        append_text(out, resource[i].second);
        out += "}}";
    }
    out += "]},\"scopeSpans\":[{\"scope\":{\"name\":\"gatehouse\"},\"spans\":[";
    for (std::size_t i = 0; i < count; ++i) {
        if (i > 0) out += ',';
        append_span(out, spans[i]);
    }
    out += "]}]}]}";
}

}  // namespace gatehouse::detail
