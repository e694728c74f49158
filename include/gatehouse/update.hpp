#pragma once
/// @file
/// `update`: one message a service publishes for the gateway to route to clients
/// (docs/protocol.md section 5), parsed from and written as the JSON that travels on the bus.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "gatehouse/envelope.hpp"

namespace gatehouse {

/// Who an update is for, or which room operation it is.
enum class update_target : std::uint8_t {
    player,      ///< `{"player_id", ...}`: every connection of that player.
    connection,  ///< `{"player_id", "connection_id", ...}`: that one connection.
    players,     ///< `{"player_ids": [...], ...}`: every connection of each player.
    room,        ///< `{"room", ...}`: every connection in the room.
    broadcast,   ///< `{"broadcast": true, ...}`: every connection.
    join,        ///< `{"op": "join", "player_id", "room"}`.
    leave,       ///< `{"op": "leave", "player_id", "room"}`.
};

/// What the gateway does with an update for a connection that does not keep up
/// (docs/protocol.md 6.6): the update's `"delivery"` key.
enum class delivery_class : std::uint8_t {
    reliable,   ///< The default: queued; past the hard bound the connection is closed (4008).
    droppable,  ///< Dropped (and counted) for a connection past its send buffer.
    latest,     ///< Past the send buffer, replaces the queued update with the same `key`.
};

/// The longest `key` of a `latest` update, in bytes.
inline constexpr std::size_t max_delivery_key_bytes = 256;

/// A parsed update message.
///
/// Thread safety: a plain value; not synchronised.
struct update {
    update_target target = update_target::player;
    std::string player_id;                ///< player, connection, join, leave.
    std::string connection_id;            ///< connection.
    std::vector<std::string> player_ids;  ///< players.
    std::string room;                     ///< room, join, leave.
    /// `{player_id, update_id}` from the `update_ids` object the update log adds to a logged
    /// message (docs/protocol.md 6.4); empty for an unlogged one.
    std::vector<std::pair<std::string, std::string>> update_ids;
    /// What the clients receive: `type`, `payload` (JSON text), `correlation_id` and
    /// `traceparent` (docs/protocol.md 6.8; each empty when absent). Unused for join and leave.
    envelope message;
    /// Routing keys of docs/protocol.md 6.6, never sent to clients; unused for join and leave.
    delivery_class delivery = delivery_class::reliable;
    std::string key;  ///< latest: 1-`max_delivery_key_bytes` bytes; empty otherwise.
};

/// Parses one published update message into `out`.
///
/// The shape is decided in this order: `op` (join/leave; any other value is malformed),
/// `broadcast: true`, `connection_id` (with `player_id`), `player_ids`, `player_id`,
/// `room`; a key set to `null` counts as absent. The key that decides the shape must be a
/// non-empty string (`player_ids`: a non-empty array of them); the others are ignored.
/// `message.payload` is the payload's JSON text exactly as published, validated
/// (`"null"` when missing). A `traceparent` that is a valid W3C one
/// (`client::is_valid_traceparent`) goes into `message.traceparent`; any other is ignored.
/// Errors: `errc::invalid_update` when the message is not a JSON object, has no valid
/// target, a missing `type` or one that is not a valid envelope type (join/leave take
/// none), a `correlation_id` that is not a valid one, a `delivery` that is not one of
/// `"reliable"`, `"droppable"`, `"latest"` (or null), a `latest` update without a `key` of
/// 1-`max_delivery_key_bytes` bytes, an unknown `op`, a top-level key given twice, an
/// `update_ids` that is not an object of valid update ids (`valid_update_id`), or nesting
/// deeper than `client::max_nesting_depth`; `out` is then unchanged.
/// docs/updates.md has every rule, with examples. Never throws.
/// Thread safety: reentrant.
std::error_code parse_update(std::string_view json, update& out);

/// The JSON a service publishes for `u`: the inverse of `parse_update()`. A JSON payload is
/// written byte for byte as given (surrounding space trimmed), so `parse_update(to_json(u))`
/// gives back the same payload; a MessagePack payload as its JSON equivalent; a payload with
/// no JSON form (invalid JSON text, too deep, opaque bytes) as `null`.
/// Thread safety: reentrant.
std::string to_json(const update& u);

/// Shorthands for building updates in an embedding server; `payload_json` is JSON text (empty
/// means `null`). They do not validate: `deliver()` counts an unencodable message as an
/// encode failure, `parse_update(to_json(u))` refuses an invalid one.
update update_for_player(std::string player_id, std::string type, std::string payload_json,
                         std::string correlation_id = {});
update update_for_connection(std::string player_id, std::string connection_id, std::string type,
                             std::string payload_json, std::string correlation_id = {});
update update_for_players(std::vector<std::string> player_ids, std::string type,
                          std::string payload_json, std::string correlation_id = {});
update update_for_room(std::string room, std::string type, std::string payload_json,
                       std::string correlation_id = {});
update update_for_everyone(std::string type, std::string payload_json,
                           std::string correlation_id = {});
update room_join(std::string player_id, std::string room);
update room_leave(std::string player_id, std::string room);

}  // namespace gatehouse
