#include "gateway/http_router.hpp"

#include <utility>

#include "gatehouse/log.hpp"

namespace gatehouse::detail {

void http_router::add(std::string method, std::string path, http_handler handler) {
    auto& slot = routes_[std::move(path)][std::move(method)];
    if (slot.builtin && !slot.replaceable) return;
    slot = route{std::move(handler), false, false};
}

void http_router::add_builtin(std::string method, std::string path, http_handler handler) {
    routes_[std::move(path)][std::move(method)] = route{std::move(handler), true, false};
}

void http_router::add_default(std::string method, std::string path, http_handler handler) {
    routes_[std::move(path)][std::move(method)] = route{std::move(handler), true, true};
}

void http_router::add_prefix(std::string prefix, http_handler handler) {
    prefixes_.emplace_back(std::move(prefix), std::move(handler));
}

std::vector<http_route> http_router::routes() const {
    std::vector<http_route> out;
    for (const auto& [path, methods] : routes_) {
        for (const auto& [method, entry] : methods) {
            out.push_back(http_route{method, path, false, entry.builtin});
        }
    }
    // Only the gateway adds prefix routes.
    for (const auto& entry : prefixes_) out.push_back(http_route{{}, entry.first, true, true});
    return out;
}

void http_router::handle(const http_request& request, const http_responder& respond) const {
    if (request.method == "HEAD") {
        // HEAD is GET without the body (RFC 9110 section 9.3.2): routes answer it as GET, and
        // the transport leaves the body out. The method is renamed here, after the access log
        // and the trace saw HEAD.
        http_request as_get = request;
        as_get.method = "GET";
        handle(as_get, respond);
        return;
    }
    for (const auto& [prefix, handler] : prefixes_) {
        if (request.path.compare(0, prefix.size(), prefix) == 0) {
            call(handler, request, respond);
            return;
        }
    }
    const auto path = routes_.find(request.path);
    if (path == routes_.end()) {
        respond(http_response::problem(404, "not_found"));
        return;
    }
    const auto method = path->second.find(request.method);
    if (method == path->second.end()) {
        auto r = http_response::problem(405, "method_not_allowed");
        r.headers.emplace_back("Allow", methods(request.path));
        respond(std::move(r));
        return;
    }
    call(method->second.handler, request, respond);
}

std::string http_router::methods(std::string_view path) const {
    std::string out;
    const auto found = routes_.find(path);
    if (found == routes_.end()) return out;
    for (const auto& entry : found->second) {
        if (!out.empty()) out += ", ";
        out += entry.first;
    }
    return out;
}

std::string_view http_router::route_of(const http_request& request) const noexcept {
    for (const auto& entry : prefixes_) {
        if (request.path.compare(0, entry.first.size(), entry.first) == 0) return entry.first;
    }
    const auto path = routes_.find(request.path);
    if (path == routes_.end()) return "other";
    return path->first;
}

void http_router::call(const http_handler& handler, const http_request& request,
                       const http_responder& respond) const {
    // A route is often an embedding team's code. The handler gets a copy of `respond`; both
    // complete the same exchange.
    try {
        handler(request, respond);
    } catch (...) {
        if (log_) {
            log_(log_level::error, "route " + request.method + " " + redact_target(request.path) +
                                       " threw an exception");
        }
        respond(http_response::problem(500, "internal_error"));
    }
}

}  // namespace gatehouse::detail
