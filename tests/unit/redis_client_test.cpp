#include "gatehouse/redis_client.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "redis_server_fixture.hpp"

using gatehouse::redis_client;
using gatehouse::redis_client_options;
using gatehouse::redis_reply;
using gatehouse::redis_reply_kind;
using gatehouse_test::redis_server;
using namespace std::chrono_literals;

namespace {

redis_client_options options_for(const std::string& url,
                                 std::chrono::milliseconds timeout = 1000ms) {
    redis_client_options o;
    o.url = url;
    o.timeout = timeout;
    return o;
}

}  // namespace

TEST_CASE("redis_client: bad options throw, naming the option and not the password",
          "[redis_client]") {
    try {
        redis_client c(options_for("http://u:hunter2@host"));
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("url") != std::string::npos);
        CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
    }
    CHECK_THROWS_WITH(redis_client(options_for("redis://127.0.0.1", 0ms)),
                      Catch::Contains("timeout"));
}

TEST_CASE("redis_client: connects lazily, runs binary-safe commands, errors are replies",
          "[redis_client]") {
    redis_server server;
    redis_client c(options_for(server.url()));
    CHECK_FALSE(c.connected());
    CHECK(c.redacted_url() == "redis://127.0.0.1:" + std::to_string(server.port()));

    const std::string bytes("a\0b\r\n c", 7);
    redis_reply r;
    REQUIRE_FALSE(c.command({"SET", "k", bytes}, r));
    CHECK(c.connected());
    CHECK(r.kind == redis_reply_kind::status);
    CHECK(r.is_text("OK"));
    REQUIRE_FALSE(c.command({"GET", "k"}, r));
    CHECK(r.kind == redis_reply_kind::string);
    CHECK(r.str == bytes);
    REQUIRE_FALSE(c.command({"GET", "missing"}, r));
    CHECK(r.kind == redis_reply_kind::nil);
    REQUIRE_FALSE(c.command({"RPUSH", "l", "x", "y"}, r));
    CHECK(r.kind == redis_reply_kind::integer);
    CHECK(r.integer == 2);
    REQUIRE_FALSE(c.command({"LRANGE", "l", "0", "-1"}, r));
    REQUIRE(r.kind == redis_reply_kind::array);
    REQUIRE(r.elements.size() == 2);
    CHECK(r.elements[1].str == "y");

    // A Redis error is a reply, not an error code.
    REQUIRE_FALSE(c.command({"XREADGROUP", "GROUP", "nogroup", "me", "STREAMS", "s", ">"}, r));
    CHECK(r.is_error());
    CHECK(r.is_error("NOGROUP"));
    CHECK_FALSE(r.is_error("BUSYGROUP"));
}

TEST_CASE("redis_client: calls from several threads share one pipelined connection",
          "[redis_client]") {
    redis_server server;
    redis_client c(options_for(server.url()));
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int n = 0; n < 200; ++n) {
                redis_reply r;
                if (!c.command({"INCR", "counter"}, r) && r.kind == redis_reply_kind::integer) {
                    ok.fetch_add(1);
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(ok.load() == 800);
    redis_reply r;
    REQUIRE_FALSE(c.command({"CLIENT", "LIST"}, r));
    // One connection: the list has this client's line only.
    CHECK(std::count(r.str.begin(), r.str.end(), '\n') == 1);
}

TEST_CASE("redis_client: AUTH and SELECT from the URL; a refused AUTH is permission_denied",
          "[redis_client]") {
    redis_server server(
        {"--user", "alice", "on", ">alice-pw", "~*", "&*", "+@all", "--user", "default", "off"});
    redis_client c(options_for(server.url("alice:alice-pw@", "/3")));
    redis_reply r;
    REQUIRE_FALSE(c.command({"SET", "k", "v"}, r));
    REQUIRE_FALSE(c.command({"CLIENT", "INFO"}, r));
    CHECK(r.str.find("db=3") != std::string::npos);

    redis_client none(options_for(server.url()));  // the default user is off: NOAUTH
    CHECK(none.command({"PING"}, r) == std::errc::permission_denied);

    redis_client wrong(options_for(server.url("alice:hunter2-wrong@")));
    CHECK(wrong.command({"PING"}, r) == std::errc::permission_denied);
    CHECK_FALSE(wrong.connected());
    CHECK(wrong.last_error().find("AUTH") != std::string::npos);
    CHECK(wrong.last_error().find("hunter2") == std::string::npos);
}

TEST_CASE("redis_client: a hung Redis times out; a killed one fails fast; both heal",
          "[redis_client]") {
    redis_server server;
    redis_client c(options_for(server.url(), 300ms));
    redis_reply r;
    REQUIRE_FALSE(c.command({"PING"}, r));

    server.pause();
    auto t0 = std::chrono::steady_clock::now();
    CHECK(c.command({"PING"}, r) == std::errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - t0 < 1000ms);
    CHECK_FALSE(c.connected());
    server.resume();
    REQUIRE_FALSE(c.command({"PING"}, r));

    server.kill_now();
    t0 = std::chrono::steady_clock::now();
    CHECK(c.command({"PING"}, r));  // the link is gone, then the connect is refused
    CHECK(std::chrono::steady_clock::now() - t0 < 1000ms);
    CHECK_FALSE(c.connected());

    server.restart();
    REQUIRE_FALSE(c.command({"PING"}, r));
    CHECK(r.is_text("PONG"));
    // A shorter deadline of its own for one call.
    t0 = std::chrono::steady_clock::now();
    CHECK(c.command({"BLPOP", "nothing", "1"}, r, 100ms) == std::errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - t0 < 250ms);
    // A command that blocks in Redis needs a timeout longer than its block time.
    redis_client patient(options_for(server.url(), 2000ms));
    REQUIRE_FALSE(patient.command({"BLPOP", "nothing", "0.5"}, r));
    CHECK(r.kind == redis_reply_kind::nil);
}

TEST_CASE("redis_client: destroyed while connected, with nothing in flight", "[redis_client]") {
    redis_server server;
    for (int n = 0; n < 20; ++n) {
        redis_client c(options_for(server.url()));
        redis_reply r;
        REQUIRE_FALSE(c.command({"PING"}, r));
    }
    // And never connected at all.
    redis_client idle(options_for(server.url()));
}
