#include "gatehouse/http.hpp"

#include <nlohmann/json.hpp>

#include "common/constant_time.hpp"
#include "http/text.hpp"

namespace gatehouse {
namespace {

using detail::iequals;

}  // namespace

std::string_view http_request::header(std::string_view name) const noexcept {
    for (const auto& h : headers) {
        if (iequals(h.first, name)) return h.second;
    }
    return {};
}

std::string http_request::query_param(std::string_view name) const {
    return detail::find_query_param(query, name).value_or(std::string{});
}

std::string_view http_request::bearer_token() const noexcept {
    return detail::bearer_token_of(header("Authorization"));
}

bool http_request::bearer_token_matches(std::string_view key) const noexcept {
    return !key.empty() && detail::constant_time_equal(bearer_token(), key);
}

bool http_request::content_type_is(std::string_view media_type) const noexcept {
    return detail::is_media_type(header("Content-Type"), media_type);
}

http_response http_response::problem(int status, std::string_view code, std::string_view detail) {
    // ordered_json keeps docs/protocol.md's field order; `replace` turns invalid UTF-8 (a code or
    // detail echoing client input) into U+FFFD instead of throwing from dump().
    nlohmann::ordered_json j;
    j["status"] = status;
    j["title"] = http_status_title(status);
    j["code"] = code;
    if (!detail.empty()) j["detail"] = detail;
    http_response r;
    r.status = status;
    r.content_type = "application/problem+json";
    r.body = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    return r;
}

http_response http_response::json(int status, std::string body) {
    http_response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = std::move(body);
    return r;
}

std::string_view http_status_title(int status) noexcept {
    // Reason phrases as RFC 9110 names them (so 413 is "Content Too Large").
    switch (status) {
        case 100: return "Continue";
        case 101: return "Switching Protocols";
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 204: return "No Content";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 304: return "Not Modified";
        case 307: return "Temporary Redirect";
        case 308: return "Permanent Redirect";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 406: return "Not Acceptable";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 422: return "Unprocessable Content";
        case 426: return "Upgrade Required";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        default: return "Unknown";
    }
}

}  // namespace gatehouse
