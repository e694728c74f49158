// The Click & Cook rules, one command at a time (docs/examples/demo-game.md).
#include "rules.hpp"

#include <catch2/catch.hpp>
#include <limits>
#include <optional>
#include <string>

using gatehouse_demo::game::apply;
using gatehouse_demo::game::error_code;
using gatehouse_demo::game::fresh_state;
using gatehouse_demo::game::outcome;
using gatehouse_demo::game::state;
using json = nlohmann::json;

namespace {

constexpr std::int64_t t0 = 1'700'000'000'000;

outcome run(const state& s, const std::string& type, const json& payload = nullptr,
            std::int64_t now = t0) {
    return apply(std::optional<state>(s), type, payload, now);
}

state ok(const state& s, const std::string& type, const json& payload = nullptr,
         std::int64_t now = t0) {
    const auto out = run(s, type, payload, now);
    INFO(type << " " << payload.dump() << ": " << out.message);
    REQUIRE(out.ok());
    CHECK(out.next.revision == s.revision + 1);
    return out.next;
}

void refused(const state& s, const std::string& type, const json& payload, error_code code) {
    const auto out = run(s, type, payload);
    INFO(type << " " << payload.dump());
    REQUIRE(out.error == code);
    CHECK_FALSE(out.message.empty());
    CHECK(out.next == s);
}

}  // namespace

TEST_CASE("a fresh session is the contract's") {
    const state s = fresh_state(t0);
    CHECK(to_json(s) == json::parse(R"({"coins":0,"dishes":0,"level":1,"xp":0,"cook_power":1,
        "sell_price":2,"passive_rate":0,"upgrades":{"knife":0,"stove":0,"waiter":0},
        "last_passive_ms":1700000000000,"revision":0})"));
}

TEST_CASE("state JSON round-trips and refuses what no command makes") {
    state s = fresh_state(t0);
    s.coins = 12;
    s.upgrades.stove = 3;
    s.revision = 9;
    state back;
    REQUIRE(from_json(to_json(s), back));
    CHECK(back == s);
    json j = to_json(s);
    j["coins"] = -1;
    CHECK_FALSE(from_json(j, back));
    j = to_json(s);
    j["level"] = 0;
    CHECK_FALSE(from_json(j, back));
    j = to_json(s);
    j["xp"] = 1.5;
    CHECK_FALSE(from_json(j, back));
    j = to_json(s);
    j["upgrades"].erase("waiter");
    CHECK_FALSE(from_json(j, back));
    CHECK_FALSE(from_json(json::array(), back));
    CHECK(back == s);  // unchanged by the refusals
}

TEST_CASE("session creates a fresh session once, then only loads it") {
    const auto created = apply(std::nullopt, "session", json::object(), t0);
    REQUIRE(created.ok());
    CHECK(created.next == fresh_state(t0));
    state s = fresh_state(t0);
    s.coins = 5;
    s.revision = 4;
    const auto loaded = run(s, "session", nullptr, t0 + 5000);
    REQUIRE(loaded.ok());
    CHECK(loaded.next == s);  // no revision bump, no passive credit
    CHECK(apply(std::nullopt, "session", json::array(), t0).error == error_code::invalid_payload);
}

TEST_CASE("every command but session needs a session first") {
    for (const char* type :
         {"cook", "sell", "upgrade_buy", "level_check", "level_up", "passive", "session_reset"}) {
        INFO(type);
        // no_session comes before the payload is looked at.
        const auto out = apply(std::nullopt, type, json("garbage"), t0);
        CHECK(out.error == error_code::no_session);
    }
}

TEST_CASE("is_game_command knows the eight commands and nothing else") {
    using gatehouse_demo::game::is_game_command;
    for (const char* type : {"session", "cook", "sell", "upgrade_buy", "level_check", "level_up",
                             "passive", "session_reset"}) {
        CHECK(is_game_command(type));
    }
    CHECK_FALSE(is_game_command("player_action"));
    CHECK_FALSE(is_game_command("game.state"));
    CHECK_FALSE(is_game_command("Cook"));
    CHECK(run(fresh_state(t0), "chat").error == error_code::invalid_payload);
}

TEST_CASE("cook") {
    state s = fresh_state(t0);
    s = ok(s, "cook");
    CHECK(s.dishes == 1);
    CHECK(s.xp == 1);
    s = ok(s, "cook", {{"count", 100}});
    CHECK(s.dishes == 101);
    CHECK(s.xp == 101);
    s.cook_power = 3;
    s = ok(s, "cook", {{"count", 2}, {"extra", "ignored"}});
    CHECK(s.dishes == 107);                   // count * cook_power
    CHECK(s.xp == 103);                       // count, not dishes
    s = ok(s, "cook", {{"count", nullptr}});  // null is absent: 1
    CHECK(s.dishes == 110);
    for (const json& bad :
         {json{{"count", 0}}, json{{"count", 101}}, json{{"count", -1}}, json{{"count", 2.0}},
          json{{"count", "3"}}, json{{"count", true}}, json::array({1}), json("cook"), json(3)}) {
        refused(s, "cook", bad, error_code::invalid_payload);
    }
}

TEST_CASE("sell") {
    state s = fresh_state(t0);
    s.dishes = 10;
    s = ok(s, "sell", {{"count", 4}});
    CHECK(s.dishes == 6);
    CHECK(s.coins == 8);  // 4 * sell_price 2
    CHECK(s.xp == 4);
    refused(s, "sell", {{"count", 7}}, error_code::not_enough_dishes);
    s.sell_price = 3;
    s = ok(s, "sell", json::object());  // default: all dishes
    CHECK(s.dishes == 0);
    CHECK(s.coins == 26);
    CHECK(s.xp == 10);
    s = ok(s, "sell");  // nothing to sell is selling 0: allowed
    CHECK(s.coins == 26);
    refused(s, "sell", {{"count", 1}}, error_code::not_enough_dishes);
    s.dishes = 5;
    for (const json& bad : {json{{"count", 0}}, json{{"count", -2}}, json{{"count", 1.5}},
                            json{{"count", "all"}}, json("x")}) {
        refused(s, "sell", bad, error_code::invalid_payload);
    }
    // Bigger than any int64: a count, just never affordable.
    refused(s, "sell", json::parse(R"({"count":18446744073709551615})"),
            error_code::not_enough_dishes);
}

TEST_CASE("upgrade_buy: costs double with each one owned") {
    using gatehouse_demo::game::upgrade_cost;
    CHECK(upgrade_cost("knife", 0) == 10);
    CHECK(upgrade_cost("knife", 3) == 80);
    CHECK(upgrade_cost("stove", 0) == 25);
    CHECK(upgrade_cost("stove", 2) == 100);
    CHECK(upgrade_cost("waiter", 0) == 50);
    CHECK(upgrade_cost("waiter", 1) == 100);
    CHECK(upgrade_cost("waiter", 1000) == std::numeric_limits<std::int64_t>::max());
    CHECK_FALSE(upgrade_cost("oven", 0));

    state s = fresh_state(t0);
    s.coins = 10 + 20 + 25 + 50;
    s = ok(s, "upgrade_buy", {{"upgrade", "knife"}});
    CHECK(s.coins == 95);
    CHECK(s.cook_power == 2);
    CHECK(s.upgrades.knife == 1);
    s = ok(s, "upgrade_buy", {{"upgrade", "knife"}});
    CHECK(s.coins == 75);
    CHECK(s.cook_power == 3);
    CHECK(s.upgrades.knife == 2);
    s = ok(s, "upgrade_buy", {{"upgrade", "stove"}});
    CHECK(s.coins == 50);
    CHECK(s.passive_rate == 1);
    CHECK(s.upgrades.stove == 1);
    s = ok(s, "upgrade_buy", {{"upgrade", "waiter"}});
    CHECK(s.coins == 0);
    CHECK(s.sell_price == 3);
    CHECK(s.upgrades.waiter == 1);
    refused(s, "upgrade_buy", {{"upgrade", "knife"}}, error_code::not_enough_coins);
    s.coins = 39;
    refused(s, "upgrade_buy", {{"upgrade", "knife"}}, error_code::not_enough_coins);  // costs 40
    refused(s, "upgrade_buy", {{"upgrade", "laser"}}, error_code::unknown_upgrade);
    refused(s, "upgrade_buy", {{"upgrade", "Knife"}}, error_code::unknown_upgrade);
    for (const json& bad :
         {json::object(), json{{"upgrade", 1}}, json{{"upgrade", nullptr}}, json("knife")}) {
        refused(s, "upgrade_buy", bad, error_code::invalid_payload);
    }
    refused(s, "upgrade_buy", nullptr, error_code::invalid_payload);  // no payload: {}
}

TEST_CASE("level maths: xp_required, level_check, level_up") {
    using gatehouse_demo::game::xp_required;
    CHECK(xp_required(1) == 20);
    CHECK(xp_required(2) == 80);
    CHECK(xp_required(10) == 2000);

    state s = fresh_state(t0);
    s.xp = 19;
    auto check = run(s, "level_check");
    REQUIRE(check.ok());
    REQUIRE(check.level_check);
    CHECK_FALSE(check.level_check->can_level_up);
    CHECK(check.level_check->xp_required == 20);
    CHECK(check.next.revision == 1);  // a successful command: counted
    CHECK(check.next.xp == 19);
    refused(s, "level_up", nullptr, error_code::not_enough_xp);

    s.xp = 25;
    check = run(s, "level_check");
    REQUIRE(check.level_check);
    CHECK(check.level_check->can_level_up);
    CHECK_FALSE(run(s, "cook").level_check);  // only level_check answers it

    s = ok(s, "level_up");
    CHECK(s.level == 2);
    CHECK(s.xp == 5);
    CHECK(s.cook_power == 2);
    s.xp = 80;
    s = ok(s, "level_up");
    CHECK(s.level == 3);
    CHECK(s.xp == 0);
    CHECK(s.cook_power == 3);
    refused(s, "level_check", json("x"), error_code::invalid_payload);
}

TEST_CASE("passive credits whole seconds at passive_rate") {
    state s = fresh_state(t0);
    s = ok(s, "passive", nullptr, t0 + 5500);  // rate 0: nothing, but the clock moves
    CHECK(s.dishes == 0);
    CHECK(s.last_passive_ms == t0 + 5000);
    s.passive_rate = 3;
    s = ok(s, "passive", nullptr, t0 + 5999);  // 999 ms: no whole second yet
    CHECK(s.dishes == 0);
    CHECK(s.last_passive_ms == t0 + 5000);
    s = ok(s, "passive", nullptr, t0 + 7600);  // 2.6 s: 2 credited, 0.6 carried over
    CHECK(s.dishes == 6);
    CHECK(s.last_passive_ms == t0 + 7000);
    s = ok(s, "passive", nullptr, t0 + 8000);  // the carried 0.6 s makes the next second
    CHECK(s.dishes == 9);
    CHECK(s.last_passive_ms == t0 + 8000);
    s = ok(s, "passive", nullptr, t0 + 1000);  // a clock behind the session's: nothing
    CHECK(s.dishes == 9);
    CHECK(s.last_passive_ms == t0 + 8000);
}

TEST_CASE("passive is capped at 8 hours, the rest forfeited") {
    using gatehouse_demo::game::passive_cap_seconds;
    state s = fresh_state(t0);
    s.passive_rate = 2;
    const std::int64_t day_ms = std::int64_t{24} * 3600 * 1000;
    s = ok(s, "passive", nullptr, t0 + day_ms + 300);
    CHECK(s.dishes == 2 * passive_cap_seconds);
    CHECK(s.last_passive_ms == t0 + day_ms);
    s = ok(s, "passive", nullptr, t0 + day_ms + 300);  // nothing left over to claim
    CHECK(s.dishes == 2 * passive_cap_seconds);
    s = ok(s, "passive", nullptr, t0 + day_ms + passive_cap_seconds * 1000);  // exactly the cap
    CHECK(s.dishes == 4 * passive_cap_seconds);
}

TEST_CASE("session_reset gives a fresh session with the revision still counting") {
    state s = fresh_state(t0);
    s.coins = 99;
    s.level = 4;
    s.upgrades.knife = 2;
    s.revision = 41;
    const state r = ok(s, "session_reset", nullptr, t0 + 60000);
    state expected = fresh_state(t0 + 60000);
    expected.revision = 42;
    CHECK(r == expected);
    refused(s, "session_reset", json::array(), error_code::invalid_payload);
}

TEST_CASE("error codes have their wire names") {
    using gatehouse_demo::game::code_name;
    CHECK(code_name(error_code::no_session) == "no_session");
    CHECK(code_name(error_code::invalid_payload) == "invalid_payload");
    CHECK(code_name(error_code::not_enough_dishes) == "not_enough_dishes");
    CHECK(code_name(error_code::not_enough_coins) == "not_enough_coins");
    CHECK(code_name(error_code::unknown_upgrade) == "unknown_upgrade");
    CHECK(code_name(error_code::not_enough_xp) == "not_enough_xp");
}
