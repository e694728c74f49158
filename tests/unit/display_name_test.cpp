#include "accounts/display_name.hpp"

#include <catch2/catch.hpp>

#include <string>

TEST_CASE("display names: control, format and separator characters are refused", "[display_name]") {
    using gatehouse::detail::has_refused_display_name_character;
    for (const char* ok : {"Alice", "al ice", "Zoë", "日本語の名前", "😀 emoji", "a\u00A0b",
                           "\u202F", "\u2027", "\u2030", "\uFFFC", "\U000E0080"}) {
        INFO(ok);
        CHECK_FALSE(has_refused_display_name_character(ok));
    }
    for (const std::string& bad : {std::string("a\0b", 3),
                                   std::string("\x1b[31mred"),
                                   std::string("a\rb"),
                                   std::string("a\nb"),
                                   std::string("\t"),
                                   std::string("\x7f"),
                                   std::string("\u0085"),
                                   std::string("\u009F"),
                                   std::string("soft\u00ADhyphen"),
                                   std::string("\u061C"),
                                   std::string("\u180E"),
                                   std::string("\u200B"),
                                   std::string("\u200F"),
                                   std::string("\u2028"),
                                   std::string("\u2029"),
                                   std::string("\u202A"),
                                   std::string("evil\u202Egnp.exe"),
                                   std::string("\u2060"),
                                   std::string("\u2066"),
                                   std::string("\u2069"),
                                   std::string("\u206F"),
                                   std::string("\uFEFF"),
                                   std::string("\uFFF9"),
                                   std::string("\U000110BD"),
                                   std::string("\U0001343F"),
                                   std::string("\U0001D173"),
                                   std::string("\U000E0001"),
                                   std::string("\U000E0041"),
                                   std::string("\U000E007F")}) {
        INFO(bad);
        CHECK(has_refused_display_name_character(bad));
    }
    // Truncated UTF-8 (never reaches it: nlohmann validates first) is refused, not overread.
    CHECK(has_refused_display_name_character("\xE2\x80"));
}
