#pragma once
// Sessions in Redis, one JSON string per player under `demo:session:{player_id}`, so that a
// restarted game process, a reconnecting client and a second gateway all see the same one.

#include <string>

#include "redis_link.hpp"
#include "session_store.hpp"

namespace gatehouse_demo::game {

/// The key of `player_id`'s session: `demo:session:{player_id}`.
std::string session_key(const std::string& player_id);

/// A `session_store` on Redis (GET / SET of the state's JSON, plus `applied_entry` when set;
/// no expiry). A value that does
/// not parse as a state loads as missing, so `session` replaces it with a fresh one.
///
/// Thread safety: none, like the `redis_link` it uses. Lifetime: `link` outlives the store.
class redis_session_store final : public session_store {
public:
    explicit redis_session_store(redis_link& link) : link_(link) {}

    /// `failed` when the link is down or broke (it is then dropped) or Redis answered an error.
    load_result load(const std::string& player_id, std::optional<state>& out) override;
    bool save(const std::string& player_id, const state& s) override;

private:
    redis_link& link_;
};

}  // namespace gatehouse_demo::game
