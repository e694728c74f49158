#include "gatehouse/redis_bus.hpp"

#include <hiredis/hiredis.h>
#include <sched.h>
#include <sys/types.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gatehouse/errc.hpp"
#include "redis/connection.hpp"
#include "redis_server_fixture.hpp"
#include "redis_sync_client.hpp"

using namespace std::chrono_literals;
using gatehouse::errc;
using gatehouse::redis_bus;
using gatehouse::redis_bus_options;
using gatehouse_test::redis_server;
using gatehouse_test::sync_client;

namespace {

// The outcome of one append(), waited for with a bound.
struct append_result {
    std::mutex m;
    std::condition_variable cv;
    int calls = 0;
    std::error_code error;
    std::string id;

    gatehouse::append_handler handler() {
        return [this](std::error_code ec, std::string_view entry_id) {
            std::lock_guard<std::mutex> lock(m);
            ++calls;
            error = ec;
            id = std::string(entry_id);
            cv.notify_all();
        };
    }
    bool wait(std::chrono::milliseconds limit = 5000ms) {
        std::unique_lock<std::mutex> lock(m);
        return cv.wait_for(lock, limit, [this] { return calls > 0; });
    }
};

gatehouse::envelope sample_command(const std::string& correlation_id) {
    gatehouse::envelope e;
    e.type = "move";
    e.payload = R"({"x": 1, "y": [2, 3]})";
    e.format = gatehouse::payload_format::json;
    e.correlation_id = correlation_id;
    e.origin.player_id = "alice";
    e.origin.connection_id = "gw-test-7";
    e.origin.client = gatehouse::client_kind::player;
    e.origin.accepted_at_ms = 1700000000123;
    return e;
}

redis_bus_options options_for(const redis_server& server) {
    redis_bus_options o;
    o.url = server.url();
    o.command_stream = "test:commands";
    o.updates_channel = "test:updates";
    o.gateway_id = "gw-test";
    o.timeout = 1000ms;
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    return o;
}

template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return done();
}

// Collects delivered update messages.
struct inbox {
    std::mutex m;
    std::vector<std::string> messages;
    gatehouse::update_handler handler() {
        return [this](std::string_view message) {
            std::lock_guard<std::mutex> lock(m);
            messages.emplace_back(message);
        };
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(m);
        return messages.size();
    }
};

}  // namespace

TEST_CASE("redis_bus: format_command writes what hiredis's formatter writes", "[redis_bus]") {
    const std::vector<std::string> argv{"XADD", "s", "*", "payload", std::string("\0\r\n\xff", 4),
                                        ""};
    std::vector<const char*> args;
    std::vector<std::size_t> lengths;
    for (const auto& a : argv) {
        args.push_back(a.data());
        lengths.push_back(a.size());
    }
    char* expected = nullptr;
    const int len = redisFormatCommandArgv(&expected, static_cast<int>(args.size()), args.data(),
                                           lengths.data());
    REQUIRE(len > 0);
    std::string ours;
    gatehouse::detail::redis::format_command(
        ours, {argv[0], argv[1], argv[2], argv[3], argv[4], argv[5]});
    CHECK(ours == std::string(expected, static_cast<std::size_t>(len)));
    redisFreeCommand(expected);
}

TEST_CASE("redis_bus: invalid options are refused at construction", "[redis_bus]") {
    redis_bus_options o;
    o.url = "http://127.0.0.1:6379";
    CHECK_THROWS_AS(redis_bus(o), std::invalid_argument);
    o.url = "redis://127.0.0.1:1";
    o.command_stream.clear();
    CHECK_THROWS_AS(redis_bus(o), std::invalid_argument);
    o.command_stream = "s";
    o.timeout = 0ms;
    CHECK_THROWS_AS(redis_bus(o), std::invalid_argument);
}

#if defined(__linux__)
// Threads of this process whose scheduling policy is SCHED_BATCH.
int batch_scheduled_threads() {
    int n = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        const auto tid = static_cast<pid_t>(std::stol(task.path().filename().string()));
        if (sched_getscheduler(tid) == SCHED_BATCH) ++n;
    }
    return n;
}

TEST_CASE("redis_bus: its I/O threads keep the default policy unless SCHED_BATCH is asked for",
          "[redis_bus]") {
    redis_server server;
    const int before = batch_scheduled_threads();
    {
        redis_bus bus(options_for(server));  // batch_scheduling defaults to false
        bus.start([](std::string_view) {});
        REQUIRE(bus.wait_connected(5000ms));
        CHECK(batch_scheduled_threads() == before);
    }
    auto o = options_for(server);
    o.batch_scheduling = true;
    {
        redis_bus bus(o);
        bus.start([](std::string_view) {});
        // Connected means both I/O threads have run handlers, so they set their policy first.
        REQUIRE(bus.wait_connected(5000ms));
        CHECK(batch_scheduled_threads() == before + 2);
    }
    CHECK(batch_scheduled_threads() == before);  // both threads were joined
}
#endif

TEST_CASE("redis_bus: an appended command is one stream entry with section 4's fields",
          "[redis_bus]") {
    redis_server server;
    redis_bus bus(options_for(server));
    REQUIRE(bus.wait_connected(5000ms));

    append_result result;
    bus.append(sample_command("c-1"), result.handler());
    REQUIRE(result.wait());
    REQUIRE_FALSE(result.error);

    sync_client redis(server);
    const auto fields = redis.entry("test:commands", result.id);
    const std::map<std::string, std::string> expected{
        {"type", "move"},           {"payload", R"({"x": 1, "y": [2, 3]})"},
        {"codec", "json"},          {"correlation_id", "c-1"},
        {"player_id", "alice"},     {"connection_id", "gw-test-7"},
        {"gateway_id", "gw-test"},  {"client", "player"},
        {"ts_ms", "1700000000123"},
    };
    CHECK(fields == expected);
    CHECK(bus.stats().appended == 1);

    SECTION("binary payloads pass through byte for byte, with their codec and name") {
        auto e = sample_command("c-2");
        e.format = gatehouse::payload_format::bytes;
        e.payload = std::string("\x08\x96\x01\x00\r\n\xff", 7);
        e.payload_codec = "game.Move";
        e.origin.client = gatehouse::client_kind::bot;
        e.origin.player_id = "bot:rover";
        append_result bytes;
        bus.append(e, bytes.handler());
        REQUIRE(bytes.wait());
        REQUIRE_FALSE(bytes.error);
        const auto f = redis.entry("test:commands", bytes.id);
        CHECK(f.at("payload") == e.payload);
        CHECK(f.at("codec") == "protobuf");
        CHECK(f.at("payload_codec") == "game.Move");
        CHECK(f.at("client") == "bot");
        CHECK(f.at("player_id") == "bot:rover");
        CHECK(f.size() == 10);

        e.format = gatehouse::payload_format::msgpack;
        e.payload = std::string("\x81\xa1x\x01", 4);
        e.payload_codec.clear();
        e.correlation_id = "c-3";  // another command: the same pair would be a retry (6.5)
        append_result packed;
        bus.append(e, packed.handler());
        REQUIRE(packed.wait());
        const auto g = redis.entry("test:commands", packed.id);
        CHECK(g.at("codec") == "msgpack");
        CHECK(g.at("payload") == e.payload);
        CHECK(g.count("payload_codec") == 0);
    }
}

TEST_CASE("redis_bus: many appends from several threads are pipelined and all acked in order",
          "[redis_bus]") {
    redis_server server;
    redis_bus bus(options_for(server));
    REQUIRE(bus.wait_connected(5000ms));
    // The connection's own commands (PING, FUNCTION LOAD) were timed already.
    const auto roundtrip = bus.producer().roundtrip_histogram();
    const auto setup_replies = roundtrip->count();
    CHECK(setup_replies > 0);

    constexpr int threads = 4;
    constexpr int per_thread = 500;
    std::mutex m;
    std::map<int, std::vector<std::string>> ids;  // thread -> entry ids in ack order
    std::atomic<int> failures{0}, answered{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int n = 0; n < per_thread; ++n) {
                bus.append(sample_command(std::to_string(t) + "-" + std::to_string(n)),
                           [&, t](std::error_code ec, std::string_view id) {
                               if (ec) failures.fetch_add(1);
                               std::lock_guard<std::mutex> lock(m);
                               ids[t].emplace_back(id);
                               answered.fetch_add(1);
                           });
            }
        });
    }
    for (auto& w : workers) w.join();
    REQUIRE(eventually([&] { return answered.load() == threads * per_thread; }, 10000ms));
    CHECK(failures.load() == 0);
    // One reply per FCALL batch of up to 256 commands, each timed.
    CHECK(roundtrip->count() >= setup_replies + threads * per_thread / 256);
    CHECK(roundtrip->sum() > 0);

    sync_client redis(server);
    CHECK(redis.integer({"XLEN", "test:commands"}) == threads * per_thread);
    // One thread's commands reach the stream in the order it appended them.
    for (auto& [t, list] : ids) {
        for (std::size_t i = 1; i < list.size(); ++i) {
            const auto a = list[i - 1], b = list[i];
            const auto ams = std::stoull(a.substr(0, a.find('-')));
            const auto bms = std::stoull(b.substr(0, b.find('-')));
            const auto aseq = std::stoull(a.substr(a.find('-') + 1));
            const auto bseq = std::stoull(b.substr(b.find('-') + 1));
            REQUIRE((ams < bms || (ams == bms && aseq < bseq)));
        }
    }
}

TEST_CASE("redis_bus: a retried command gets its first id and is on the stream once",
          "[redis_bus][dedupe]") {
    redis_server server;
    redis_bus bus(options_for(server));
    REQUIRE(bus.wait_connected(5000ms));

    append_result first;
    bus.append(sample_command("r-1"), first.handler());
    REQUIRE(first.wait());
    REQUIRE_FALSE(first.error);

    // Retries from many threads at once, mixed with fresh commands, one gateway-assigned id
    // sent twice, and the same correlation id of another player: every retry gets the first
    // id, the others are appended, and one thread's commands keep their order.
    constexpr int threads = 4;
    constexpr int per_thread = 200;
    std::mutex m;
    std::map<std::string, std::set<std::string>> ids;  // correlation id -> ids acked
    std::atomic<int> failures{0}, answered{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int n = 0; n < per_thread; ++n) {
                const auto cid = n % 2 == 0 ? std::string("r-1")
                                            : "f-" + std::to_string(t) + "-" + std::to_string(n);
                bus.append(sample_command(cid), [&, cid](std::error_code ec, std::string_view id) {
                    if (ec) failures.fetch_add(1);
                    std::lock_guard<std::mutex> lock(m);
                    ids[cid].emplace(id);
                    answered.fetch_add(1);
                });
            }
        });
    }
    for (auto& w : workers) w.join();
    auto assigned = sample_command("gw-1.1");
    assigned.origin.correlation_assigned = true;
    append_result a1, a2, other;
    bus.append(assigned, a1.handler());
    bus.append(assigned, a2.handler());
    auto bob = sample_command("r-1");
    bob.origin.player_id = "bob";
    bus.append(bob, other.handler());
    REQUIRE(eventually([&] { return answered.load() == threads * per_thread; }, 10000ms));
    REQUIRE(a1.wait());
    REQUIRE(a2.wait());
    REQUIRE(other.wait());
    CHECK(failures.load() == 0);
    CHECK(ids["r-1"] == std::set<std::string>{first.id});
    CHECK(a1.id != a2.id);
    CHECK(other.id != first.id);

    sync_client redis(server);
    const int fresh = threads * per_thread / 2;
    CHECK(redis.integer({"XLEN", "test:commands"}) == 1 + fresh + 3);
    const auto stats = bus.stats();
    CHECK(stats.duplicates == static_cast<std::uint64_t>(threads * per_thread / 2));
    CHECK(stats.appended == static_cast<std::uint64_t>(1 + fresh + 3));
    // This Redis has no gatehouse module: the function appended them.
    CHECK_FALSE(bus.producer().stats().append_module);
}

TEST_CASE("redis_bus: a dedupe window of 0 appends every command", "[redis_bus][dedupe]") {
    redis_server server;
    auto o = options_for(server);
    o.dedupe_window = std::chrono::seconds{0};
    redis_bus bus(o);
    REQUIRE(bus.wait_connected(5000ms));
    append_result one, two;
    bus.append(sample_command("same"), one.handler());
    REQUIRE(one.wait());
    bus.append(sample_command("same"), two.handler());
    REQUIRE(two.wait());
    CHECK(one.id != two.id);
    CHECK(bus.stats().duplicates == 0);
}

TEST_CASE("redis_bus: stream_maxlen trims the stream approximately", "[redis_bus]") {
    redis_server server;
    auto o = options_for(server);
    o.stream_maxlen = 100;
    redis_bus bus(o);
    REQUIRE(bus.wait_connected(5000ms));
    std::atomic<int> answered{0};
    for (int n = 0; n < 2000; ++n) {
        bus.append(sample_command("c" + std::to_string(n)),
                   [&](std::error_code, std::string_view) { answered.fetch_add(1); });
    }
    REQUIRE(eventually([&] { return answered.load() == 2000; }));
    sync_client redis(server);
    const auto len = redis.integer({"XLEN", "test:commands"});
    // `~` lets Redis keep up to a whole radix-tree node (100 entries by default) more.
    CHECK(len >= 100);
    CHECK(len <= 300);
}

TEST_CASE("redis_bus: without Redis, appends fail at once with bus_unavailable", "[redis_bus]") {
    redis_bus_options o;
    o.url = "redis://127.0.0.1:1";  // nothing listens on port 1
    o.timeout = 500ms;
    redis_bus bus(o);
    CHECK_FALSE(bus.wait_connected(200ms));
    CHECK_FALSE(bus.connected());
    append_result result;
    bus.append(sample_command("c"), result.handler());
    REQUIRE(result.wait(100ms));  // no waiting for a connect attempt
    CHECK(result.error == errc::bus_unavailable);
    CHECK(result.id.empty());
    CHECK(bus.stats().append_failures == 1);
}

TEST_CASE("redis_bus: a killed Redis fails in-flight commands; a restarted one heals all",
          "[redis_bus]") {
    redis_server server;
    redis_bus bus(options_for(server));
    inbox received;
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));

    // Commands in flight when Redis dies: each gets exactly one answer, never silence. Some
    // may be acked before the kill lands; the rest fail with bus_unavailable.
    constexpr int in_flight = 300;
    std::atomic<int> acked{0}, failed{0}, other{0};
    for (int n = 0; n < in_flight; ++n) {
        bus.append(sample_command("k" + std::to_string(n)),
                   [&](std::error_code ec, std::string_view) {
                       if (!ec) {
                           acked.fetch_add(1);
                       } else if (ec == errc::bus_unavailable) {
                           failed.fetch_add(1);
                       } else {
                           other.fetch_add(1);
                       }
                   });
    }
    server.kill_now();
    REQUIRE(eventually([&] { return acked.load() + failed.load() + other.load() == in_flight; }));
    CHECK(other.load() == 0);
    REQUIRE(eventually([&] { return !bus.connected(); }));

    append_result while_down;
    bus.append(sample_command("down"), while_down.handler());
    REQUIRE(while_down.wait(1000ms));
    CHECK(while_down.error == errc::bus_unavailable);

    server.restart();
    REQUIRE(bus.wait_connected(5000ms));
    append_result after;
    bus.append(sample_command("after"), after.handler());
    REQUIRE(after.wait());
    CHECK_FALSE(after.error);
    sync_client redis(server);
    CHECK(redis.entry("test:commands", after.id).at("correlation_id") == "after");

    // The listener resubscribed: a message published now arrives.
    REQUIRE(eventually([&] {
        return redis.integer({"PUBLISH", "test:updates", "{\"broadcast\":true}"}) == 1;
    }));
    REQUIRE(eventually([&] { return received.size() >= 1; }));
    CHECK(bus.stats().command_reconnects == 1);
    CHECK(bus.stats().listener_reconnects == 1);
    bus.stop();
}

TEST_CASE("redis_bus: a hung Redis times commands out and is reconnected when it answers again",
          "[redis_bus]") {
    redis_server server;
    auto o = options_for(server);
    o.timeout = 400ms;
    redis_bus bus(o);
    REQUIRE(bus.wait_connected(5000ms));

    server.pause();
    append_result stuck;
    const auto sent = std::chrono::steady_clock::now();
    bus.append(sample_command("stuck"), stuck.handler());
    REQUIRE(stuck.wait(3000ms));
    CHECK(stuck.error == errc::bus_unavailable);
    // Answered after the deadline, not before it and not much after it.
    const auto waited = std::chrono::steady_clock::now() - sent;
    CHECK(waited >= 300ms);
    CHECK(waited < 2500ms);
    CHECK_FALSE(bus.connected());

    server.resume();
    REQUIRE(bus.wait_connected(5000ms));
    append_result after;
    bus.append(sample_command("after"), after.handler());
    REQUIRE(after.wait());
    CHECK_FALSE(after.error);
}

TEST_CASE("redis_bus: published messages reach the handler in order; stop() ends delivery",
          "[redis_bus]") {
    redis_server server;
    redis_bus bus(options_for(server));
    inbox received;
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));

    sync_client redis(server);
    constexpr int count = 1000;
    for (int n = 0; n < count; ++n) redis.run({"PUBLISH", "test:updates", std::to_string(n)});
    REQUIRE(eventually([&] { return received.size() == count; }));
    {
        std::lock_guard<std::mutex> lock(received.m);
        for (int n = 0; n < count; ++n) {
            REQUIRE(received.messages[static_cast<std::size_t>(n)] == std::to_string(n));
        }
    }
    CHECK(bus.stats().updates_received == count);

    bus.stop();
    // Unsubscribed: no subscriber is left on the channel, and nothing more is delivered.
    REQUIRE(eventually([&] { return redis.integer({"PUBLISH", "test:updates", "late"}) == 0; }));
    std::this_thread::sleep_for(50ms);
    CHECK(received.size() == count);
    // The command side keeps working after the listener stopped.
    CHECK(bus.connected());
}

TEST_CASE("redis_bus: a lost subscription, once back, is told before its first message",
          "[redis_bus]") {
    redis_server server;
    redis_bus bus(options_for(server));
    inbox received;
    // Into the same list as the messages, so that the order of the two shows.
    bus.on_resubscribed([&received] {
        std::lock_guard<std::mutex> lock(received.m);
        received.messages.emplace_back("<resubscribed>");
    });
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));
    sync_client redis(server);
    redis.run({"PUBLISH", "test:updates", "before"});
    REQUIRE(eventually([&] { return received.size() == 1; }));  // the first subscribe is not told

    CHECK(redis.integer({"CLIENT", "KILL", "TYPE", "pubsub"}) == 1);
    // Published until the new subscription takes it: the first one it delivers follows the
    // signal.
    REQUIRE(eventually([&] { return redis.integer({"PUBLISH", "test:updates", "after"}) == 1; }));
    REQUIRE(eventually([&] { return received.size() == 3; }));
    {
        std::lock_guard<std::mutex> lock(received.m);
        CHECK(received.messages == std::vector<std::string>{"before", "<resubscribed>", "after"});
    }
    CHECK(bus.stats().listener_reconnects == 1);

    // After stop() neither handler is called again, and nothing resubscribes.
    bus.stop();
    redis.run({"CLIENT", "KILL", "TYPE", "pubsub"});
    REQUIRE(eventually([&] { return redis.integer({"PUBLISH", "test:updates", "late"}) == 0; }));
    CHECK(received.size() == 3);
}

TEST_CASE("redis_bus: AUTH and SELECT come from the URL", "[redis_bus]") {
    redis_server server({"--requirepass", "s3cret"});
    auto o = options_for(server);
    o.url = server.url(":s3cret@", "/4");
    redis_bus bus(o);
    CHECK(bus.redacted_url().find("s3cret") == std::string::npos);
    REQUIRE(bus.wait_connected(5000ms));
    append_result result;
    bus.append(sample_command("auth"), result.handler());
    REQUIRE(result.wait());
    REQUIRE_FALSE(result.error);

    sync_client redis(server);
    redis.run({"AUTH", "s3cret"});
    redis.run({"SELECT", "4"});
    CHECK(redis.integer({"XLEN", "test:commands"}) == 1);
    redis.run({"SELECT", "0"});
    CHECK(redis.integer({"XLEN", "test:commands"}) == 0);

    SECTION("a wrong password never connects") {
        auto wrong = options_for(server);
        wrong.url = server.url(":nope@");
        redis_bus refused(wrong);
        CHECK_FALSE(refused.wait_connected(300ms));
        append_result r;
        refused.append(sample_command("x"), r.handler());
        REQUIRE(r.wait(100ms));
        CHECK(r.error == errc::bus_unavailable);
    }
}

TEST_CASE("redis_bus: destruction answers every command still in flight", "[redis_bus]") {
    redis_server server;
    std::atomic<int> answered{0};
    constexpr int count = 200;
    {
        redis_bus bus(options_for(server));
        REQUIRE(bus.wait_connected(5000ms));
        server.pause();  // nothing gets answered by Redis from here on
        for (int n = 0; n < count; ++n) {
            bus.append(sample_command("d"), [&](std::error_code ec, std::string_view) {
                CHECK(ec == errc::bus_unavailable);
                answered.fetch_add(1);
            });
        }
    }
    CHECK(answered.load() == count);
    server.resume();
}

TEST_CASE("redis_bus: close() answers commands in flight, then refuses at once", "[redis_bus]") {
    redis_server server;
    redis_bus bus(options_for(server));
    REQUIRE(bus.wait_connected(5000ms));
    server.pause();  // Redis answers nothing: the commands stay in flight
    std::atomic<int> answered{0}, unavailable{0};
    for (int n = 0; n < 50; ++n) {
        bus.append(sample_command("c"), [&](std::error_code ec, std::string_view) {
            if (ec == errc::bus_unavailable) unavailable.fetch_add(1);
            answered.fetch_add(1);
        });
    }
    bus.close();
    // Answered by close() itself, long before the 1 s reply deadline.
    CHECK(answered.load() == 50);
    CHECK(unavailable.load() == 50);
    CHECK_FALSE(bus.connected());

    append_result after;
    bus.append(sample_command("after"), after.handler());
    REQUIRE(after.wait(100ms));
    CHECK(after.error == errc::bus_unavailable);
    bus.close();  // idempotent
    server.resume();
}
