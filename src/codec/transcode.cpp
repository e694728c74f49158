#include "transcode.hpp"

#include <cmath>
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

namespace {

// JSON has no bytes and no NaN or infinities. nlohmann would invent a shape for the first
// ({"bytes":[...]}) and write null for the others; a client must never receive a payload the
// service did not send, so such payloads are refused instead. Depth is bounded by the
// client codec's validation before the payload gets here.
bool has_json_equivalent(const nlohmann::json& v) {
    if (v.is_binary()) return false;
    if (v.is_number_float()) return std::isfinite(v.get<double>());
    if (v.is_structured()) {
        for (const auto& item : v) {
            if (!has_json_equivalent(item)) return false;
        }
    }
    return true;
}

}  // namespace

std::error_code msgpack_to_json(std::string_view msgpack, std::string& out) {
    try {
        const auto value = nlohmann::json::from_msgpack(msgpack.begin(), msgpack.end());
        if (!has_json_equivalent(value)) return errc::payload_not_representable;
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
