#include "gateway/command_ingress.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/append_tracker.hpp"
#include "memory_transport.hpp"

// The one command-acceptance path (WebSocket messages and POST /commands) on the in-memory
// transport, against a bus the test answers by hand: acks wait for the bus, a failing bus
// answers bus_unavailable, a bus that never answers is drained and then cancelled at
// shutdown, and a failing send leaves everything consistent.

namespace {

using namespace gatehouse_test;
using namespace std::chrono_literals;

// The answers given to HTTP requests, in order.
struct responses {
    std::mutex m;
    std::vector<http_response> got;

    http_responder responder() {
        return [this](http_response r) {
            std::lock_guard<std::mutex> lock(m);
            got.push_back(std::move(r));
        };
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(m);
        return got.size();
    }
    http_response last() {
        std::lock_guard<std::mutex> lock(m);
        REQUIRE(!got.empty());
        return got.back();
    }
};

http_request command_request(const std::string& player, std::string body,
                             std::string content_type = "application/json") {
    http_request r;
    r.method = "POST";
    r.path = "/commands";
    if (!player.empty()) r.headers.emplace_back("Authorization", "Bearer " + test_token(player));
    r.headers.emplace_back("Content-Type", std::move(content_type));
    r.body = std::move(body);
    return r;
}

std::string problem_code(const http_response& r) {
    const auto at = r.body.find("\"code\":\"");
    if (at == std::string::npos) return {};
    const auto start = at + 8;
    return r.body.substr(start, r.body.find('"', start) - start);
}

}  // namespace

TEST_CASE("command ingress: the ack waits for the bus; a failing bus answers bus_unavailable",
          "[command_ingress]") {
    core_on<manual_bus> f;
    auto s = f.open("alice");
    s.handler->on_message(true, R"({"type":"move","correlation_id":"c1"})");
    CHECK(f.bus->waiting() == 1);
    CHECK(f.core->ingress().pending_appends() == 1);
    CHECK(s.link->frames().size() == 1);  // the welcome only: no ack before the bus answered
    REQUIRE(f.bus->answer_next());
    auto frames = s.link->frames();
    REQUIRE(frames.size() == 2);
    CHECK(frames[1].find("\"type\":\"ack\"") != std::string::npos);
    CHECK(frames[1].find("\"stream_id\":\"1-1\"") != std::string::npos);
    CHECK(f.core->ingress().pending_appends() == 0);

    s.handler->on_message(true, R"({"type":"move","correlation_id":"c2"})");
    REQUIRE(f.bus->fail_next());
    CHECK(contains(s.link->frames(), R"("code":"bus_unavailable")"));

    // A bus that refuses at once (answers on the calling thread) is answered the same way.
    f.bus->refusing = true;
    s.handler->on_message(true, R"({"type":"move","correlation_id":"c3"})");
    CHECK(count(s.link->frames(), "bus_unavailable") == 2);
    CHECK(f.core->ingress().pending_appends() == 0);
    s.handler->on_close(1000);
}

TEST_CASE("command ingress: bad frames, bad envelopes and the rate limit never reach the bus",
          "[command_ingress]") {
    auto options = test_options();
    options.ws_rate_limit = 1;  // a burst of 2, refilled at 1/s
    core_on<manual_bus> f(options);
    auto s = f.open("bob");
    s.handler->on_message(true, "{");
    s.handler->on_message(true, R"({"type":"","correlation_id":"e1"})");
    // Both took a token: the bucket is empty now.
    s.handler->on_message(true, R"({"type":"move","correlation_id":"r1"})");
    const auto frames = s.link->frames();
    CHECK(contains(frames, R"("code":"invalid_frame")"));
    CHECK(contains(frames, R"("code":"invalid_envelope")"));
    CHECK(contains(frames, R"("code":"rate_limited")"));
    CHECK(f.bus->waiting() == 0);
    s.handler->on_close(1000);
}

TEST_CASE("command ingress: shutdown mid-command closes with 1001 once the command is answered",
          "[command_ingress]") {
    core_on<manual_bus> f;
    auto s = f.open("carol");
    s.handler->on_message(true, R"({"type":"move","correlation_id":"p1"})");
    REQUIRE(f.bus->waiting() == 1);
    f.core->begin_shutdown();
    CHECK(s.link->close_code() == 0);  // still owed an answer
    // Read after shutdown began: neither accepted nor answered (docs/protocol.md section 1).
    s.handler->on_message(true, R"({"type":"move","correlation_id":"p2"})");
    CHECK(f.bus->waiting() == 1);
    REQUIRE(f.bus->answer_next());
    CHECK(contains(s.link->frames(), R"("correlation_id":"p1")"));
    CHECK_FALSE(contains(s.link->frames(), "p2"));
    CHECK(s.link->close_code() == 1001);
    s.handler->on_close(1001);
    CHECK(f.core->shutdown(std::chrono::steady_clock::now() + 1s));
}

TEST_CASE(
    "command ingress: a bus that never answers is drained until the deadline, then "
    "cancelled",
    "[command_ingress]") {
    core_on<manual_bus> f;
    auto s = f.open("dana");
    s.handler->on_message(true, R"({"type":"move","correlation_id":"h1"})");
    responses http;
    f.core->handle_http(command_request("dana", R"({"type":"move"})"), http.responder());
    REQUIRE(f.bus->waiting() == 2);
    const auto started = std::chrono::steady_clock::now();
    CHECK_FALSE(f.core->shutdown(started + 100ms));
    CHECK(std::chrono::steady_clock::now() - started >= 100ms);
    const auto before = s.link->frames();
    // Late answers after the cancel: nobody is acked or answered any more.
    REQUIRE(f.bus->answer_next());
    CHECK(s.link->frames() == before);
    f.core.reset();  // the gateway goes; the bus still owes one answer
    REQUIRE(f.bus->fail_next());
    CHECK(http.size() == 0);
    s.handler->on_close(1006);
}

TEST_CASE("command ingress: a POST /commands still waiting when shutdown begins is drained",
          "[command_ingress]") {
    core_on<manual_bus> f;
    responses http;
    f.core->handle_http(command_request("erin", R"({"type":"move","correlation_id":"q"})"),
                        http.responder());
    REQUIRE(f.bus->waiting() == 1);
    auto answer = std::async(std::launch::async, [&] {
        std::this_thread::sleep_for(50ms);
        return f.bus->answer_next();
    });
    CHECK(f.core->shutdown(std::chrono::steady_clock::now() + 5s));
    CHECK(answer.get());
    REQUIRE(http.size() == 1);
    CHECK(http.last().status == 202);
    CHECK(http.last().body == R"({"correlation_id":"q","stream_id":"1-1"})");
    // After shutdown began, POST /commands is refused.
    f.core->handle_http(command_request("erin", R"({"type":"move"})"), http.responder());
    CHECK(http.last().status == 503);
    CHECK(problem_code(http.last()) == "shutting_down");
}

TEST_CASE("command ingress: a POST /commands past the route's check as shutdown begins is refused",
          "[command_ingress]") {
    // The route checked for shutdown before shutdown began; the command reaches the ingress
    // after it did. It must be answered (503), not counted too late for the drain and then
    // dropped by the cancel.
    core_on<manual_bus> f;
    responses http;
    f.core->begin_shutdown();
    gatehouse::identity who;
    who.player_id = "erin";
    f.core->ingress().on_http_command(command_request("erin", R"({"type":"move"})"), who,
                                      http.responder());
    REQUIRE(http.size() == 1);
    CHECK(http.last().status == 503);
    CHECK(problem_code(http.last()) == "shutting_down");
    CHECK(f.bus->waiting() == 0);
    CHECK(f.core->ingress().pending_appends() == 0);
    CHECK(f.core->shutdown(std::chrono::steady_clock::now() + 5s));
}

TEST_CASE("command ingress: POST /commands answers", "[command_ingress]") {
    auto options = test_options();
    options.ws_rate_limit = 1;
    core_on<manual_bus> f(options);
    responses http;
    const auto post = [&](const http_request& r) {
        f.core->handle_http(r, http.responder());
        return http.last();
    };
    CHECK(post(command_request("", R"({"type":"move"})")).status == 401);
    CHECK(post(command_request("finn", R"({"type":"move"})", "text/plain")).status == 415);
    auto bad = post(command_request("finn", "not json"));
    CHECK(bad.status == 400);
    CHECK(problem_code(bad) == "invalid_json");
    bad = post(command_request("finn", R"({"type":""})"));
    CHECK(bad.status == 400);
    CHECK(problem_code(bad) == "invalid_envelope");

    // Two within the burst wait for the bus; the third is over the player's rate.
    f.core->handle_http(command_request("finn", R"({"type":"move"})"), http.responder());
    f.core->handle_http(command_request("finn", R"({"type":"move"})"), http.responder());
    const auto limited = post(command_request("finn", R"({"type":"move"})"));
    CHECK(limited.status == 429);
    bool retry_after = false;
    for (const auto& [name, value] : limited.headers) {
        if (name == "Retry-After") retry_after = std::stoi(value) >= 1;
    }
    CHECK(retry_after);
    REQUIRE(f.bus->answer_next());
    CHECK(http.last().status == 202);
    CHECK(http.last().body.find(R"("correlation_id":"http:core-test-r)") != std::string::npos);
    REQUIRE(f.bus->fail_next());
    CHECK(http.last().status == 503);
    CHECK(problem_code(http.last()) == "bus_unavailable");
    // Another player has a bucket of their own.
    f.core->handle_http(command_request("gwen", R"({"type":"move"})"), http.responder());
    CHECK(f.bus->waiting() == 1);
}

TEST_CASE("command ingress: every failing send with a pending command leaves it consistent",
          "[command_ingress]") {
    for (std::size_t n = 1; n < 20; ++n) {
        core_on<manual_bus> f;
        auto s = f.open("hana", n);
        s.handler->on_message(true, R"({"type":"a","correlation_id":"1"})");
        s.handler->on_message(true, "{");
        s.handler->on_message(true, R"({"type":"b"})");
        f.core->begin_shutdown();
        while (f.bus->answer_next()) {
        }
        s.handler->on_close(1006);
        CHECK(f.bus->appended().size() == 2);
        CHECK(f.core->ingress().pending_appends() == 0);
        CHECK(f.core->shutdown(std::chrono::steady_clock::now()));
        if (s.link->frames().size() + 1 < n) break;  // nothing failed: every send was covered
    }
}

TEST_CASE("append tracker: cancel waits for an answer being handled, then drops the rest",
          "[command_ingress]") {
    append_tracker t;
    t.appended();
    t.appended();
    CHECK(t.pending() == 2);
    CHECK_FALSE(t.wait_drained(std::chrono::steady_clock::now() + 10ms));

    REQUIRE(t.handling());  // an answer being handled on the "bus thread"
    std::atomic<bool> cancelled{false};
    std::thread canceller([&] {
        t.cancel();
        cancelled = true;
    });
    std::this_thread::sleep_for(50ms);
    CHECK_FALSE(cancelled);  // still waiting for the answer in progress
    t.answered();
    canceller.join();
    CHECK(cancelled);
    CHECK_FALSE(t.handling());  // after the cancel an answer is dropped
    t.answered();
    CHECK(t.pending() == 0);
    CHECK(t.wait_drained(std::chrono::steady_clock::now()));
}
