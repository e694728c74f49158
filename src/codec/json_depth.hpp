#pragma once
// A nesting bound checked on JSON text before nlohmann builds a DOM: its parser is iterative,
// but copying, dump() and the MessagePack writer recurse once per level, so a small document
// nested thousands deep would overflow a thread's stack. Shared by update parsing and the
// account routes' bodies.

#include <cstddef>
#include <string_view>

namespace gatehouse::detail {

// True when `text` never has more than `max_depth` arrays/objects open at once. Brackets inside
// strings do not count; the text need not be valid JSON (the parser judges that afterwards).
inline bool json_within_depth(std::string_view text, std::size_t max_depth) noexcept {
    std::size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        switch (c) {
            case '"': in_string = true; break;
            case '{':
            case '[':
                if (++depth > max_depth) return false;
                break;
            case '}':
            case ']':
                if (depth > 0) --depth;
                break;
            default: break;
        }
    }
    return true;
}

}  // namespace gatehouse::detail
