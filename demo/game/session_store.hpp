#pragma once
// Where Click & Cook sessions are kept between commands: the interface the game service
// uses, so the same service runs on memory (in-process) or on Redis (its own process).

#include <optional>
#include <string>

#include "state.hpp"

namespace gatehouse_demo::game {

/// What `session_store::load` found.
enum class load_result : unsigned char {
    found,    ///< The player has a session; it is in `out`.
    missing,  ///< No session (or one that no longer parses): `out` is nullopt.
    failed,   ///< The store could not be asked (Redis unreachable): try again later.
};

/// One session per player id.
///
/// Thread safety: each implementation says.
class session_store {
public:
    virtual ~session_store() = default;
    session_store() = default;
    session_store(const session_store&) = delete;
    session_store& operator=(const session_store&) = delete;

    /// The session of `player_id`, into `out`.
    virtual load_result load(const std::string& player_id, std::optional<state>& out) = 0;
    /// Stores `s` as the session of `player_id`; false when the store could not be written.
    virtual bool save(const std::string& player_id, const state& s) = 0;
};

}  // namespace gatehouse_demo::game
