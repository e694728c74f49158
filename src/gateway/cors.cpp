#include "gateway/cors.hpp"

#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

// What the gateway's own routes read from a browser's request beyond the CORS-safelisted
// headers: the token, JSON bodies, an event stream's resume point, trace context (the
// contract 6.8).
constexpr std::string_view read_headers =
    "Authorization, Content-Type, Last-Event-ID, traceparent, tracestate";

// What a page may read from an answer beyond the CORS-safelisted response headers: how long to
// wait after a 429 or 503.
constexpr std::string_view exposed_headers = "Retry-After";

// Chromium's upper bound; longer is cut to it. A change of the list reaches browsers within it:
// a cached preflight lets a request go out, but its answer is then read only if still allowed.
constexpr std::string_view max_age_seconds = "7200";

// `Access-Control-Request-Headers` as a list of tokens (`x-a, x-b`), or empty when it is not
// one: then only the gateway's own headers are allowed, and the browser refuses the rest.
std::string requested_header_names(std::string_view value) {
    std::string out;
    while (!value.empty()) {
        const auto comma = value.find(',');
        const auto item = trim(value.substr(0, comma));
        value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
        if (item.empty()) continue;
        for (const char c : item) {
            if (!is_tchar(c)) return {};
        }
        if (!out.empty()) out += ", ";
        out.append(item.data(), item.size());
    }
    return out;
}

}  // namespace

cors::cors(const std::vector<std::string>& allowed_origins) : origins_(allowed_origins) {
    // Without credentials `*` is a valid answer, and one every cache may share: so it goes on
    // every answer, `Origin` or not, or a cache holding an answer to a request without
    // `Origin` would hand it to a page without it (Fetch, "CORS protocol and HTTP caches").
    if (origins_.any()) {
        any_headers_.emplace_back("Access-Control-Allow-Origin", "*");
        any_headers_.emplace_back("Access-Control-Expose-Headers", std::string(exposed_headers));
    }
}

origin_header origin_of(const http_request& request) noexcept {
    origin_header out;
    int seen = 0;
    for (const auto& [name, value] : request.headers) {
        if (!iequals(name, "Origin")) continue;
        if (++seen == 1) out.value = value;
    }
    out.several = seen > 1;
    return out;
}

bool cors::is_preflight(const http_request& request) const noexcept {
    return origins_.enabled() && request.method == "OPTIONS" && !request.header("Origin").empty() &&
           !request.header("Access-Control-Request-Method").empty();
}

http_response cors::refusal() {
    return http_response::problem(403, "origin_not_allowed",
                                  "this origin is not in the gateway's allowed origins");
}

http_response cors::preflight(const http_request& request, std::string_view methods) const {
    const auto origin = origin_of(request);
    const auto host = request.header("Host");
    if (origin.several || !origins_.allows(origin.value, host)) return refusal();
    if (methods.empty()) return http_response::problem(404, "not_found");
    http_response r;
    r.status = 204;
    r.content_type.clear();
    add_response_headers(origin, host, r.headers);
    r.headers.emplace_back("Access-Control-Allow-Methods", std::string(methods));
    std::string allowed(read_headers);
    const auto requested = requested_header_names(request.header("Access-Control-Request-Headers"));
    if (!requested.empty()) allowed += ", " + requested;
    r.headers.emplace_back("Access-Control-Allow-Headers", std::move(allowed));
    r.headers.emplace_back("Access-Control-Max-Age", std::string(max_age_seconds));
    return r;
}

void cors::add_response_headers(origin_header origin, std::string_view host,
                                header_list& to) const {
    if (!origins_.enabled()) return;
    if (origins_.any()) {
        to.insert(to.end(), any_headers_.begin(), any_headers_.end());
        return;
    }
    to.emplace_back("Vary", "Origin");
    if (origin.value.empty() || origin.several || !origins_.allows(origin.value, host)) return;
    to.emplace_back("Access-Control-Allow-Origin", std::string(origin.value));
    to.emplace_back("Access-Control-Expose-Headers", std::string(exposed_headers));
}

}  // namespace gatehouse::detail
