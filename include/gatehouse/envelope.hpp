#pragma once
/// @file
/// `envelope`: one message of the wire protocol, owning its bytes, plus the metadata the
/// command bus records with a client's command.

#include <cstdint>
#include <string>

#include "gatehouse/client/envelope.hpp"

namespace gatehouse {

/// What an envelope's payload bytes hold (JSON text, one MessagePack value, or opaque bytes).
using client::payload_format;

/// Which kind of client sent a command: docs/protocol.md section 4's `client` field. `system` is
/// the gateway itself: its presence entries (docs/protocol.md 6.8).
enum class client_kind : std::uint8_t { player, bot, system };

/// Where a command came from. Filled by the gateway when it accepts a command, never by
/// codecs; the command bus writes it beside the envelope (docs/protocol.md section 4).
struct command_origin {
    std::string player_id;      ///< The authenticated player, `bot:NAME` for bots.
    std::string connection_id;  ///< The sending connection, `http:<request id>` over HTTP.
    client_kind client = client_kind::player;
    std::int64_t accepted_at_ms = 0;  ///< Acceptance time, Unix milliseconds.
    /// True when the gateway made up `correlation_id` (the client sent none). Such ids are
    /// unique, so a bus never de-duplicates on them (docs/protocol.md 6.5); only a client's own
    /// correlation id names a command it may send again.
    bool correlation_assigned = false;
};

/// An envelope that owns its bytes (docs/protocol.md section 3).
///
/// Codecs read and write `type`, `payload`, `format`, `payload_codec`, `correlation_id`,
/// `update_id` and `traceparent`; `origin` is the gateway's. Reusing one object for many decodes
/// keeps the strings' capacity, so steady-state decoding does not allocate.
///
/// Thread safety: a plain value; not synchronised.
struct envelope {
    /// 1-64 characters of `[A-Za-z0-9_.:-]`.
    std::string type;
    /// The payload bytes as they came, in `format`. Missing on the wire reads as null.
    std::string payload = "null";
    /// What `payload` holds.
    payload_format format = payload_format::json;
    /// For `payload_format::bytes`: what the bytes are (a Protobuf message name, say).
    std::string payload_codec;
    /// 1-128 characters; empty means absent.
    std::string correlation_id;
    /// The update id of a logged update (docs/protocol.md 6.4), 1-64 visible ASCII characters;
    /// empty means absent. Set by the gateway on updates; the built-in codecs never fill it
    /// from a client's frame (a client cannot forge one onto the bus).
    std::string update_id;
    /// A W3C `traceparent` (docs/protocol.md 6.8); empty means absent. The built-in codecs keep a
    /// client's well-formed one and drop a malformed one.
    std::string traceparent;
    /// Who sent it, for commands; filled by the gateway.
    command_origin origin;
};

}  // namespace gatehouse
