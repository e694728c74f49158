#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gateway/gateway_core.hpp"
#include "memory_transport.hpp"

// docs/protocol.md 6.8 on the gateway core: `gatehouse.connected` / `gatehouse.disconnected`
// entries for every WebSocket (client `system`), on the in-process bus as services read them, and
// on a bus that refuses or answers late (manual_bus), including shutdown's drain.

namespace {

using namespace gatehouse_test;

gateway_options presence_options() {
    auto o = test_options();
    o.presence_events = true;
    o.bot_keys.emplace_back("rover", "rover-key");
    return o;
}

bool has(const std::string& text, const std::string& needle) {
    return text.find(needle) != std::string::npos;
}

std::vector<bus_entry> presence_entries(in_process_bus& bus) {
    std::vector<bus_entry> out;
    for (auto& e : bus.read("", 100)) {
        if (e.command.origin.client == client_kind::system) out.push_back(std::move(e));
    }
    return out;
}

void check_entry(const bus_entry& e, std::string_view type, const std::string& player,
                 const std::string& connection, std::string_view client, std::string_view codec) {
    CHECK(e.command.type == type);
    CHECK(e.command.format == payload_format::json);
    CHECK(e.command.payload == R"({"connection_id":")" + connection + R"(","client":")" +
                                   std::string(client) + R"(","codec":")" + std::string(codec) +
                                   R"("})");
    CHECK(e.command.origin.player_id == player);
    CHECK(e.command.origin.connection_id == connection);
    CHECK(e.command.origin.client == client_kind::system);
    CHECK(e.command.origin.correlation_assigned);
    CHECK(e.command.origin.accepted_at_ms > 0);
    CHECK_FALSE(e.command.correlation_id.empty());
    CHECK(e.command.traceparent.empty());
    CHECK(e.command.update_id.empty());
    CHECK(e.gateway_id == "local");
}

std::string welcome_connection_id(const std::string& welcome) {
    const std::string key = R"("connection_id":")";
    const auto at = welcome.find(key);
    REQUIRE(at != std::string::npos);
    const auto start = at + key.size();
    return welcome.substr(start, welcome.find('"', start) - start);
}

}  // namespace

TEST_CASE("presence: a player's and a bot's WebSocket open and close on the in-process bus",
          "[presence]") {
    core_on<> f(presence_options());
    auto alice = f.open("alice");
    const auto alice_id = welcome_connection_id(alice.link->frames().at(0));
    CHECK(alice_id == "core-test-1");
    alice.handler->on_message(true, R"({"type":"move","correlation_id":"c1"})");

    upgrade_request bot_request;
    bot_request.path = "/ws/bot/rover-key";
    bot_request.remote_address = "127.0.0.1";
    auto bot = f.core->authorize_upgrade(bot_request);
    REQUIRE(bot.accepted);
    auto bot_link = std::make_shared<memory_link>();
    bot.handler->on_open(bot_link);
    REQUIRE(bot_link->frames().size() == 1);  // the welcome, in MessagePack
    const std::string bot_id = "core-test-2";

    bot.handler->on_close(1000);
    alice.handler->on_close(1006);

    // In stream order: alice's connected before her command, then the bot's pair, then hers.
    const auto all = f.bus->read("", 100);
    REQUIRE(all.size() == 5);
    CHECK(all[1].command.type == "move");
    CHECK(all[1].command.origin.client == client_kind::player);
    const auto entries = presence_entries(*f.bus);
    REQUIRE(entries.size() == 4);
    check_entry(entries[0], "gatehouse.connected", "alice", alice_id, "player", "json");
    check_entry(entries[1], "gatehouse.connected", "bot:rover", bot_id, "bot", "msgpack");
    check_entry(entries[2], "gatehouse.disconnected", "bot:rover", bot_id, "bot", "msgpack");
    check_entry(entries[3], "gatehouse.disconnected", "alice", alice_id, "player", "json");
    // Every correlation id is unique: none is ever taken for a retry (docs/protocol.md 6.5).
    for (std::size_t i = 0; i < entries.size(); ++i) {
        for (std::size_t j = i + 1; j < entries.size(); ++j) {
            CHECK(entries[i].command.correlation_id != entries[j].command.correlation_id);
        }
    }
    const auto text = f.core->metrics().render();
    CHECK(has(text, "gatehouse_presence_entries_total{outcome=\"appended\"} 4"));
    CHECK(has(text, "gatehouse_presence_entries_total{outcome=\"failed\"} 0"));
}

TEST_CASE("presence: a service sees the entries through on_command", "[presence]") {
    core_on<> f(presence_options());
    std::vector<std::string> seen;
    f.bus->on_command([&seen](const bus_entry& e) {
        seen.push_back(std::string(bus_client_name(e.command.origin.client)) + " " +
                       e.command.type);
    });
    auto s = f.open("bea");
    s.handler->on_close(1000);
    CHECK(seen ==
          std::vector<std::string>{"system gatehouse.connected", "system gatehouse.disconnected"});
}

TEST_CASE("presence: none without the option, none for event streams", "[presence]") {
    SECTION("option off") {
        core_on<> f;
        auto s = f.open("carl");
        s.handler->on_close(1000);
        CHECK(f.bus->size() == 0);
    }
    SECTION("event stream") {
        core_on<> f(presence_options());
        http_request request;
        request.method = "GET";
        request.path = "/sse/player";
        request.headers.emplace_back("Authorization", "Bearer " + test_token("dana"));
        auto decision = f.core->authorize_event_stream(request);
        REQUIRE(decision.accepted);
        auto link = std::make_shared<memory_link>();
        decision.handler->on_open(link);
        decision.handler->on_close(0);
        CHECK(f.bus->size() == 0);
    }
    SECTION("a handshake that never opened") {
        core_on<> f(presence_options());
        auto decision = f.upgrade("erin");
        REQUIRE(decision.accepted);
        decision.handler->on_close(1006);
        CHECK(f.bus->size() == 0);
    }
}

TEST_CASE("presence: a refusing bus is counted and never touches the session", "[presence]") {
    core_on<manual_bus> f(presence_options());
    f.bus->refusing = true;
    auto s = f.open("fay");
    // The welcome went out, and the session works as without presence entries.
    REQUIRE(s.link->frames().size() == 1);
    s.handler->on_message(true, R"({"type":"move","correlation_id":"c1"})");
    CHECK(contains(s.link->frames(), "bus_unavailable"));
    CHECK(s.link->close_code() == 0);
    s.handler->on_close(1000);
    const auto text = f.core->metrics().render();
    CHECK(has(text, "gatehouse_presence_entries_total{outcome=\"failed\"} 2"));
    CHECK(has(text, "gatehouse_presence_entries_total{outcome=\"appended\"} 0"));
    CHECK(f.core->wait_for_sessions(std::chrono::steady_clock::now()));
}

TEST_CASE("presence: shutdown waits for the disconnected entries of the sessions it closes",
          "[presence]") {
    core_on<manual_bus> f(presence_options());
    auto s = f.open("gus");
    REQUIRE(f.bus->appended() == std::vector<std::string>{"core-test-1.connected"});
    REQUIRE(f.bus->answer_next());

    auto done = std::async(std::launch::async, [&f] {
        return f.core->shutdown(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    });
    // The shutdown closes the session (1001); the transport reports the close.
    for (int i = 0; i < 500 && s.link->close_code() == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    REQUIRE(s.link->close_code() == 1001);
    s.handler->on_close(1001);
    REQUIRE(f.bus->appended().size() == 2);
    CHECK(f.bus->appended()[1] == "core-test-1.disconnected");
    // Still draining: the entry is pending.
    CHECK(done.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout);
    REQUIRE(f.bus->answer_next());
    CHECK(done.get());
    CHECK(has(f.core->metrics().render(),
              "gatehouse_presence_entries_total{outcome=\"appended\"} 2"));
}

TEST_CASE("presence: after shutdown gave up on the bus nothing more is appended", "[presence]") {
    core_on<manual_bus> f(presence_options());
    auto s = f.open("hal");
    REQUIRE(f.bus->answer_next());
    // The session never reports its close before the deadline: the drain times out and
    // cancels what the bus owes.
    CHECK_FALSE(f.core->shutdown(std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
    s.handler->on_close(1006);
    CHECK(f.bus->appended().size() == 1);
    CHECK(f.bus->waiting() == 0);
}

TEST_CASE("tracing: POST /commands takes the traceparent header unless the envelope has one",
          "[presence]") {
    core_on<> f;
    const std::string header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const std::string own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    std::vector<int> statuses;
    const auto post = [&](std::string body, std::vector<std::string> traceparents) {
        http_request r;
        r.method = "POST";
        r.path = "/commands";
        r.headers.emplace_back("Authorization", "Bearer " + test_token("ivy"));
        r.headers.emplace_back("Content-Type", "application/json");
        for (auto& t : traceparents) r.headers.emplace_back("Traceparent", std::move(t));
        r.body = std::move(body);
        f.core->handle_http(
            r, [&statuses](http_response answer) { statuses.push_back(answer.status); });
    };
    post(R"({"type":"a"})", {header});
    post(R"({"type":"b","traceparent":")" + own + R"("})", {header});
    post(R"({"type":"c"})", {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"});
    post(R"({"type":"d"})", {header, header});
    post(R"({"type":"e","traceparent":"junk"})", {header});
    post(R"({"type":"f"})", {});
    CHECK(statuses == std::vector<int>(6, 202));
    const auto entries = f.bus->read("", 10);
    REQUIRE(entries.size() == 6);
    CHECK(entries[0].command.traceparent == header);
    CHECK(entries[1].command.traceparent == own);     // the envelope wins
    CHECK(entries[2].command.traceparent.empty());    // invalid: ignored
    CHECK(entries[3].command.traceparent.empty());    // given twice: no single parent
    CHECK(entries[4].command.traceparent == header);  // the envelope's junk is no traceparent
    CHECK(entries[5].command.traceparent.empty());
}
