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
    const auto applied = j.find("applied_entry");
    if (applied != j.end() && applied->is_string()) s.applied_entry = applied->get<std::string>();
    out = s;
    return load_result::found;
}

bool redis_session_store::save(const std::string& player_id, const state& s) {
    auto j = to_json(s);
    if (!s.applied_entry.empty()) j["applied_entry"] = s.applied_entry;
    const auto r = link_.command({"SET", session_key(player_id), j.dump()});
    return r && r->kind == gatehouse::redis_reply_kind::status;
}

}  // namespace gatehouse_demo::game
