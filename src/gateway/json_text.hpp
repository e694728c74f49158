#pragma once
// Writing JSON strings by hand on the reply path: the gateway's own payloads are a few fixed
// keys, and building them through a DOM would cost an allocation per node per command.

#include <string>
#include <string_view>

#include "common/hex.hpp"

namespace gatehouse::detail {

// Appends `value` as a quoted JSON string. Bytes >= 0x80 pass through: every value written
// here is UTF-8 already (ids, codes, messages) or was validated as such by a codec.
inline void append_json_string(std::string& out, std::string_view value) {
    out += '"';
    for (const char ch : value) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex_digits_lower[c >> 4];
                    out += hex_digits_lower[c & 0xF];
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

}  // namespace gatehouse::detail
