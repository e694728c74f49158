#include "gatehouse/log.hpp"

#include <array>

#include "http/text.hpp"

namespace gatehouse {
namespace {

constexpr std::string_view redacted = "[redacted]";

using detail::ascii_lower;

// Case-insensitive find: the router may be case-sensitive, but a request for
// `/WS/PLAYER/<token>` still carries the token to the 404 log line, so match it too.
std::size_t ifind(std::string_view haystack, std::string_view needle) noexcept {
    if (needle.size() > haystack.size()) return std::string_view::npos;
    for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
        std::size_t k = 0;
        while (k < needle.size() && ascii_lower(haystack[i + k]) == needle[k]) ++k;
        if (k == needle.size()) return i;
    }
    return std::string_view::npos;
}

// The parameter name as http_request::query_param() sees it (percent-decoded, `+` as
// space), lower-cased: `to%6Ben=` must not slip a token past the redaction.
std::string decoded_lower_key(std::string_view key) {
    return detail::ascii_lower_copy(detail::form_decode(key));
}

bool is_secret_key(std::string_view key) {
    static constexpr std::array<std::string_view, 3> secret_keys{"token", "access_token", "key"};
    const std::string k = decoded_lower_key(key);
    for (const auto s : secret_keys) {
        if (k == s) return true;
    }
    return false;
}

void append_redacted_path(std::string& out, std::string_view path) {
    // The earliest of the two prefixes; everything after it is the credential (a JWT or a
    // bot key), and nothing after it belongs to a route, so it all goes.
    std::size_t end_of_prefix = std::string_view::npos;
    for (const std::string_view prefix :
         {std::string_view("/ws/player/"), std::string_view("/ws/bot/")}) {
        const auto at = ifind(path, prefix);
        if (at != std::string_view::npos && at + prefix.size() < end_of_prefix) {
            end_of_prefix = at + prefix.size();
        }
    }
    if (end_of_prefix == std::string_view::npos || end_of_prefix == path.size()) {
        out.append(path);
        return;
    }
    out.append(path.substr(0, end_of_prefix));
    out.append(redacted);
}

void append_redacted_query(std::string& out, std::string_view query) {
    bool first = true;
    for (;;) {
        const auto amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (!first) out += '&';
        first = false;
        const auto eq = param.find('=');
        if (eq != std::string_view::npos && eq + 1 < param.size() &&
            is_secret_key(param.substr(0, eq))) {
            out.append(param.substr(0, eq + 1));
            out.append(redacted);
        } else {
            // An empty value is kept: "token=" tells the reader the token was missing.
            out.append(param);
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
}

}  // namespace

std::string redact_target(std::string_view path) {
    std::string out;
    out.reserve(path.size() + redacted.size());
    const auto q = path.find('?');
    append_redacted_path(out, path.substr(0, q));
    if (q != std::string_view::npos) {
        out += '?';
        append_redacted_query(out, path.substr(q + 1));
    }
    return out;
}

}  // namespace gatehouse
