#include "gatehouse/client/envelope.hpp"

#include <cstring>

#include "internal.hpp"

namespace gatehouse::client {

namespace {
// [A-Za-z0-9_.:-] as a lookup table: the check runs on every decoded command.
struct type_charset {
    bool allowed[256] = {};
    constexpr type_charset() {
        for (int c = 'a'; c <= 'z'; ++c) allowed[c] = true;
        for (int c = 'A'; c <= 'Z'; ++c) allowed[c] = true;
        for (int c = '0'; c <= '9'; ++c) allowed[c] = true;
        allowed[static_cast<unsigned char>('_')] = true;
        allowed[static_cast<unsigned char>('.')] = true;
        allowed[static_cast<unsigned char>(':')] = true;
        allowed[static_cast<unsigned char>('-')] = true;
    }
};
constexpr type_charset type_chars;
}  // namespace

bool is_valid_type(std::string_view type) noexcept {
    if (type.empty() || type.size() > max_type_length) return false;
    for (const char c : type) {
        if (!type_chars.allowed[static_cast<unsigned char>(c)]) return false;
    }
    return true;
}

bool is_valid_correlation_id(std::string_view id) noexcept {
    return !id.empty() && id.size() <= max_correlation_id_bytes && detail::is_valid_utf8(id) &&
           detail::utf8_length(id) <= max_correlation_id_chars;
}

std::string_view envelope::payload_codec() const noexcept {
    switch (format_) {
        case payload_format::json: return "json";
        case payload_format::msgpack: return "msgpack";
        case payload_format::bytes: break;
    }
    return {codec_name_, codec_name_len_};
}

envelope& envelope::operator=(const envelope& other) noexcept {
    if (this == &other) return *this;
    std::memcpy(type_, other.type_, other.type_len_);
    std::memcpy(corr_, other.corr_, other.corr_len_);
    type_len_ = other.type_len_;
    corr_len_ = other.corr_len_;
    format_ = other.format_;
    payload_ = other.payload_;
    payload_len_ = other.payload_len_;
    codec_name_ = other.codec_name_;
    codec_name_len_ = other.codec_name_len_;
    return *this;
}

status envelope::set_type(std::string_view type) noexcept {
    if (type.empty()) return status::missing_type;
    if (!is_valid_type(type)) return status::invalid_type;
    std::memcpy(type_, type.data(), type.size());
    type_len_ = static_cast<std::uint8_t>(type.size());
    return status::ok;
}

status envelope::set_correlation_id(std::string_view id) noexcept {
    if (!is_valid_correlation_id(id)) return status::invalid_correlation_id;
    std::memcpy(corr_, id.data(), id.size());
    corr_len_ = static_cast<std::uint16_t>(id.size());
    return status::ok;
}

void envelope::set_payload(payload_format format, std::string_view bytes,
                           std::string_view codec_name) noexcept {
    format_ = format;
    payload_ = bytes.data();
    payload_len_ = bytes.size();
    codec_name_ = format == payload_format::bytes ? codec_name.data() : nullptr;
    codec_name_len_ = format == payload_format::bytes ? codec_name.size() : 0;
}

}  // namespace gatehouse::client
