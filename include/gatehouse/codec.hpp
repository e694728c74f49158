#pragma once
/// @file
/// `codec`: the plug-in interface that turns WebSocket messages into envelopes and back.

#include <string>
#include <string_view>
#include <system_error>

#include "gatehouse/codec_error.hpp"  // so a codec's errors compare with client::status
#include "gatehouse/envelope.hpp"

namespace gatehouse {

/// The kind of WebSocket frame a codec's messages travel in.
enum class frame_type : unsigned char { text, binary };

/// Encodes and decodes whole envelopes in one wire format.
///
/// The built-in codecs (`make_json_codec()` and friends in builtin_codecs.hpp) cover
/// docs/protocol.md section 3; an embedding team adds its own by implementing this interface
/// and registering it by name in a `codec_registry`. Clients then select it with the
/// `Sec-WebSocket-Protocol` value `gatehouse.<name>` or `?codec=<name>`.
///
/// Errors: implementations report bad input through the returned `std::error_code` and
/// must not throw for it. Errors in `codec_category()` (from `client::status`) map onto
/// the protocol's `invalid_frame` / `invalid_envelope`; any other error is reported to the
/// client as `invalid_frame`.
///
/// Thread safety: `decode` and `encode` are const and are called concurrently from every
/// I/O thread, so an implementation keeps no unsynchronised mutable state.
class codec {
public:
    virtual ~codec() = default;

    /// The registry name: 1-32 characters of `[a-z0-9_.-]`, e.g. `"json"`.
    virtual std::string_view name() const noexcept = 0;

    /// The frame type this codec's messages use.
    virtual frame_type frame() const noexcept = 0;

    /// Decodes one message into `out` (every wire field is overwritten; `out.origin` is left
    /// alone). On error, `out.correlation_id` is the message's correlation id when it is
    /// known (the message could be read and held exactly one valid one), for the error reply
    /// docs/protocol.md asks for, and empty otherwise; the other wire fields are unspecified.
    virtual std::error_code decode(std::string_view bytes, envelope& out) const = 0;

    /// Encodes `in` into `out`, replacing its contents. A payload in another format is
    /// converted when the wire format needs it (JSON <-> MessagePack); one that cannot be
    /// carried gives `errc::payload_not_representable`.
    virtual std::error_code encode(const envelope& in, std::string& out) const = 0;
};

}  // namespace gatehouse
