#include "gateway/openapi_document.hpp"

#include <nlohmann/json.hpp>
#include <utility>

#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

// The operation keys of an OpenAPI path item; its other keys (summary, parameters, ...) are
// not routes.
constexpr std::string_view operation_methods[] = {"get",     "put",  "post",  "delete",
                                                  "options", "head", "patch", "trace"};

}  // namespace

bool serves(const std::vector<http_route>& routes, std::string_view method,
            std::string_view path) noexcept {
    for (const auto& route : routes) {
        if (route.prefix ? path.compare(0, route.path.size(), route.path) == 0
                         : route.path == path && route.method == method) {
            return true;
        }
    }
    return false;
}

std::string openapi_for_routes(std::string_view document, const std::vector<http_route>& routes) {
    // ordered_json keeps the document's member order, so a filtered copy reads like the file.
    auto doc = nlohmann::ordered_json::parse(document, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("paths") ||
        !doc["paths"].is_object()) {
        return std::string(document);
    }
    auto& paths = doc["paths"];
    bool removed = false;
    for (auto path = paths.begin(); path != paths.end();) {
        if (!path.value().is_object()) {
            ++path;
            continue;
        }
        bool any_left = false;
        for (const auto method : operation_methods) {
            const std::string key(method);
            if (!path.value().contains(key)) continue;
            if (serves(routes, ascii_upper_copy(method), path.key())) {
                any_left = true;
            } else {
                path.value().erase(key);
                removed = true;
            }
        }
        if (any_left) {
            ++path;
        } else {
            path = paths.erase(path);
            removed = true;
        }
    }
    if (!removed) return std::string(document);
    return doc.dump(2) + "\n";
}

http_handler openapi_handler(std::shared_ptr<const std::string> text) {
    return [text = std::move(text)](const http_request&, const http_responder& respond) {
        respond(http_response::json(200, *text));
    };
}

}  // namespace gatehouse::detail
