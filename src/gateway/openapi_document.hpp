#pragma once
// The OpenAPI 3.1 description of the HTTP API (docs/openapi.json, compiled in by
// cmake/embed_openapi.cmake) and the copy a gateway serves at `GET /openapi.json`: only the
// operations whose routes that gateway has, so that a gateway without the accounts routes,
// `POST /updates`, `POST /commands` or `/sse/player` does not describe them (docs/openapi.md).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/http.hpp"

namespace gatehouse::detail {

// docs/openapi.json, byte for byte (defined in the generated openapi_document_text.cpp).
std::string_view openapi_document() noexcept;

// Whether `routes` serves `method` (upper case) at the documented `path`: an exact route with
// that method and path, or a prefix route the path begins with (the WebSocket paths under
// `/ws/`, whose `{parameters}` only a prefix can match).
bool serves(const std::vector<http_route>& routes, std::string_view method,
            std::string_view path) noexcept;

// `document` without the operations `routes` does not serve (a path left with none goes too).
// Exactly `document` when it serves them all, or when `document` is not a JSON object with a
// `paths` object (nothing to filter: the unit test keeps docs/openapi.json well-formed).
std::string openapi_for_routes(std::string_view document, const std::vector<http_route>& routes);

// The `GET /openapi.json` handler: answers `*text` as application/json. `text` is filled once
// the route table is final (gateway start), before the first request can arrive.
http_handler openapi_handler(std::shared_ptr<const std::string> text);

}  // namespace gatehouse::detail
