// The update log on Redis (docs/protocol.md 6.4): the `gatehouse` function library the bus loads
// at every connect, `publish_logged` and `read_after`, checked against a real redis-server
// and with a plain hiredis client that shares none of the bus's code.

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gatehouse/errc.hpp"
#include "gatehouse/redis_bus.hpp"
#include "gatehouse/update_log.hpp"
#include "redis_server_fixture.hpp"
#include "redis_sync_client.hpp"

using namespace std::chrono_literals;
using gatehouse::errc;
using gatehouse::log_read_result;
using gatehouse::log_read_status;
using gatehouse::redis_bus;
using gatehouse::redis_bus_options;
using gatehouse::update_ids;
using gatehouse_test::redis_server;
using gatehouse_test::sync_client;

namespace {

redis_bus_options options_for(const redis_server& server) {
    redis_bus_options o;
    o.url = server.url();
    o.command_stream = "test:commands";
    o.updates_channel = "test:updates";
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

// One answer of publish_logged or read_after, waited for with a bound.
template <class Answer>
struct awaited {
    std::mutex m;
    std::condition_variable cv;
    int calls = 0;
    Answer value{};

    void set(Answer a) {
        std::lock_guard<std::mutex> lock(m);
        ++calls;
        value = std::move(a);
        cv.notify_all();
    }
    Answer get() {
        std::unique_lock<std::mutex> lock(m);
        REQUIRE(cv.wait_for(lock, 5000ms, [this] { return calls > 0; }));
        return value;
    }
};

struct publish_answer {
    std::error_code error;
    update_ids ids;
};

publish_answer publish(redis_bus& bus, std::string message) {
    awaited<publish_answer> a;
    bus.publish_logged(std::move(message), [&a](std::error_code ec, update_ids ids) {
        a.set({ec, std::move(ids)});
    });
    return a.get();
}

log_read_result read(redis_bus& bus, std::string player, std::string after,
                     std::size_t max_bytes = 1 << 20) {
    awaited<log_read_result> a;
    bus.read_after(std::move(player), std::move(after), max_bytes,
                   [&a](log_read_result r) { a.set(std::move(r)); });
    return a.get();
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
    std::vector<std::string> wait_for(std::size_t n) {
        REQUIRE(eventually([&] {
            std::lock_guard<std::mutex> lock(m);
            return messages.size() >= n;
        }));
        std::lock_guard<std::mutex> lock(m);
        return messages;
    }
};

// The message with the log's key spliced in after its first `{`, as the library publishes it.
std::string with_ids(const std::string& message, const std::string& ids_json) {
    const auto brace = message.find('{');
    return message.substr(0, brace + 1) + "\"update_ids\":" + ids_json + "," +
           message.substr(brace + 1);
}

}  // namespace

TEST_CASE("redis update log: publish_logged logs and publishes with increasing ids",
          "[redis_bus][update_log]") {
    redis_server server;
    inbox received;  // outlives the bus, which delivers to it
    redis_bus bus(options_for(server));
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));

    // Numbers a JSON library would rewrite: the published text keeps them byte for byte.
    std::vector<std::string> sent;
    std::vector<std::string> ids;
    for (int n = 0; n < 5; ++n) {
        sent.push_back(R"(  {"player_id":"alice","type":"tick","payload":{"n":)" +
                       std::to_string(n) + R"(,"x":1.50,"big":123456789012345678901234}} )");
        const auto answer = publish(bus, sent.back());
        REQUIRE_FALSE(answer.error);
        REQUIRE(answer.ids.size() == 1);
        CHECK(answer.ids[0].first == "alice");
        CHECK(gatehouse::valid_update_id(answer.ids[0].second));
        if (!ids.empty())
            CHECK(gatehouse::compare_update_ids(ids.back(), answer.ids[0].second) < 0);
        ids.push_back(answer.ids[0].second);
    }
    const auto messages = received.wait_for(sent.size());
    REQUIRE(messages.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        CHECK(messages[i] == with_ids(sent[i], R"({"alice":")" + ids[i] + "\"}"));
    }

    sync_client redis(server);
    CHECK(redis.integer({"XLEN", "test:updates:log:alice"}) == 5);
    const auto ttl = redis.integer({"PTTL", "test:updates:log:alice"});
    CHECK(ttl > 3500LL * 1000);
    CHECK(ttl <= 3600LL * 1000);
    CHECK(redis.entry("test:updates:log:alice", ids[2]).at("m") == sent[2]);

    // Replay after the second: the other three, as published (without update_ids).
    const auto replay = read(bus, "alice", ids[1]);
    REQUIRE(replay.status == log_read_status::replay);
    REQUIRE(replay.updates.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(replay.updates[i].update_id == ids[i + 2]);
        CHECK(replay.updates[i].message == sent[i + 2]);
    }
    const auto none = read(bus, "alice", ids.back());
    CHECK(none.status == log_read_status::replay);
    CHECK(none.updates.empty());
    bus.stop();
}

TEST_CASE("redis update log: player_ids logs each distinct player once",
          "[redis_bus][update_log]") {
    redis_server server;
    inbox received;  // outlives the bus, which delivers to it
    redis_bus bus(options_for(server));
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));

    const std::string message =
        R"({"player_ids":["bob","a\/\"x","bob"],"type":"t","payload":[1,2.0]})";
    const auto answer = publish(bus, message);
    REQUIRE_FALSE(answer.error);
    REQUIRE(answer.ids.size() == 2);
    CHECK(answer.ids[0].first == "bob");
    CHECK(answer.ids[1].first == "a/\"x");
    const auto messages = received.wait_for(1);
    // cjson writes `/` as `\/`: still the same JSON string.
    CHECK(messages[0] == with_ids(message, R"({"bob":")" + answer.ids[0].second +
                                               R"(","a\/\"x":")" + answer.ids[1].second + "\"}"));
    sync_client redis(server);
    CHECK(redis.integer({"XLEN", "test:updates:log:bob"}) == 1);
    CHECK(redis.integer({"XLEN", "test:updates:log:a/\"x"}) == 1);
}

TEST_CASE("redis update log: FCALL gatehouse_publish from any client logs and publishes",
          "[redis_bus][update_log]") {
    redis_server server;
    inbox received;  // outlives the bus, which delivers to it
    redis_bus bus(options_for(server));
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));

    sync_client redis(server);
    const std::string message = R"({"player_id":"carol","type":"hello","payload":null})";
    auto* r = redis.run({"FCALL", "gatehouse_publish", "0", "test:updates", message});
    REQUIRE(r->type == REDIS_REPLY_ARRAY);
    REQUIRE(r->elements == 2);
    CHECK(std::string(r->element[0]->str) == "carol");
    const std::string id(r->element[1]->str);
    CHECK(gatehouse::valid_update_id(id));
    CHECK(received.wait_for(1)[0] == with_ids(message, R"({"carol":")" + id + "\"}"));

    // Read-only, as a replica could serve it.
    auto* g = redis.run({"FCALL_RO", "gatehouse_read", "1", "test:updates:log:carol", "0-1"});
    CHECK(g->type == REDIS_REPLY_STRING);
    CHECK(std::string(g->str) == "gap");
}

TEST_CASE("redis update log: unlogged shapes are published as they are",
          "[redis_bus][update_log]") {
    redis_server server;
    inbox received;  // outlives the bus, which delivers to it
    redis_bus bus(options_for(server));
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));

    const std::vector<std::string> unlogged{
        R"({"broadcast":true,"player_id":"p","type":"t"})",
        R"({"room":"lobby","type":"t"})",
        R"({"player_id":"p","connection_id":"gw-1","type":"t"})",
        R"({"op":"join","player_id":"p","room":"lobby"})",
        R"({"player_ids":[],"player_id":"p","type":"t"})",
        R"({"player_ids":["p",3],"type":"t"})",
        R"({"player_id":"","type":"t"})",
        R"({"type":"t"})",
    };
    for (const auto& message : unlogged) {
        const auto answer = publish(bus, message);
        CHECK_FALSE(answer.error);
        CHECK(answer.ids.empty());
    }
    CHECK(received.wait_for(unlogged.size()) == unlogged);
    // null counts as absent: this is the player shape.
    const auto logged =
        publish(bus, R"({"op":null,"connection_id":null,"player_id":"p","type":"t"})");
    CHECK(logged.ids.size() == 1);
    sync_client redis(server);
    CHECK(redis.integer({"XLEN", "test:updates:log:p"}) == 1);
}

TEST_CASE("redis update log: a message that is not a JSON object is refused, not published",
          "[redis_bus][update_log]") {
    redis_server server;
    inbox received;  // outlives the bus, which delivers to it
    redis_bus bus(options_for(server));
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));
    for (const std::string bad : {"not json", "[1,2]", "\"s\"", "{\"player_id\":\"p\"", "",
                                  R"({"player_id":"p","update_ids":{}})"}) {
        const auto answer = publish(bus, bad);
        CHECK(answer.error == errc::invalid_update);
        CHECK(answer.ids.empty());
    }
    // Nothing was published: the next message is the first to arrive.
    REQUIRE_FALSE(publish(bus, R"({"room":"r","type":"t"})").error);
    CHECK(received.wait_for(1)[0] == R"({"room":"r","type":"t"})");
}

TEST_CASE("redis update log: a logged shape the gateway would refuse is refused, not logged",
          "[redis_bus][update_log]") {
    redis_server server;
    inbox received;  // outlives the bus, which delivers to it
    redis_bus bus(options_for(server));
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));
    const std::string long_type(65, 't');
    const std::string long_key(257, 'k');
    std::string long_corr;
    for (int i = 0; i < 129; ++i) long_corr += "\xc3\xa9";  // 129 characters, 258 bytes
    const std::vector<std::string> refused{
        R"({"player_id":"p"})",
        R"({"player_id":"p","type":""})",
        R"({"player_id":"p","type":7})",
        R"({"player_id":"p","type":"a b"})",
        R"({"player_ids":["p","q"],"type":"t/u"})",
        R"({"player_id":"p","type":")" + long_type + R"("})",
        R"({"player_id":"p","type":"t","delivery":"sometimes"})",
        R"({"player_id":"p","type":"t","delivery":1})",
        R"({"player_id":"p","type":"t","delivery":"latest"})",
        R"({"player_id":"p","type":"t","delivery":"latest","key":""})",
        R"({"player_id":"p","type":"t","delivery":"latest","key":3})",
        R"({"player_id":"p","type":"t","delivery":"latest","key":")" + long_key + R"("})",
        R"({"player_id":"p","type":"t","correlation_id":""})",
        R"({"player_id":"p","type":"t","correlation_id":5})",
        R"({"player_id":"p","type":"t","correlation_id":")" + long_corr + R"("})",
        "{\"player_id\":\"p\",\"type\":\"t\",\"correlation_id\":\"\xff\"}",
        "{\"player_id\":\"p\",\"type\":\"t\",\"correlation_id\":\"\xed\xa0\x80\"}",
        // A repeated top-level key: cjson keeps the last, parse_update refuses.
        R"({"player_id":"p","type":"t","player_id":"q"})",
        R"({"player_id":"p","type":"t","type":"u"})",
        R"({"player_ids":["p"],"type":"t","payload":1,"payload":2})",
        R"({"player_id":"p","type":"t","typ\u0065":"u"})",
        R"({"player_id":"p","type":"t","x":{"a":"\"}"},"x":1})",
        R"({"player_id":"p","type":"t","payload":{"a":1},"payload":[{"x":","}]})",
        R"({"player_id":"p","type":"t","note":"{,}","note":[1,{"a":[2,3]}]})",
    };
    for (const auto& message : refused) {
        INFO(message);
        const auto answer = publish(bus, message);
        CHECK(answer.error == errc::invalid_update);
        CHECK(answer.ids.empty());
    }
    sync_client redis(server);
    CHECK(redis.integer({"EXISTS", "test:updates:log:p"}) == 0);
    CHECK(redis.integer({"EXISTS", "test:updates:log:q"}) == 0);

    // Keys nested in the payload or inside strings are not top-level repeats.
    std::string corr;
    for (int i = 0; i < 128; ++i) corr += "\xc3\xa9";
    const std::vector<std::string> accepted{
        R"({"player_id":"p","type":"a.B-9_:z","payload":{"type":"x","player_id":"y"}})",
        R"({"player_id":"p","type":"t","payload":[{"type":1},{"type":2}],"note":"\"type\":"})",
        R"({"player_id":"p","type":"t","note":"{[,","payload":{"a":[1,{"b":2}],"c":"},]"}})",
        R"({ "player_id" : "p" , "type" : "t" , "payload" : [ [ ] , { } , "," ] } )",
        R"({"player_id":"p","type":"t","payload":"\\","delivery":"latest","key":")" +
            std::string(256, 'k') + R"("})",
        R"({"player_id":"p","type":"t","delivery":"droppable","key":3,"correlation_id":null})",
        R"({"player_id":"p","type":"t","delivery":null,"correlation_id":")" + corr + R"("})",
        R"({"player_id":"p","type":")" + std::string(64, 't') + R"(","delivery":"reliable"})",
    };
    for (const auto& message : accepted) {
        INFO(message);
        const auto answer = publish(bus, message);
        CHECK_FALSE(answer.error);
        CHECK(answer.ids.size() == 1);
    }
    CHECK(received.wait_for(accepted.size()).size() == accepted.size());
    CHECK(redis.integer({"XLEN", "test:updates:log:p"}) == static_cast<long long>(accepted.size()));
}

TEST_CASE("redis update log: a log key of another type fails the publish before any write",
          "[redis_bus][update_log]") {
    redis_server server;
    inbox received;  // outlives the bus, which delivers to it
    redis_bus bus(options_for(server));
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));
    sync_client redis(server);
    (void)redis.run({"SET", "test:updates:log:z", "1"});
    const auto answer = publish(bus, R"({"player_ids":["y","z"],"type":"t"})");
    CHECK(answer.error == errc::bus_unavailable);
    CHECK(answer.ids.empty());
    CHECK(redis.integer({"EXISTS", "test:updates:log:y"}) == 0);
    // Nothing was published: the next message is the first to arrive.
    REQUIRE_FALSE(publish(bus, R"({"room":"r","type":"t"})").error);
    CHECK(received.wait_for(1)[0] == R"({"room":"r","type":"t"})");
}

TEST_CASE("redis update log: the size cap trims, and a trimmed or unknown id is a gap",
          "[redis_bus][update_log]") {
    redis_server server;
    auto o = options_for(server);
    o.update_log_size = 3;
    redis_bus bus(o);
    REQUIRE(bus.wait_connected(5000ms));
    std::vector<std::string> ids;
    for (int n = 0; n < 5; ++n) {
        const auto answer =
            publish(bus, R"({"player_id":"dave","type":"n","payload":)" + std::to_string(n) + "}");
        REQUIRE(answer.ids.size() == 1);
        ids.push_back(answer.ids[0].second);
    }
    sync_client redis(server);
    CHECK(redis.integer({"XLEN", "test:updates:log:dave"}) == 3);

    CHECK(read(bus, "dave", ids[0]).status == log_read_status::gap);  // trimmed
    CHECK(read(bus, "dave", ids[1]).status == log_read_status::gap);
    const auto replay = read(bus, "dave", ids[2]);
    REQUIRE(replay.status == log_read_status::replay);
    REQUIRE(replay.updates.size() == 2);
    CHECK(replay.updates[0].update_id == ids[3]);
    CHECK(replay.updates[1].update_id == ids[4]);

    CHECK(read(bus, "dave", "1-0").status == log_read_status::gap);     // never issued
    CHECK(read(bus, "nobody", ids[2]).status == log_read_status::gap);  // another player
    CHECK(read(bus, "dave", "99999999999999-0").status == log_read_status::gap);
    for (const std::string malformed : {"", "abc", "1-", "-1", "1-2-3", "(1-0", "+"}) {
        CHECK(read(bus, "dave", malformed).status == log_read_status::gap);
    }
}

TEST_CASE("redis update log: a read is paged and answers gap past its byte budget",
          "[redis_bus][update_log]") {
    redis_server server;
    redis_bus bus(options_for(server));
    REQUIRE(bus.wait_connected(5000ms));
    // More entries than one page (log_read_page, 100) of the library's XRANGE.
    std::vector<std::string> ids;
    std::vector<std::string> sent;
    std::size_t bytes = 0;
    for (int n = 0; n < 251; ++n) {
        sent.push_back(R"({"player_id":"hal","type":"n","payload":)" + std::to_string(n) + "}");
        const auto answer = publish(bus, sent.back());
        REQUIRE(answer.ids.size() == 1);
        ids.push_back(answer.ids[0].second);
        if (n > 0) bytes += sent.back().size();
    }
    const auto all = read(bus, "hal", ids[0], bytes);
    REQUIRE(all.status == log_read_status::replay);
    REQUIRE(all.updates.size() == 250);
    for (std::size_t i = 0; i < 250; ++i) {
        CHECK(all.updates[i].update_id == ids[i + 1]);
        CHECK(all.updates[i].message == sent[i + 1]);
    }
    CHECK(read(bus, "hal", ids[0], bytes - 1).status == log_read_status::gap);
    CHECK(read(bus, "hal", ids[249], sent[250].size()).updates.size() == 1);
    CHECK(read(bus, "hal", ids[249], sent[250].size() - 1).status == log_read_status::gap);
    const auto none = read(bus, "hal", ids[250], 0);
    CHECK(none.status == log_read_status::replay);
    CHECK(none.updates.empty());

    // A caller without budget and page (an older gateway) reads everything.
    sync_client redis(server);
    auto* r = redis.run({"FCALL_RO", "gatehouse_read", "1", "test:updates:log:hal", ids[0]});
    REQUIRE(r->type == REDIS_REPLY_ARRAY);
    CHECK(r->elements == 250);
}

TEST_CASE("redis update log: an update older than the TTL is a gap", "[redis_bus][update_log]") {
    redis_server server;
    auto o = options_for(server);
    o.update_log_ttl = 1s;
    redis_bus bus(o);
    REQUIRE(bus.wait_connected(5000ms));
    const auto first = publish(bus, R"({"player_id":"erin","type":"a"})");
    REQUIRE(first.ids.size() == 1);
    const auto id = first.ids[0].second;
    CHECK(read(bus, "erin", id).status == log_read_status::replay);
    // Kept alive by later publishes, the key outlives the TTL; the entry does not.
    REQUIRE(eventually(
        [&] {
            (void)publish(bus, R"({"player_id":"erin","type":"b"})");
            return read(bus, "erin", id).status == log_read_status::gap;
        },
        5000ms));
    // Without publishes the key itself expires.
    sync_client redis(server);
    REQUIRE(eventually(
        [&] {
            return redis.integer({"EXISTS", "test:updates:log:erin"}) == 0;
        },
        5000ms));
}

TEST_CASE("redis update log: without Redis publish_logged and read_after fail at once",
          "[redis_bus][update_log]") {
    redis_server server;
    redis_bus bus(options_for(server));
    REQUIRE(bus.wait_connected(5000ms));
    server.stop();
    REQUIRE(eventually([&] { return !bus.connected(); }));
    CHECK(publish(bus, R"({"player_id":"p","type":"t"})").error == errc::bus_unavailable);
    CHECK(read(bus, "p", "1-0").status == log_read_status::unavailable);
    // A malformed id is a gap without asking Redis.
    CHECK(read(bus, "p", "junk").status == log_read_status::gap);
}

TEST_CASE("redis update log: Redis restarted empty gets the library back; old ids are gaps",
          "[redis_bus][update_log]") {
    redis_server server;
    inbox received;  // outlives the bus, which delivers to it
    redis_bus bus(options_for(server));
    bus.start(received.handler());
    REQUIRE(bus.wait_connected(5000ms));
    const auto before = publish(bus, R"({"player_id":"fay","type":"a"})");
    REQUIRE(before.ids.size() == 1);
    const auto old_id = before.ids[0].second;
    CHECK(read(bus, "fay", old_id).status == log_read_status::replay);

    server.kill_now();
    REQUIRE(eventually([&] { return !bus.connected(); }));
    server.restart();
    REQUIRE(bus.wait_connected(5000ms));

    // Loaded again before the bus said connected: an outside client can FCALL at once.
    sync_client redis(server);
    auto* r = redis.run(
        {"FCALL", "gatehouse_publish", "0", "test:updates", R"({"player_id":"gus","type":"t"})"});
    CHECK(r->type == REDIS_REPLY_ARRAY);
    CHECK(read(bus, "fay", old_id).status == log_read_status::gap);
    const auto after = publish(bus, R"({"player_id":"fay","type":"b"})");
    REQUIRE(after.ids.size() == 1);
    CHECK(read(bus, "fay", after.ids[0].second).status == log_read_status::replay);
    CHECK(read(bus, "fay", old_id).status == log_read_status::gap);
    bus.stop();
}

TEST_CASE("redis update log: invalid log options are refused at construction",
          "[redis_bus][update_log]") {
    redis_bus_options o;
    o.update_log_size = 0;
    CHECK_THROWS_AS(redis_bus(o), std::invalid_argument);
    o.update_log_size = 10;
    o.update_log_ttl = 0s;
    CHECK_THROWS_AS(redis_bus(o), std::invalid_argument);
}
