#pragma once
// Small text helpers of HTTP: ASCII case folding and form decoding, shared by the request
// accessors (http.cpp) and log redaction (redact.cpp), which must decode a query exactly as
// the accessors do so that no spelling of `token=` slips past the redaction.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/hex.hpp"

namespace gatehouse::detail {

inline char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string ascii_lower_copy(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

// `get` -> `GET`: an OpenAPI operation key as an HTTP method.
inline std::string ascii_upper_copy(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return out;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

inline bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

// tchar (RFC 9110 section 5.6.2): the characters of a token (methods, field names, list
// items, extension names and parameters).
constexpr bool is_tchar(char c) noexcept {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~': return true;
        default: return false;
    }
}

inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// The token of an `Authorization: Bearer <token>` header value, or empty. One parser for the
// HTTP routes and the WebSocket upgrade, so both accept exactly the same headers.
inline std::string_view bearer_token_of(std::string_view header) noexcept {
    constexpr std::string_view scheme = "bearer";
    const std::string_view value = trim(header);
    if (value.size() <= scheme.size() || !iequals(value.substr(0, scheme.size()), scheme) ||
        !is_space(value[scheme.size()])) {
        return {};
    }
    const std::string_view token = trim(value.substr(scheme.size()));
    // RFC 6750's b64token has no whitespace: "Bearer a b" is not a token to try.
    for (const char c : token) {
        if (is_space(c)) return {};
    }
    return token;
}

// `Content-Type` names `media_type` (lower-case): case-insensitive, with parameters
// (`; charset=utf-8`) and surrounding spaces allowed.
inline bool is_media_type(std::string_view header, std::string_view media_type) noexcept {
    return iequals(trim(header.substr(0, header.find(';'))), media_type);
}

// application/x-www-form-urlencoded decoding. A `%` not followed by two hex digits is kept
// as it is, as browsers and most servers do, rather than failing the whole parameter.
inline std::string form_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
                   hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

// The value of the first parameter named `name` in a raw query string (names compared after
// decoding, case-sensitively), form-decoded; nullopt when absent, so that `?codec=` (present,
// empty) is told from no `codec` at all. `http_request::query_param` and the WebSocket upgrade
// (which has no `http_request`) both read queries through it.
inline std::optional<std::string> find_query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (form_decode(pair.substr(0, eq)) != name) continue;
        return eq == std::string_view::npos ? std::string{} : form_decode(pair.substr(eq + 1));
    }
    return std::nullopt;
}

}  // namespace gatehouse::detail
