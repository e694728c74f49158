#include "memory_session_store.hpp"

namespace gatehouse_demo::game {

load_result memory_session_store::load(const std::string& player_id, std::optional<state>& out) {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto it = sessions_.find(player_id);
    if (it == sessions_.end()) {
        out.reset();
        return load_result::missing;
    }
    out = it->second;
    return load_result::found;
}

bool memory_session_store::save(const std::string& player_id, const state& s) {
    const std::lock_guard<std::mutex> lock(mutex_);
    sessions_[player_id] = s;
    return true;
}

}  // namespace gatehouse_demo::game
