#pragma once
// The Click & Cook rules: what each game command does to a session. Pure: no I/O, no clock
// (the caller passes the time), no globals, so every rule is unit-tested directly.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "state.hpp"

namespace gatehouse_demo::game {

/// Why a command was refused: the `code` of a game.error update.
enum class error_code : std::uint8_t {
    no_session,         ///< A command other than `session` before the player has one.
    invalid_payload,    ///< Not an object, a field of the wrong type, a count out of range.
    not_enough_dishes,  ///< `sell` of more dishes than the player has.
    not_enough_coins,   ///< `upgrade_buy` the player cannot afford.
    unknown_upgrade,    ///< `upgrade_buy` of something other than knife, stove, waiter.
    not_enough_xp,      ///< `level_up` below the level's xp requirement.
};

/// The wire name of `code` (`"no_session"`, ...).
std::string_view code_name(error_code code);

/// `level_check`'s answer, added to its game.state update.
struct level_check_result {
    bool can_level_up = false;
    std::int64_t xp_required = 0;
};

/// What one command did: the new state, or why it was refused (the state is then unchanged).
struct outcome {
    std::optional<error_code> error;
    std::string message;  ///< For a refusal: human text saying why.
    state next;           ///< The state after the command (unchanged on a refusal).
    std::optional<level_check_result> level_check;  ///< Only for `level_check`.

    bool ok() const { return !error; }
};

/// Longest stretch of time one `passive` credits: 8 hours, in seconds.
inline constexpr std::int64_t passive_cap_seconds = std::int64_t{8} * 3600;
/// `cook`'s largest count.
inline constexpr std::int64_t max_cook_count = 100;

/// True for the command types the game answers (`session`, `cook`, `sell`, `upgrade_buy`,
/// `level_check`, `level_up`, `passive`, `session_reset`); it ignores every other type.
bool is_game_command(std::string_view type);

/// Experience needed to leave `level`: 20 * level^2.
std::int64_t xp_required(std::int64_t level);

/// Cost of the next `name` upgrade when `owned` are owned: base * 2^owned (knife 10, stove
/// 25, waiter 50), saturating at INT64_MAX; nullopt for an unknown name.
std::optional<std::int64_t> upgrade_cost(std::string_view name, std::int64_t owned);

/// Applies one game command.
/// @param current the player's session, nullopt when there is none yet.
/// @param type a type for which `is_game_command` holds (any other is refused as
///        invalid_payload).
/// @param payload the command's payload; null means `{}`.
/// @param now_ms Unix milliseconds: the start of a fresh session's passive clock and the end
///        of `passive`'s crediting.
/// Rules: docs/examples/demo-game.md. `session` never changes an existing session and
/// creates a fresh one (revision 0) when there is none; every other successful command
/// increments `revision` (`session_reset` too: the fresh state it installs carries the old
/// revision + 1, so revisions never go back). Without a session, everything but `session`
/// is refused with no_session before its payload is looked at.
/// Thread safety: reentrant.
outcome apply(const std::optional<state>& current, std::string_view type,
              const nlohmann::json& payload, std::int64_t now_ms);

}  // namespace gatehouse_demo::game
