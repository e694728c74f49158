#pragma once
/// @file
/// Encoding and decoding envelopes in the three wire formats of docs/protocol.md section 3.
///
/// This header and the ones it includes are all a game client needs: no exceptions, no
/// RTTI, no allocation, no third-party library. Build the sources under `src/client/`
/// into your plugin, or link `gatehouse::client_codec`.
///
/// Thread safety: every function here is reentrant and keeps no state; concurrent calls on
/// distinct envelopes and buffers are safe.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gatehouse/client/envelope.hpp"
#include "gatehouse/client/status.hpp"

namespace gatehouse::client {

/// A wire format: how a whole envelope is laid out in one WebSocket message.
enum class wire_format : std::uint8_t {
    json = 0,      ///< A JSON object in a text frame.
    msgpack = 1,   ///< A MessagePack map in a binary frame.
    protobuf = 2,  ///< A `gatehouse.v1.Envelope` message (proto/gatehouse.proto) in a binary frame.
};

/// The format's name as docs/protocol.md spells it: `"json"`, `"msgpack"`, `"protobuf"`.
std::string_view name_of(wire_format format) noexcept;

/// Looks a format up by name. Returns false (and leaves `out` alone) for an unknown name.
bool parse_wire_format(std::string_view name, wire_format& out) noexcept;

/// True when the format travels in WebSocket text frames (JSON), false for binary.
constexpr bool is_text(wire_format format) noexcept { return format == wire_format::json; }

/// Decodes one frame into `out`.
///
/// The whole frame is validated (syntax, UTF-8 of JSON text, nesting depth, trailing bytes)
/// before `ok` is returned, so a payload that passes is well-formed in its format. Unknown
/// fields are ignored. `out`'s payload points into `frame` afterwards.
///
/// On failure, `out.correlation_id()` is the frame's correlation id when it is known (the
/// frame could be read and held exactly one valid `correlation_id`), so that the error reply
/// can name it as docs/protocol.md asks; otherwise it is empty. `out.update_id()` and
/// `out.traceparent()` are then empty; `out`'s other fields are unspecified (but valid).
///
/// `update_id` and `traceparent` are optional extras (docs/protocol.md 6): one that is not a
/// string, not valid (`is_valid_update_id`, `is_valid_traceparent`), or given twice in a
/// JSON or MessagePack map is dropped (reads as absent) and never makes the envelope
/// invalid. In Protobuf, as for every field, the last occurrence counts, and like every
/// proto3 string it must be valid UTF-8 (else `invalid_utf8`, as libprotobuf refuses it).
status decode(wire_format format, std::string_view frame, envelope& out) noexcept;

/// The outcome of `encode()`.
struct encode_result {
    status code;       ///< `ok`, `buffer_too_small`, or why the envelope cannot be encoded.
    std::size_t size;  ///< Bytes written; with `buffer_too_small`, the bytes needed.
};

/// Encodes `in` into `out[0, capacity)`.
///
/// The payload must already be in a format the wire format carries as is: JSON text for
/// `json`, one MessagePack value for `msgpack`, anything for `protobuf` (its `payload_codec`
/// field names it). Otherwise `payload_format_mismatch`; a payload that is not valid in its
/// stated format gives `invalid_payload`. An envelope with no type gives `missing_type`.
///
/// Call with `capacity` 0 to learn the size. Nothing past `capacity` is written.
encode_result encode(wire_format format, const envelope& in, char* out,
                     std::size_t capacity) noexcept;

/// Checks that `bytes` is exactly one well-formed value of `format` (JSON text validated
/// for UTF-8 too), nested at most `max_nesting_depth - 1` deep. `payload_format::bytes`
/// is always valid.
status validate_payload(payload_format format, std::string_view bytes) noexcept;

}  // namespace gatehouse::client
