#pragma once
/// @file
/// `update_log`: the per-player log of updates that lets a client that reconnects, to any
/// instance, get what it missed (docs/protocol.md section 6.4).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace gatehouse {

/// The update ids one logged publish gave: `{player_id, update_id}` per player it addressed,
/// in the order of the message's players. Empty for a shape that is not logged.
using update_ids = std::vector<std::pair<std::string, std::string>>;

/// Called once per `update_log::publish_logged()`: the ids, or an error
/// (`errc::invalid_update` for a malformed message, `errc::bus_unavailable` when the log
/// could not be written; nothing was published then).
using logged_publish_handler = std::function<void(std::error_code error, update_ids ids)>;

/// One update of a player's log, as a replay hands it back.
struct logged_update {
    std::string update_id;  ///< `<ms>-<seq>`, increasing in publish order for the player.
    std::string message;    ///< The published message (docs/protocol.md section 5 JSON) as given.
};

/// What `update_log::read_after()` found.
enum class log_read_status : std::uint8_t {
    replay,       ///< `updates` holds everything logged for the player after the id (maybe none).
    gap,          ///< The log no longer holds the update after the id, or never issued it, or
                  ///< what came after it is more than the read's byte budget.
    unavailable,  ///< The log could not be read (Redis away); the gateway answers `gap`.
};

/// The answer of `update_log::read_after()`.
struct log_read_result {
    log_read_status status = log_read_status::gap;
    std::vector<logged_update> updates;  ///< Oldest first; only for `replay`.
};

/// Called once per `update_log::read_after()`.
using log_read_handler = std::function<void(log_read_result result)>;

/// A per-player update log (docs/protocol.md 6.4): the player-addressed shapes of section 5
/// (`player_id` without `connection_id`, and `player_ids`) published through it are appended
/// to each addressed player's capped log under a new update id, and published to every
/// gateway's `pubsub_listener` in the same atomic step, as the section 5 message with one
/// key added: `"update_ids":{"PLAYER":"ID",...}`. Other shapes are published unlogged.
///
/// Update ids are `<ms>-<seq>` (two decimal numbers), strictly increasing per player and
/// compared numerically (`compare_update_ids`); they never repeat, so an id from a lost log
/// (Redis restarted empty, a process restarted without Redis) is simply not found.
///
/// Thread safety: every member may be called from any thread concurrently. The handlers run
/// on the calling thread or on a thread of the log's choosing and must not block.
class update_log {
public:
    virtual ~update_log() = default;

    /// Publishes `message` through the log; `done` is called exactly once, also when the log
    /// is being destroyed.
    virtual void publish_logged(std::string message, logged_publish_handler done) = 0;

    /// The updates logged for `player_id` after `after_id`. `replay` only when the update
    /// with id `after_id` is still in the log (then everything after it is, too), has not
    /// outlived the log's time to live, and the messages after it take at most `max_bytes`
    /// (their text, summed); otherwise `gap`. The budget bounds what the log copies and
    /// sends: a replay that could not be delivered anyway is not read whole. `done` is
    /// called exactly once.
    virtual void read_after(std::string player_id, std::string after_id, std::size_t max_bytes,
                            log_read_handler done) = 0;
};

/// Orders two update ids: negative, zero or positive as `a` is before, equal to or after
/// `b`. A malformed id (not `<ms>-<seq>`) sorts before every well-formed one.
int compare_update_ids(std::string_view a, std::string_view b) noexcept;

/// True when `id` is `<ms>-<seq>`: two decimal numbers that fit in 64 bits, joined by `-`.
bool valid_update_id(std::string_view id) noexcept;

}  // namespace gatehouse
