#pragma once
// Which browser origins may use the gateway (`gateway_options::allowed_origins`). Origins are
// compared as RFC 6454 serializes them: `scheme://host[:port]`, scheme and host in any case,
// the default port of http and https (80, 443) the same as none. A page the gateway serves
// itself at an IP address or `localhost` is always allowed: an `Origin` naming the request's
// own `Host` (same host and port, http or https) needs no entry when that host is an IP literal
// or `localhost`. A named host must be listed: with DNS rebinding a page on any name an
// attacker controls reaches the gateway with that name as both `Host` and `Origin`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::detail {

// An origin in the form it is compared in: scheme and host in lower case, the port explicit
// (0 for a scheme without a default port and no port given).
struct origin_parts {
    std::string scheme;
    std::string host;  // a name, an IPv4 address, or an IPv6 address in brackets
    std::uint16_t port = 0;
    bool operator==(const origin_parts& other) const noexcept {
        return port == other.port && scheme == other.scheme && host == other.host;
    }
};

// `scheme://host[:port]` and nothing else (no path, not even `/`, no user information, no
// query), or nothing: `null`, a list of origins and anything malformed are not origins.
std::optional<origin_parts> parse_origin(std::string_view text);

// Thread safety: const after construction; every member may be called from any thread.
class origin_policy {
public:
    // Throws std::invalid_argument naming the first entry that is neither `*` nor an origin.
    explicit origin_policy(const std::vector<std::string>& allowed);

    // False for an empty list: no CORS headers and no `Origin` check (v1 behaviour).
    bool enabled() const noexcept { return enabled_; }
    // `*` is listed: every origin is allowed.
    bool any() const noexcept { return any_; }

    // Whether a request whose `Origin` header is `origin` (non-empty) and whose `Host` header is
    // `host` may proceed: listed, `*`, or the request's own origin when `host` is an IP address
    // or `localhost`. Always true when disabled.
    bool allows(std::string_view origin, std::string_view host) const;

private:
    std::vector<origin_parts> allowed_;
    bool enabled_ = false;
    bool any_ = false;
};

}  // namespace gatehouse::detail
