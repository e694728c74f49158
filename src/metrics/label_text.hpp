#pragma once
// A Prometheus label value as the text format wants it: backslash, double quote and line feed
// escaped. For values the gateway does not choose: an embedder's route paths, a build's
// revision.

#include <string>
#include <string_view>

namespace gatehouse::detail {

inline void append_label_value(std::string& out, std::string_view value) {
    for (const char c : value) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

}  // namespace gatehouse::detail
