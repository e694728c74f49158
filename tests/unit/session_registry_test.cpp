#include "gateway/session_registry.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "common/clock.hpp"
#include "memory_transport.hpp"

// Open sessions: admission under max_connections, welcome-then-register, keepalive pings and
// the idle close, the drain on shutdown, and the registry letting go of sessions it abandons.

namespace {

using namespace gatehouse_test;
using namespace std::chrono_literals;

}  // namespace

TEST_CASE("session registry: a slot is held from the upgrade until open or a failed handshake",
          "[session_registry]") {
    auto options = test_options();
    options.max_connections = 1;
    core_on<> f(options);
    auto& registry = f.core->sessions();
    auto first = f.upgrade("p1");
    REQUIRE(first.accepted);
    CHECK_FALSE(f.upgrade("p2").accepted);
    first.handler->on_close(1006);  // the handshake failed before it opened
    auto second = f.upgrade("p3");
    REQUIRE(second.accepted);
    auto link = std::make_shared<memory_link>();
    second.handler->on_open(link);
    CHECK(registry.size() == 1);
    CHECK(f.core->connections().size() == 1);
    CHECK(registry.next_connection_id().rfind("core-test-", 0) == 0);
    second.handler->on_close(1000);
    CHECK(registry.size() == 0);
    CHECK(registry.wait_for_sessions(std::chrono::steady_clock::now()));
}

TEST_CASE("session registry: the welcome comes first, then updates", "[session_registry]") {
    core_on<manual_bus> f;
    f.core->start_listener();
    auto s = f.open("ivy");
    REQUIRE(f.bus->deliver(to_json(update_for_player("ivy", "hello", "{}"))));
    const auto frames = s.link->frames();
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].find("\"type\":\"welcome\"") != std::string::npos);
    CHECK(frames[0].find("\"connection_id\":\"core-test-") != std::string::npos);
    CHECK(frames[1].find("\"type\":\"hello\"") != std::string::npos);
    s.handler->on_close(1000);
}

TEST_CASE("session registry: quiet sessions are pinged once, idle ones closed once with 1008",
          "[session_registry]") {
    auto options = test_options();
    options.ping_interval = 20ms;
    options.idle_timeout = 60ms;
    core_on<> f(options);
    CHECK(f.core->sweep_interval() == 10ms);
    auto s = f.open("jack");
    auto& registry = f.core->sessions();
    const auto now = [] { return steady_now_ms(); };
    registry.sweep(now());
    CHECK(s.link->pings() == 0);
    registry.sweep(now() + 30);
    registry.sweep(now() + 40);
    CHECK(s.link->pings() == 1);  // once per quiet spell
    s.handler->on_activity();
    registry.sweep(now() + 30);
    CHECK(s.link->pings() == 2);
    registry.sweep(now() + 100);
    CHECK(s.link->close_code() == 1008);
    registry.sweep(now() + 200);  // still registered (its close is queued): counted once
    CHECK(f.core->metrics().render().find("gatehouse_idle_closed_total 1") != std::string::npos);
    s.handler->on_close(1008);
}

TEST_CASE("session registry: shutdown closes idle sessions at once and refuses upgrades",
          "[session_registry]") {
    core_on<> f;
    auto a = f.open("kim");
    auto b = f.open("lee");
    f.core->begin_shutdown();
    CHECK(a.link->close_code() == 1001);
    CHECK(b.link->close_code() == 1001);
    const auto refused = f.upgrade("max");
    CHECK_FALSE(refused.accepted);
    CHECK(refused.refusal.status == 503);
    CHECK_FALSE(f.core->wait_for_sessions(std::chrono::steady_clock::now() + 10ms));
    std::thread closer([&] {
        a.handler->on_close(1001);
        b.handler->on_close(1001);
    });
    CHECK(f.core->wait_for_sessions(std::chrono::steady_clock::now() + 5s));
    closer.join();
}

TEST_CASE(
    "session registry: a restored update subscription leaves no session routed, answers "
    "its commands, then closes each with 1012",
    "[session_registry]") {
    core_on<manual_bus> f;
    f.core->start_listener();
    auto busy = f.open("ola");
    auto idle = f.open("pia");
    busy.handler->on_message(true, R"({"type":"move","correlation_id":"c1"})");
    REQUIRE(f.bus->waiting() == 1);

    REQUIRE(f.bus->resubscribe());
    CHECK(idle.link->close_code() == 1012);
    CHECK(busy.link->close_code() == 0);  // its command first
    CHECK(f.core->connections().size() == 0);
    // No update reaches it any more: the client resumes the missed ones, then this one.
    const auto before = busy.link->frames().size();
    REQUIRE(f.bus->deliver(to_json(update_for_player("ola", "late", "{}"))));
    CHECK(busy.link->frames().size() == before);
    // A command read now is neither accepted nor answered (as in a drain); the 1012 tells the
    // client to send it again.
    busy.handler->on_message(true, R"({"type":"move","correlation_id":"c2"})");
    CHECK(f.bus->appended() == std::vector<std::string>{"c1"});
    REQUIRE(f.bus->answer_next());
    const auto frames = busy.link->frames();
    REQUIRE(frames.size() == before + 1);
    CHECK(frames.back().find("\"type\":\"ack\"") != std::string::npos);
    CHECK(busy.link->close_code() == 1012);
    CHECK(f.core->metrics().render().find("gatehouse_update_link_restored_total 1") !=
          std::string::npos);
    busy.handler->on_close(1012);
    idle.handler->on_close(1012);
    CHECK(f.core->metrics().render().find("gatehouse_connections_closed_total{code=\"1012\"} 2") !=
          std::string::npos);
}

TEST_CASE("session registry: abandoned sessions let go of the core's parts", "[session_registry]") {
    std::weak_ptr<stream_handler> weak;
    {
        core_on<> f;
        auto s = f.open("nia");
        weak = s.handler;
        s.handler.reset();  // the transport dropped it without a close (its loop was destroyed)
        CHECK_FALSE(weak.expired());  // the registry and the connection manager hold it
        f.core.reset();
        CHECK(weak.expired());
    }
}
