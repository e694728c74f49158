#include "gatehouse/update.hpp"

#include <cstddef>
#include <exception>
#include <nlohmann/json.hpp>
#include <utility>

#include "codec/json_depth.hpp"
#include "gatehouse/client/envelope.hpp"
#include "gatehouse/client/limits.hpp"
#include "gatehouse/errc.hpp"

namespace gatehouse {
namespace {

using json = nlohmann::json;

// Nesting is bounded before nlohmann builds anything (codec/json_depth.hpp). The update object
// counts as the first level, exactly as an envelope does for the client codecs, so any payload
// accepted here can also be encoded for every client.
using detail::json_within_depth;

// PROTOCOL.md lets a missing correlation_id be null; every key is read the same way, so a
// service that serialises unset optional fields as null routes as if it had left them out.
const json* find_key(const json& object, const char* key) {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return nullptr;
    return &*it;
}

bool read_id(const json* value, std::string& out) {
    if (value == nullptr || !value->is_string()) return false;
    const auto& s = value->get_ref<const std::string&>();
    if (s.empty()) return false;
    out = s;
    return true;
}

std::error_code read_message(const json& object, envelope& out) {
    const json* type = find_key(object, "type");
    if (type == nullptr || !type->is_string()) return errc::invalid_update;
    const auto& type_text = type->get_ref<const std::string&>();
    if (!client::is_valid_type(type_text)) return errc::invalid_update;

    const json* correlation = find_key(object, "correlation_id");
    if (correlation != nullptr) {
        if (!correlation->is_string()) return errc::invalid_update;
        if (!client::is_valid_correlation_id(correlation->get_ref<const std::string&>())) {
            return errc::invalid_update;
        }
        out.correlation_id = correlation->get_ref<const std::string&>();
    }
    out.type = type_text;
    const json* payload = find_key(object, "payload");
    out.payload = payload == nullptr ? std::string("null") : payload->dump();
    out.format = payload_format::json;
    return {};
}

std::error_code parse_object(const json& object, update& u) {
    if (const json* op = find_key(object, "op")) {
        if (!op->is_string()) return errc::invalid_update;
        const auto& name = op->get_ref<const std::string&>();
        if (name == "join") {
            u.target = update_target::join;
        } else if (name == "leave") {
            u.target = update_target::leave;
        } else {
            return errc::invalid_update;
        }
        if (!read_id(find_key(object, "player_id"), u.player_id)) return errc::invalid_update;
        if (!read_id(find_key(object, "room"), u.room)) return errc::invalid_update;
        return {};  // type, payload and correlation_id mean nothing to a room operation
    }

    const json* broadcast = find_key(object, "broadcast");
    if (broadcast != nullptr && broadcast->is_boolean() && broadcast->get<bool>()) {
        u.target = update_target::broadcast;
    } else if (const json* connection = find_key(object, "connection_id")) {
        // A connection target without its player is refused rather than widened to the
        // next rule: delivering a one-connection message to a whole room would be a leak.
        u.target = update_target::connection;
        if (!read_id(connection, u.connection_id)) return errc::invalid_update;
        if (!read_id(find_key(object, "player_id"), u.player_id)) return errc::invalid_update;
    } else if (const json* players = find_key(object, "player_ids")) {
        u.target = update_target::players;
        if (!players->is_array() || players->empty()) return errc::invalid_update;
        u.player_ids.reserve(players->size());
        for (const auto& item : *players) {
            std::string id;
            if (!read_id(&item, id)) return errc::invalid_update;
            u.player_ids.push_back(std::move(id));
        }
    } else if (const json* player = find_key(object, "player_id")) {
        u.target = update_target::player;
        if (!read_id(player, u.player_id)) return errc::invalid_update;
    } else if (const json* room = find_key(object, "room")) {
        u.target = update_target::room;
        if (!read_id(room, u.room)) return errc::invalid_update;
    } else {
        return errc::invalid_update;  // no target
    }
    return read_message(object, u.message);
}

// The payload as a JSON value for to_json(). A payload with no JSON form (not a valid value,
// deeper than parse_update() would accept, MessagePack bin, opaque bytes) is written as null
// rather than as something parse_update() would refuse.
nlohmann::ordered_json payload_value(const envelope& m) {
    using ordered = nlohmann::ordered_json;
    switch (m.format) {
        case payload_format::json: {
            if (!json_within_depth(m.payload, client::max_nesting_depth - 1)) return nullptr;
            ordered v = ordered::parse(m.payload, nullptr, false);
            if (v.is_discarded()) return nullptr;
            return v;
        }
        case payload_format::msgpack: {
            ordered v = ordered::from_msgpack(m.payload, true, false);
            if (v.is_discarded() || v.is_binary()) return nullptr;
            return v;
        }
        case payload_format::bytes: break;
    }
    return nullptr;
}

update message_update(update_target target, std::string type, std::string payload_json,
                      std::string correlation_id) {
    update u;
    u.target = target;
    u.message.type = std::move(type);
    u.message.payload = payload_json.empty() ? std::string("null") : std::move(payload_json);
    u.message.format = payload_format::json;
    u.message.correlation_id = std::move(correlation_id);
    return u;
}

}  // namespace

std::error_code parse_update(std::string_view text, update& out) {
    if (!json_within_depth(text, client::max_nesting_depth)) return errc::invalid_update;
    try {
        // Top-level keys given twice are refused, as the client codecs refuse a repeated
        // envelope field: nlohmann would keep the last one, another parser the first, and a
        // service must not be able to route differently depending on who reads its message.
        std::vector<std::string> keys;
        bool duplicate = false;
        const json::parser_callback_t note_keys = [&](int depth, json::parse_event_t event,
                                                      json& parsed) {
            if (depth == 1 && event == json::parse_event_t::key && !duplicate) {
                const auto& key = parsed.get_ref<const std::string&>();
                for (const auto& seen : keys) {
                    if (seen == key) duplicate = true;
                }
                keys.push_back(key);
            }
            return true;
        };
        const json object = json::parse(text, note_keys, false);
        if (object.is_discarded() || !object.is_object() || duplicate) {
            return errc::invalid_update;
        }
        update parsed;
        if (const auto ec = parse_object(object, parsed)) return ec;
        out = std::move(parsed);
        return {};
    } catch (const std::exception&) {
        // Out of memory on an enormous message: refuse it like any other bad input.
        return errc::invalid_update;
    }
}

std::string to_json(const update& u) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    switch (u.target) {
        case update_target::join:
        case update_target::leave:
            j["op"] = u.target == update_target::join ? "join" : "leave";
            j["player_id"] = u.player_id;
            j["room"] = u.room;
            break;
        case update_target::player: j["player_id"] = u.player_id; break;
        case update_target::connection:
            j["player_id"] = u.player_id;
            j["connection_id"] = u.connection_id;
            break;
        case update_target::players: j["player_ids"] = u.player_ids; break;
        case update_target::room: j["room"] = u.room; break;
        case update_target::broadcast: j["broadcast"] = true; break;
    }
    if (u.target != update_target::join && u.target != update_target::leave) {
        j["type"] = u.message.type;
        j["payload"] = payload_value(u.message);
        if (!u.message.correlation_id.empty()) j["correlation_id"] = u.message.correlation_id;
    }
    // replace: strings an embedding server filled with invalid UTF-8 must not throw here.
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

update update_for_player(std::string player_id, std::string type, std::string payload_json,
                         std::string correlation_id) {
    update u = message_update(update_target::player, std::move(type), std::move(payload_json),
                              std::move(correlation_id));
    u.player_id = std::move(player_id);
    return u;
}

update update_for_connection(std::string player_id, std::string connection_id, std::string type,
                             std::string payload_json, std::string correlation_id) {
    update u = message_update(update_target::connection, std::move(type), std::move(payload_json),
                              std::move(correlation_id));
    u.player_id = std::move(player_id);
    u.connection_id = std::move(connection_id);
    return u;
}

update update_for_players(std::vector<std::string> player_ids, std::string type,
                          std::string payload_json, std::string correlation_id) {
    update u = message_update(update_target::players, std::move(type), std::move(payload_json),
                              std::move(correlation_id));
    u.player_ids = std::move(player_ids);
    return u;
}

update update_for_room(std::string room, std::string type, std::string payload_json,
                       std::string correlation_id) {
    update u = message_update(update_target::room, std::move(type), std::move(payload_json),
                              std::move(correlation_id));
    u.room = std::move(room);
    return u;
}

update update_for_everyone(std::string type, std::string payload_json, std::string correlation_id) {
    return message_update(update_target::broadcast, std::move(type), std::move(payload_json),
                          std::move(correlation_id));
}

update room_join(std::string player_id, std::string room) {
    update u;
    u.target = update_target::join;
    u.player_id = std::move(player_id);
    u.room = std::move(room);
    return u;
}

update room_leave(std::string player_id, std::string room) {
    update u;
    u.target = update_target::leave;
    u.player_id = std::move(player_id);
    u.room = std::move(room);
    return u;
}

}  // namespace gatehouse
