// One command through the game (payload decoding, session store, update shape), on the
// memory store.
#include "game_service.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "memory_session_store.hpp"

using gatehouse_demo::game::command;
using gatehouse_demo::game::handle;
using gatehouse_demo::game::handled;
using json = nlohmann::json;

namespace {

constexpr std::int64_t t0 = 1'700'000'000'000;

command cmd(std::string type, std::string payload = {}, std::string codec = "json") {
    command c;
    c.type = std::move(type);
    c.player_id = "p-1";
    c.correlation_id = "c-" + c.type;
    c.codec = std::move(codec);
    c.payload = std::move(payload);
    return c;
}

json answered(gatehouse_demo::game::session_store& store, const command& c, std::int64_t now = t0) {
    const auto r = handle(store, c, now);
    REQUIRE(r.what == handled::answered);
    return json::parse(r.update);
}

std::string msgpack(const json& j) {
    const auto bytes = json::to_msgpack(j);
    return std::string(bytes.begin(), bytes.end());
}

// A store whose backend is down: load or save fails.
class failing_store final : public gatehouse_demo::game::session_store {
public:
    explicit failing_store(bool fail_load) : fail_load_(fail_load) {}
    gatehouse_demo::game::load_result load(
        const std::string& /*player_id*/,
        std::optional<gatehouse_demo::game::state>& out) override {
        out.reset();
        return fail_load_ ? gatehouse_demo::game::load_result::failed
                          : gatehouse_demo::game::load_result::missing;
    }
    bool save(const std::string& /*player_id*/, const gatehouse_demo::game::state& /*s*/) override {
        return false;
    }

private:
    bool fail_load_;
};

}  // namespace

TEST_CASE("updates have the contract's shape") {
    gatehouse_demo::game::memory_session_store store;
    json u = answered(store, cmd("cook"));
    CHECK(
        u ==
        json{
            {"player_id", "p-1"},
            {"type", "game.error"},
            {"correlation_id", "c-cook"},
            {"payload",
             {{"request", "cook"}, {"code", "no_session"}, {"message", u["payload"]["message"]}}}});
    CHECK(u["payload"]["message"].is_string());

    u = answered(store, cmd("session", "{}"));
    CHECK(u["type"] == "game.state");
    CHECK(u["player_id"] == "p-1");
    CHECK(u["correlation_id"] == "c-session");
    CHECK(u["payload"]["request"] == "session");
    CHECK(u["payload"]["state"] == to_json(gatehouse_demo::game::fresh_state(t0)));
    CHECK(u["payload"].size() == 2);

    u = answered(store, cmd("level_check"));
    CHECK(u["payload"]["level_check"] == json{{"can_level_up", false}, {"xp_required", 20}});

    command no_id = cmd("cook");
    no_id.correlation_id.clear();
    u = answered(store, no_id);
    CHECK_FALSE(u.contains("correlation_id"));
}

TEST_CASE("the session lives in the store between commands") {
    gatehouse_demo::game::memory_session_store store;
    answered(store, cmd("session"));
    answered(store, cmd("cook", R"({"count":4})"));
    std::optional<gatehouse_demo::game::state> kept;
    REQUIRE(store.load("p-1", kept) == gatehouse_demo::game::load_result::found);
    CHECK(kept->dishes == 4);
    CHECK(kept->revision == 1);
    // A later session command loads it, unchanged.
    const json u = answered(store, cmd("session"), t0 + 10000);
    CHECK(u["payload"]["state"] == to_json(*kept));
    // Refusals change nothing.
    answered(store, cmd("sell", R"({"count":5})"));
    REQUIRE(store.load("p-1", kept) == gatehouse_demo::game::load_result::found);
    CHECK(kept->revision == 1);
    // Another player has a session of their own.
    command other = cmd("cook");
    other.player_id = "p-2";
    CHECK(answered(store, other)["payload"]["code"] == "no_session");
}

TEST_CASE("a replayed stream entry is answered, not applied again") {
    gatehouse_demo::game::memory_session_store store;
    command start = cmd("session");
    start.entry_id = "1700000000000-0";
    answered(store, start);
    command cook = cmd("cook", R"({"count":2})");
    cook.entry_id = "1700000000001-3";
    const json first = answered(store, cook);
    CHECK(first["payload"]["state"]["dishes"] == 2);
    // The game died before XACK and reads the entry again: the same state, with its id.
    const json again = answered(store, cook, t0 + 5);
    CHECK(again["correlation_id"] == "c-cook");
    CHECK(again["payload"]["state"] == first["payload"]["state"]);
    // An older entry too; a later one (same millisecond, higher sequence) is applied.
    command older = cook;
    older.entry_id = "1700000000001-2";
    CHECK(answered(store, older)["payload"]["state"]["dishes"] == 2);
    command later = cook;
    later.entry_id = "1700000000001-10";
    CHECK(answered(store, later)["payload"]["state"]["dishes"] == 4);
    // Without ids (the in-process game) every command is applied.
    command plain = cmd("cook", R"({"count":1})");
    CHECK(answered(store, plain)["payload"]["state"]["dishes"] == 5);
    CHECK(answered(store, plain)["payload"]["state"]["dishes"] == 6);
}

TEST_CASE("stream entry ids compare as two numbers") {
    using gatehouse_demo::game::entry_after;
    CHECK(entry_after("10-0", "9-5"));
    CHECK(entry_after("9-10", "9-9"));
    CHECK_FALSE(entry_after("9-9", "9-9"));
    CHECK_FALSE(entry_after("9-8", "9-9"));
    CHECK(entry_after("1-0", ""));
    CHECK_FALSE(entry_after("", "1-0"));
    CHECK_FALSE(entry_after("1-", "0-0"));
    CHECK_FALSE(entry_after("-1", "0-0"));
    CHECK_FALSE(entry_after("1-2x", "0-0"));
    CHECK_FALSE(entry_after("12", "0-0"));
}

TEST_CASE("payloads: JSON, MessagePack, missing; others are invalid_payload") {
    gatehouse_demo::game::memory_session_store store;
    answered(store, cmd("session", "null"));
    json u = answered(store, cmd("cook", msgpack({{"count", 3}}), "msgpack"));
    CHECK(u["payload"]["state"]["dishes"] == 3);
    u = answered(store, cmd("upgrade_buy", msgpack({{"upgrade", "oven"}}), "msgpack"));
    CHECK(u["payload"]["code"] == "unknown_upgrade");
    u = answered(store, cmd("cook", ""));  // no payload: {}
    CHECK(u["payload"]["state"]["dishes"] == 4);
    for (const auto& bad :
         std::vector<command>{cmd("cook", "{not json"), cmd("cook", "\xc1", "msgpack"),
                              cmd("cook", "\x08\x01", "protobuf"), cmd("cook", R"([1,2])"),
                              cmd("cook", msgpack({{"count", "x"}}), "msgpack")}) {
        INFO(bad.codec << " " << bad.payload);
        u = answered(store, bad);
        CHECK(u["type"] == "game.error");
        CHECK(u["payload"]["code"] == "invalid_payload");
        CHECK(u["payload"]["request"] == "cook");
    }
}

TEST_CASE("other command types are ignored") {
    gatehouse_demo::game::memory_session_store store;
    const auto r = handle(store, cmd("player_action", R"({"move":[1,2]})"), t0);
    CHECK(r.what == handled::ignored);
    CHECK(r.update.empty());
    std::optional<gatehouse_demo::game::state> none;
    CHECK(store.load("p-1", none) == gatehouse_demo::game::load_result::missing);
}

TEST_CASE("a failing store publishes nothing") {
    failing_store down(true);
    CHECK(handle(down, cmd("session"), t0).what == handled::store_failed);
    failing_store unwritable(false);
    CHECK(handle(unwritable, cmd("session"), t0).what == handled::store_failed);
    // A refusal needs no write: answered even so.
    CHECK(handle(unwritable, cmd("cook"), t0).what == handled::answered);
}
