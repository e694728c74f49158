#pragma once
// One command through the game: decode its payload, load the player's session, apply the
// rules, save, and write the update to publish. Both ways of running the game (inside
// gatehouse-server, and as its own process on Redis) go through this.

#include <cstdint>
#include <string>

#include "session_store.hpp"

namespace gatehouse_demo::game {

/// A command as the bus carries it (docs/protocol.md section 4).
struct command {
    std::string type;
    std::string player_id;
    std::string correlation_id;  ///< Empty when absent.
    std::string codec = "json";  ///< `json`, `msgpack` or `protobuf`: what `payload` holds.
    std::string payload;         ///< Empty means no payload (`{}`).
    /// The command stream's entry id ("ms-seq"); empty when the command did not come from a
    /// stream (the in-process game).
    std::string entry_id;
};

/// What `handle` did with a command.
enum class handled : unsigned char {
    ignored,       ///< Not a game command: nothing to publish.
    answered,      ///< `update` holds the game.state or game.error update to publish.
    store_failed,  ///< The session store failed: nothing was changed; try again later.
};

struct handle_result {
    handled what = handled::ignored;
    std::string update;  ///< docs/protocol.md section 5 JSON, for the player (`answered` only).
};

/// Runs `c` through the rules against `store` at time `now_ms` (Unix ms). A payload that does
/// not decode (bad JSON or MessagePack, or protobuf bytes, which the game does not read) is
/// answered with invalid_payload. The session is saved before the update is returned, so a
/// published state is always a stored one. A command whose `entry_id` is not after the
/// session's `applied_entry` was applied before (a game that died between saving and
/// acknowledging replays it): it is answered with the session as it is, not applied again.
/// Thread safety: as safe as `store`; commands of one player must be handled one at a time.
handle_result handle(session_store& store, const command& c, std::int64_t now_ms);

/// Unix milliseconds now.
std::int64_t unix_now_ms();

}  // namespace gatehouse_demo::game
