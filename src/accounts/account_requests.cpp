#include "accounts/account_requests.hpp"

#include "codec/json_depth.hpp"
#include "common/retry_after.hpp"
#include "gatehouse/client/limits.hpp"

namespace gatehouse::detail {

std::size_t code_points(std::string_view s) noexcept {
    std::size_t n = 0;
    for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
}

bool valid_username(std::string_view u) noexcept {
    if (u.size() < username_min || u.size() > username_max) return false;
    for (const char c : u) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (!ok) return false;
    }
    return true;
}

bool valid_email(std::string_view e) noexcept {
    const auto at = e.find('@');
    if (e.empty() || e.size() > email_max || at == 0 || at == std::string_view::npos ||
        at + 1 == e.size() || e.find('@', at + 1) != std::string_view::npos) {
        return false;
    }
    for (const char c : e) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) return false;
    }
    return true;
}

bool valid_password(std::string_view p) noexcept {
    const auto n = code_points(p);
    return n >= password_min && n <= password_max;
}

bool within_login_name_length(std::string_view name) noexcept {
    return name.size() <= (name.find('@') == std::string_view::npos ? username_max : email_max);
}

std::optional<http_response> parse_object(const http_request& request, nlohmann::json& out,
                                          bool merge_patch_allowed) {
    if (!request.content_type_is("application/json") &&
        !(merge_patch_allowed && request.content_type_is("application/merge-patch+json"))) {
        return http_response::problem(415, "unsupported_media_type",
                                      merge_patch_allowed ? "the body must be application/json or "
                                                            "application/merge-patch+json"
                                                          : "the body must be application/json");
    }
    // As the codecs do (docs/codecs.md): deeper bodies are refused before nlohmann parses them
    // (codec/json_depth.hpp says why).
    if (!json_within_depth(request.body, client::max_nesting_depth)) {
        return http_response::problem(400, "invalid_json", "the body is nested too deeply");
    }
    out = nlohmann::json::parse(request.body, nullptr, false);
    if (out.is_discarded())
        return http_response::problem(400, "invalid_json", "the body is not JSON");
    if (!out.is_object()) return invalid("the body must be a JSON object");
    return std::nullopt;
}

std::optional<std::string> string_member(const nlohmann::json& o, const char* name) {
    const auto it = o.find(name);
    if (it == o.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

http_response invalid(std::string_view detail) {
    return http_response::problem(400, "invalid_request", detail);
}

http_response invalid_credentials() {
    return http_response::problem(401, "invalid_credentials", "unknown username or wrong password");
}

http_response store_failed() {
    return http_response::problem(503, "store_unavailable",
                                  "the account store is unavailable; retry later");
}

http_response too_many(std::string_view code, std::chrono::seconds retry_after,
                       std::string_view detail) {
    auto r = http_response::problem(429, code, detail);
    r.headers.emplace_back("Retry-After", retry_after_value(retry_after));
    return r;
}

http_response busy() {
    auto r = http_response::problem(503, "busy", "the server is busy; retry later");
    r.headers.emplace_back("Retry-After", "1");
    return r;
}

http_response no_account() {
    return http_response::problem(404, "not_found", "no account for this player");
}

}  // namespace gatehouse::detail
