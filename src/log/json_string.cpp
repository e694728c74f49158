// The one JSON string escaper of the log lines (log.hpp): the library's text access and audit
// lines and the reference server's JSON lines both write client-chosen values through it.
// (The reply path keeps its own in gateway/json_text.hpp: its values are UTF-8 already, and it
// runs per command.)

#include <cstdint>
#include <string>
#include <string_view>

#include "common/hex.hpp"
#include "gatehouse/log.hpp"

namespace gatehouse {
namespace {

void append_u_escape(std::string& out, std::uint32_t unit) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4)
        out += detail::hex_digits_lower[(unit >> shift) & 0xF];
}

void append_escaped_ascii(std::string& out, unsigned char c) {
    switch (c) {
        case '"': out += "\\\""; return;
        case '\\': out += "\\\\"; return;
        case '\n': out += "\\n"; return;
        case '\r': out += "\\r"; return;
        case '\t': out += "\\t"; return;
        default: break;
    }
    if (c < 0x20 || c == 0x7F) {
        append_u_escape(out, c);
    } else {
        out += static_cast<char>(c);
    }
}

// The length of the well-formed UTF-8 sequence at the start of `s` (Unicode's table 3-7), or
// the negated length of its longest valid prefix (at least 1) when it is not one: that prefix
// is what one U+FFFD replaces, as Unicode recommends.
int utf8_sequence(std::string_view s) noexcept {
    const auto byte = [&s](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = byte(0);
    int length = 0;
    unsigned char low = 0x80, high = 0xBF;  // the second byte's range
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3;
        if (c == 0xE0) low = 0xA0;   // overlong
        if (c == 0xED) high = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4;
        if (c == 0xF0) low = 0x90;   // overlong
        if (c == 0xF4) high = 0x8F;  // past U+10FFFF
    } else {
        return -1;
    }
    for (int i = 1; i < length; ++i) {
        const auto at = static_cast<std::size_t>(i);
        if (at >= s.size()) return -i;
        const unsigned char b = byte(at);
        const unsigned char lo = i == 1 ? low : 0x80;
        const unsigned char hi = i == 1 ? high : 0xBF;
        if (b < lo || b > hi) return -i;
    }
    return length;
}

// The code point of a well-formed sequence of `n` bytes.
std::uint32_t code_point(std::string_view s, int n) noexcept {
    const auto b = [&s](int i) {
        return static_cast<std::uint32_t>(
            static_cast<unsigned char>(s[static_cast<std::size_t>(i)]));
    };
    if (n == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    if (n == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
}

}  // namespace

void append_json_string(std::string& out, std::string_view value, json_escape mode) {
    out += '"';
    while (!value.empty()) {
        const auto c = static_cast<unsigned char>(value.front());
        if (c < 0x80) {
            append_escaped_ascii(out, c);
            value.remove_prefix(1);
            continue;
        }
        const int n = utf8_sequence(value);
        if (n > 0 && mode == json_escape::utf8) {
            out.append(value.data(), static_cast<std::size_t>(n));
        } else if (n > 0) {
            const std::uint32_t cp = code_point(value, n);
            if (cp < 0x10000) {
                append_u_escape(out, cp);
            } else {
                append_u_escape(out, 0xD800 + ((cp - 0x10000) >> 10));
                append_u_escape(out, 0xDC00 + ((cp - 0x10000) & 0x3FF));
            }
        } else if (mode == json_escape::utf8) {
            out += "\xEF\xBF\xBD";  // U+FFFD
        } else {
            out += "\\ufffd";
        }
        value.remove_prefix(static_cast<std::size_t>(n > 0 ? n : -n));
    }
    out += '"';
}

}  // namespace gatehouse
