#include "gateway/origin_policy.hpp"

#include <stdexcept>

#include "common/hex.hpp"
#include "gatehouse/gateway.hpp"
#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool is_scheme(std::string_view s) noexcept {
    if (s.empty() || !is_alpha(s.front())) return false;
    for (const char c : s) {
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
    }
    return true;
}

// A host as browsers serialize it: a name or IPv4 address of letters, digits, `-`, `.`, `_`
// and `~` (internationalized names arrive as punycode), or an IPv6 address in brackets.
bool is_host(std::string_view s) noexcept {
    if (s.empty()) return false;
    if (s.front() == '[') {
        if (s.size() < 4 || s.back() != ']') return false;
        for (const char c : s.substr(1, s.size() - 2)) {
            if (hex_value(c) < 0 && c != ':' && c != '.') return false;
        }
        return true;
    }
    for (const char c : s) {
        if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_' && c != '~') {
            return false;
        }
    }
    return true;
}

// 1 to 65535 in at most five digits; 0 when not a port.
std::uint16_t parse_port(std::string_view s) noexcept {
    if (s.empty() || s.size() > 5) return 0;
    unsigned value = 0;
    for (const char c : s) {
        if (!is_digit(c)) return 0;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value <= 65535 ? static_cast<std::uint16_t>(value) : 0;
}

// An IPv4 address as browsers serialize it (four decimal parts, each at most 255), or an IPv6
// address in brackets: a host no DNS answer stands behind.
bool is_ip_literal(std::string_view host) noexcept {
    if (!host.empty() && host.front() == '[') return true;  // is_host checked the rest
    int parts = 0;
    unsigned value = 0;
    std::size_t digits = 0;
    for (const char c : host) {
        if (c == '.') {
            if (digits == 0) return false;
            ++parts;
            value = 0;
            digits = 0;
        } else if (!is_digit(c) || ++digits > 3 ||
                   (value = value * 10 + static_cast<unsigned>(c - '0')) > 255) {
            return false;
        }
    }
    return digits > 0 && parts == 3;
}

std::uint16_t default_port(std::string_view scheme) noexcept {
    if (iequals(scheme, "http")) return 80;
    if (iequals(scheme, "https")) return 443;
    return 0;
}

// `host[:port]` split at the port's colon (the last one, outside IPv6 brackets). False when
// malformed; `port` stays empty when none is given.
bool split_authority(std::string_view authority, std::string_view& host, std::string_view& port) {
    const auto colon = authority.rfind(':');
    const auto bracket = authority.rfind(']');
    if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket)) {
        host = authority;
        port = {};
        return is_host(host);
    }
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    return is_host(host) && parse_port(port) != 0;
}

// An origin's parts as written (any case), without copies: what a request's `Origin` is
// compared in.
struct origin_view {
    std::string_view scheme;
    std::string_view host;
    std::uint16_t port = 0;
};

std::optional<origin_view> view_origin(std::string_view text) noexcept {
    const auto separator = text.find("://");
    if (separator == std::string_view::npos) return std::nullopt;
    origin_view out;
    out.scheme = text.substr(0, separator);
    std::string_view port;
    if (!is_scheme(out.scheme) || !split_authority(text.substr(separator + 3), out.host, port)) {
        return std::nullopt;
    }
    out.port = port.empty() ? default_port(out.scheme) : parse_port(port);
    return out;
}

}  // namespace

std::optional<origin_parts> parse_origin(std::string_view text) {
    const auto view = view_origin(text);
    if (!view) return std::nullopt;
    origin_parts out;
    out.scheme = ascii_lower_copy(view->scheme);
    out.host = ascii_lower_copy(view->host);
    out.port = view->port;
    return out;
}

origin_policy::origin_policy(const std::vector<std::string>& allowed) : enabled_(!allowed.empty()) {
    for (const auto& entry : allowed) {
        if (entry == "*") {
            any_ = true;
            continue;
        }
        auto parsed = parse_origin(entry);
        if (!parsed) {
            throw std::invalid_argument("gateway: allowed_origins entry \"" + entry +
                                        "\" is not an origin (scheme://host[:port], no path) "
                                        "nor *");
        }
        allowed_.push_back(std::move(*parsed));
    }
}

bool origin_policy::allows(std::string_view origin, std::string_view host) const {
    if (!enabled_ || any_) return true;
    const auto parsed = view_origin(origin);
    if (!parsed) return false;
    for (const auto& entry : allowed_) {
        // Entries are in lower case; the request's Origin as sent.
        if (entry.port == parsed->port && iequals(entry.scheme, parsed->scheme) &&
            iequals(entry.host, parsed->host)) {
            return true;
        }
    }
    // The request's own origin: a page this gateway (or the host in front of it) served. Only
    // for a Host no DNS answer can point elsewhere (an IP address, `localhost`): a page on
    // http://rebind.example:PORT whose name an attacker has made resolve to the gateway sends
    // that name as both Host and Origin (DNS rebinding), so a named host must be listed.
    const auto own = default_port(parsed->scheme);
    std::string_view host_name;
    std::string_view host_port;
    if (own == 0 || !split_authority(trim(host), host_name, host_port)) return false;
    if (!is_ip_literal(host_name) && !iequals(host_name, "localhost")) return false;
    return iequals(host_name, parsed->host) &&
           (host_port.empty() ? own : parse_port(host_port)) == parsed->port;
}

}  // namespace gatehouse::detail

namespace gatehouse {

std::error_code check_allowed_origin(std::string_view entry) {
    if (entry == "*" || detail::parse_origin(entry)) return {};
    return std::make_error_code(std::errc::invalid_argument);
}

}  // namespace gatehouse
