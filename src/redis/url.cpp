#include "gatehouse/redis_url.hpp"

#include <cctype>
#include <utility>

#include "common/hex.hpp"

namespace gatehouse {
namespace {

std::error_code invalid() { return std::make_error_code(std::errc::invalid_argument); }

// Passwords routinely hold characters that are special in URLs (`@`, `:`, `/`), so the
// userinfo part is percent-decoded as RFC 3986 says; a malformed escape is an error rather
// than being passed through, because a silently wrong password is a confusing AUTH failure.
bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out.push_back(in[i]);
            continue;
        }
        if (i + 2 >= in.size()) return false;
        int hi = detail::hex_value(in[i + 1]);
        int lo = detail::hex_value(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return true;
}

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

bool parse_port(std::string_view s, std::uint16_t& port) {
    if (!all_digits(s) || s.size() > 5) return false;
    unsigned long value = 0;
    for (char c : s) value = value * 10 + static_cast<unsigned long>(c - '0');
    if (value == 0 || value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

bool valid_host_name(std::string_view host) {
    if (host.empty()) return false;
    for (char c : host) {
        auto u = static_cast<unsigned char>(c);
        if (!std::isalnum(u) && c != '.' && c != '-' && c != '_') return false;
    }
    return true;
}

bool valid_ipv6(std::string_view host) {
    if (host.empty()) return false;
    for (char c : host) {
        // A zone index (`fe80::1%eth0`) is not supported: loopback and routable addresses only.
        if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    return true;
}

}  // namespace

std::error_code parse_redis_url(std::string_view text, redis_url& out) {
    constexpr std::string_view scheme = "redis://";
    if (text.substr(0, scheme.size()) != scheme) return invalid();
    std::string_view rest = text.substr(scheme.size());

    redis_url result;
    // The userinfo ends at the last '@', so a password holding an unencoded '@' still parses;
    // the path then begins at the first '/' after it.
    std::size_t at = rest.rfind('@');
    std::string_view after_user = rest;
    if (at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        after_user = rest.substr(at + 1);
        std::size_t colon = userinfo.find(':');
        if (colon == std::string_view::npos) return invalid();  // a user without a password
        if (!percent_decode(userinfo.substr(0, colon), result.user)) return invalid();
        if (!percent_decode(userinfo.substr(colon + 1), result.password)) return invalid();
        if (result.password.empty()) return invalid();
    }

    std::size_t slash = after_user.find('/');
    std::string_view authority = after_user.substr(0, slash);
    std::string_view path =
        slash == std::string_view::npos ? std::string_view{} : after_user.substr(slash + 1);

    std::string_view port_text;
    bool has_port = false;
    if (!authority.empty() && authority.front() == '[') {
        std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return invalid();
        std::string_view host = authority.substr(1, close - 1);
        if (!valid_ipv6(host)) return invalid();
        result.host = std::string(host);
        std::string_view tail = authority.substr(close + 1);
        if (!tail.empty()) {
            if (tail.front() != ':') return invalid();
            port_text = tail.substr(1);
            has_port = true;
        }
    } else {
        std::size_t colon = authority.find(':');
        std::string_view host = authority.substr(0, colon);
        if (!valid_host_name(host)) return invalid();
        result.host = std::string(host);
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            has_port = true;
        }
    }
    if (has_port && !parse_port(port_text, result.port)) return invalid();

    if (!path.empty()) {
        if (!all_digits(path) || path.size() > 2) return invalid();
        int db = 0;
        for (char c : path) db = db * 10 + (c - '0');
        if (db > 15) return invalid();
        result.db = db;
    }
    out = std::move(result);
    return {};
}

std::string redacted(const redis_url& u) {
    std::string out = "redis://";
    if (!u.user.empty() || !u.password.empty()) out += u.user + ":***@";
    const bool v6 = u.host.find(':') != std::string::npos;
    out += v6 ? "[" + u.host + "]" : u.host;
    out += ":" + std::to_string(u.port);
    if (u.db != 0) out += "/" + std::to_string(u.db);
    return out;
}

}  // namespace gatehouse
