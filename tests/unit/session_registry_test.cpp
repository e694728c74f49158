#include "gateway/session_registry.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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
    registry.sweep(now(), unix_now_ms());
    CHECK(s.link->pings() == 0);
    registry.sweep(now() + 30, unix_now_ms());
    registry.sweep(now() + 40, unix_now_ms());
    CHECK(s.link->pings() == 1);  // once per quiet spell
    s.handler->on_activity();
    registry.sweep(now() + 30, unix_now_ms());
    CHECK(s.link->pings() == 2);
    registry.sweep(now() + 100, unix_now_ms());
    CHECK(s.link->close_code() == 1008);
    registry.sweep(now() + 200,
                   unix_now_ms());  // still registered (its close is queued): counted once
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

namespace {

// The `after_ms` of the one `gatehouse.reconnect` among `frames`; -1 when there is none, -2
// when there are several.
long long reconnect_after_ms(const std::vector<std::string>& frames) {
    long long found = -1;
    for (const auto& f : frames) {
        if (f.find("gatehouse.reconnect") == std::string::npos) continue;
        if (found != -1) return -2;
        const auto at = f.find("\"after_ms\":");
        REQUIRE(at != std::string::npos);
        found = std::stoll(f.substr(at + 11));
    }
    return found;
}

}  // namespace

TEST_CASE("session registry: shutdown without a spread tells each WebSocket after_ms 0 first",
          "[session_registry][drain]") {
    core_on<> f;
    auto a = f.open("ann");
    f.core->begin_shutdown();
    const auto frames = a.link->frames();
    REQUIRE(frames.size() == 2);  // the welcome, then the reconnect, then the 1001
    CHECK(frames[1] == R"({"type":"gatehouse.reconnect","payload":{"after_ms":0}})");
    CHECK(a.link->close_code() == 1001);
    a.handler->on_close(1001);
}

TEST_CASE("session registry: the drain spreads after_ms evenly and keeps serving",
          "[session_registry][drain]") {
    core_on<manual_bus> f;
    f.core->start_listener();
    std::vector<core_on<manual_bus>::open_session> open;
    for (int i = 0; i < 8; ++i) open.push_back(f.open("p" + std::to_string(i)));
    CHECK(f.core->begin_drain(std::chrono::milliseconds(8000)) == 8);
    CHECK_FALSE(f.core->ready());
    const auto refused = f.upgrade("late");
    CHECK_FALSE(refused.accepted);
    CHECK(refused.refusal.status == 503);
    std::vector<long long> after;
    for (const auto& s : open) after.push_back(reconnect_after_ms(s.link->frames()));
    std::sort(after.begin(), after.end());
    CHECK(after == std::vector<long long>{0, 1000, 2000, 3000, 4000, 5000, 6000, 7000});

    // Served meanwhile: a command is acked, an update delivered, nothing closed.
    auto& s = open.front();
    s.handler->on_message(true, R"({"type":"move","correlation_id":"m1"})");
    REQUIRE(f.bus->answer_next());
    CHECK(contains(s.link->frames(), R"("type":"ack")"));
    REQUIRE(f.bus->deliver(to_json(update_for_player("p0", "tick", "{}"))));
    CHECK(contains(s.link->frames(), R"("type":"tick")"));
    for (const auto& o : open) CHECK(o.link->close_code() == 0);
    // A second drain tells nobody again; the shutdown after it sends no second reconnect.
    CHECK(f.core->begin_drain(std::chrono::milliseconds(8000)) == 0);
    f.core->begin_shutdown();
    for (const auto& o : open) {
        CHECK(reconnect_after_ms(o.link->frames()) >= 0);
        CHECK(o.link->close_code() == 1001);
        o.handler->on_close(1001);
    }
}

TEST_CASE("session registry: the spread ends when every session left or when cut short",
          "[session_registry][drain]") {
    using clock = std::chrono::steady_clock;
    core_on<> f;
    auto a = f.open("amy");
    auto b = f.open("bo");
    f.core->begin_drain(std::chrono::milliseconds(60000));
    CHECK_FALSE(f.core->wait_for_spread(clock::now() + 10ms));  // both still there
    std::thread leaving([&] {
        std::this_thread::sleep_for(20ms);
        a.handler->on_close(1000);
        b.handler->on_close(1000);
    });
    const auto t0 = clock::now();
    CHECK(f.core->wait_for_spread(clock::now() + 60s));
    CHECK(clock::now() - t0 < 10s);
    leaving.join();
}

TEST_CASE("session registry: end_spread cuts the spread short, from any thread",
          "[session_registry][drain]") {
    using clock = std::chrono::steady_clock;
    core_on<> f;
    auto a = f.open("cy");
    f.core->begin_drain(std::chrono::milliseconds(60000));
    std::thread cutting([&] {
        std::this_thread::sleep_for(20ms);
        f.core->end_spread();
    });
    const auto t0 = clock::now();
    CHECK_FALSE(f.core->wait_for_spread(clock::now() + 60s));  // cut, not empty
    CHECK(clock::now() - t0 < 10s);
    cutting.join();
    CHECK_FALSE(f.core->wait_for_spread(clock::now() + 60s));  // stays cut
    CHECK(a.link->close_code() == 0);  // the section 1 shutdown closes it, not the cut
    f.core->begin_shutdown();
    CHECK(a.link->close_code() == 1001);
    a.handler->on_close(1001);
}

TEST_CASE("session registry: an upgrade accepted before the drain and opened during it is told",
          "[session_registry][drain]") {
    core_on<> f;
    auto early = f.upgrade("eve");
    REQUIRE(early.accepted);
    f.core->begin_drain(std::chrono::milliseconds(500));
    auto link = std::make_shared<memory_link>();
    early.handler->on_open(link);
    const auto after = reconnect_after_ms(link->frames());
    CHECK(after >= 0);
    CHECK(after <= 500);
    CHECK(link->frames().front().find("\"type\":\"welcome\"") != std::string::npos);
    early.handler->on_close(1000);
}

TEST_CASE("session registry: an event stream gets the reconnect with a retry field in a drain",
          "[session_registry][drain]") {
    core_on<> f;
    const auto stream = [&] {
        http_request request;
        request.method = "GET";
        request.path = "/sse/player";
        request.headers.emplace_back("Authorization", "Bearer " + test_token("sue"));
        auto decision = f.core->authorize_event_stream(request);
        REQUIRE(decision.accepted);
        return decision;
    };
    auto a = stream();
    auto link = std::make_shared<memory_link>();
    a.handler->on_open(link);
    auto b = stream();
    auto quiet = std::make_shared<memory_link>();
    b.handler->on_open(quiet);
    b.handler->on_close(0);
    f.core->begin_drain(std::chrono::milliseconds(3000));
    const auto frames = link->frames();
    REQUIRE(frames.size() == 1);
    CHECK(frames[0] ==
          "retry: 0\nevent: gatehouse.reconnect\ndata: "
          R"({"type":"gatehouse.reconnect","payload":{"after_ms":0}})"
          "\n\n");
    http_request late;
    late.method = "GET";
    late.path = "/sse/player";
    late.headers.emplace_back("Authorization", "Bearer " + test_token("sam"));
    CHECK(f.core->authorize_event_stream(late).refusal.status == 503);
    f.core->begin_shutdown();
    CHECK(link->frames().size() == 1);  // nothing more before the stream ends
    a.handler->on_close(0);
}

TEST_CASE("session registry: the spread ends each event stream at its own after_ms",
          "[session_registry][drain]") {
    using clock = std::chrono::steady_clock;
    core_on<> f;
    const auto stream = [&](const std::string& who) {
        http_request request;
        request.method = "GET";
        request.path = "/sse/player";
        request.headers.emplace_back("Authorization", "Bearer " + test_token(who));
        auto decision = f.core->authorize_event_stream(request);
        REQUIRE(decision.accepted);
        return decision;
    };
    auto a = stream("ann");
    auto b = stream("ben");
    auto link_a = std::make_shared<memory_link>();
    auto link_b = std::make_shared<memory_link>();
    a.handler->on_open(link_a);
    b.handler->on_open(link_b);
    const auto t0 = clock::now();
    f.core->begin_drain(std::chrono::milliseconds(600));  // turns 0 and 300 ms
    auto first = reconnect_after_ms(link_a->frames()) == 0 ? link_a : link_b;
    auto second = first == link_a ? link_b : link_a;
    CHECK_FALSE(f.core->wait_for_spread(clock::now() + 100ms));
    CHECK(first->close_code() == 1001);  // its turn was at once
    CHECK(second->close_code() == 0);
    CHECK_FALSE(f.core->wait_for_spread(clock::now() + 2s));  // the memory links stay open
    CHECK(second->close_code() == 1001);
    CHECK(clock::now() - t0 >= 300ms);
    a.handler->on_close(0);
    b.handler->on_close(0);
}

TEST_CASE("session registry: without a spread an event stream ends with no reconnect event",
          "[session_registry][drain]") {
    core_on<> f;
    http_request request;
    request.method = "GET";
    request.path = "/sse/player";
    request.headers.emplace_back("Authorization", "Bearer " + test_token("ted"));
    auto decision = f.core->authorize_event_stream(request);
    REQUIRE(decision.accepted);
    auto link = std::make_shared<memory_link>();
    decision.handler->on_open(link);
    f.core->begin_shutdown();
    CHECK(link->frames().empty());
    decision.handler->on_close(0);
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
