#include "gatehouse/update.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "client/json_reader.hpp"
#include "gatehouse/client/envelope.hpp"
#include "gatehouse/client/limits.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/update_log.hpp"

namespace gatehouse {
namespace {

// parse_update() reads the message in one pass with the client codec's strict JSON scanner:
// no DOM is built and the payload is never re-serialised, it is validated in place and kept
// as the text the service published. This runs once per published update, ahead of every
// delivery, so it is on the fan-out hot path.
using client::status;
using client::detail::json_reader;

// Collects a scanned string's unescaped bytes. The scanner is noexcept; running out of
// memory is remembered and turns into an invalid update instead of escaping.
struct string_appender {
    std::string& out;
    bool failed = false;

    void put(char c) noexcept {
        if (failed) return;
        try {
            out.push_back(c);
        } catch (...) {
            failed = true;
        }
    }
    void put(const unsigned char* p, std::size_t n) noexcept {
        if (failed) return;
        try {
            out.append(reinterpret_cast<const char*>(p), n);
        } catch (...) {
            failed = true;
        }
    }
};

// A top-level value as the routing rules need it. docs/protocol.md lets a missing correlation_id
// be null; every key is read the same way, so a service that serialises unset optional
// fields as null routes as if it had left them out.
enum class value_kind : std::uint8_t { absent, string, other };

struct scanned_value {
    value_kind kind = value_kind::absent;
    std::string text;  // the unescaped string, for kind string
};

enum class top_key : std::uint8_t {
    op,
    broadcast,
    connection_id,
    player_ids,
    player_id,
    room,
    type,
    correlation_id,
    payload,
    delivery,
    key,
    update_ids,
    traceparent,
    other,
};

top_key classify(std::string_view key) noexcept {
    if (key == "player_id") return top_key::player_id;
    if (key == "type") return top_key::type;
    if (key == "payload") return top_key::payload;
    if (key == "correlation_id") return top_key::correlation_id;
    if (key == "player_ids") return top_key::player_ids;
    if (key == "connection_id") return top_key::connection_id;
    if (key == "room") return top_key::room;
    if (key == "broadcast") return top_key::broadcast;
    if (key == "op") return top_key::op;
    if (key == "delivery") return top_key::delivery;
    if (key == "key") return top_key::key;
    if (key == "update_ids") return top_key::update_ids;
    if (key == "traceparent") return top_key::traceparent;
    return top_key::other;
}

// Everything of one message the rules look at, filled by scan_message().
struct scanned_message {
    scanned_value op, connection_id, player_id, room, type, correlation_id;
    scanned_value delivery, key;  // docs/protocol.md 6.6
    scanned_value traceparent;    // docs/protocol.md 6.8
    bool broadcast = false;       // `broadcast` is the literal true
    value_kind player_ids_kind = value_kind::absent;
    bool player_ids_valid = true;  // an array of non-empty strings
    std::vector<std::string> player_ids;
    std::string_view payload;  // the raw value; empty when absent
    std::vector<std::pair<std::string, std::string>> update_ids;
};

bool scan_string_into(json_reader& r, std::string& out) noexcept {
    string_appender sink{out};
    return r.scan_string(sink) == status::ok && !sink.failed;
}

// The value of a key whose rules want a string (the reader is at the value's first byte).
bool scan_string_value(json_reader& r, scanned_value& v) noexcept {
    if (r.peek() == '"') {
        v.kind = value_kind::string;
        return scan_string_into(r, v.text);
    }
    if (r.peek() == 'n') return r.scan_literal("null") == status::ok;  // absent
    v.kind = value_kind::other;
    return r.skip_value(1) == status::ok;
}

// `player_ids`: an array whose elements must each be a non-empty string to be usable.
bool scan_player_ids(json_reader& r, scanned_message& m) noexcept {
    if (r.peek() == 'n') return r.scan_literal("null") == status::ok;
    if (r.peek() != '[') {
        m.player_ids_kind = value_kind::other;
        return r.skip_value(1) == status::ok;
    }
    m.player_ids_kind = value_kind::string;  // an array: its elements decide validity
    r.advance();
    r.skip_ws();
    if (r.at_end()) return false;
    if (r.peek() == ']') {
        r.advance();
        m.player_ids_valid = false;  // an empty list names no one
        return true;
    }
    for (;;) {
        r.skip_ws();
        if (r.at_end()) return false;
        if (r.peek() == '"') {
            std::string id;
            if (!scan_string_into(r, id)) return false;
            if (id.empty()) m.player_ids_valid = false;
            try {
                m.player_ids.push_back(std::move(id));
            } catch (...) {
                return false;
            }
        } else {
            m.player_ids_valid = false;
            if (r.skip_value(2) != status::ok) return false;
        }
        r.skip_ws();
        if (r.at_end()) return false;
        if (r.peek() == ']') {
            r.advance();
            return true;
        }
        if (r.peek() != ',') return false;
        r.advance();
    }
}

// `update_ids` (docs/protocol.md 6.4, added by the update log): null, or an object of player ids
// to valid update ids; anything else makes the message malformed.
bool scan_update_ids(json_reader& r, scanned_message& m) noexcept {
    if (r.peek() == 'n') return r.scan_literal("null") == status::ok;
    if (r.peek() != '{') return false;
    r.advance();
    r.skip_ws();
    if (!r.at_end() && r.peek() == '}') {
        r.advance();
        return true;
    }
    for (;;) {
        std::pair<std::string, std::string> entry;
        if (r.at_end() || r.peek() != '"' || !scan_string_into(r, entry.first)) return false;
        if (r.expect(':') != status::ok) return false;
        r.skip_ws();
        if (r.at_end() || r.peek() != '"' || !scan_string_into(r, entry.second)) return false;
        if (entry.first.empty() || !valid_update_id(entry.second)) return false;
        try {
            m.update_ids.push_back(std::move(entry));
        } catch (...) {
            return false;
        }
        r.skip_ws();
        if (r.at_end()) return false;
        if (r.peek() == '}') {
            r.advance();
            return true;
        }
        if (r.peek() != ',') return false;
        r.advance();
        r.skip_ws();
    }
}

// One pass over the whole text: a JSON object, within the nesting bound (the object itself
// is the first level, exactly as for an envelope, so any payload accepted here can also be
// encoded for every client), with no top-level key given twice. A repeated key is refused
// as the client codecs refuse a repeated envelope field: one parser would keep the last,
// another the first, and a service must not be able to route differently depending on who
// reads its message.
bool scan_message(std::string_view text, scanned_message& m) noexcept {
    json_reader r(text);
    r.skip_ws();
    if (r.at_end() || r.peek() != '{') return false;
    r.advance();
    r.skip_ws();
    if (r.at_end()) return false;
    if (r.peek() == '}') {
        r.advance();
    } else {
        std::uint16_t seen = 0;  // one bit per known key
        std::vector<std::string> other_keys;
        for (;;) {
            if (r.at_end() || r.peek() != '"') return false;
            std::string key;
            if (!scan_string_into(r, key)) return false;
            if (r.expect(':') != status::ok) return false;
            r.skip_ws();
            if (r.at_end()) return false;
            const top_key k = classify(key);
            if (k == top_key::other) {
                for (const auto& earlier : other_keys) {
                    if (earlier == key) return false;
                }
                try {
                    other_keys.push_back(std::move(key));
                } catch (...) {
                    return false;
                }
            } else {
                const auto bit = static_cast<std::uint16_t>(1U << static_cast<unsigned>(k));
                if ((seen & bit) != 0) return false;
                seen = static_cast<std::uint16_t>(seen | bit);
            }
            bool ok = true;
            switch (k) {
                case top_key::op: ok = scan_string_value(r, m.op); break;
                case top_key::connection_id: ok = scan_string_value(r, m.connection_id); break;
                case top_key::player_id: ok = scan_string_value(r, m.player_id); break;
                case top_key::room: ok = scan_string_value(r, m.room); break;
                case top_key::type: ok = scan_string_value(r, m.type); break;
                case top_key::correlation_id: ok = scan_string_value(r, m.correlation_id); break;
                case top_key::delivery: ok = scan_string_value(r, m.delivery); break;
                case top_key::key: ok = scan_string_value(r, m.key); break;
                case top_key::player_ids: ok = scan_player_ids(r, m); break;
                case top_key::broadcast:
                    if (r.peek() == 't') {
                        ok = r.scan_literal("true") == status::ok;
                        m.broadcast = ok;
                    } else {
                        ok = r.skip_value(1) == status::ok;
                    }
                    break;
                case top_key::payload: {
                    const char* start = r.position();
                    ok = r.skip_value(1) == status::ok;
                    m.payload = {start, static_cast<std::size_t>(r.position() - start)};
                    break;
                }
                case top_key::update_ids: ok = scan_update_ids(r, m); break;
                case top_key::traceparent: ok = scan_string_value(r, m.traceparent); break;
                case top_key::other: ok = r.skip_value(1) == status::ok; break;
            }
            if (!ok) return false;
            r.skip_ws();
            if (r.at_end()) return false;
            if (r.peek() == '}') {
                r.advance();
                break;
            }
            if (r.peek() != ',') return false;
            r.advance();
            r.skip_ws();
        }
    }
    r.skip_ws();
    return r.at_end();
}

// The key that decides the shape must be a non-empty string.
bool take_id(scanned_value& v, std::string& out) {
    if (v.kind != value_kind::string || v.text.empty()) return false;
    out = std::move(v.text);
    return true;
}

std::error_code read_message(scanned_message& m, envelope& out) {
    if (m.type.kind != value_kind::string || !client::is_valid_type(m.type.text)) {
        return errc::invalid_update;
    }
    if (m.correlation_id.kind == value_kind::other) return errc::invalid_update;
    if (m.correlation_id.kind == value_kind::string) {
        if (!client::is_valid_correlation_id(m.correlation_id.text)) return errc::invalid_update;
        out.correlation_id = std::move(m.correlation_id.text);
    }
    // docs/protocol.md 6.8: a valid traceparent reaches the clients unchanged; anything else is
    // ignored, as on a command (v1 let a service send any extra key, so it cannot refuse).
    if (m.traceparent.kind == value_kind::string &&
        client::is_valid_traceparent(m.traceparent.text)) {
        out.traceparent = std::move(m.traceparent.text);
    }
    out.type = std::move(m.type.text);
    out.payload = m.payload.empty() ? std::string("null") : std::string(m.payload);
    out.format = payload_format::json;
    return {};
}

// The delivery class and its key (docs/protocol.md 6.6). A `key` beside another class is ignored.
std::error_code read_delivery(scanned_message& m, update& u) {
    if (m.delivery.kind == value_kind::absent) return {};
    if (m.delivery.kind != value_kind::string) return errc::invalid_update;
    const std::string& d = m.delivery.text;
    if (d == "droppable") {
        u.delivery = delivery_class::droppable;
    } else if (d == "latest") {
        if (m.key.kind != value_kind::string || m.key.text.empty() ||
            m.key.text.size() > max_delivery_key_bytes) {
            return errc::invalid_update;
        }
        u.delivery = delivery_class::latest;
        u.key = std::move(m.key.text);
    } else if (d != "reliable") {
        return errc::invalid_update;
    }
    return {};
}

// The routing rules of docs/protocol.md section 5, in the order docs/updates.md gives.
std::error_code route(scanned_message& m, update& u) {
    if (m.op.kind != value_kind::absent) {
        if (m.op.kind != value_kind::string) return errc::invalid_update;
        if (m.op.text == "join") {
            u.target = update_target::join;
        } else if (m.op.text == "leave") {
            u.target = update_target::leave;
        } else {
            return errc::invalid_update;
        }
        if (!take_id(m.player_id, u.player_id)) return errc::invalid_update;
        if (!take_id(m.room, u.room)) return errc::invalid_update;
        return {};  // type, payload and correlation_id mean nothing to a room operation
    }

    if (m.broadcast) {
        u.target = update_target::broadcast;
    } else if (m.connection_id.kind != value_kind::absent) {
        // A connection target without its player is refused rather than widened to the
        // next rule: delivering a one-connection message to a whole room would be a leak.
        u.target = update_target::connection;
        if (!take_id(m.connection_id, u.connection_id)) return errc::invalid_update;
        if (!take_id(m.player_id, u.player_id)) return errc::invalid_update;
    } else if (m.player_ids_kind != value_kind::absent) {
        u.target = update_target::players;
        if (m.player_ids_kind != value_kind::string || !m.player_ids_valid) {
            return errc::invalid_update;
        }
        u.player_ids = std::move(m.player_ids);
    } else if (m.player_id.kind != value_kind::absent) {
        u.target = update_target::player;
        if (!take_id(m.player_id, u.player_id)) return errc::invalid_update;
    } else if (m.room.kind != value_kind::absent) {
        u.target = update_target::room;
        if (!take_id(m.room, u.room)) return errc::invalid_update;
    } else {
        return errc::invalid_update;  // no target
    }
    if (const auto ec = read_delivery(m, u)) return ec;
    u.update_ids = std::move(m.update_ids);
    return read_message(m, u.message);
}

// A JSON payload that parse_update() would accept, as the value's text without surrounding
// space; empty when it has none (not a single valid value, or deeper than the nesting bound,
// counted as inside the message object, exactly as scan_message() counts it).
std::string_view publishable_json(std::string_view payload) noexcept {
    json_reader r(payload);
    r.skip_ws();
    if (r.at_end()) return {};
    const char* start = r.position();
    if (r.skip_value(1) != status::ok) return {};
    const char* stop = r.position();
    r.skip_ws();
    if (!r.at_end()) return {};
    return {start, static_cast<std::size_t>(stop - start)};
}

// The payload as to_json() writes it. A JSON payload goes out as it was given, byte for byte,
// so parse_update(to_json(u)) gives back the same payload and nothing a JSON library would
// normalise (escapes, number forms, an exponent beyond a double) is lost on the way. A
// MessagePack payload is written as its JSON equivalent; one with no JSON form (invalid text,
// too deep, MessagePack bin, opaque bytes) as null, rather than as something parse_update()
// would refuse.
std::string payload_text(const envelope& m) {
    switch (m.format) {
        case payload_format::json: {
            const auto text = publishable_json(m.payload);
            return text.empty() ? std::string("null") : std::string(text);
        }
        case payload_format::msgpack: {
            const auto v = nlohmann::json::from_msgpack(m.payload, true, false);
            if (v.is_discarded() || v.is_binary()) break;
            std::string text = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            if (publishable_json(text).empty()) break;  // nested deeper than an update may be
            return text;
        }
        case payload_format::bytes: break;
    }
    return "null";
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
    try {
        scanned_message scanned;
        if (!scan_message(text, scanned)) return errc::invalid_update;
        update parsed;
        if (const auto ec = route(scanned, parsed)) return ec;
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
    const bool has_message = u.target != update_target::join && u.target != update_target::leave;
    if (has_message) {
        j["type"] = u.message.type;
        if (!u.message.correlation_id.empty()) j["correlation_id"] = u.message.correlation_id;
        if (!u.message.traceparent.empty()) j["traceparent"] = u.message.traceparent;
        if (u.delivery == delivery_class::droppable) j["delivery"] = "droppable";
        if (u.delivery == delivery_class::latest) {
            j["delivery"] = "latest";
            j["key"] = u.key;
        }
        if (!u.update_ids.empty()) {
            auto& ids = j["update_ids"] = nlohmann::ordered_json::object();
            for (const auto& [player, id] : u.update_ids) ids[player] = id;
        }
    }
    // replace: strings an embedding server filled with invalid UTF-8 must not throw here.
    std::string out = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    if (has_message) {
        // The payload is spliced in as text rather than through the DOM: see payload_text().
        out.pop_back();  // the object's closing brace
        out += ",\"payload\":";
        out += payload_text(u.message);
        out += '}';
    }
    return out;
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
