#pragma once
// A Click & Cook session: the numbers one player's game is made of, and their JSON form (the
// `state` object of a game.state update, and what the Redis store keeps).

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace gatehouse_demo::game {

/// How many of each upgrade the player bought.
struct upgrade_counts {
    std::int64_t knife = 0;
    std::int64_t stove = 0;
    std::int64_t waiter = 0;
};

/// One player's session (docs/examples/demo-game.md, "State").
///
/// Thread safety: a plain value; not synchronised.
struct state {
    std::int64_t coins = 0;
    std::int64_t dishes = 0;
    std::int64_t level = 1;
    std::int64_t xp = 0;
    std::int64_t cook_power = 1;
    std::int64_t sell_price = 2;
    std::int64_t passive_rate = 0;  ///< Dishes per second, credited by `passive`.
    upgrade_counts upgrades;
    std::int64_t last_passive_ms = 0;  ///< Unix ms up to which passive time was credited.
    std::int64_t revision = 0;         ///< Counts the successful commands that changed it.
    /// The command-stream entry id of the last command applied (empty when the game runs
    /// in-process). Lets a game process that restarts and replays its pending entries skip
    /// the ones it applied before it died. Kept by the store, not part of the player's JSON,
    /// and not compared by `==`.
    std::string applied_entry;

    bool operator==(const state& o) const;
    bool operator!=(const state& o) const { return !(*this == o); }
};

/// A new player's session, its passive clock starting at `now_ms`.
state fresh_state(std::int64_t now_ms);

/// Whether stream entry id `a` ("ms-seq") comes after `b`; an empty or malformed id never does.
bool entry_after(const std::string& a, const std::string& b);

/// The JSON object of `s`, every field present (not `applied_entry`).
nlohmann::json to_json(const state& s);

/// Reads a state written by `to_json`: false (and `out` unchanged) unless `j` is an object
/// holding every field as a non-negative integer, with level >= 1. Unknown keys are ignored.
bool from_json(const nlohmann::json& j, state& out);

}  // namespace gatehouse_demo::game
