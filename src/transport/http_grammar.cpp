#include "transport/http_grammar.hpp"

#include <algorithm>
#include <cstddef>

#include "http/text.hpp"

namespace gatehouse::detail {

bool is_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(c); });
}

bool is_field_value(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c == '\t' || (c >= 0x20 && c != 0x7f);
    });
}

bool is_host_value(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            return true;
        }
        switch (c) {
            case '-':
            case '.':
            case '_':
            case '~':
            case '%':
            case '!':
            case '$':
            case '&':
            case '\'':
            case '(':
            case ')':
            case '*':
            case '+':
            case ',':
            case ';':
            case '=':
            case ':':
            case '[':
            case ']': return true;
            default: return false;
        }
    });
}

bool is_chunk_ext(std::string_view s) noexcept {
    std::size_t i = 0;
    const auto skip_bws = [&] {
        while (i < s.size() && is_space(s[i])) ++i;
    };
    const auto take_token = [&] {
        const std::size_t start = i;
        while (i < s.size() && is_tchar(s[i])) ++i;
        return i > start;
    };
    while (true) {
        // BWS belongs only before ";": "5 " or "5;a=b " is not a chunk line.
        if (i == s.size()) return true;
        skip_bws();
        if (i == s.size() || s[i] != ';') return false;
        ++i;
        skip_bws();
        if (!take_token()) return false;
        const std::size_t before_bws = i;
        skip_bws();
        if (i == s.size() || s[i] != '=') {
            i = before_bws;  // no value: the BWS belongs to the next ";"
            continue;
        }
        ++i;
        skip_bws();
        if (i < s.size() && s[i] == '"') {
            ++i;
            bool closed = false;
            while (i < s.size()) {
                const auto c = static_cast<unsigned char>(s[i]);
                if (c == '"') {
                    closed = true;
                    ++i;
                    break;
                }
                if (c == '\\') {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    if (++i == s.size()) return false;
                    const auto q = static_cast<unsigned char>(s[i]);
                    if (q != '\t' && (q < 0x20 || q == 0x7f)) return false;
                    ++i;
                    continue;
                }
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                if (c != '\t' && (c < 0x20 || c == 0x7f)) return false;
                ++i;
            }
            if (!closed) return false;
        } else if (!take_token()) {
            return false;
        }
    }
}

}  // namespace gatehouse::detail
