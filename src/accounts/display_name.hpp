#pragma once
// Which characters a display name may not hold. Other players' clients render display names,
// so a name must not carry what changes how text around it is shown or parsed: control
// characters (Unicode category Cc: NUL, ESC, CR, LF, ...), format characters (Cf: bidi embeddings,
// overrides and isolates U+202A-U+202E and U+2066-U+2069, zero-width U+200B-U+200F, the BOM
// U+FEFF, tag characters, ...) and the line and paragraph separators (Zl U+2028, Zp U+2029),
// which break lines as LF does. Unassigned and private-use code points are left alone: what
// they look like is up to the client's fonts, not a way to rewrite the text around them.

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>

namespace gatehouse::detail {

struct code_point_range {
    char32_t first;
    char32_t last;
};

// Categories Cc, Cf, Zl and Zp as of Unicode 15.1 (sorted, disjoint), from UnicodeData.txt.
inline constexpr std::array<code_point_range, 23> display_name_refused{{
    {0x0000, 0x001F},   {0x007F, 0x009F},   {0x00AD, 0x00AD},   {0x0600, 0x0605},
    {0x061C, 0x061C},   {0x06DD, 0x06DD},   {0x070F, 0x070F},   {0x0890, 0x0891},
    {0x08E2, 0x08E2},   {0x180E, 0x180E},   {0x200B, 0x200F},   {0x2028, 0x202E},
    {0x2060, 0x2064},   {0x2066, 0x206F},   {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},
    {0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3},
    {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
}};

inline bool is_refused_in_display_name(char32_t cp) noexcept {
    const auto it =
        std::upper_bound(display_name_refused.begin(), display_name_refused.end(), cp,
                         [](char32_t value, const code_point_range& r) { return value < r.first; });
    return it != display_name_refused.begin() && cp <= std::prev(it)->last;
}

// True when valid UTF-8 `s` (nlohmann has validated it) holds a refused code point.
inline bool has_refused_display_name_character(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const auto lead = static_cast<unsigned char>(s[i]);
        const std::size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
        if (i + length > s.size()) return true;  // not valid UTF-8 after all: refuse
        char32_t cp = length == 1   ? lead
                      : length == 2 ? lead & 0x1Fu
                      : length == 3 ? lead & 0x0Fu
                                    : lead & 0x07u;
        for (std::size_t k = 1; k < length; ++k) {
            cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
        }
        if (is_refused_in_display_name(cp)) return true;
        i += length;
    }
    return false;
}

}  // namespace gatehouse::detail
