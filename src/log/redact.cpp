#include "gatehouse/log.hpp"

#include <array>
#include <optional>

#include "http/text.hpp"

namespace gatehouse {
namespace {

// The rule is structural on purpose (see log.hpp): a list of secret parameter names or path
// prefixes is sidestepped by the next spelling a client invents (`jwt=`, `/ws//player/`,
// `/ws/player%2F...`), while an allow-list of what may be kept is not.

constexpr std::string_view redacted = "[redacted]";

bool is_letter(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Percent-decodes until nothing changes (`%252F` is `/` to a proxy that decodes twice), with
// `+` kept as it is (paths) or read as a space (queries, as http_request::query_param does).
// Text still changing after a few rounds is nobody's honest spelling; `settled` is then false
// and the caller redacts it (more rounds would cost quadratic time on a long target).
std::string decode_fully(std::string_view s, bool form, bool& settled) {
    constexpr int max_rounds = 4;
    std::string out(s);
    settled = false;
    for (int round = 0; round < max_rounds; ++round) {
        std::string next;
        next.reserve(out.size());
        for (std::size_t i = 0; i < out.size(); ++i) {
            const char c = out[i];
            if (c == '%' && i + 2 < out.size() && detail::hex_value(out[i + 1]) >= 0 &&
                detail::hex_value(out[i + 2]) >= 0) {
                next += static_cast<char>(detail::hex_value(out[i + 1]) * 16 +
                                          detail::hex_value(out[i + 2]));
                i += 2;
            } else {
                next += (form && c == '+') ? ' ' : c;
            }
        }
        if (next == out) {
            settled = true;
            return out;
        }
        out = std::move(next);
        form = false;  // `+` is read once, as the server reads it
    }
    return out;
}

// Decoded text, or nullopt when it would not settle.
std::optional<std::string> decoded(std::string_view s, bool form) {
    bool settled = false;
    std::string out = decode_fully(s, form, settled);
    if (!settled) return std::nullopt;
    return out;
}

// What a path segment says: fully decoded, `\` read as `/`; nullopt when it would not settle.
std::optional<std::string> segment_text(std::string_view raw) {
    auto text = decoded(raw, false);
    if (text) {
        for (char& c : *text) c = c == '\\' ? '/' : c;
    }
    return text;
}

bool names(const std::optional<std::string>& text, std::string_view word) {
    return text && detail::iequals(*text, word);
}

// Text that looks like a credential whatever it is called or wherever it is: a JWT (its
// header, and any base64url of a JSON object, starts with `eyJ`), or long random-looking text
// (refresh tokens, API and bot keys, session ids).
bool looks_like_credential(std::string_view decoded) noexcept {
    if (decoded.find("eyJ") != std::string_view::npos) return true;
    if (decoded.size() >= 32) return true;
    if (decoded.size() < 20) return false;
    bool letter = false, digit = false;
    for (const char c : decoded) {
        letter = letter || is_letter(c);
        digit = digit || is_digit(c);
    }
    return letter && digit;
}

// Query parameters whose values say how to serve a request, never who the client is.
bool is_allowed_parameter(std::string_view decoded_name) {
    static constexpr std::array<std::string_view, 2> allowed{"codec", "resume"};
    const std::string name = detail::ascii_lower_copy(decoded_name);
    for (const auto a : allowed) {
        if (name == a) return true;
    }
    return false;
}

// An allowed parameter's value is kept only when it is a short word (`json`, a stream id).
bool is_plain_value(std::string_view decoded) noexcept {
    if (decoded.size() > 64) return false;
    for (const char c : decoded) {
        if (!is_letter(c) && !is_digit(c) && c != '_' && c != '.' && c != ':' && c != '-') {
            return false;
        }
    }
    return !looks_like_credential(decoded);
}

// A segment that opens a WebSocket route, as spelled right or as a client might misspell it:
// `ws`, `WS`, `%77s`, `wss`, `ws.`, `ws-bot`.
bool opens_ws_route(std::string_view text) noexcept {
    return text.size() >= 2 && detail::iequals(text.substr(0, 2), "ws");
}

void append_redacted_path(std::string& out, std::string_view path) {
    std::size_t pos = 0;
    for (;;) {
        const auto slash = path.find('/', pos);
        const std::string_view raw = path.substr(pos, slash - pos);
        const auto text = segment_text(raw);
        if (!text) {
            out.append(redacted);
            return;
        }
        if (text->find('/') != std::string::npos) {
            // Encoded separators (`ws%2Fplayer%2F<token>`, `ws\player\<token>`): a route inside
            // one segment, which no router here reads; the segment goes, and everything after.
            out.append(redacted);
            return;
        }
        if (opens_ws_route(*text)) {
            // Everything after it is a credential or a route word, and only `player` or `bot`
            // right after it is a route word.
            out.append(raw);
            if (slash == std::string_view::npos) return;
            std::size_t rest = slash;  // at the `/` after it
            const auto next_slash = path.find('/', rest + 1);
            const auto next = segment_text(path.substr(rest + 1, next_slash - rest - 1));
            if (names(next, "player") || names(next, "bot")) {
                out.append(path.substr(rest, next_slash - rest));
                if (next_slash == std::string_view::npos) return;
                rest = next_slash;
            }
            // `rest` is at a `/`; a lone trailing one carries nothing.
            out += '/';
            if (rest + 1 < path.size()) out.append(redacted);
            return;
        }
        out.append(looks_like_credential(*text) ? redacted : raw);
        if (slash == std::string_view::npos) return;
        out += '/';
        pos = slash + 1;
    }
}

void append_redacted_query(std::string& out, std::string_view query) {
    bool first = true;
    for (;;) {
        const auto amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (!first) out += '&';
        first = false;
        const auto eq = param.find('=');
        const std::string_view raw_name = param.substr(0, eq);
        const auto name = decoded(raw_name, true);
        const bool plain_name = name && !looks_like_credential(*name);
        const bool allowed = plain_name && is_allowed_parameter(*name);
        if (eq == std::string_view::npos) {
            // A bare parameter is all value: `?<token>` is a shape clients use too.
            if (param.empty() || allowed) {
                out.append(param);
            } else {
                out.append(redacted);
            }
        } else {
            out.append(plain_name ? raw_name : redacted);
            out += '=';
            const std::string_view raw_value = param.substr(eq + 1);
            const auto value = allowed ? decoded(raw_value, true) : std::nullopt;
            // An empty value is kept: `token=` tells the reader the token was missing.
            if (raw_value.empty() || (value && is_plain_value(*value))) {
                out.append(raw_value);
            } else {
                out.append(redacted);
            }
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
