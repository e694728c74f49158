#include "game_service.hpp"

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>

#include "rules.hpp"

namespace gatehouse_demo::game {
namespace {

using json = nlohmann::json;

// The payload as JSON; discarded when it cannot be read. Bots speak MessagePack, and a
// MessagePack payload reaches the bus as MessagePack bytes (codec msgpack): nlohmann reads
// those as well as JSON, so both give the same commands.
json decode_payload(const command& c) {
    if (c.payload.empty()) return nullptr;
    if (c.codec == "json") return json::parse(c.payload, nullptr, /*allow_exceptions=*/false);
    if (c.codec == "msgpack") {
        return json::from_msgpack(c.payload, /*strict=*/true, /*allow_exceptions=*/false);
    }
    return json(json::value_t::discarded);
}

std::string write_update(const command& c, const char* type, json payload) {
    json update = {{"player_id", c.player_id}, {"type", type}, {"payload", std::move(payload)}};
    if (!c.correlation_id.empty()) update["correlation_id"] = c.correlation_id;
    // Replace, not throw, should an id hold invalid UTF-8: one odd entry must not stop the game.
    return update.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_update(const command& c, error_code code, const std::string& message) {
    return write_update(c, "game.error",
                        {{"request", c.type}, {"code", code_name(code)}, {"message", message}});
}

}  // namespace

handle_result handle(session_store& store, const command& c, std::int64_t now_ms) {
    handle_result result;
    if (!is_game_command(c.type)) return result;
    result.what = handled::answered;
    const json payload = decode_payload(c);
    if (payload.is_discarded()) {
        result.update = error_update(c, error_code::invalid_payload,
                                     c.type + ": the payload is not JSON or MessagePack");
        return result;
    }
    std::optional<state> current;
    if (store.load(c.player_id, current) == load_result::failed) {
        result.what = handled::store_failed;
        return result;
    }
    if (current && !c.entry_id.empty() && !entry_after(c.entry_id, current->applied_entry)) {
        result.update =
            write_update(c, "game.state", {{"request", c.type}, {"state", to_json(*current)}});
        return result;
    }
    outcome out = apply(current, c.type, payload, now_ms);
    if (!out.ok()) {
        result.update = error_update(c, *out.error, out.message);
        return result;
    }
    if (!current || out.next != *current) {
        if (!c.entry_id.empty()) out.next.applied_entry = c.entry_id;
        if (!store.save(c.player_id, out.next)) {
            result.what = handled::store_failed;
            return result;
        }
    }
    json body = {{"request", c.type}, {"state", to_json(out.next)}};
    if (out.level_check) {
        body["level_check"] = {{"can_level_up", out.level_check->can_level_up},
                               {"xp_required", out.level_check->xp_required}};
    }
    result.update = write_update(c, "game.state", std::move(body));
    return result;
}

std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace gatehouse_demo::game
