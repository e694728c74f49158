#include "gateway/session_control.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "common/clock.hpp"
#include "gatehouse/jwt.hpp"
#include "memory_transport.hpp"

// Session lifetime through the core (docs/protocol.md 6.3): gatehouse.token_expiring after the
// welcome, the sweep's 4001, in-band gatehouse.refresh answered by the gateway (never the bus),
// its refusals, the rate limit, bots and --session-expiry off. Tokens expire a few seconds from
// now; the sweep is handed a Unix time past them instead of waiting.

namespace {

using namespace gatehouse_test;

std::string token_for(const std::string& player, std::int64_t ttl,
                      const std::string& secret = "core-test-secret") {
    jwt_claims claims;
    claims.sub = player;
    claims.iat = gatehouse::unix_now_seconds();
    claims.exp = claims.iat + ttl;
    return sign_jwt(claims, secret);
}

template <class Bus>
core_on<manual_bus>::open_session open_with(core_on<Bus>& f, const std::string& path,
                                            std::string_view query = {}) {
    upgrade_request request;
    request.path = path;
    request.query = query;
    request.remote_address = "127.0.0.1";
    auto decision = f.core->authorize_upgrade(request);
    REQUIRE(decision.accepted);
    typename core_on<manual_bus>::open_session s{decision.handler, std::make_shared<memory_link>()};
    s.handler->on_open(s.link);
    return s;
}

std::string refresh_message(const std::string& token, const std::string& id = "r1") {
    return R"({"type":"gatehouse.refresh","payload":{"access_token":")" + token +
           R"("},"correlation_id":")" + id + R"("})";
}

std::int64_t exp_in(const std::string& frame) {
    const auto at = frame.find("\"exp\":");
    REQUIRE(at != std::string::npos);
    return std::stoll(frame.substr(at + 6));
}

void sweep_at(gateway_core& core, std::int64_t unix_ms) {
    core.sessions().sweep(steady_now_ms(), unix_ms);
}

}  // namespace

TEST_CASE("session control: token_expiring right after the welcome, 4001 at exp",
          "[session_control]") {
    core_on<manual_bus> f;
    const auto exp = gatehouse::unix_now_seconds() + 30;
    auto s = open_with(f, "/ws/player/" + token_for("ann", 30));
    auto frames = s.link->frames();
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].find("\"type\":\"welcome\"") != std::string::npos);
    CHECK(frames[1].find("\"type\":\"gatehouse.token_expiring\"") != std::string::npos);
    CHECK(exp_in(frames[1]) == exp);
    sweep_at(*f.core, exp * 1000 - 1);
    CHECK(s.link->close_code() == 0);
    CHECK(s.link->frames().size() == 2);  // warned once
    sweep_at(*f.core, exp * 1000);
    CHECK(s.link->close_code() == 4001);
    CHECK(f.core->connections().size() == 0);  // no update after its token expired
    // What it sends now is neither accepted nor answered.
    s.handler->on_message(true, R"({"type":"move","correlation_id":"late"})");
    CHECK(f.bus->appended().empty());
    s.handler->on_close(4001);
    const auto text = f.core->metrics().render();
    CHECK(text.find("gatehouse_sessions_expired_total 1") != std::string::npos);
    CHECK(text.find("gatehouse_connections_closed_total{code=\"4001\"} 1") != std::string::npos);
}

TEST_CASE("session control: a token with time left is warned a minute before its exp",
          "[session_control]") {
    core_on<manual_bus> f;
    const auto exp = gatehouse::unix_now_seconds() + 600;
    auto s = open_with(f, "/ws/player/" + token_for("bea", 600));
    CHECK(s.link->frames().size() == 1);
    sweep_at(*f.core, exp * 1000 - 60001);
    CHECK(s.link->frames().size() == 1);
    sweep_at(*f.core, exp * 1000 - 60000);
    REQUIRE(s.link->frames().size() == 2);
    CHECK(s.link->frames()[1].find("gatehouse.token_expiring") != std::string::npos);
    s.handler->on_close(1000);
}

TEST_CASE("session control: the expiry close waits for the session's pending command",
          "[session_control]") {
    core_on<manual_bus> f;
    const auto exp = gatehouse::unix_now_seconds() + 30;
    auto s = open_with(f, "/ws/player/" + token_for("cid", 30));
    s.handler->on_message(true, R"({"type":"move","correlation_id":"c1"})");
    REQUIRE(f.bus->waiting() == 1);
    sweep_at(*f.core, exp * 1000);
    CHECK(s.link->close_code() == 0);
    REQUIRE(f.bus->answer_next());
    CHECK(s.link->frames().back().find("\"type\":\"ack\"") != std::string::npos);
    CHECK(s.link->close_code() == 4001);
    s.handler->on_close(4001);
}

TEST_CASE("session control: a refresh moves the deadline and never reaches the bus",
          "[session_control]") {
    core_on<manual_bus> f;
    const auto old_exp = gatehouse::unix_now_seconds() + 30;
    auto s = open_with(f, "/ws/player/" + token_for("dan", 30));
    const auto fresh = token_for("dan", 900);
    const auto new_exp = gatehouse::unix_now_seconds() + 900;
    s.handler->on_message(true, refresh_message(fresh));
    auto frames = s.link->frames();
    REQUIRE(frames.size() == 3);
    CHECK(frames[2].find("\"type\":\"gatehouse.refreshed\"") != std::string::npos);
    CHECK(frames[2].find("\"correlation_id\":\"r1\"") != std::string::npos);
    CHECK(exp_in(frames[2]) >= new_exp - 1);
    CHECK(f.bus->appended().empty());
    sweep_at(*f.core, old_exp * 1000 + 1000);
    CHECK(s.link->close_code() == 0);
    // The new deadline has its own warning and its own close.
    sweep_at(*f.core, exp_in(frames[2]) * 1000 - 60000);
    REQUIRE(s.link->frames().size() == 4);
    CHECK(s.link->frames()[3].find("gatehouse.token_expiring") != std::string::npos);
    sweep_at(*f.core, exp_in(frames[2]) * 1000);
    CHECK(s.link->close_code() == 4001);
    s.handler->on_close(4001);
    CHECK(f.core->metrics().render().find("gatehouse_token_refreshes_total{outcome=\"ok\"} 1") !=
          std::string::npos);
}

TEST_CASE("session control: refusals answer invalid_token and change nothing",
          "[session_control]") {
    core_on<manual_bus> f;
    const auto exp = gatehouse::unix_now_seconds() + 30;
    auto s = open_with(f, "/ws/player/" + token_for("eve", 30));
    jwt_claims expired;
    expired.sub = "eve";
    expired.iat = gatehouse::unix_now_seconds() - 100;
    expired.exp = gatehouse::unix_now_seconds() - 10;
    const std::string bad[] = {
        refresh_message(token_for("mallory", 900)),              // another sub
        refresh_message(token_for("eve", 900, "other-secret")),  // bad signature
        refresh_message(sign_jwt(expired, "core-test-secret")),  // expired
        refresh_message("not-a-jwt"),
        R"({"type":"gatehouse.refresh","payload":{"token":"x"},"correlation_id":"r1"})",
        R"({"type":"gatehouse.refresh","payload":"x","correlation_id":"r1"})",
        R"({"type":"gatehouse.refresh","correlation_id":"r1"})",
    };
    std::size_t expected = 2;
    for (const auto& message : bad) {
        s.handler->on_message(true, message);
        const auto frames = s.link->frames();
        REQUIRE(frames.size() == ++expected);
        CHECK(frames.back().find("\"type\":\"error\"") != std::string::npos);
        CHECK(frames.back().find("\"code\":\"invalid_token\"") != std::string::npos);
        CHECK(frames.back().find("\"correlation_id\":\"r1\"") != std::string::npos);
    }
    CHECK(f.bus->appended().empty());
    sweep_at(*f.core, exp * 1000);
    CHECK(s.link->close_code() == 4001);
    s.handler->on_close(4001);
    CHECK(f.core->metrics().render().find(
              "gatehouse_token_refreshes_total{outcome=\"refused\"} 7") != std::string::npos);
}

TEST_CASE("session control: a refresh after the expiry was decided goes unanswered",
          "[session_control]") {
    core_on<manual_bus> f;
    const auto exp = gatehouse::unix_now_seconds() + 30;
    auto s = open_with(f, "/ws/player/" + token_for("fay", 30));
    sweep_at(*f.core, exp * 1000);
    CHECK(s.link->close_code() == 4001);
    const auto before = s.link->frames().size();
    s.handler->on_message(true, refresh_message(token_for("fay", 900)));
    CHECK(s.link->frames().size() == before);
    s.handler->on_close(4001);
}

TEST_CASE("session control: refreshes count against the rate limit", "[session_control]") {
    auto options = test_options();
    options.ws_rate_limit = 1;  // burst 2
    core_on<manual_bus> f(options);
    auto s = open_with(f, "/ws/player/" + token_for("gus", 600));
    const auto fresh = token_for("gus", 900);
    for (int i = 0; i < 3; ++i) s.handler->on_message(true, refresh_message(fresh));
    const auto frames = s.link->frames();
    REQUIRE(frames.size() == 4);
    CHECK(count(frames, "gatehouse.refreshed") == 2);
    CHECK(frames[3].find("\"code\":\"rate_limited\"") != std::string::npos);
    s.handler->on_close(1000);
}

TEST_CASE("session control: other gatehouse. types and bots", "[session_control]") {
    auto options = test_options();
    options.bot_keys = {{"rover", "rover-key"}};
    core_on<manual_bus> f(options);
    auto s = open_with(f, "/ws/player/" + token_for("hal", 600));
    s.handler->on_message(true, R"({"type":"gatehouse.refreshed","correlation_id":"x"})");
    CHECK(s.link->frames().back().find("\"code\":\"invalid_envelope\"") != std::string::npos);
    s.handler->on_close(1000);

    auto bot = open_with(f, "/ws/bot/rover-key", "codec=json");
    sweep_at(*f.core, gatehouse::detail::unix_now_ms() + 86400000);
    CHECK(bot.link->close_code() == 0);  // bots never expire
    CHECK(bot.link->frames().size() == 1);
    bot.handler->on_message(true, refresh_message(token_for("bot:rover", 900)));
    CHECK(bot.link->frames().back().find("\"code\":\"invalid_token\"") != std::string::npos);
    CHECK(f.bus->appended().empty());
    bot.handler->on_close(1000);
}

TEST_CASE("session control: with session_expiry off a session outlives its token",
          "[session_control]") {
    auto options = test_options();
    options.session_expiry = false;
    core_on<manual_bus> f(options);
    const auto exp = gatehouse::unix_now_seconds() + 30;
    auto s = open_with(f, "/ws/player/" + token_for("ida", 30));
    CHECK(s.link->frames().size() == 1);  // no warning
    sweep_at(*f.core, exp * 1000 + 3600000);
    CHECK(s.link->close_code() == 0);
    // A refresh is still verified and answered; it ends nothing either.
    s.handler->on_message(true, refresh_message(token_for("ida", 900)));
    CHECK(s.link->frames().back().find("gatehouse.refreshed") != std::string::npos);
    s.handler->on_close(1000);
}
