#include "transcode.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>

#include "gatehouse/errc.hpp"

namespace gatehouse::detail {

// nlohmann's binary readers and writers do the format work; payloads reaching here were
// validated by the client codec, so their nesting is bounded.
std::error_code json_to_msgpack(std::string_view json, std::string& out) {
    try {
        const auto value = nlohmann::json::parse(json);
        out.clear();
        nlohmann::json::to_msgpack(value, nlohmann::detail::output_adapter<char>(out));
        return {};
    } catch (const nlohmann::json::exception&) {
        return errc::payload_not_representable;
    }
}

std::error_code msgpack_to_json(std::string_view msgpack, std::string& out) {
    try {
        const auto value = nlohmann::json::from_msgpack(msgpack.begin(), msgpack.end());
        out = value.dump();
        return {};
    } catch (const nlohmann::json::exception&) {
        return errc::payload_not_representable;
    }
}

void bytes_to_msgpack_bin(std::string_view bytes, std::string& out) {
    out.clear();
    const std::size_t n = bytes.size();
    if (n <= 0xFF) {
        out.push_back(static_cast<char>(0xC4));
        out.push_back(static_cast<char>(n));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(0xC5));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xFF));
    } else {
        out.push_back(static_cast<char>(0xC6));
        for (int shift = 24; shift >= 0; shift -= 8) {
            out.push_back(static_cast<char>((n >> shift) & 0xFF));
        }
    }
    out.append(bytes);
}

}  // namespace gatehouse::detail
