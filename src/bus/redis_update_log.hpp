#pragma once
// The Redis side of the update log (docs/protocol.md 6.4) and of idempotent commands (6.5): the
// text of the `gatehouse` function library the command producer loads at every connect, the
// FCALLs that use it, and what their replies mean. Kept apart from the producer so that the Lua and
// its reply shapes are read in one place.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include "gatehouse/update_log.hpp"
#include "redis/reply.hpp"

namespace gatehouse::detail::redis {

/// The library (`#!lua name=gatehouse`) with the log's size and time to live baked in: what
/// `FUNCTION LOAD REPLACE` is given. Defines `gatehouse_publish`, `gatehouse_read` and
/// `gatehouse_append` (`FCALL gatehouse_append 1 <stream> <window s> <maxlen> <gateway_id>
/// (<pair> <extra> <8 field values> [name value]...)...`: one reply per command, the entry id
/// as a bulk string, or as a status reply for a duplicate, the id of its first append; see
/// the Lua's comment).
std::string update_log_library(std::size_t log_size, std::chrono::seconds log_ttl);

/// The key of a player's log: `<channel>:log:<player_id>`.
std::string update_log_key(std::string_view channel, std::string_view player_id);

/// Appends `FCALL gatehouse_publish 0 <channel> <message>` in RESP form.
void format_logged_publish(std::string& out, std::string_view channel, std::string_view message);
/// The entries `gatehouse_read` takes per XRANGE: a replay is read in pages of this many.
inline constexpr std::size_t log_read_page = 100;

/// Appends `FCALL_RO gatehouse_read 1 <log key> <after_id> <max_bytes> <log_read_page>` in
/// RESP form.
void format_log_read(std::string& out, std::string_view channel, std::string_view player_id,
                     std::string_view after_id, std::size_t max_bytes);

/// Reads `gatehouse_publish`'s reply: the ids (a flat array `player, id, ...`), or
/// `errc::invalid_update` for its `invalid_update` error, `errc::bus_unavailable` for any
/// other error or shape.
std::error_code parse_logged_publish(const reply& r, update_ids& out);

/// Reads `gatehouse_read`'s reply: `gap`, or the entries after the id as `[id, message]`
/// arrays; anything else (an error: the library is not loaded) is `unavailable`.
log_read_result parse_log_read(const reply& r);

}  // namespace gatehouse::detail::redis
