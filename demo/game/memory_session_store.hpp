#pragma once
// Sessions in a map, for the game running inside gatehouse-server --demo: they last as long
// as the process.

#include <mutex>
#include <string>
#include <unordered_map>

#include "session_store.hpp"

namespace gatehouse_demo::game {

/// A `session_store` in memory; never fails. Sessions are never evicted (a demo's handful of
/// players).
///
/// Thread safety: every member may be called from any thread concurrently.
class memory_session_store final : public session_store {
public:
    load_result load(const std::string& player_id, std::optional<state>& out) override;
    bool save(const std::string& player_id, const state& s) override;

private:
    std::mutex mutex_;
    std::unordered_map<std::string, state> sessions_;
};

}  // namespace gatehouse_demo::game
