// The Redis command producer on a redis-server with the gatehouse Redis module (redis_module/):
// idempotent commands go through GATEHOUSE.APPEND, and when the module is unloaded mid-traffic
// every command is still acked once, de-duplicated and in order, through the function.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gatehouse/redis_command_producer.hpp"
#include "redis_server_fixture.hpp"
#include "redis_sync_client.hpp"

#ifdef GATEHOUSE_TEST_REDIS_MODULE

using namespace std::chrono_literals;
using gatehouse::redis_command_producer;
using gatehouse::redis_command_producer_options;
using gatehouse_test::redis_server;
using gatehouse_test::sync_client;

namespace {

// Loads the module, and lets a local client run MODULE UNLOAD.
redis_server server_with_module() {
    return redis_server(
        {"--loadmodule", GATEHOUSE_TEST_REDIS_MODULE, "--enable-module-command", "local"});
}

// What the producer logged, for counting its lines.
struct log_lines {
    std::mutex m;
    std::vector<std::string> lines;
    gatehouse::log_sink sink() {
        return [this](gatehouse::log_level, std::string_view line) {
            std::lock_guard<std::mutex> lock(m);
            lines.emplace_back(line);
        };
    }
    std::size_t count(std::string_view what) {
        std::lock_guard<std::mutex> lock(m);
        return static_cast<std::size_t>(
            std::count_if(lines.begin(), lines.end(),
                          [&](const std::string& l) { return l.find(what) != std::string::npos; }));
    }
};

redis_command_producer_options options_for(const redis_server& server, log_lines& log) {
    redis_command_producer_options o;
    o.url = server.url();
    o.command_stream = "test:commands";
    o.gateway_id = "gw-test";
    o.timeout = 2000ms;
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    o.log = log.sink();
    return o;
}

gatehouse::envelope command(const std::string& player, const std::string& correlation_id) {
    gatehouse::envelope e;
    e.type = "move";
    e.payload = R"({"x":1})";
    e.format = gatehouse::payload_format::json;
    e.correlation_id = correlation_id;
    e.origin.player_id = player;
    e.origin.connection_id = "conn-" + player;
    e.origin.client = gatehouse::client_kind::player;
    e.origin.accepted_at_ms = 1700000000123;
    return e;
}

template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = 10000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return done();
}

// An entry id as (ms, seq), for comparing.
std::pair<std::uint64_t, std::uint64_t> id_key(const std::string& id) {
    const auto dash = id.find('-');
    REQUIRE(dash != std::string::npos);
    return {std::strtoull(id.c_str(), nullptr, 10),
            std::strtoull(id.c_str() + dash + 1, nullptr, 10)};
}

long long module_calls(sync_client& redis) {
    auto* r = redis.run({"INFO", "commandstats"});
    const std::string info(r->str, r->len);
    const auto at = info.find("cmdstat_gatehouse.append:calls=");
    if (at == std::string::npos) return 0;
    return std::atoll(info.c_str() + at +
                      std::string_view("cmdstat_gatehouse.append:calls=").size());
}

// Four players, each sending numbered commands with at most `window` unanswered, until stop();
// with `retries`, every tenth retries the one five before it.
class player_traffic {
public:
    static constexpr int threads = 4;
    struct sender {
        std::mutex m;
        std::vector<std::string> ids;  // by command number
        std::atomic<int> sent{0}, answered{0};
    };

    player_traffic(redis_command_producer& producer, int window, bool retries) : senders_(threads) {
        for (int t = 0; t < threads; ++t) {
            workers_.emplace_back(
                [this, &producer, window, retries, t] { run(producer, window, retries, t); });
        }
    }
    ~player_traffic() { stop(); }
    player_traffic(const player_traffic&) = delete;
    player_traffic& operator=(const player_traffic&) = delete;

    void stop() {
        stop_.store(true);
        for (auto& w : workers_) w.join();
        workers_.clear();
    }
    int answered() const { return answered_total_.load(); }
    int failures() const { return failures_.load(); }
    bool all_answered() {
        return std::all_of(senders_.begin(), senders_.end(),
                           [](const sender& s) { return s.answered.load() == s.sent.load(); });
    }
    std::vector<sender>& senders() { return senders_; }

private:
    void run(redis_command_producer& producer, int window, bool retries, int t) {
        auto& me = senders_[static_cast<std::size_t>(t)];
        const std::string player = "p" + std::to_string(t);
        for (int n = 0; !stop_.load() && n < 20000; ++n) {
            while (me.sent.load() - me.answered.load() >= window && !stop_.load()) {
                std::this_thread::sleep_for(100us);
            }
            const int of = retries && n % 10 == 9 ? n - 5 : n;
            {
                std::lock_guard<std::mutex> lock(me.m);
                me.ids.emplace_back();
            }
            me.sent.fetch_add(1);
            producer.append(command(player, "c-" + std::to_string(of)),
                            [this, &me, n](std::error_code ec, std::string_view id) {
                                if (ec) failures_.fetch_add(1);
                                {
                                    std::lock_guard<std::mutex> lock(me.m);
                                    me.ids[static_cast<std::size_t>(n)] = std::string(id);
                                }
                                me.answered.fetch_add(1);
                                answered_total_.fetch_add(1);
                            });
        }
    }

    std::vector<sender> senders_;
    std::vector<std::thread> workers_;
    std::atomic<bool> stop_{false};
    std::atomic<int> answered_total_{0}, failures_{0};
};

// Traffic without retries: every player's commands on the stream in the order sent, each once.
void check_in_order_once(const redis_server& server, player_traffic& traffic) {
    int out_of_order = 0;
    std::size_t sent = 0;
    for (auto& s : traffic.senders()) {
        std::lock_guard<std::mutex> lock(s.m);
        sent += s.ids.size();
        for (std::size_t n = 1; n < s.ids.size(); ++n) {
            if (!(id_key(s.ids[n - 1]) < id_key(s.ids[n]))) ++out_of_order;
        }
    }
    CHECK(out_of_order == 0);
    sync_client redis(server);
    CHECK(redis.integer({"XLEN", "test:commands"}) == static_cast<long long>(sent));
}

// Traffic, `what` (MODULE UNLOAD by default) once 1000 commands were answered, traffic going on
// through it for 2000 more; then every command answered. The threads are joined, and the
// producer closed, before what the handlers touch goes, also when a REQUIRE fails.
void unload_mid_traffic(const redis_server& server, redis_command_producer& producer,
                        player_traffic& traffic,
                        const std::vector<std::string>& what = {"MODULE", "UNLOAD", "gatehouse"}) {
    struct at_exit {
        player_traffic& traffic;
        redis_command_producer& producer;
        ~at_exit() {
            traffic.stop();
            producer.close();
        }
    } finish{traffic, producer};
    REQUIRE(eventually([&] { return traffic.answered() >= 1000; }));
    {
        sync_client redis(server);
        REQUIRE(redis.run(what)->type == REDIS_REPLY_STATUS);
    }
    const int at_unload = traffic.answered();
    const bool more = eventually([&] { return traffic.answered() >= at_unload + 2000; });
    traffic.stop();
    REQUIRE(more);
    REQUIRE(eventually([&] { return traffic.all_answered(); }));
}

}  // namespace

TEST_CASE("redis_bus: with the gatehouse module, GATEHOUSE.APPEND de-duplicates retries",
          "[redis_bus][dedupe][redis_module]") {
    auto server = server_with_module();
    log_lines log;
    redis_command_producer producer(options_for(server, log));
    REQUIRE(producer.wait_connected(5000ms));
    CHECK(producer.stats().append_module);
    CHECK(log.count("idempotent commands appended by GATEHOUSE.APPEND") == 1);

    std::vector<std::string> ids(2);
    std::atomic<int> answered{0}, failed{0};
    for (auto& id : ids) {
        producer.append(command("alice", "c-1"), [&](std::error_code ec, std::string_view got) {
            if (ec) failed.fetch_add(1);
            id = std::string(got);
            answered.fetch_add(1);
        });
        REQUIRE(eventually([&] { return answered.load() == (&id - ids.data()) + 1; }));
    }
    CHECK(failed.load() == 0);
    CHECK(ids[0] == ids[1]);
    sync_client redis(server);
    CHECK(redis.integer({"XLEN", "test:commands"}) == 1);
    CHECK(module_calls(redis) == 2);
    CHECK(producer.stats().duplicates == 1);

    // Not reported while disconnected (the next connect asks again), and again once back.
    server.stop();
    REQUIRE(eventually([&] { return !producer.connected(); }));
    CHECK_FALSE(producer.stats().append_module);
    server.restart();
    REQUIRE(producer.wait_connected(5000ms));
    CHECK(producer.stats().append_module);
}

TEST_CASE(
    "redis_bus: MODULE UNLOAD mid-traffic: every command acked once, in order, retries "
    "de-duplicated, through the function",
    "[redis_bus][dedupe][redis_module]") {
    auto server = server_with_module();
    log_lines log;
    redis_command_producer producer(options_for(server, log));
    REQUIRE(producer.wait_connected(5000ms));
    REQUIRE(producer.stats().append_module);

    // 1024 commands unanswered at most: calls in flight below the cap of 16, so that commands
    // arriving between the answers of the module's calls are sent at once, through the function
    // when no call of the module is left unanswered, else after them (a deferred batch).
    player_traffic traffic(producer, 256, true);
    unload_mid_traffic(server, producer, traffic);

    CHECK(traffic.failures() == 0);
    std::size_t fresh = 0;
    for (auto& s : traffic.senders()) {
        std::lock_guard<std::mutex> lock(s.m);
        const auto& ids = s.ids;
        for (std::size_t n = 0; n < ids.size(); ++n) {
            if (n % 10 == 9) {
                INFO("retry " << n);
                CHECK(ids[n] == ids[n - 5]);
                continue;
            }
            ++fresh;
            // A player's fresh commands are on the stream in the order sent.
            if (n > 0) {
                const std::size_t before = n % 10 == 0 ? n - 2 : n - 1;
                INFO("command " << n << ": " << ids[before] << " then " << ids[n]);
                CHECK(id_key(ids[before]) < id_key(ids[n]));
            }
        }
    }
    sync_client redis(server);
    CHECK(redis.integer({"XLEN", "test:commands"}) == static_cast<long long>(fresh));
    CHECK_FALSE(producer.stats().append_module);
    CHECK(log.count("GATEHOUSE.APPEND refused by Redis (") == 1);
}

TEST_CASE(
    "redis_bus: MODULE UNLOAD mid-traffic on a Redis whose function library cannot load keeps "
    "each player's commands in order, as plain XADDs",
    "[redis_bus][dedupe][redis_module]") {
    // FUNCTION renamed away: FUNCTION LOAD is refused (no library) while the module appends;
    // after MODULE UNLOAD the calls in flight are resent as plain XADDs, and the commands that
    // arrive meanwhile must not overtake them (found in review).
    auto server =
        redis_server({"--loadmodule", GATEHOUSE_TEST_REDIS_MODULE, "--enable-module-command",
                      "local", "--rename-command", "FUNCTION", "\"\""});
    log_lines log;
    redis_command_producer producer(options_for(server, log));
    REQUIRE(producer.wait_connected(5000ms));
    REQUIRE(producer.stats().append_module);

    // More commands unanswered than the 16 calls in flight carry: a batch always waits for the
    // next answer, so the first call to find the module missing (resent as plain XADDs) has it
    // sent while the module's other calls are unanswered, which the producer must defer.
    player_traffic traffic(producer, 2048, false);
    unload_mid_traffic(server, producer, traffic);

    CHECK(traffic.failures() == 0);
    check_in_order_once(server, traffic);
    CHECK(producer.stats().batches_deferred > 0);
    CHECK(log.count("GATEHOUSE.APPEND refused by Redis (") == 1);
}

TEST_CASE(
    "redis_bus: an ACL user without +gatehouse.append: one warning quoting Redis's NOPERM, "
    "commands through the function",
    "[redis_bus][dedupe][redis_module]") {
    auto server = server_with_module();
    {
        sync_client admin(server);
        REQUIRE(admin
                    .run({"ACL", "SETUSER", "gw", "on", ">pw", "~*", "&*", "+@all",
                          "-gatehouse.append"})
                    ->type == REDIS_REPLY_STATUS);
    }
    log_lines log;
    auto options = options_for(server, log);
    options.url = server.url("gw:pw@");
    redis_command_producer producer(options);
    REQUIRE(producer.wait_connected(5000ms));
    // COMMAND INFO finds the module: the first call learns that this user may not run it.
    REQUIRE(producer.stats().append_module);
    std::vector<std::string> ids;
    for (int n = 0; n < 2; ++n) {
        std::atomic<bool> done{false};
        std::error_code got;
        std::string id;
        producer.append(command("alice", "c-1"), [&](std::error_code ec, std::string_view i) {
            got = ec;
            id = std::string(i);
            done.store(true);
        });
        REQUIRE(eventually([&] { return done.load(); }));
        CHECK_FALSE(got);
        ids.push_back(id);
    }
    CHECK(ids[0] == ids[1]);  // de-duplicated by the function
    CHECK_FALSE(producer.stats().append_module);
    CHECK(log.count("GATEHOUSE.APPEND refused by Redis (NOPERM") == 1);
    CHECK(log.count("may not run it (+gatehouse.append)") == 1);
    sync_client redis(server);
    CHECK(module_calls(redis) == 0);
    CHECK(redis.integer({"XLEN", "test:commands"}) == 1);
}

TEST_CASE(
    "redis_bus: FUNCTION FLUSH mid-traffic (no module): calls found without the function are "
    "resent as plain XADDs, and no newer command overtakes them",
    "[redis_bus][dedupe]") {
    redis_server server;
    log_lines log;
    redis_command_producer producer(options_for(server, log));
    REQUIRE(producer.wait_connected(5000ms));
    REQUIRE_FALSE(producer.stats().append_module);

    player_traffic traffic(producer, 2048, false);
    unload_mid_traffic(server, producer, traffic, {"FUNCTION", "FLUSH"});

    CHECK(traffic.failures() == 0);
    check_in_order_once(server, traffic);
    CHECK(log.count("the gatehouse function library is missing from Redis") == 1);
}

#endif  // GATEHOUSE_TEST_REDIS_MODULE
