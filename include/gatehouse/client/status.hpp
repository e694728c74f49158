#pragma once
/// @file
/// `status`: the result of every client codec operation.

#include <cstdint>

namespace gatehouse::client {

/// What a decode or encode came to. `ok` is zero; every other value says what was wrong.
///
/// Decode failures fall in two classes that docs/protocol.md section 3 names: the bytes are not
/// a well-formed frame (`invalid_frame`), or they are well-formed but not a valid envelope
/// (`invalid_envelope`). `protocol_code()` tells which.
enum class status : std::uint8_t {
    ok = 0,

    // --- invalid_frame: the bytes cannot be decoded -------------------------------------
    truncated = 1,        ///< The input ends inside a value (an empty frame included).
    syntax_error = 2,     ///< Not valid JSON / MessagePack / Protobuf.
    invalid_utf8 = 3,     ///< Text that is not valid UTF-8 (or a lone UTF-16 surrogate escape).
    too_deep = 4,         ///< Maps and arrays nested deeper than `max_nesting_depth`.
    trailing_bytes = 5,   ///< Bytes after the single top-level value.
    invalid_payload = 6,  ///< Protobuf: payload bytes that are not what `payload_codec` names.

    // --- invalid_envelope: decodable, but not an envelope --------------------------------
    not_a_map = 20,               ///< The top-level value is not a map / object.
    missing_type = 21,            ///< No `type`, or an empty one.
    invalid_type = 22,            ///< `type` not a string, over 64 chars or outside the charset.
    invalid_correlation_id = 23,  ///< Not a string or null, empty, or over 128 characters.
    duplicate_field = 24,         ///< `type`, `payload` or `correlation_id` given twice.
    invalid_update_id = 25,       ///< Setters only: not 1-64 characters of visible ASCII.
    invalid_traceparent = 26,     ///< Setters only: not a W3C `traceparent` (55 characters).

    // --- encode --------------------------------------------------------------------------
    buffer_too_small = 40,         ///< The output did not fit; the result says how much is needed.
    payload_format_mismatch = 41,  ///< The payload's format cannot travel in this wire format.
    invalid_argument = 42,         ///< An unknown `wire_format` or `payload_format` value.
};

/// A short English description of `s`, suitable for an error frame's `message`.
/// Never null; thread-safe; the string is static.
const char* describe(status s) noexcept;

/// The docs/protocol.md error code for a decode failure: `"invalid_frame"` or `"invalid_envelope"`;
/// null for `ok` and for encode-side statuses.
const char* protocol_code(status s) noexcept;

/// True for the statuses whose protocol code is `invalid_frame`.
constexpr bool is_frame_error(status s) noexcept {
    return s != status::ok && static_cast<std::uint8_t>(s) < 20;
}

/// True for the statuses whose protocol code is `invalid_envelope`.
constexpr bool is_envelope_error(status s) noexcept {
    return static_cast<std::uint8_t>(s) >= 20 && static_cast<std::uint8_t>(s) < 40;
}

}  // namespace gatehouse::client
