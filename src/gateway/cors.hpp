#pragma once
// CORS (the Fetch standard's CORS protocol) on the gateway's HTTP routes, for browser pages on
// the origins an origin_policy allows: the answer to a preflight (`OPTIONS` with `Origin` and
// `Access-Control-Request-Method`), and the headers of every other answer to an allowed
// origin. No `Access-Control-Allow-Credentials`: tokens travel in `Authorization` (or the
// path), never in cookies, so a page has no ambient credential a cross-origin request could
// carry.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gatehouse/http.hpp"
#include "gateway/origin_policy.hpp"

namespace gatehouse::detail {

using header_list = std::vector<std::pair<std::string, std::string>>;

// A request's `Origin`: its value (empty: none), and whether it came more than once, which is
// never allowed (a browser sends one; the parser likewise refuses a second `Host`).
struct origin_header {
    std::string_view value;
    bool several = false;
};

// The `Origin` of `request`, in one pass over its headers.
origin_header origin_of(const http_request& request) noexcept;

// Thread safety: const after construction; every member may be called from any thread.
class cors {
public:
    explicit cors(const std::vector<std::string>& allowed_origins);

    const origin_policy& origins() const noexcept { return origins_; }

    // Whether `request` is a CORS preflight: `OPTIONS` with `Origin` and
    // `Access-Control-Request-Method`. Always false when the policy is disabled, so that
    // `OPTIONS` is routed as in v1 (405 with `Allow`).
    bool is_preflight(const http_request& request) const noexcept;

    // The answer to a preflight on a path whose methods are `methods` (`GET, POST`; empty for
    // a path the gateway does not serve): 204 with the `Access-Control-Allow-*` headers for
    // an allowed origin, 403 `origin_not_allowed` without them for another, 404 `not_found`
    // for an unknown path. More than one `Origin` is another origin.
    http_response preflight(const http_request& request, std::string_view methods) const;

    // Appends to `to` the headers an answer to a request with this `Origin` and `Host` carries:
    // the `Access-Control-Allow-Origin` and `-Expose-Headers` when the origin is allowed, and
    // `Vary: Origin` whenever the answer depends on the origin (enabled, and not `*`). With
    // `*`, `Access-Control-Allow-Origin: *` on every answer, with or without `Origin`. None
    // when the policy is disabled.
    void add_response_headers(origin_header origin, std::string_view host, header_list& to) const;

    // Whether a WebSocket upgrade or event stream with this `Origin` (empty: none, a client
    // that is not a browser) and `Host` may proceed; false answers 403 `origin_not_allowed`.
    // Never with more than one `Origin`, even with `*`.
    bool allows_stream(origin_header origin, std::string_view host) const {
        if (!origins_.enabled()) return true;
        return !origin.several && (origin.value.empty() || origins_.allows(origin.value, host));
    }

    // 403 `origin_not_allowed`.
    static http_response refusal();

private:
    origin_policy origins_;
    header_list any_headers_;  // the headers of every answer with `*`, built once
};

}  // namespace gatehouse::detail
