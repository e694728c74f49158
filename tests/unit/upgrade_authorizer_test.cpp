#include "gateway/upgrade_authorizer.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <stdexcept>
#include <string>

#include "memory_transport.hpp"

// One authorization path for the WebSocket upgrade, GET /sse/player and POST /commands, and
// the codec negotiation of an upgrade.

namespace {

using namespace gatehouse_test;

upgrade_authorizer make_authorizer(gateway_options o = test_options()) {
    o.bot_keys = {{"scout", "bot-key-1"}, {"miner", "bot-key-2"}};
    return upgrade_authorizer(std::make_shared<const gateway_options>(std::move(o)),
                              codec_registry::with_builtin_codecs());
}

}  // namespace

TEST_CASE("upgrade authorizer: players by path token or Bearer, bots by key",
          "[upgrade_authorizer]") {
    const auto a = make_authorizer();
    const std::string token = test_token("olga");
    const std::string by_path = "/ws/player/" + token;
    const std::string bearer = "Bearer " + token;

    upgrade_request request;
    request.path = by_path;
    session_setup setup;
    std::string subprotocol;
    REQUIRE(a.authorize_websocket(request, setup, subprotocol));
    CHECK(setup.who.player_id == "olga");
    CHECK(setup.wire_codec->name() == "json");
    CHECK(subprotocol.empty());

    request.path = "/ws/player";
    request.authorization = bearer;
    setup = {};
    REQUIRE(a.authorize_websocket(request, setup, subprotocol));
    CHECK(setup.who.player_id == "olga");
    request.authorization = "Bearer";
    CHECK(a.authorize_websocket(request, setup, subprotocol).status == 401);

    request.path = "/ws/bot/bot-key-2";
    setup = {};
    REQUIRE(a.authorize_websocket(request, setup, subprotocol));
    CHECK(setup.who.player_id == "bot:miner");
    CHECK(setup.who.client == client_kind::bot);
    CHECK(setup.wire_codec->name() == "msgpack");  // a bot's default
    request.path = "/ws/bot/bot-key-3";
    CHECK(a.authorize_websocket(request, setup, subprotocol).status == 401);
    request.path = "/ws/bot/";
    CHECK(a.authorize_websocket(request, setup, subprotocol).status == 401);

    request.path = "/ws/elsewhere";
    const auto not_found = a.authorize_websocket(request, setup, subprotocol);
    CHECK(not_found.status == 404);
    CHECK(not_found.code == "not_found");

    identity who;
    CHECK(a.authenticate(token, who) == std::error_code{});
    CHECK(a.authenticate("x.y.z", who));
}

TEST_CASE("upgrade authorizer: codec by subprotocol, then ?codec=, then the default",
          "[upgrade_authorizer]") {
    const auto a = make_authorizer();
    const std::string path = "/ws/player/" + test_token("pia");
    upgrade_request request;
    request.path = path;
    session_setup setup;
    std::string subprotocol;

    request.offered_subprotocols = {"nope", "gatehouse.msgpack"};
    REQUIRE(a.authorize_websocket(request, setup, subprotocol));
    CHECK(setup.wire_codec->name() == "msgpack");
    CHECK(subprotocol == "gatehouse.msgpack");
    CHECK(setup.text_codec->name() == "json");  // text frames are always JSON

    request.offered_subprotocols.clear();
    subprotocol.clear();
    request.query = "x=1&codec=protobuf";
    REQUIRE(a.authorize_websocket(request, setup, subprotocol));
    CHECK(setup.wire_codec->name() == "protobuf");
    CHECK(subprotocol.empty());

    for (const char* query : {"codec=nope", "codec=", "codec"}) {
        request.query = query;
        const auto refused = a.authorize_websocket(request, setup, subprotocol);
        CHECK(refused.status == 400);
        CHECK(refused.code == "unknown_codec");
    }
}

TEST_CASE("upgrade authorizer: event streams and POST /commands share the token check",
          "[upgrade_authorizer]") {
    const auto a = make_authorizer();
    http_request request;
    request.method = "GET";
    request.path = "/sse/player";
    session_setup setup;
    CHECK(a.authorize_event_stream(request, setup).status == 401);
    request.query = "token=" + test_token("quinn");
    REQUIRE(a.authorize_event_stream(request, setup));
    CHECK(setup.event_stream);
    CHECK(setup.wire_codec->name() == "sse");
    CHECK(setup.who.player_id == "quinn");

    identity who;
    // POST /commands: Bearer only, never ?token=.
    CHECK(a.authorize_command(request, who).status == 401);
    request.headers.emplace_back("Authorization", "Bearer " + test_token("quinn"));
    REQUIRE(a.authorize_command(request, who));
    CHECK(who.player_id == "quinn");

    gateway_options custom = test_options();
    custom.verify_token = [](std::string_view token, identity& w) {
        if (token != "letmein") return std::error_code(errc::invalid_token);
        w.player_id = "custom";
        return std::error_code{};
    };
    const auto c = make_authorizer(custom);
    http_request r;
    r.headers.emplace_back("Authorization", "Bearer letmein");
    identity w;
    REQUIRE(c.authorize_command(r, w));
    CHECK(w.player_id == "custom");
}

TEST_CASE("upgrade authorizer: a registry without json is bad configuration",
          "[upgrade_authorizer]") {
    CHECK_THROWS_AS(upgrade_authorizer(std::make_shared<const gateway_options>(test_options()), {}),
                    std::invalid_argument);
}
