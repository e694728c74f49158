#pragma once
/// @file
/// `client::envelope`: one message of the gatehouse wire protocol, as a client sees it.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gatehouse/client/limits.hpp"
#include "gatehouse/client/status.hpp"

namespace gatehouse::client {

/// What the payload bytes hold.
enum class payload_format : std::uint8_t {
    json = 0,     ///< JSON text.
    msgpack = 1,  ///< One MessagePack value.
    bytes = 2,    ///< Opaque bytes (a Protobuf message, say), named by `payload_codec()`.
};

/// An envelope: `type`, `payload`, optional `correlation_id` (docs/protocol.md section 3), and
/// the optional `update_id` and `traceparent` of docs/protocol.md section 6.
///
/// `type`, `correlation_id`, `update_id` and `traceparent` are copied into storage inside the
/// object (they are short and bounded), so they stay valid however the object is copied. The
/// payload is a *view*: after `decode()` it points into the decoded frame, after `set_payload()`
/// into the caller's bytes, and it is valid only as long as those bytes are.
///
/// A default-constructed envelope has no type, no correlation id, no update id, no
/// traceparent and a JSON `null` payload.
///
/// Thread safety: distinct objects may be used concurrently; one object is not
/// synchronised. No member allocates, throws or uses RTTI.
class envelope {
public:
    envelope() noexcept {}

    /// Copies only the bytes in use, not the whole inline storage.
    envelope(const envelope& other) noexcept { *this = other; }
    envelope& operator=(const envelope& other) noexcept;

    /// The message type, 1-64 characters of `[A-Za-z0-9_.:-]` once set or decoded.
    std::string_view type() const noexcept { return {type_, type_len_}; }

    /// The correlation id; empty when absent (the gateway then assigns one).
    std::string_view correlation_id() const noexcept { return {corr_, corr_len_}; }

    /// True when a correlation id is present.
    bool has_correlation_id() const noexcept { return corr_len_ != 0; }

    /// The update id the gateway gave a logged update (docs/protocol.md 6.4): an opaque string of
    /// 1-64 visible ASCII characters to hand back as `?resume=`; empty when absent.
    std::string_view update_id() const noexcept { return {upd_, upd_len_}; }

    /// True when an update id is present.
    bool has_update_id() const noexcept { return upd_len_ != 0; }

    /// The W3C Trace Context `traceparent` (docs/protocol.md 6.8), 55 characters; empty when
    /// absent. Decoding drops a malformed one (docs/protocol.md: an invalid one is ignored).
    std::string_view traceparent() const noexcept { return {trace_, trace_len_}; }

    /// True when a traceparent is present.
    bool has_traceparent() const noexcept { return trace_len_ != 0; }

    /// The payload bytes, in `format()`. An absent payload reads as JSON `null` (or
    /// MessagePack nil on MessagePack frames), as docs/protocol.md says missing means null.
    std::string_view payload() const noexcept { return {payload_, payload_len_}; }

    /// What the payload bytes hold.
    payload_format format() const noexcept { return format_; }

    /// The payload's codec name: `"json"`, `"msgpack"`, or for `payload_format::bytes`
    /// the name the sender gave (a Protobuf message name, say; may be empty).
    std::string_view payload_codec() const noexcept;

    /// Sets the type. Returns `status::missing_type` for an empty one and
    /// `status::invalid_type` for one that breaks the rules; the envelope is then unchanged.
    status set_type(std::string_view type) noexcept;

    /// Sets the correlation id. Returns `status::invalid_correlation_id` for an empty
    /// one, invalid UTF-8, or more than 128 characters; the envelope is then unchanged.
    status set_correlation_id(std::string_view id) noexcept;

    /// Removes the correlation id.
    void clear_correlation_id() noexcept { corr_len_ = 0; }

    /// Sets the update id. Returns `status::invalid_update_id` unless `id` is 1-64
    /// characters of visible ASCII (`!` to `~`); the envelope is then unchanged.
    status set_update_id(std::string_view id) noexcept;

    /// Removes the update id.
    void clear_update_id() noexcept { upd_len_ = 0; }

    /// Sets the traceparent. Returns `status::invalid_traceparent` unless `value` is a W3C
    /// `traceparent` (`is_valid_traceparent`); the envelope is then unchanged.
    status set_traceparent(std::string_view value) noexcept;

    /// Removes the traceparent.
    void clear_traceparent() noexcept { trace_len_ = 0; }

    /// Sets the payload as a view of `bytes` (not copied: keep them alive while the
    /// envelope is used). `codec_name` is used only for `payload_format::bytes`.
    void set_payload(payload_format format, std::string_view bytes,
                     std::string_view codec_name = {}) noexcept;

private:
    friend struct envelope_access;  // lets the decoders fill the fields without re-checking

    // Left uninitialised on purpose: only the first type_len_ / corr_len_ bytes are ever read
    // (or copied), and zero-filling 576 bytes per envelope was a measurable part of a decode.
    char type_[max_type_length];
    char corr_[max_correlation_id_bytes];
    char upd_[max_update_id_length];
    char trace_[traceparent_length];
    std::uint8_t type_len_ = 0;
    std::uint8_t upd_len_ = 0;
    std::uint8_t trace_len_ = 0;
    std::uint16_t corr_len_ = 0;
    payload_format format_ = payload_format::json;
    const char* payload_ = "null";
    std::size_t payload_len_ = 4;
    const char* codec_name_ = nullptr;
    std::size_t codec_name_len_ = 0;
};

/// True when `type` is a valid envelope type: 1-64 characters of `[A-Za-z0-9_.:-]`.
bool is_valid_type(std::string_view type) noexcept;

/// True when `id` is a valid correlation id: valid UTF-8, 1-128 characters.
bool is_valid_correlation_id(std::string_view id) noexcept;

/// True when `id` is a valid update id: 1-64 characters of visible ASCII (`!` to `~`).
bool is_valid_update_id(std::string_view id) noexcept;

/// True when `value` is a W3C Trace Context `traceparent` of 55 characters:
/// `<version>-<trace-id>-<parent-id>-<flags>` with 2, 32, 16 and 2 lower-case hex digits,
/// the version not `ff`, and neither id all zeros.
bool is_valid_traceparent(std::string_view value) noexcept;

}  // namespace gatehouse::client
