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

bool is_valid_update_id(std::string_view id) noexcept {
    if (id.empty() || id.size() > max_update_id_length) return false;
    for (const char c : id) {
        if (c < '!' || c > '~') return false;
    }
    return true;
}

namespace {
// `n` lower-case hex digits at `p`; sets `nonzero` when one of them is not '0'.
bool lower_hex(const char* p, std::size_t n, bool& nonzero) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        const char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        if (c != '0') nonzero = true;
    }
    return true;
}
}  // namespace

bool is_valid_traceparent(std::string_view value) noexcept {
    // W3C Trace Context, section 3.2: version "-" trace-id "-" parent-id "-" trace-flags.
    // Only the 55-character form is accepted (a future version may append fields; this
    // codec keeps what it can bound and forward unchanged).
    if (value.size() != traceparent_length) return false;
    const char* p = value.data();
    if (p[2] != '-' || p[35] != '-' || p[52] != '-') return false;
    bool version_nonzero = false, trace_nonzero = false, parent_nonzero = false,
         flags_nonzero = false;
    if (!lower_hex(p, 2, version_nonzero) || (p[0] == 'f' && p[1] == 'f')) return false;
    return lower_hex(p + 3, 32, trace_nonzero) && trace_nonzero &&
           lower_hex(p + 36, 16, parent_nonzero) && parent_nonzero &&
           lower_hex(p + 53, 2, flags_nonzero);
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
    std::memcpy(upd_, other.upd_, other.upd_len_);
    std::memcpy(trace_, other.trace_, other.trace_len_);
    type_len_ = other.type_len_;
    corr_len_ = other.corr_len_;
    upd_len_ = other.upd_len_;
    trace_len_ = other.trace_len_;
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

status envelope::set_update_id(std::string_view id) noexcept {
    if (!is_valid_update_id(id)) return status::invalid_update_id;
    std::memcpy(upd_, id.data(), id.size());
    upd_len_ = static_cast<std::uint8_t>(id.size());
    return status::ok;
}

status envelope::set_traceparent(std::string_view value) noexcept {
    if (!is_valid_traceparent(value)) return status::invalid_traceparent;
    std::memcpy(trace_, value.data(), value.size());
    trace_len_ = static_cast<std::uint8_t>(value.size());
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
