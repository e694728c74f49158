#pragma once
// Reading a few fields out of the JSON payloads the game sends, without a JSON library: a
// stand-in for the engine's own (Unreal: FJsonSerializer and FJsonObject). It finds the first
// `"key":` anywhere in the text, so it suits flat, known shapes like the Click & Cook state,
// where every key is unique; it does not unescape strings.

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace gh_client {

/// The text right after `"key":` (leading whitespace skipped), or nothing.
inline std::optional<std::string_view> json_value(std::string_view json, std::string_view key) {
    const std::string quoted = "\"" + std::string(key) + "\"";
    for (auto at = json.find(quoted); at != std::string_view::npos;
         at = json.find(quoted, at + 1)) {
        auto rest = json.substr(at + quoted.size());
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\n'))
            rest.remove_prefix(1);
        if (rest.empty() || rest.front() != ':') continue;  // a string value, not a key
        rest.remove_prefix(1);
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\n'))
            rest.remove_prefix(1);
        return rest;
    }
    return std::nullopt;
}

inline std::optional<long long> json_int(std::string_view json, std::string_view key) {
    const auto v = json_value(json, key);
    if (!v || v->empty() || !(v->front() == '-' || (v->front() >= '0' && v->front() <= '9'))) {
        return std::nullopt;
    }
    return std::strtoll(std::string(v->substr(0, 24)).c_str(), nullptr, 10);
}

inline std::optional<bool> json_bool(std::string_view json, std::string_view key) {
    const auto v = json_value(json, key);
    if (v && v->substr(0, 4) == "true") return true;
    if (v && v->substr(0, 5) == "false") return false;
    return std::nullopt;
}

inline std::optional<std::string> json_string(std::string_view json, std::string_view key) {
    const auto v = json_value(json, key);
    if (!v || v->empty() || v->front() != '"') return std::nullopt;
    const auto end = v->find('"', 1);
    if (end == std::string_view::npos ||
        v->substr(1, end - 1).find('\\') != std::string_view::npos) {
        return std::nullopt;
    }
    return std::string(v->substr(1, end - 1));
}

}  // namespace gh_client
