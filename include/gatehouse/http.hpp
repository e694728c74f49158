#pragma once
/// @file
/// HTTP requests and responses as the gateway's router hands them to route handlers.

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse {

/// One HTTP request that is not a WebSocket upgrade.
///
/// Thread safety: a plain value.
struct http_request {
    std::string method;  ///< `GET`, `POST`, ...
    std::string path;    ///< The target before `?`, percent-decoding not applied.
    std::string query;   ///< The target after `?`, or empty.
    std::vector<std::pair<std::string, std::string>> headers;  ///< As received.
    std::string body;            ///< At most the gateway's `max_message_bytes`.
    std::string remote_address;  ///< The peer's address, without port.

    /// The first header named `name` (case-insensitive), or empty.
    std::string_view header(std::string_view name) const noexcept;
    /// The value of the first query parameter named `name` (names compared after
    /// decoding, case-sensitively), decoded as `application/x-www-form-urlencoded`: `%XX`
    /// escapes and `+` as a space; a `%` without two hex digits stays as it is. Empty when
    /// absent or without `=`.
    std::string query_param(std::string_view name) const;
    /// The token of the first `Authorization: Bearer <token>` header (scheme
    /// case-insensitive, surrounding spaces and tabs trimmed), or empty when there is none,
    /// the scheme differs, or the token contains whitespace.
    std::string_view bearer_token() const noexcept;
    /// True when the request carries `Authorization: Bearer <key>` with exactly `key`
    /// (compared in constant time, so response timing does not reveal how much of a guess
    /// matched). An empty `key` matches nothing.
    bool bearer_token_matches(std::string_view key) const noexcept;
    /// True when `Content-Type` names `media_type` (given in lower case, e.g.
    /// `application/json`): compared case-insensitively, parameters such as `; charset=utf-8`
    /// and surrounding spaces ignored.
    bool content_type_is(std::string_view media_type) const noexcept;
};

/// The response to a request.
struct http_response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  ///< Extra headers.

    /// `{"status":S,"title":T,"code":C}` (plus `detail` when not empty) as
    /// `application/problem+json` (RFC 9457), the shape of every error of docs/protocol.md.
    /// `title` is `http_status_title(status)`; invalid UTF-8 in `code` or `detail` becomes
    /// U+FFFD.
    static http_response problem(int status, std::string_view code, std::string_view detail = {});
    /// `body` as `application/json` with `status`.
    static http_response json(int status, std::string body);
};

/// One entry of a gateway's route table, as `gateway::routes()` lists it.
///
/// Thread safety: a plain value.
struct http_route {
    std::string method;    ///< `GET`, `POST`, ...; empty for a prefix route (every method).
    std::string path;      ///< The exact path; for a prefix route, the prefix (`/ws/`).
    bool prefix = false;   ///< True: the route takes every path that begins with `path`.
    bool builtin = false;  ///< One of the gateway's own, rather than added with `add_route`.
};

/// Completes a request. Call it exactly once, from any thread.
using http_responder = std::function<void(http_response)>;

/// Handles one request. It runs on an I/O thread: answer at once, or take `respond` to a
/// worker and call it later; never block.
using http_handler = std::function<void(const http_request& request, http_responder respond)>;

/// The reason phrase of an HTTP status as RFC 9110 names it (`"Not Found"` for 404,
/// `"Content Too Large"` for 413), or `"Unknown"`.
std::string_view http_status_title(int status) noexcept;

}  // namespace gatehouse
