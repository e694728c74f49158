#pragma once
// Hexadecimal digits, both ways. Header-only and dependency-free (no exceptions, no
// allocation), so the client codec, built with -fno-exceptions -fno-rtti, uses it too.

namespace gatehouse::detail {

// Lower-case digits, indexed by a nibble: what JSON \u escapes and hex dumps write.
inline constexpr char hex_digits_lower[] = "0123456789abcdef";

// The value of one hex digit of either case, or -1 for anything else.
constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace gatehouse::detail
