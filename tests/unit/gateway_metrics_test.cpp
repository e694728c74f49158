#include "gateway/gateway_metrics.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "gateway/gateway_id.hpp"
#include "gateway/session.hpp"
#include "gateway/update_router.hpp"
#include "memory_transport.hpp"

// The gateway's metric families (resolved once, callbacks holding their sources weakly), the
// gateway id rule, and the update router that counts what the listener hears.

namespace {

using namespace gatehouse_test;

bool has(const std::string& text, const std::string& line) {
    return text.find(line) != std::string::npos;
}

}  // namespace

TEST_CASE("gateway metrics: families listed from the start, gauges by kind", "[gateway_metrics]") {
    auto connections = std::make_shared<connection_manager>();
    auto bus = std::make_shared<manual_bus>();
    gateway_metrics m(connections, bus);
    auto text = m.registry().render();
    CHECK(has(text, "gatehouse_connections_closed_total{code=\"1001\"} 0"));
    CHECK(has(text, "gatehouse_commands_refused_total{reason=\"rate_limited\"} 0"));
    CHECK(has(text, "gatehouse_bus_connected 1"));
    CHECK(has(text, "gatehouse_frames_sent_total 0"));

    session_setup setup;
    setup.who.client = client_kind::bot;
    CHECK(&m.open_gauge(setup) == &m.bot_connections);
    setup.event_stream = true;
    CHECK(&m.open_gauge(setup) == &m.event_streams);
    m.count_close(4000);
    CHECK(has(m.registry().render(), "gatehouse_connections_closed_total{code=\"4000\"} 1"));

    // The callbacks hold their sources weakly: gone, they read 0.
    bus.reset();
    connections.reset();
    text = m.registry().render();
    CHECK(has(text, "gatehouse_bus_connected 0"));
    CHECK(has(text, "gatehouse_frames_sent_total 0"));
}

TEST_CASE("gateway id: the rule and the generated default", "[gateway_metrics]") {
    CHECK(is_valid_gateway_id("a"));
    CHECK(is_valid_gateway_id("host-1.eu:7_x"));
    CHECK_FALSE(is_valid_gateway_id(""));
    CHECK_FALSE(is_valid_gateway_id("has space"));
    CHECK_FALSE(is_valid_gateway_id(std::string(65, 'a')));
    const auto id = make_gateway_id();
    CHECK(is_valid_gateway_id(id));
    CHECK(id != make_gateway_id());
}

TEST_CASE("update router: counts, drops malformed updates, delivers the rest",
          "[gateway_metrics]") {
    std::vector<std::string> logged;
    auto options = test_options();
    options.log = [&logged](log_level, std::string_view m) { logged.emplace_back(m); };
    core_on<manual_bus> f(options);
    f.core->start_listener();
    auto s = f.open("rosa");
    REQUIRE(f.bus->deliver("{not json"));
    REQUIRE(f.bus->deliver(to_json(update_for_player("rosa", "news", R"({"secret":1})"))));
    const auto text = f.core->metrics().render();
    CHECK(has(text, "gatehouse_updates_received_total 2"));
    CHECK(has(text, "gatehouse_updates_malformed_total 1"));
    CHECK(contains(s.link->frames(), "\"type\":\"news\""));
    for (const auto& line : logged) CHECK(line.find("secret") == std::string::npos);
    f.core->stop_listener();
    CHECK_FALSE(f.bus->deliver("{}"));  // stopped: the listener no longer holds a handler
    s.handler->on_close(1000);
}

TEST_CASE("update router: delivery classes are counted by outcome and never reach clients",
          "[gateway_metrics]") {
    core_on<manual_bus> f(test_options());
    f.core->start_listener();
    auto s = f.open("ines");
    CHECK(has(f.core->metrics().render(),
              "gatehouse_updates_delivered_total{delivery=\"latest\",outcome=\"coalesced\"} 0"));
    REQUIRE(f.bus->deliver(
        R"({"player_id":"ines","type":"pos","payload":[1,2],"delivery":"latest","key":"k7"})"));
    REQUIRE(
        f.bus->deliver(R"({"player_id":"ines","type":"tick","payload":1,"delivery":"droppable"})"));
    const auto text = f.core->metrics().render();
    CHECK(has(text, "gatehouse_updates_delivered_total{delivery=\"latest\",outcome=\"sent\"} 1"));
    CHECK(
        has(text, "gatehouse_updates_delivered_total{delivery=\"droppable\",outcome=\"sent\"} 1"));
    CHECK(has(text, "gatehouse_updates_delivered_total{delivery=\"reliable\",outcome=\"sent\"} 0"));
    const auto frames = s.link->frames();
    CHECK(contains(frames, R"({"type":"pos","payload":[1,2]})"));
    CHECK(contains(frames, R"({"type":"tick","payload":1})"));
    for (const auto& frame : frames) {
        CHECK(frame.find("delivery") == std::string::npos);
        CHECK(frame.find("k7") == std::string::npos);
    }
    f.core->stop_listener();
    s.handler->on_close(1000);
}

TEST_CASE("gateway metrics: acked commands and logged updates are timed", "[gateway_metrics]") {
    core_on<manual_bus> f(test_options());
    f.core->start_listener();
    auto s = f.open("rosa");
    auto text = f.core->metrics().render();
    CHECK(has(text, "# TYPE gatehouse_command_ack_seconds histogram\n"));
    CHECK(has(text, "gatehouse_command_ack_seconds_count{transport=\"ws\"} 0\n"));
    CHECK(has(text, "gatehouse_command_ack_seconds_count{transport=\"http\"} 0\n"));
    CHECK(has(text, "gatehouse_update_delivery_seconds_count 0\n"));

    // Only acks count: a command the bus refused is not timed.
    s.handler->on_message(true, R"({"type":"move","payload":1,"correlation_id":"c1"})");
    s.handler->on_message(true, R"({"type":"move","payload":2,"correlation_id":"c2"})");
    REQUIRE(f.bus->answer_next());
    REQUIRE(f.bus->fail_next());
    text = f.core->metrics().render();
    CHECK(has(text, "gatehouse_command_ack_seconds_bucket{transport=\"ws\",le=\"+Inf\"} 1\n"));
    CHECK(has(text, "gatehouse_command_ack_seconds_count{transport=\"ws\"} 1\n"));
    CHECK(has(text, "gatehouse_command_ack_seconds_count{transport=\"http\"} 0\n"));

    // A logged update's id carries its publish time: 1.5 s ago lands between 1 and 2.5 s.
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const auto logged = [](const std::string& player, std::int64_t ms) {
        return R"({"player_id":")" + player + R"(","type":"news","payload":1,"update_ids":{")" +
               player + R"(":")" + std::to_string(ms) + R"(-0"}})";
    };
    REQUIRE(f.bus->deliver(logged("rosa", now_ms - 1500)));
    // Not timed: unlogged, for nobody here, or stamped ahead of this clock (counted as 0).
    REQUIRE(f.bus->deliver(to_json(update_for_player("rosa", "news", "2"))));
    REQUIRE(f.bus->deliver(logged("nobody", now_ms - 1500)));
    REQUIRE(f.bus->deliver(logged("rosa", now_ms + 60000)));
    text = f.core->metrics().render();
    CHECK(has(text, "gatehouse_update_delivery_seconds_bucket{le=\"0.0001\"} 1\n"));
    CHECK(has(text, "gatehouse_update_delivery_seconds_bucket{le=\"1\"} 1\n"));
    CHECK(has(text, "gatehouse_update_delivery_seconds_bucket{le=\"2.5\"} 2\n"));
    CHECK(has(text, "gatehouse_update_delivery_seconds_count 2\n"));
    f.core->stop_listener();
    s.handler->on_close(1000);
}

TEST_CASE("gateway metrics: HTTP durations by route and status, labels escaped",
          "[gateway_metrics]") {
    auto connections = std::make_shared<connection_manager>();
    auto bus = std::make_shared<manual_bus>();
    gateway_metrics m(connections, bus);
    CHECK_FALSE(has(m.registry().render(), "gatehouse_http_request_duration_seconds"));
    m.observe_http("/login", 200, std::chrono::milliseconds(30));
    m.observe_http("/login", 200, std::chrono::milliseconds(3));
    m.observe_http("/login", 401, std::chrono::milliseconds(30));
    m.observe_http("other", 404, std::chrono::microseconds(50));
    m.observe_http(R"(/a"b\c)", 200, std::chrono::seconds(20));
    const auto text = m.registry().render();
    CHECK(has(text, "# TYPE gatehouse_http_request_duration_seconds histogram\n"));
    CHECK(has(text,
              "gatehouse_http_request_duration_seconds_bucket{route=\"/login\",status="
              "\"200\",le=\"0.005\"} 1\n"));
    CHECK(has(text,
              "gatehouse_http_request_duration_seconds_count{route=\"/login\",status="
              "\"200\"} 2\n"));
    CHECK(has(text,
              "gatehouse_http_request_duration_seconds_count{route=\"/login\",status="
              "\"401\"} 1\n"));
    CHECK(has(text,
              "gatehouse_http_request_duration_seconds_bucket{route=\"other\",status="
              "\"404\",le=\"0.0001\"} 1\n"));
    CHECK(has(text,
              "gatehouse_http_request_duration_seconds_bucket{route=\"/a\\\"b\\\\c\","
              "status=\"200\",le=\"10\"} 0\n"));
    CHECK(has(text,
              "gatehouse_http_request_duration_seconds_sum{route=\"/a\\\"b\\\\c\","
              "status=\"200\"} 20\n"));
}
