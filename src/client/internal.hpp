#pragma once
// Shared internals of the client codec: direct field access for the decoders, the output
// writer, and the per-format entry points that codec.cpp dispatches to.

#include <cstddef>
#include <cstring>
#include <string_view>

#include "gatehouse/client/codec.hpp"

namespace gatehouse::client {

// Decoders validate while they parse and then store fields directly, rather than going
// through the public setters and validating a second time.
struct envelope_access {
    static char* type_buffer(envelope& e) noexcept { return e.type_; }
    static char* corr_buffer(envelope& e) noexcept { return e.corr_; }
    static void set_type_length(envelope& e, std::size_t n) noexcept {
        e.type_len_ = static_cast<std::uint8_t>(n);
    }
    static void set_corr_length(envelope& e, std::size_t n) noexcept {
        e.corr_len_ = static_cast<std::uint16_t>(n);
    }
    static void store_correlation_id(envelope& e, std::string_view corr) noexcept {
        if (!corr.empty()) std::memcpy(e.corr_, corr.data(), corr.size());  // data() may be null
        e.corr_len_ = static_cast<std::uint16_t>(corr.size());
    }
    static char* update_id_buffer(envelope& e) noexcept { return e.upd_; }
    static char* traceparent_buffer(envelope& e) noexcept { return e.trace_; }
    static void set_update_id_length(envelope& e, std::size_t n) noexcept {
        e.upd_len_ = static_cast<std::uint8_t>(n);
    }
    static void set_traceparent_length(envelope& e, std::size_t n) noexcept {
        e.trace_len_ = static_cast<std::uint8_t>(n);
    }
    // Stores an update id and a traceparent (empty: absent) that the caller has validated.
    static void store_trace_fields(envelope& e, std::string_view update_id,
                                   std::string_view traceparent) noexcept {
        if (!update_id.empty()) std::memcpy(e.upd_, update_id.data(), update_id.size());
        e.upd_len_ = static_cast<std::uint8_t>(update_id.size());
        if (!traceparent.empty()) std::memcpy(e.trace_, traceparent.data(), traceparent.size());
        e.trace_len_ = static_cast<std::uint8_t>(traceparent.size());
    }
    // Stores a type and correlation id (empty: absent) that the caller has validated, which
    // also bounds them by the inline buffers.
    static void store_ids(envelope& e, std::string_view type, std::string_view corr) noexcept {
        std::memcpy(e.type_, type.data(), type.size());
        e.type_len_ = static_cast<std::uint8_t>(type.size());
        if (!corr.empty()) std::memcpy(e.corr_, corr.data(), corr.size());  // data() may be null
        e.corr_len_ = static_cast<std::uint16_t>(corr.size());
    }
};

// Writes into a caller-owned buffer and keeps counting past its end, so a single pass
// yields either the encoding or the exact size it needs.
class output_writer {
public:
    output_writer(char* out, std::size_t capacity) noexcept : out_(out), cap_(capacity) {}

    void put(char c) noexcept {
        if (n_ < cap_) out_[n_] = c;
        ++n_;
    }
    void put(std::string_view s) noexcept {
        if (s.size() <= cap_ && n_ <= cap_ - s.size()) std::memcpy(out_ + n_, s.data(), s.size());
        n_ += s.size();
    }
    std::size_t size() const noexcept { return n_; }
    encode_result finish() const noexcept {
        return {n_ <= cap_ ? status::ok : status::buffer_too_small, n_};
    }

private:
    char* out_;
    std::size_t cap_;
    std::size_t n_ = 0;
};

namespace detail {

// UTF-8: `utf8_sequence_length` checks the sequence starting at p (p < end) and returns its
// length, 0 when it is invalid, or -1 when the input ends inside it.
int utf8_sequence_length(const unsigned char* p, const unsigned char* end) noexcept;
bool is_valid_utf8(std::string_view s) noexcept;
// Code points in valid UTF-8 (continuation bytes are not counted).
std::size_t utf8_length(std::string_view s) noexcept;

status decode_json(std::string_view frame, envelope& out) noexcept;
status decode_msgpack(std::string_view frame, envelope& out) noexcept;
status decode_protobuf(std::string_view frame, envelope& out) noexcept;

encode_result encode_json(const envelope& in, char* out, std::size_t capacity) noexcept;
encode_result encode_msgpack(const envelope& in, char* out, std::size_t capacity) noexcept;
encode_result encode_protobuf(const envelope& in, char* out, std::size_t capacity) noexcept;

// Validate exactly one value filling `bytes`; `depth` levels are already used by the caller.
status validate_json_value(std::string_view bytes, std::size_t depth) noexcept;
status validate_msgpack_value(std::string_view bytes, std::size_t depth) noexcept;

}  // namespace detail
}  // namespace gatehouse::client
