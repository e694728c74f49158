#include "redis_session_store.hpp"

namespace gatehouse_demo::game {

std::string session_key(const std::string& player_id) { return "demo:session:" + player_id; }

load_result redis_session_store::load(const std::string& player_id, std::optional<state>& out) {
    out.reset();
    const auto r = link_.command({"GET", session_key(player_id)});
    if (!r || r->is_error()) return load_result::failed;
    if (r->kind != gatehouse::redis_reply_kind::string) return load_result::missing;
    const auto j = nlohmann::json::parse(r->str, nullptr, /*allow_exceptions=*/false);
    state s;
    if (j.is_discarded() || !from_json(j, s)) return load_result::missing;
    out = s;
    return load_result::found;
}

bool redis_session_store::save(const std::string& player_id, const state& s) {
    const auto r = link_.command({"SET", session_key(player_id), to_json(s).dump()});
    return r && r->kind == gatehouse::redis_reply_kind::status;
}

}  // namespace gatehouse_demo::game
