#include "gatehouse/update.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/errc.hpp"

using gatehouse::update;
using gatehouse::update_target;
using nlohmann::json;

namespace {

update parse_ok(const std::string& text) {
    update u;
    const auto ec = gatehouse::parse_update(text, u);
    INFO(text);
    REQUIRE_FALSE(ec);
    return u;
}

bool malformed(const std::string& text) {
    update u = gatehouse::update_for_player("sentinel", "t", "1");
    const auto ec = gatehouse::parse_update(text, u);
    if (!ec) return false;
    // A refused message leaves the output alone.
    CHECK(u.player_id == "sentinel");
    CHECK(u.target == update_target::player);
    return ec == gatehouse::errc::invalid_update;
}

std::string nested_arrays(std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
}

void check_same(const update& a, const update& b) {
    CHECK(a.target == b.target);
    CHECK(a.player_id == b.player_id);
    CHECK(a.connection_id == b.connection_id);
    CHECK(a.player_ids == b.player_ids);
    CHECK(a.room == b.room);
    CHECK(a.message.type == b.message.type);
    CHECK(a.message.payload == b.message.payload);
    CHECK(a.message.correlation_id == b.message.correlation_id);
    CHECK(a.message.format == b.message.format);
}

}  // namespace

TEST_CASE("update: every shape parses", "[update]") {
    SECTION("player") {
        const update u = parse_ok(
            R"({"player_id":"p1","type":"score","payload":{"a":[1, 2]},"correlation_id":"c-1"})");
        CHECK(u.target == update_target::player);
        CHECK(u.player_id == "p1");
        CHECK(u.message.type == "score");
        CHECK(u.message.payload == R"({"a":[1, 2]})");  // the published text, not re-serialised
        CHECK(u.message.format == gatehouse::payload_format::json);
        CHECK(u.message.correlation_id == "c-1");
        CHECK(u.connection_id.empty());
        CHECK(u.player_ids.empty());
        CHECK(u.room.empty());
    }
    SECTION("connection") {
        const update u =
            parse_ok(R"({"player_id":"p1","connection_id":"k9","type":"t","payload":"x"})");
        CHECK(u.target == update_target::connection);
        CHECK(u.player_id == "p1");
        CHECK(u.connection_id == "k9");
        CHECK(u.message.payload == R"("x")");
        CHECK(u.message.correlation_id.empty());
    }
    SECTION("players") {
        const update u = parse_ok(R"({"player_ids":["a","b","a"],"type":"t","payload":3})");
        CHECK(u.target == update_target::players);
        CHECK(u.player_ids == std::vector<std::string>{"a", "b", "a"});
        CHECK(u.message.payload == "3");
    }
    SECTION("room") {
        const update u = parse_ok(R"({"room":"lobby","type":"chat","payload":{"m":"hi"}})");
        CHECK(u.target == update_target::room);
        CHECK(u.room == "lobby");
        CHECK(u.message.payload == R"({"m":"hi"})");
    }
    SECTION("broadcast") {
        const update u = parse_ok(R"({"broadcast":true,"type":"tick","payload":[]})");
        CHECK(u.target == update_target::broadcast);
        CHECK(u.message.type == "tick");
        CHECK(u.message.payload == "[]");
    }
    SECTION("join and leave") {
        const update j = parse_ok(R"({"op":"join","player_id":"p1","room":"lobby"})");
        CHECK(j.target == update_target::join);
        CHECK(j.player_id == "p1");
        CHECK(j.room == "lobby");
        const update l = parse_ok(R"({"op":"leave","player_id":"p1","room":"lobby"})");
        CHECK(l.target == update_target::leave);
        CHECK(l.player_id == "p1");
        CHECK(l.room == "lobby");
        // Room operations take no message: a type, even an invalid one, is not looked at.
        CHECK(parse_ok(R"({"op":"join","player_id":"p","room":"r","type":"bad type!"})").target ==
              update_target::join);
    }
}

TEST_CASE("update: payload and correlation id rules", "[update]") {
    CHECK(parse_ok(R"({"player_id":"p","type":"t"})").message.payload == "null");
    CHECK(parse_ok(R"({"player_id":"p","type":"t","payload":null})").message.payload == "null");
    CHECK(parse_ok(R"({"player_id":"p","type":"t","correlation_id":null})")
              .message.correlation_id.empty());
    // Escapes stay as published (the client codecs unescape when they transcode); a payload
    // with surrounding whitespace is kept without it.
    CHECK(parse_ok(R"({"player_id":"p","type":"t","payload":"caf\u00e9 \ud83d\ude00"})")
              .message.payload == R"("caf\u00e9 \ud83d\ude00")");
    CHECK(parse_ok(R"({"player_id":"p","type":"t","payload":  [ 1 ] })").message.payload ==
          "[ 1 ]");
    CHECK(parse_ok(" \n{\"player_id\":\"p\",\"type\":\"t\"}\n ").player_id == "p");
    // 128 characters of two bytes each are a valid correlation id.
    std::string id;
    for (int i = 0; i < 128; ++i) id += "\xc3\xa9";
    CHECK(parse_ok(R"({"player_id":"p","type":"t","correlation_id":")" + id + "\"}")
              .message.correlation_id == id);
    // Unknown keys are ignored.
    CHECK(parse_ok(R"({"player_id":"p","type":"t","trace":{"id":1}})").target ==
          update_target::player);
}

TEST_CASE("update: precedence of the target keys", "[update]") {
    // op beats everything.
    CHECK(parse_ok(R"({"op":"leave","broadcast":true,"player_id":"p","room":"r","type":"t"})")
              .target == update_target::leave);
    // broadcast: true beats connection_id, player_ids, player_id and room.
    CHECK(parse_ok(R"({"broadcast":true,"player_id":"p","connection_id":"c","player_ids":["a"],)"
                   R"("room":"r","type":"t"})")
              .target == update_target::broadcast);
    // connection_id (with player_id) beats player_ids.
    const update c =
        parse_ok(R"({"player_ids":["a"],"player_id":"p","connection_id":"c","type":"t"})");
    CHECK(c.target == update_target::connection);
    CHECK(c.player_ids.empty());
    // player_ids beats player_id and room.
    const update ps = parse_ok(R"({"player_ids":["a"],"player_id":"p","room":"r","type":"t"})");
    CHECK(ps.target == update_target::players);
    CHECK(ps.player_id.empty());
    CHECK(ps.room.empty());
    // player_id beats room.
    const update p = parse_ok(R"({"room":"r","player_id":"p","type":"t"})");
    CHECK(p.target == update_target::player);
    CHECK(p.room.empty());
    // broadcast that is not true falls through to the next rule.
    CHECK(parse_ok(R"({"broadcast":false,"player_id":"p","type":"t"})").target ==
          update_target::player);
    CHECK(parse_ok(R"({"broadcast":"yes","room":"r","type":"t"})").target == update_target::room);
    CHECK(parse_ok(R"({"broadcast":1,"room":"r","type":"t"})").target == update_target::room);
    // A key set to null is absent.
    CHECK(
        parse_ok(R"({"op":null,"connection_id":null,"player_ids":null,"player_id":"p","type":"t"})")
            .target == update_target::player);
    CHECK(parse_ok(R"({"player_id":null,"room":"r","type":"t"})").target == update_target::room);
    // A key that decides the shape is validated; one that does not is not looked at.
    CHECK(parse_ok(R"({"player_id":"p","room":42,"type":"t"})").target == update_target::player);
}

TEST_CASE("update: malformed messages", "[update]") {
    SECTION("not a JSON object") {
        CHECK(malformed(""));
        CHECK(malformed("   "));
        CHECK(malformed("not json"));
        CHECK(malformed(R"({"player_id":"p","type":"t")"));
        CHECK(malformed(R"({"player_id":"p","type":"t"} trailing)"));
        CHECK(malformed(R"([{"player_id":"p","type":"t"}])"));
        CHECK(malformed(R"("player_id")"));
        CHECK(malformed("42"));
        CHECK(malformed("null"));
        CHECK(malformed("true"));
        CHECK(malformed("{\"player_id\":\"p\xff\",\"type\":\"t\"}"));  // not UTF-8
        CHECK(malformed(R"({"player_id":"p","type":"t",})"));
    }
    SECTION("no valid target") {
        CHECK(malformed(R"({})"));
        CHECK(malformed(R"({"type":"t","payload":1})"));
        CHECK(malformed(R"({"broadcast":false,"type":"t"})"));
        CHECK(malformed(R"({"broadcast":"true","type":"t"})"));
        CHECK(malformed(R"({"broadcast":null,"type":"t"})"));
        CHECK(malformed(R"({"player_id":"","type":"t"})"));
        CHECK(malformed(R"({"player_id":7,"type":"t"})"));
        CHECK(malformed(R"({"player_id":["p"],"type":"t"})"));
        CHECK(malformed(R"({"room":"","type":"t"})"));
        CHECK(malformed(R"({"room":{},"type":"t"})"));
        CHECK(malformed(R"({"connection_id":"c","type":"t"})"));  // without its player
        CHECK(malformed(R"({"connection_id":"c","player_id":"","type":"t"})"));
        CHECK(malformed(R"({"connection_id":"","player_id":"p","type":"t"})"));
        CHECK(malformed(R"({"connection_id":5,"player_id":"p","type":"t"})"));
        // Even with a room beside it: a malformed connection target is not widened.
        CHECK(malformed(R"({"connection_id":"c","room":"r","type":"t"})"));
        CHECK(malformed(R"({"player_ids":[],"type":"t"})"));
        CHECK(malformed(R"({"player_ids":["a",1],"type":"t"})"));
        CHECK(malformed(R"({"player_ids":["a",null],"type":"t"})"));
        CHECK(malformed(R"({"player_ids":["a",""],"type":"t"})"));
        CHECK(malformed(R"({"player_ids":"a","type":"t"})"));
        CHECK(malformed(R"({"player_ids":{"a":1},"type":"t"})"));
    }
    SECTION("type") {
        CHECK(malformed(R"({"player_id":"p"})"));
        CHECK(malformed(R"({"player_id":"p","type":null})"));
        CHECK(malformed(R"({"player_id":"p","type":""})"));
        CHECK(malformed(R"({"player_id":"p","type":"has space"})"));
        CHECK(malformed(R"({"player_id":"p","type":"caf\u00e9"})"));
        CHECK(malformed(R"({"player_id":"p","type":17})"));
        CHECK(malformed(R"({"player_id":"p","type":["t"]})"));
        CHECK(malformed(R"({"player_id":"p","type":")" + std::string(65, 'a') + "\"}"));
        CHECK_FALSE(malformed(R"({"player_id":"p","type":")" + std::string(64, 'a') + "\"}"));
        CHECK(malformed(R"({"broadcast":true})"));
        CHECK(malformed(R"({"room":"r","payload":1})"));
    }
    SECTION("correlation_id") {
        CHECK(malformed(R"({"player_id":"p","type":"t","correlation_id":""})"));
        CHECK(malformed(R"({"player_id":"p","type":"t","correlation_id":17})"));
        CHECK(malformed(R"({"player_id":"p","type":"t","correlation_id":{}})"));
        CHECK(malformed(R"({"player_id":"p","type":"t","correlation_id":")" +
                        std::string(129, 'c') + "\"}"));
        CHECK_FALSE(malformed(R"({"player_id":"p","type":"t","correlation_id":")" +
                              std::string(128, 'c') + "\"}"));
    }
    SECTION("op") {
        CHECK(malformed(R"({"op":"kick","player_id":"p","room":"r"})"));
        CHECK(malformed(R"({"op":"JOIN","player_id":"p","room":"r"})"));
        CHECK(malformed(R"({"op":1,"player_id":"p","room":"r"})"));
        CHECK(malformed(R"({"op":true,"player_id":"p","room":"r"})"));
        CHECK(malformed(R"({"op":"join","player_id":"p"})"));
        CHECK(malformed(R"({"op":"join","room":"r"})"));
        CHECK(malformed(R"({"op":"join","player_id":"p","room":""})"));
        CHECK(malformed(R"({"op":"leave","player_id":"","room":"r"})"));
        CHECK(malformed(R"({"op":"leave","player_id":"p","room":3})"));
        // An unknown op is malformed even when the rest would be a valid update.
        CHECK(malformed(R"({"op":"noop","player_id":"p","type":"t"})"));
    }
    SECTION("a key given twice") {
        CHECK(malformed(R"({"player_id":"a","player_id":"b","type":"t"})"));
        CHECK(malformed(R"({"player_id":"a","type":"t","type":"u"})"));
        // Repeats inside the payload are the service's business.
        CHECK(parse_ok(R"({"player_id":"a","type":"t","payload":{"k":1,"k":2}})").target ==
              update_target::player);
    }
}

TEST_CASE("update: huge and deep input does not crash", "[update]") {
    // The update object is the first level, as an envelope is for the client codecs.
    const std::string deepest =
        R"({"player_id":"p","type":"t","payload":)" + nested_arrays(63) + "}";
    const update u = parse_ok(deepest);
    CHECK(u.message.payload == nested_arrays(63));
    // What is accepted can be encoded for every client.
    std::string out;
    CHECK_FALSE(gatehouse::make_json_codec()->encode(u.message, out));
    CHECK_FALSE(gatehouse::make_msgpack_codec()->encode(u.message, out));

    CHECK(malformed(R"({"player_id":"p","type":"t","payload":)" + nested_arrays(64) + "}"));
    CHECK(malformed(R"({"player_id":"p","type":"t","payload":)" + nested_arrays(200000) + "}"));
    CHECK(malformed(std::string(200000, '[')));
    CHECK(malformed(std::string(200000, '{')));
    // Brackets inside strings are not nesting.
    CHECK(
        parse_ok(R"({"player_id":"p","type":"t","payload":")" + std::string(1000, '[') + R"(\"]"})")
            .message.payload.size() == 1005);

    // A 4 MiB string and a 100k-element array parse and re-serialise.
    const std::string big(4u << 20, 'x');
    CHECK(parse_ok(R"({"player_id":"p","type":"t","payload":")" + big + "\"}")
              .message.payload.size() == big.size() + 2);
    std::string many = "[";
    for (int i = 0; i < 100000; ++i) many += i == 0 ? "1" : ",1";
    many += "]";
    CHECK(parse_ok(R"({"player_id":"p","type":"t","payload":)" + many + "}").message.payload ==
          many);
    std::vector<std::string> ids(10000, "player");
    CHECK(parse_ok(R"({"player_ids":)" + json(ids).dump() + R"(,"type":"t"})").player_ids.size() ==
          10000);
}

TEST_CASE("update: to_json round-trips every shape", "[update]") {
    const std::vector<update> samples = {
        gatehouse::update_for_player("p1", "score", R"({"a":[1,2]})", "c-1"),
        gatehouse::update_for_connection("p1", "k9", "t", R"("x")"),
        gatehouse::update_for_players({"a", "b"}, "t", "3", "c-2"),
        gatehouse::update_for_room("lobby", "chat", R"({"m":"hi"})"),
        gatehouse::update_for_everyone("tick", "[]"),
        gatehouse::room_join("p1", "lobby"),
        gatehouse::room_leave("p1", "lobby"),
    };
    for (const auto& original : samples) {
        const std::string text = gatehouse::to_json(original);
        INFO(text);
        update back;
        REQUIRE_FALSE(gatehouse::parse_update(text, back));
        check_same(original, back);
    }

    // Only the keys of the shape are written.
    CHECK(json::parse(gatehouse::to_json(samples[0])) ==
          json::parse(
              R"({"player_id":"p1","type":"score","payload":{"a":[1,2]},"correlation_id":"c-1"})"));
    CHECK(json::parse(gatehouse::to_json(samples[4])) ==
          json::parse(R"({"broadcast":true,"type":"tick","payload":[]})"));
    CHECK(json::parse(gatehouse::to_json(samples[5])) ==
          json::parse(R"({"op":"join","player_id":"p1","room":"lobby"})"));
    CHECK(json::parse(gatehouse::to_json(samples[6])) ==
          json::parse(R"({"op":"leave","player_id":"p1","room":"lobby"})"));
    CHECK(json::parse(gatehouse::to_json(samples[1])) ==
          json::parse(R"({"player_id":"p1","connection_id":"k9","type":"t","payload":"x"})"));
}

TEST_CASE("update: to_json writes a JSON payload as it was published", "[update]") {
    // parse_update() keeps the payload's text; to_json() must not respell it: escapes, an
    // exponent beyond a double (which a DOM would turn into null) and inner spacing survive.
    for (const std::string& payload :
         {std::string(R"({"text":"hi \u00e9"})"), std::string("[1E400, -0, 1.50]"),
          std::string(R"({ "a" : [ 1 , "\/" ] })")}) {
        INFO(payload);
        const update original = gatehouse::update_for_room("lobby", "chat", " " + payload + "\n");
        const std::string text = gatehouse::to_json(original);
        CHECK(text.find(payload) != std::string::npos);
        update back;
        REQUIRE_FALSE(gatehouse::parse_update(text, back));
        CHECK(back.message.payload == payload);
    }
}

TEST_CASE("update: helpers and to_json edge cases", "[update]") {
    const update p = gatehouse::update_for_player("p", "t", "");
    CHECK(p.target == update_target::player);
    CHECK(p.message.payload == "null");  // an empty payload is null, not invalid JSON
    CHECK(p.message.format == gatehouse::payload_format::json);
    CHECK(p.message.correlation_id.empty());

    const update c = gatehouse::update_for_connection("p", "k", "t", "1", "id");
    CHECK(c.target == update_target::connection);
    CHECK(c.player_id == "p");
    CHECK(c.connection_id == "k");
    CHECK(c.message.correlation_id == "id");
    CHECK(gatehouse::update_for_room("r", "t", "1").room == "r");
    CHECK(gatehouse::update_for_everyone("t", "1").target == update_target::broadcast);

    // A payload with no JSON form is written as null, never as invalid JSON.
    update bad = gatehouse::update_for_player("p", "t", "{not json");
    update back;
    REQUIRE_FALSE(gatehouse::parse_update(gatehouse::to_json(bad), back));
    CHECK(back.message.payload == "null");
    bad.message.payload = nested_arrays(100);
    REQUIRE_FALSE(gatehouse::parse_update(gatehouse::to_json(bad), back));
    CHECK(back.message.payload == "null");

    // A MessagePack payload is written as its JSON equivalent: {"a":1}.
    update packed = gatehouse::update_for_player("p", "t",
                                                 std::string("\x81\xa1"
                                                             "a\x01"));
    packed.message.format = gatehouse::payload_format::msgpack;
    REQUIRE_FALSE(gatehouse::parse_update(gatehouse::to_json(packed), back));
    CHECK(back.message.payload == R"({"a":1})");

    // Invalid UTF-8 in an id does not throw.
    const update odd = gatehouse::update_for_player("p\xff", "t", "1");
    CHECK_NOTHROW(gatehouse::to_json(odd));
}

TEST_CASE("update: delivery classes and their key (docs/protocol.md 6.6)", "[update]") {
    using gatehouse::delivery_class;
    auto u = parse_ok(R"({"player_id":"p","type":"t"})");
    CHECK(u.delivery == delivery_class::reliable);
    CHECK(u.key.empty());
    CHECK(parse_ok(R"({"player_id":"p","type":"t","delivery":"reliable"})").delivery ==
          delivery_class::reliable);
    CHECK(parse_ok(R"({"player_id":"p","type":"t","delivery":null})").delivery ==
          delivery_class::reliable);
    u = parse_ok(R"({"room":"r","type":"t","delivery":"droppable","key":5})");
    CHECK(u.delivery == delivery_class::droppable);
    CHECK(u.key.empty());  // a key beside another class is ignored
    u = parse_ok(R"({"broadcast":true,"type":"t","delivery":"latest","key":"pos:7"})");
    CHECK(u.delivery == delivery_class::latest);
    CHECK(u.key == "pos:7");
    CHECK(parse_ok(R"({"player_id":"p","type":"t","delivery":"latest","key":")" +
                   std::string(gatehouse::max_delivery_key_bytes, 'k') + "\"}")
              .key.size() == gatehouse::max_delivery_key_bytes);
    // Never part of what clients receive.
    CHECK(u.message.payload == "null");

    for (const std::string bad : {
             R"({"player_id":"p","type":"t","delivery":"urgent"})",
             R"({"player_id":"p","type":"t","delivery":"Latest","key":"k"})",
             R"({"player_id":"p","type":"t","delivery":1})",
             R"({"player_id":"p","type":"t","delivery":["latest"],"key":"k"})",
             R"({"player_id":"p","type":"t","delivery":"latest"})",
             R"({"player_id":"p","type":"t","delivery":"latest","key":null})",
             R"({"player_id":"p","type":"t","delivery":"latest","key":""})",
             R"({"player_id":"p","type":"t","delivery":"latest","key":7})",
             R"({"player_id":"p","type":"t","delivery":"droppable","delivery":"latest"})",
             R"({"player_id":"p","type":"t","delivery":"latest","key":"a","key":"b"})",
         }) {
        INFO(bad);
        CHECK(malformed(bad));
    }
    CHECK(malformed(R"({"player_id":"p","type":"t","delivery":"latest","key":")" +
                    std::string(gatehouse::max_delivery_key_bytes + 1, 'k') + "\"}"));
    // A room operation reads neither.
    CHECK(parse_ok(R"({"op":"join","player_id":"p","room":"r","delivery":"x"})").target ==
          update_target::join);

    // to_json writes them back, and only when they are not the default.
    u = gatehouse::update_for_player("p", "t", "1");
    CHECK(json::parse(gatehouse::to_json(u)).count("delivery") == 0);
    u.delivery = delivery_class::latest;
    u.key = "k1";
    CHECK(
        json::parse(gatehouse::to_json(u)) ==
        json::parse(R"({"player_id":"p","type":"t","delivery":"latest","key":"k1","payload":1})"));
    update back;
    REQUIRE_FALSE(gatehouse::parse_update(gatehouse::to_json(u), back));
    CHECK(back.delivery == delivery_class::latest);
    CHECK(back.key == "k1");
    u.delivery = delivery_class::droppable;
    REQUIRE_FALSE(gatehouse::parse_update(gatehouse::to_json(u), back));
    CHECK(back.delivery == delivery_class::droppable);
    CHECK(back.key.empty());
}

TEST_CASE("update: update_ids, added by the update log (docs/protocol.md 6.4)", "[update]") {
    using pairs = std::vector<std::pair<std::string, std::string>>;
    auto u = parse_ok(R"({"player_ids":["a","b"],"type":"t","update_ids":{"a":"1-2","b":"3-4"}})");
    CHECK(u.update_ids == pairs{{"a", "1-2"}, {"b", "3-4"}});
    CHECK(parse_ok(R"({"player_id":"a","type":"t","update_ids":null})").update_ids.empty());
    CHECK(parse_ok(R"({"player_id":"a","type":"t","update_ids":{}})").update_ids.empty());
    CHECK(parse_ok(R"({"player_id":"a","type":"t"})").update_ids.empty());
    CHECK(malformed(R"({"player_id":"a","type":"t","update_ids":{"a":"x"}})"));
    CHECK(malformed(R"({"player_id":"a","type":"t","update_ids":{"a":"1-"}})"));
    CHECK(malformed(R"({"player_id":"a","type":"t","update_ids":{"a":12}})"));
    CHECK(malformed(R"({"player_id":"a","type":"t","update_ids":{"":"1-2"}})"));
    CHECK(malformed(R"({"player_id":"a","type":"t","update_ids":["1-2"]})"));
    CHECK(malformed(R"({"player_id":"a","type":"t","update_ids":{"a":"1-2"},"update_ids":{}})"));
    CHECK(malformed(R"({"player_id":"a","type":"t","update_ids":{"a":"1-2",}})"));
    // to_json writes them back.
    const auto again = parse_ok(gatehouse::to_json(u));
    CHECK(again.update_ids == u.update_ids);
    CHECK(gatehouse::to_json(parse_ok(R"({"player_id":"a","type":"t"})")).find("update_ids") ==
          std::string::npos);
}

TEST_CASE("update: traceparent reaches the message (docs/protocol.md 6.8)", "[update]") {
    const std::string trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    auto u = parse_ok(R"({"player_id":"a","type":"t","traceparent":")" + trace + R"("})");
    CHECK(u.message.traceparent == trace);
    CHECK(parse_ok(gatehouse::to_json(u)).message.traceparent == trace);
    CHECK(parse_ok(R"({"room":"r","type":"t","traceparent":")" + trace + R"("})")
              .message.traceparent == trace);
    // Anything else is ignored, never a reason to drop the update (v1 allowed any extra key).
    for (const auto* bad : {R"("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01")",
                            R"("00-00000000000000000000000000000000-00f067aa0ba902b7-01")",
                            R"("garbage")", "17", "null", R"({"a":1})"}) {
        INFO(bad);
        const auto v =
            parse_ok(R"({"player_id":"a","type":"t","traceparent":)" + std::string(bad) + "}");
        CHECK(v.message.traceparent.empty());
        CHECK(gatehouse::to_json(v).find("traceparent") == std::string::npos);
    }
    // Given twice, like any top-level key: which one was meant is unknown.
    CHECK(malformed(R"({"player_id":"a","type":"t","traceparent":")" + trace +
                    R"(","traceparent":")" + trace + R"("})"));
}
