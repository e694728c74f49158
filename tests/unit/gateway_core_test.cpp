#include "gateway/gateway_core.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "memory_transport.hpp"

// The gateway core as a whole on the in-memory transport (memory_transport.hpp): the same
// `transport_events` / `stream_link` seam the socket transport uses, with a link that can fail
// its Nth send, so every error path of the core runs without a socket. Each part has its own
// tests beside this file.

namespace {

using namespace gatehouse_test;
using core_fixture = core_on<>;

}  // namespace

TEST_CASE("gateway core: welcome, ack and close over the in-memory transport", "[gateway_core]") {
    core_fixture f;
    auto decision = f.upgrade("alice");
    REQUIRE(decision.accepted);
    REQUIRE(decision.handler);
    auto link = std::make_shared<memory_link>();
    decision.handler->on_open(link);
    REQUIRE(f.core->connections().size() == 1);
    auto frames = link->frames();
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].find("\"type\":\"welcome\"") != std::string::npos);
    CHECK(frames[0].find("\"player_id\":\"alice\"") != std::string::npos);

    // The in-process bus answers on the calling thread: the ack is there on return.
    decision.handler->on_message(true,
                                 R"({"type":"move","payload":{"x":1},"correlation_id":"c1"})");
    frames = link->frames();
    REQUIRE(frames.size() == 2);
    CHECK(frames[1].find("\"type\":\"ack\"") != std::string::npos);
    CHECK(frames[1].find("\"correlation_id\":\"c1\"") != std::string::npos);
    CHECK(f.bus->size() == 1);

    decision.handler->on_message(true, "not json");
    CHECK(contains(link->frames(), "invalid_frame"));

    decision.handler->on_close(1000);
    CHECK(f.core->connections().size() == 0);
    CHECK(f.core->wait_for_sessions(std::chrono::steady_clock::now()));
}

TEST_CASE("gateway core: refusals carry problem+json", "[gateway_core]") {
    core_fixture f;
    upgrade_request bad_token;
    bad_token.path = "/ws/player/not-a-token";
    auto refused = f.core->authorize_upgrade(bad_token);
    CHECK_FALSE(refused.accepted);
    CHECK(refused.refusal.status == 401);
    CHECK(refused.refusal.content_type == "application/problem+json");

    upgrade_request elsewhere;
    elsewhere.path = "/ws/other";
    CHECK(f.core->authorize_upgrade(elsewhere).refusal.status == 404);

    const std::string path = "/ws/player/" + test_token("bob");
    upgrade_request bad_codec;
    bad_codec.path = path;
    bad_codec.query = "codec=nope";
    CHECK(f.core->authorize_upgrade(bad_codec).refusal.status == 400);
}

TEST_CASE("gateway core: max_connections answers 503 over_capacity until one closes",
          "[gateway_core]") {
    auto options = test_options();
    options.max_connections = 2;
    core_fixture f(options);
    auto first = f.upgrade("p1");
    auto second = f.upgrade("p2");
    REQUIRE(first.accepted);
    REQUIRE(second.accepted);
    // Accepted but not yet open counts too: the cap holds while handshakes are written.
    auto third = f.upgrade("p3");
    CHECK_FALSE(third.accepted);
    CHECK(third.refusal.status == 503);
    CHECK(third.refusal.body.find("over_capacity") != std::string::npos);

    first.handler->on_open(std::make_shared<memory_link>());
    // A handshake that failed before opening gives its slot back.
    second.handler->on_close(1006);
    auto fourth = f.upgrade("p4");
    CHECK(fourth.accepted);
    first.handler->on_close(1000);
    fourth.handler->on_close(1006);
    CHECK(f.core->wait_for_sessions(std::chrono::steady_clock::now()));
}

TEST_CASE("gateway core: every failing send leaves the core consistent (fail the Nth)",
          "[gateway_core]") {
    // Rerun with the Nth send failing until a run completes without reaching N: every send
    // of the scenario has then failed once.
    for (std::size_t n = 1; n < 100; ++n) {
        core_fixture f;
        auto decision = f.upgrade("carol");
        REQUIRE(decision.accepted);
        auto link = std::make_shared<memory_link>(n);
        decision.handler->on_open(link);
        decision.handler->on_message(true, R"({"type":"a","correlation_id":"1"})");
        decision.handler->on_message(true, "{");
        decision.handler->on_message(true, R"({"type":"b"})");
        for (const auto& id : f.core->connections().connections_of("carol")) {
            f.core->connections().send(id, make_frame("{}", frame_type::text));
        }
        decision.handler->on_close(1006);
        // Whatever failed, every command reached the bus or was answered, and the session is
        // gone.
        CHECK(f.bus->size() == 2);
        CHECK(f.core->connections().size() == 0);
        CHECK(f.core->wait_for_sessions(std::chrono::steady_clock::now()));
        if (link->frames().size() + 1 < n) break;  // nothing failed: every send was covered
    }
}

TEST_CASE("gateway core: event streams get keep-alives and are never idle-closed",
          "[gateway_core]") {
    auto options = test_options();
    options.ping_interval = std::chrono::milliseconds{0};
    options.idle_timeout = std::chrono::milliseconds{20};
    core_fixture f(options);
    http_request request;
    request.method = "GET";
    request.path = "/sse/player";
    request.headers.emplace_back("Authorization", "Bearer " + test_token("dana"));
    REQUIRE(f.core->is_event_stream_request(request));
    auto decision = f.core->authorize_event_stream(request);
    REQUIRE(decision.accepted);
    auto link = std::make_shared<memory_link>();
    decision.handler->on_open(link);
    CHECK(link->frames().empty());  // no welcome on an event stream
    CHECK(f.core->connections().size() == 1);
    // Past the idle timeout: a WebSocket would be closed; a stream is not.
    std::this_thread::sleep_for(std::chrono::milliseconds{40});
    f.core->sweep();
    CHECK(link->close_code() == 0);
    decision.handler->on_close(0);
}

TEST_CASE(
    "gateway core: a command's update_id never reaches the command stream, a valid "
    "traceparent does",
    "[gateway_core]") {
    core_fixture f;
    auto decision = f.upgrade("alice");
    REQUIRE(decision.accepted);
    auto link = std::make_shared<memory_link>();
    decision.handler->on_open(link);
    // A client may send either field (a v1 client may even send junk in them): the command
    // is acked as usual, and the stream gets the section 4 fields plus a well-formed
    // traceparent (docs/protocol.md 6.8).
    decision.handler->on_message(
        true, R"({"type":"move","correlation_id":"c1","update_id":"99999999999999-9",)"
              R"("traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})");
    decision.handler->on_message(true, R"({"type":"move","correlation_id":"c2","update_id":17,)"
                                       R"("traceparent":"garbage"})");
    const auto frames = link->frames();
    CHECK(count(frames, "\"type\":\"ack\"") == 2);
    const auto entries = f.bus->read("", 10);
    REQUIRE(entries.size() == 2);
    for (const auto& entry : entries) {
        CHECK(entry.command.type == "move");
        CHECK(entry.command.update_id.empty());
    }
    CHECK(entries[0].command.traceparent ==
          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    CHECK(entries[1].command.traceparent.empty());
    decision.handler->on_close(1000);
}
