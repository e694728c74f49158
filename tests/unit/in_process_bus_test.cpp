#include "gatehouse/in_process_bus.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bus/memory_update_log.hpp"
#include "bus/recent_commands.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/update.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

gatehouse::envelope make_command(std::string type, std::string correlation_id = "c-1") {
    gatehouse::envelope e;
    e.type = std::move(type);
    e.payload = R"({"move":[1,2]})";
    e.correlation_id = std::move(correlation_id);
    e.origin.player_id = "p-1";
    e.origin.connection_id = "conn-1";
    e.origin.client = gatehouse::client_kind::player;
    e.origin.accepted_at_ms = 1700000000000;
    // As the gateway marks a command that came without a correlation id: these tests are about
    // the stream, and append the same command many times. The de-duplication tests below
    // (docs/protocol.md 6.5) send client-chosen ids.
    e.origin.correlation_assigned = true;
    return e;
}

gatehouse::envelope client_command(std::string player_id, std::string correlation_id) {
    auto e = make_command("player_action", std::move(correlation_id));
    e.origin.player_id = std::move(player_id);
    e.origin.correlation_assigned = false;
    return e;
}

struct parsed_id {
    std::uint64_t ms = 0;
    std::uint64_t seq = 0;
    bool operator<(const parsed_id& o) const { return ms < o.ms || (ms == o.ms && seq < o.seq); }
    bool operator==(const parsed_id& o) const { return ms == o.ms && seq == o.seq; }
};

// Strict: digits '-' digits, nothing else.
bool parse_id(const std::string& s, parsed_id& out) {
    const auto dash = s.find('-');
    if (dash == std::string::npos || dash == 0 || dash + 1 == s.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i != dash && (s[i] < '0' || s[i] > '9')) return false;
    }
    out.ms = std::stoull(s.substr(0, dash));
    out.seq = std::stoull(s.substr(dash + 1));
    return true;
}

std::string append_sync(gatehouse::in_process_bus& bus, const gatehouse::envelope& e) {
    std::string id;
    int calls = 0;
    bus.append(e, [&](std::error_code ec, std::string_view entry_id) {
        CHECK_FALSE(ec);
        id = std::string(entry_id);
        ++calls;
    });
    CHECK(calls == 1);
    return id;
}

// Messages a listener received, with a bounded wait for a count.
class collector {
public:
    void add(std::string_view m) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            messages_.emplace_back(m);
        }
        cv_.notify_all();
    }
    bool wait_for(std::size_t n, std::chrono::milliseconds timeout = 5000ms) {
        std::unique_lock<std::mutex> lock(mutex_);
        return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
    }
    std::vector<std::string> messages() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return messages_;
    }
    gatehouse::update_handler handler() {
        return [this](std::string_view m) { add(m); };
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::string> messages_;
};

}  // namespace

TEST_CASE("in_process_bus: append stores a copy and acks with its id", "[in_process_bus]") {
    gatehouse::in_process_bus_options options;
    options.gateway_id = "gw-7";
    gatehouse::in_process_bus bus(options);
    gatehouse::command_bus& as_bus = bus;
    CHECK(as_bus.connected());
    CHECK(bus.size() == 0);

    auto command = make_command("player_action", "c-17");
    std::string id;
    int calls = 0;
    as_bus.append(command, [&](std::error_code ec, std::string_view entry_id) {
        CHECK_FALSE(ec);
        id = std::string(entry_id);
        ++calls;
    });
    REQUIRE(calls == 1);
    parsed_id parsed;
    REQUIRE(parse_id(id, parsed));
    const auto now_ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    CHECK(parsed.ms <= now_ms);
    CHECK(parsed.ms + 60000 > now_ms);

    command.type = "changed_after_append";  // The bus holds its own copy.
    const auto entries = bus.read("", 10);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].id == id);
    CHECK(entries[0].gateway_id == "gw-7");
    CHECK(entries[0].command.type == "player_action");
    CHECK(entries[0].command.payload == R"({"move":[1,2]})");
    CHECK(entries[0].command.correlation_id == "c-17");
    CHECK(entries[0].command.origin.player_id == "p-1");
    CHECK(entries[0].command.origin.connection_id == "conn-1");
    CHECK(entries[0].command.origin.accepted_at_ms == 1700000000000);
    CHECK(bus.size() == 1);

    // An empty `done` is allowed.
    bus.append(command, {});
    CHECK(bus.size() == 2);
}

TEST_CASE("in_process_bus: ids strictly increase, also within one millisecond",
          "[in_process_bus]") {
    gatehouse::in_process_bus bus;
    const auto e = make_command("t");
    std::vector<std::string> ids;
    for (int i = 0; i < 2000; ++i) ids.push_back(append_sync(bus, e));
    parsed_id previous;
    bool same_ms_seen = false;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        parsed_id p;
        REQUIRE(parse_id(ids[i], p));
        if (i > 0) {
            REQUIRE(previous < p);
            if (p.ms == previous.ms) {
                same_ms_seen = true;
                CHECK(p.seq == previous.seq + 1);
            } else {
                CHECK(p.seq == 0);
            }
        }
        previous = p;
    }
    // 2000 appends in memory take far less than 2000 ms, so some share a millisecond.
    CHECK(same_ms_seen);
    const auto entries = bus.read("0", 5000);
    REQUIRE(entries.size() == ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) CHECK(entries[i].id == ids[i]);
}

TEST_CASE("in_process_bus: concurrent appends get unique, increasing ids", "[in_process_bus]") {
    gatehouse::in_process_bus_options options;
    options.max_entries = 1000;
    gatehouse::in_process_bus bus(options);
    constexpr int threads = 4;
    constexpr int per_thread = 500;
    std::vector<std::vector<std::string>> ids(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&bus, &ids, t] {
            const auto e = make_command("t", "c-" + std::to_string(t));
            for (int i = 0; i < per_thread; ++i) {
                bus.append(e, [&ids, t](std::error_code ec, std::string_view id) {
                    if (!ec) ids[static_cast<std::size_t>(t)].emplace_back(id);
                });
            }
        });
    }
    for (auto& w : workers) w.join();

    std::set<std::string> all;
    for (const auto& per : ids) {
        REQUIRE(per.size() == per_thread);
        parsed_id previous;
        for (std::size_t i = 0; i < per.size(); ++i) {
            parsed_id p;
            REQUIRE(parse_id(per[i], p));
            if (i > 0) CHECK(previous < p);  // Each thread sees its own ids increase.
            previous = p;
            all.insert(per[i]);
        }
    }
    CHECK(all.size() == threads * per_thread);

    // Bounded: only the newest max_entries are kept, oldest first, increasing.
    CHECK(bus.size() == 1000);
    const auto entries = bus.read("", 5000);
    REQUIRE(entries.size() == 1000);
    for (std::size_t i = 1; i < entries.size(); ++i) {
        parsed_id a, b;
        REQUIRE(parse_id(entries[i - 1].id, a));
        REQUIRE(parse_id(entries[i].id, b));
        CHECK(a < b);
    }
    // ...and they are the 1000 greatest ids handed out.
    std::vector<parsed_id> sorted;
    for (const auto& id : all) {
        parsed_id p;
        REQUIRE(parse_id(id, p));
        sorted.push_back(p);
    }
    std::sort(sorted.begin(), sorted.end());
    parsed_id oldest_kept;
    REQUIRE(parse_id(entries.front().id, oldest_kept));
    CHECK(oldest_kept == sorted[sorted.size() - 1000]);
}

TEST_CASE("in_process_bus: the stream is trimmed to max_entries", "[in_process_bus]") {
    gatehouse::in_process_bus_options options;
    options.max_entries = 10;
    gatehouse::in_process_bus bus(options);
    std::vector<std::string> ids;
    for (int i = 0; i < 25; ++i) {
        ids.push_back(append_sync(bus, make_command("t", "c-" + std::to_string(i))));
        CHECK(bus.size() == std::min<std::size_t>(static_cast<std::size_t>(i) + 1, 10));
    }
    const auto entries = bus.read("", 100);
    REQUIRE(entries.size() == 10);
    for (std::size_t i = 0; i < 10; ++i) {
        CHECK(entries[i].id == ids[15 + i]);
        CHECK(entries[i].command.correlation_id == "c-" + std::to_string(15 + i));
    }
    // A reader behind the trim point continues from the oldest kept, as with Redis.
    const auto behind = bus.read(ids[2], 3);
    REQUIRE(behind.size() == 3);
    CHECK(behind[0].id == ids[15]);

    gatehouse::in_process_bus_options none;
    none.max_entries = 0;
    gatehouse::in_process_bus keeps_nothing(none);
    int seen = 0;
    keeps_nothing.on_command([&](const gatehouse::bus_entry&) { ++seen; });
    CHECK_FALSE(append_sync(keeps_nothing, make_command("t")).empty());
    CHECK(keeps_nothing.size() == 0);
    CHECK(keeps_nothing.read("", 10).empty());
    CHECK(seen == 1);
}

TEST_CASE("in_process_bus: read after an id, with a count, compared numerically",
          "[in_process_bus]") {
    gatehouse::in_process_bus bus;
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) {
        ids.push_back(append_sync(bus, make_command("t", "c-" + std::to_string(i))));
    }

    SECTION("from the start") {
        CHECK(bus.read("", 100).size() == 6);
        CHECK(bus.read("0", 100).size() == 6);
        CHECK(bus.read("0-0", 100).size() == 6);
    }
    SECTION("after a given id, exclusive") {
        const auto after = bus.read(ids[2], 100);
        REQUIRE(after.size() == 3);
        CHECK(after[0].id == ids[3]);
        CHECK(after[2].id == ids[5]);
        CHECK(bus.read(ids[5], 100).empty());
    }
    SECTION("at most max_count, oldest first") {
        const auto two = bus.read("", 2);
        REQUIRE(two.size() == 2);
        CHECK(two[0].id == ids[0]);
        CHECK(two[1].id == ids[1]);
        CHECK(bus.read("", 0).empty());
    }
    SECTION("numeric, not lexicographic") {
        // 17 digits: numerically after every id of this era, lexicographically before.
        CHECK(bus.read("10000000000000000-0", 100).empty());
        // Numerically before every id, lexicographically after.
        CHECK(bus.read("2-0", 100).size() == 6);
        CHECK(bus.read("9", 100).size() == 6);
        // `<ms>` alone is `<ms>-0`; leading zeros do not change the number.
        parsed_id first;
        REQUIRE(parse_id(ids[0], first));
        const auto same_ms = bus.read(std::to_string(first.ms), 100);
        CHECK(same_ms.size() == (first.seq == 0 ? 5u : 6u));
        CHECK(bus.read("000" + ids[2], 100).size() == 3);
        // A sequence number greater than any in that millisecond skips the millisecond.
        const auto past_ms = bus.read(std::to_string(first.ms) + "-18446744073709551615", 100);
        for (const auto& e : past_ms) {
            parsed_id p;
            REQUIRE(parse_id(e.id, p));
            CHECK(p.ms > first.ms);
        }
    }
    SECTION("a malformed after_id returns nothing, without waiting") {
        for (const char* bad : {"abc", "1-", "-1", "-", "1-2-3", "1-x", "x-1", " 1-0", "1-0 ",
                                "18446744073709551616-0", "1-18446744073709551616", "$", "+1-0"}) {
            INFO(bad);
            const auto start = clock_type::now();
            CHECK(bus.read(bad, 100, 2000ms).empty());
            CHECK(clock_type::now() - start < 1000ms);
        }
    }
}

TEST_CASE("in_process_bus: read waits for the first entry, up to the wait", "[in_process_bus]") {
    gatehouse::in_process_bus bus;

    SECTION("times out on an empty stream") {
        const auto start = clock_type::now();
        CHECK(bus.read("", 10, 50ms).empty());
        const auto elapsed = clock_type::now() - start;
        CHECK(elapsed >= 50ms);
        CHECK(elapsed < 5000ms);
    }
    SECTION("times out when nothing newer arrives") {
        const auto last = append_sync(bus, make_command("t"));
        const auto start = clock_type::now();
        CHECK(bus.read(last, 10, 50ms).empty());
        CHECK(clock_type::now() - start >= 50ms);
    }
    SECTION("does not wait when entries are there") {
        append_sync(bus, make_command("t"));
        const auto start = clock_type::now();
        CHECK(bus.read("", 10, 5000ms).size() == 1);
        CHECK(clock_type::now() - start < 2500ms);
    }
    SECTION("a wait too long for the clock waits until an entry comes") {
        std::thread appender([&] {
            std::this_thread::sleep_for(30ms);
            bus.append(make_command("late"), {});
        });
        const auto entries = bus.read("", 10, std::chrono::milliseconds::max());
        appender.join();
        REQUIRE(entries.size() == 1);
        CHECK(entries[0].command.type == "late");
    }
    SECTION("wakes up when an entry is appended") {
        const auto last = append_sync(bus, make_command("old"));
        std::string new_id;
        // No Catch2 assertions off the main thread: they are not thread-safe.
        std::thread appender([&] {
            std::this_thread::sleep_for(30ms);
            bus.append(make_command("new"),
                       [&](std::error_code, std::string_view id) { new_id = std::string(id); });
        });
        const auto start = clock_type::now();
        const auto entries = bus.read(last, 10, 10000ms);
        const auto elapsed = clock_type::now() - start;
        appender.join();
        REQUIRE(entries.size() == 1);
        CHECK(entries[0].command.type == "new");
        CHECK(entries[0].id == new_id);
        CHECK(elapsed < 5000ms);
    }
}

TEST_CASE("in_process_bus: on_command runs before done, outside the lock", "[in_process_bus]") {
    gatehouse::in_process_bus bus;
    std::vector<std::string> events;
    bus.on_command([&](const gatehouse::bus_entry& entry) {
        events.push_back("handler " + entry.id + " " + entry.command.type);
        // Re-entering the bus from the handler must not deadlock.
        CHECK(bus.read("", 10).size() == bus.size());
    });
    std::string id;
    bus.append(make_command("hello"), [&](std::error_code ec, std::string_view entry_id) {
        CHECK_FALSE(ec);
        id = std::string(entry_id);
        events.push_back("done " + id);
    });
    REQUIRE(events.size() == 2);
    CHECK(events[0] == "handler " + id + " hello");
    CHECK(events[1] == "done " + id);

    SECTION("a throwing handler still gets the command acked once") {
        bus.on_command([](const gatehouse::bus_entry&) { throw std::runtime_error("consumer"); });
        int calls = 0;
        std::error_code error = gatehouse::errc::bus_unavailable;
        bus.append(make_command("t"), [&](std::error_code ec, std::string_view) {
            error = ec;
            ++calls;
        });
        CHECK(calls == 1);
        CHECK_FALSE(error);
        CHECK(bus.size() == 2);
    }
    SECTION("an empty handler removes it") {
        bus.on_command({});
        append_sync(bus, make_command("t"));
        CHECK(events.size() == 2);
    }
}

TEST_CASE("in_process_bus: updates are delivered in publish order", "[in_process_bus]") {
    collector got;
    gatehouse::in_process_bus bus;
    gatehouse::pubsub_listener& listener = bus;
    listener.start(got.handler());
    CHECK(listener.connected());
    constexpr int n = 1000;
    for (int i = 0; i < n; ++i) REQUIRE(bus.publish("m" + std::to_string(i)));
    REQUIRE(got.wait_for(n));
    const auto messages = got.messages();
    REQUIRE(messages.size() == n);
    for (int i = 0; i < n; ++i)
        CHECK(messages[static_cast<std::size_t>(i)] == "m" + std::to_string(i));
    CHECK(bus.updates_refused() == 0);
    listener.stop();
}

TEST_CASE("in_process_bus: each publisher's order is kept across threads", "[in_process_bus]") {
    collector got;
    gatehouse::in_process_bus bus;
    bus.start(got.handler());
    constexpr int threads = 3;
    constexpr int per_thread = 300;
    std::vector<std::thread> publishers;
    for (int t = 0; t < threads; ++t) {
        publishers.emplace_back([&bus, t] {
            for (int i = 0; i < per_thread; ++i) {
                bus.publish(std::to_string(t) + ":" + std::to_string(i));
            }
        });
    }
    for (auto& p : publishers) p.join();
    REQUIRE(got.wait_for(threads * per_thread));
    std::vector<int> next(threads, 0);
    for (const auto& m : got.messages()) {
        const auto colon = m.find(':');
        const auto t = static_cast<std::size_t>(std::stoi(m.substr(0, colon)));
        CHECK(std::stoi(m.substr(colon + 1)) == next[t]);
        ++next[t];
    }
    for (int t = 0; t < threads; ++t) CHECK(next[static_cast<std::size_t>(t)] == per_thread);
}

TEST_CASE("in_process_bus: publish before start queues up to the cap, then refuses",
          "[in_process_bus]") {
    gatehouse::in_process_bus_options options;
    options.max_pending_updates = 4;
    collector got;
    gatehouse::in_process_bus bus(options);
    for (int i = 0; i < 4; ++i) CHECK(bus.publish("m" + std::to_string(i)));
    CHECK_FALSE(bus.publish("refused-1"));
    CHECK(bus.updates_refused() == 1);
    CHECK_FALSE(bus.publish("refused-2"));
    CHECK(bus.updates_refused() == 2);

    bus.start(got.handler());
    REQUIRE(got.wait_for(4));
    // Nothing beyond the four that were queued arrives.
    std::this_thread::sleep_for(50ms);
    CHECK(got.messages() == std::vector<std::string>{"m0", "m1", "m2", "m3"});
    // Once drained, publishing is accepted again.
    CHECK(bus.publish("m4"));
    REQUIRE(got.wait_for(5));
    CHECK(got.messages().back() == "m4");
    CHECK(bus.updates_refused() == 2);

    gatehouse::in_process_bus_options zero;
    zero.max_pending_updates = 0;
    gatehouse::in_process_bus refuses_all(zero);
    CHECK_FALSE(refuses_all.publish("x"));
    CHECK(refuses_all.updates_refused() == 1);
}

TEST_CASE("in_process_bus: refuses while a slow handler holds the queue full", "[in_process_bus]") {
    gatehouse::in_process_bus_options options;
    options.max_pending_updates = 2;
    std::mutex gate_mutex;
    std::condition_variable gate_cv;
    bool entered = false;
    bool release = false;
    collector got;
    gatehouse::in_process_bus bus(options);
    bus.start([&](std::string_view m) {
        {
            std::unique_lock<std::mutex> lock(gate_mutex);
            entered = true;
            gate_cv.notify_all();
            gate_cv.wait_for(lock, 5000ms, [&] { return release; });
        }
        got.add(m);
    });
    REQUIRE(bus.publish("a"));
    {
        std::unique_lock<std::mutex> lock(gate_mutex);
        REQUIRE(gate_cv.wait_for(lock, 5000ms, [&] { return entered; }));
    }
    // "a" is in the handler, so two more may wait and the third is refused.
    CHECK(bus.publish("b"));
    CHECK(bus.publish("c"));
    CHECK_FALSE(bus.publish("d"));
    CHECK(bus.updates_refused() == 1);
    {
        std::lock_guard<std::mutex> lock(gate_mutex);
        release = true;
    }
    gate_cv.notify_all();
    REQUIRE(got.wait_for(3));
    CHECK(got.messages() == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("in_process_bus: stop joins the delivery thread and discards what waits",
          "[in_process_bus]") {
    std::atomic<bool> entered{false};
    std::atomic<bool> running{false};
    std::atomic<int> calls{0};
    collector got;
    gatehouse::in_process_bus bus;
    bus.start([&](std::string_view) {
        running = true;
        entered = true;
        std::this_thread::sleep_for(100ms);
        ++calls;
        running = false;
    });
    REQUIRE(bus.publish("first"));
    REQUIRE(bus.publish("second"));
    REQUIRE(bus.publish("third"));
    const auto deadline = clock_type::now() + 5000ms;
    while (!entered && clock_type::now() < deadline) std::this_thread::sleep_for(1ms);
    REQUIRE(entered);

    bus.stop();
    // When stop() returns the handler has finished and will not run again.
    CHECK_FALSE(running);
    CHECK(calls == 1);
    std::this_thread::sleep_for(50ms);
    CHECK(calls == 1);

    // Published after stop: waits for a later start.
    CHECK(bus.publish("after-stop"));
    std::this_thread::sleep_for(20ms);
    CHECK(calls == 1);
    bus.start(got.handler());
    REQUIRE(got.wait_for(1));
    CHECK(got.messages() == std::vector<std::string>{"after-stop"});

    bus.stop();
    bus.stop();  // Twice is harmless.
}

TEST_CASE("in_process_bus: start is ignored when empty or already running", "[in_process_bus]") {
    collector first;
    collector second;
    gatehouse::in_process_bus bus;
    bus.stop();  // Before start: nothing to do.
    bus.start({});
    bus.start(first.handler());
    bus.start(second.handler());
    REQUIRE(bus.publish("x"));
    REQUIRE(first.wait_for(1));
    std::this_thread::sleep_for(20ms);
    CHECK(first.messages() == std::vector<std::string>{"x"});
    CHECK(second.messages().empty());
}

TEST_CASE("in_process_bus: a throwing handler does not stop delivery", "[in_process_bus]") {
    collector got;
    gatehouse::in_process_bus bus;
    bus.start([&](std::string_view m) {
        got.add(m);
        if (m == "bad") throw std::runtime_error("handler");
    });
    bus.publish("bad");
    bus.publish("good");
    REQUIRE(got.wait_for(2));
    CHECK(got.messages() == std::vector<std::string>{"bad", "good"});
}

TEST_CASE("in_process_bus: the destructor stops delivery", "[in_process_bus]") {
    auto calls = std::make_shared<std::atomic<int>>(0);
    {
        gatehouse::in_process_bus bus;
        bus.start([calls](std::string_view) {
            std::this_thread::sleep_for(5ms);
            ++*calls;
        });
        for (int i = 0; i < 50; ++i) bus.publish("m");
    }
    const int at_destruction = *calls;
    CHECK(at_destruction <= 50);
    std::this_thread::sleep_for(30ms);
    CHECK(*calls == at_destruction);
}

TEST_CASE("in_process_bus: publish(update) sends to_json", "[in_process_bus]") {
    collector got;
    gatehouse::in_process_bus bus;
    bus.start(got.handler());
    const auto u = gatehouse::update_for_player("p-9", "score", R"({"points":3})", "c-5");
    REQUIRE(bus.publish(u));
    REQUIRE(got.wait_for(1));
    const auto message = got.messages().front();
    CHECK(message == gatehouse::to_json(u));
    gatehouse::update parsed;
    REQUIRE_FALSE(gatehouse::parse_update(message, parsed));
    CHECK(parsed.target == gatehouse::update_target::player);
    CHECK(parsed.player_id == "p-9");
    CHECK(parsed.message.type == "score");
    CHECK(parsed.message.correlation_id == "c-5");
}

// The update log in memory (docs/protocol.md 6.4): the behaviour of the Redis library
// (tests/unit/redis_update_log_test.cpp), without Redis.
namespace {

struct logged_answer {
    int calls = 0;
    std::error_code error;
    gatehouse::update_ids ids;
};

logged_answer publish_logged(gatehouse::in_process_bus& bus, std::string message) {
    logged_answer a;
    bus.publish_logged(std::move(message), [&a](std::error_code ec, gatehouse::update_ids ids) {
        ++a.calls;
        a.error = ec;
        a.ids = std::move(ids);
    });
    CHECK(a.calls == 1);  // on the calling thread, before publish_logged returns
    return a;
}

gatehouse::log_read_result read_after(gatehouse::in_process_bus& bus, std::string player,
                                      std::string after, std::size_t max_bytes = 1 << 20) {
    gatehouse::log_read_result out;
    int calls = 0;
    bus.read_after(std::move(player), std::move(after), max_bytes,
                   [&](gatehouse::log_read_result r) {
                       ++calls;
                       out = std::move(r);
                   });
    CHECK(calls == 1);
    return out;
}

std::string with_ids(const std::string& message, const std::string& ids_json) {
    const auto brace = message.find('{');
    return message.substr(0, brace + 1) + "\"update_ids\":" + ids_json + "," +
           message.substr(brace + 1);
}

}  // namespace

TEST_CASE("in_process_bus: publish_logged logs and delivers with increasing ids",
          "[in_process_bus][update_log]") {
    collector got;
    gatehouse::in_process_bus bus;
    bus.start(got.handler());
    std::vector<std::string> sent;
    std::vector<std::string> ids;
    for (int n = 0; n < 5; ++n) {
        sent.push_back(R"( {"player_id":"alice","type":"tick","payload":{"n":)" +
                       std::to_string(n) + R"(,"x":1.50}})");
        const auto a = publish_logged(bus, sent.back());
        REQUIRE_FALSE(a.error);
        REQUIRE(a.ids.size() == 1);
        CHECK(a.ids[0].first == "alice");
        CHECK(gatehouse::valid_update_id(a.ids[0].second));
        if (!ids.empty()) CHECK(gatehouse::compare_update_ids(ids.back(), a.ids[0].second) < 0);
        ids.push_back(a.ids[0].second);
    }
    REQUIRE(got.wait_for(sent.size()));
    const auto messages = got.messages();
    for (std::size_t i = 0; i < sent.size(); ++i) {
        CHECK(messages[i] == with_ids(sent[i], R"({"alice":")" + ids[i] + "\"}"));
    }
    const auto replay = read_after(bus, "alice", ids[1]);
    REQUIRE(replay.status == gatehouse::log_read_status::replay);
    REQUIRE(replay.updates.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(replay.updates[i].update_id == ids[i + 2]);
        CHECK(replay.updates[i].message == sent[i + 2]);
    }
    CHECK(read_after(bus, "alice", ids.back()).updates.empty());
    CHECK(read_after(bus, "alice", ids.back()).status == gatehouse::log_read_status::replay);
    bus.stop();
}

TEST_CASE("in_process_bus: the log's shapes, as the Redis library decides them",
          "[in_process_bus][update_log]") {
    collector got;
    gatehouse::in_process_bus bus;
    bus.start(got.handler());

    const std::string many = R"({"player_ids":["bob","a\"x","bob"],"type":"t","payload":[1]})";
    const auto a = publish_logged(bus, many);
    REQUIRE(a.ids.size() == 2);
    CHECK(a.ids[0].first == "bob");
    CHECK(a.ids[1].first == "a\"x");
    const auto& id = a.ids[0].second;
    CHECK(a.ids[1].second == id);  // one id per update, increasing for each player
    REQUIRE(got.wait_for(1));
    CHECK(got.messages()[0] == with_ids(many, R"({"bob":")" + id + R"(","a\"x":")" + id + "\"}"));
    CHECK(read_after(bus, "a\"x", id).status == gatehouse::log_read_status::replay);

    const std::vector<std::string> unlogged{
        R"({"broadcast":true,"player_id":"p","type":"t"})",
        R"({"room":"lobby","type":"t"})",
        R"({"player_id":"p","connection_id":"gw-1","type":"t"})",
        R"({"op":"join","player_id":"p","room":"lobby"})",
    };
    for (const auto& message : unlogged) {
        const auto u = publish_logged(bus, message);
        CHECK_FALSE(u.error);
        CHECK(u.ids.empty());
    }
    REQUIRE(got.wait_for(1 + unlogged.size()));
    const auto messages = got.messages();
    CHECK(std::vector<std::string>(messages.begin() + 1, messages.end()) == unlogged);

    for (const std::string bad : {"not json", "[1]", R"({"type":"t"})", R"({"player_id":"p"})",
                                  R"({"player_id":"p","type":"t","update_ids":{}})"}) {
        const auto refused = publish_logged(bus, bad);
        CHECK(refused.error == gatehouse::errc::invalid_update);
        CHECK(refused.ids.empty());
    }
    // A payload that merely mentions the key is fine.
    CHECK(publish_logged(bus, R"({"player_id":"p","type":"t","payload":{"update_ids":1}})")
              .ids.size() == 1);
    REQUIRE(got.wait_for(2 + unlogged.size()));
    CHECK(got.messages().size() == 2 + unlogged.size());
    bus.stop();
}

TEST_CASE("in_process_bus: the log is capped per player; trimmed, unknown or malformed is a gap",
          "[in_process_bus][update_log]") {
    gatehouse::in_process_bus_options o;
    o.update_log_size = 3;
    gatehouse::in_process_bus bus(o);
    std::vector<std::string> ids;
    for (int n = 0; n < 5; ++n) {
        ids.push_back(publish_logged(bus, R"({"player_id":"dave","type":"n","payload":)" +
                                              std::to_string(n) + "}")
                          .ids.at(0)
                          .second);
    }
    using gatehouse::log_read_status;
    CHECK(read_after(bus, "dave", ids[0]).status == log_read_status::gap);
    CHECK(read_after(bus, "dave", ids[1]).status == log_read_status::gap);
    const auto replay = read_after(bus, "dave", ids[2]);
    REQUIRE(replay.status == log_read_status::replay);
    REQUIRE(replay.updates.size() == 2);
    CHECK(replay.updates[1].update_id == ids[4]);
    CHECK(read_after(bus, "dave", "1-0").status == log_read_status::gap);
    CHECK(read_after(bus, "nobody", ids[2]).status == log_read_status::gap);
    for (const std::string malformed : {"", "abc", "1-", "-1", "1-2-3", "(1-0"}) {
        CHECK(read_after(bus, "dave", malformed).status == log_read_status::gap);
    }
    gatehouse::in_process_bus_options bad;
    bad.update_log_size = 0;
    CHECK_THROWS_AS(gatehouse::in_process_bus(bad), std::invalid_argument);
    bad.update_log_size = 1;
    bad.update_log_ttl = std::chrono::seconds(0);
    CHECK_THROWS_AS(gatehouse::in_process_bus(bad), std::invalid_argument);
}

TEST_CASE("in_process_bus: an update older than the log's TTL is a gap",
          "[in_process_bus][update_log]") {
    gatehouse::in_process_bus_options o;
    o.update_log_ttl = std::chrono::seconds(1);
    gatehouse::in_process_bus bus(o);
    const auto id = publish_logged(bus, R"({"player_id":"erin","type":"a"})").ids.at(0).second;
    CHECK(read_after(bus, "erin", id).status == gatehouse::log_read_status::replay);
    const auto deadline = clock_type::now() + 5s;
    while (clock_type::now() < deadline &&
           read_after(bus, "erin", id).status != gatehouse::log_read_status::gap) {
        (void)publish_logged(bus, R"({"player_id":"erin","type":"b"})");
        std::this_thread::sleep_for(20ms);
    }
    CHECK(read_after(bus, "erin", id).status == gatehouse::log_read_status::gap);
}

TEST_CASE("in_process_bus: the log's memory is bounded; the least recently written go first",
          "[in_process_bus][update_log]") {
    gatehouse::in_process_bus_options o;
    o.update_log_bytes = 4000;
    gatehouse::in_process_bus bus(o);
    const std::string payload(200, 'x');
    std::vector<std::string> ids;
    for (int n = 0; n < 50; ++n) {
        ids.push_back(publish_logged(bus, R"({"player_id":"p)" + std::to_string(n) +
                                              R"(","type":"t","payload":")" + payload + "\"}")
                          .ids.at(0)
                          .second);
    }
    // About 300 bytes an entry: the newest dozen or so players keep their logs.
    CHECK(read_after(bus, "p0", ids[0]).status == gatehouse::log_read_status::gap);
    CHECK(read_after(bus, "p30", ids[30]).status == gatehouse::log_read_status::gap);
    CHECK(read_after(bus, "p49", ids[49]).status == gatehouse::log_read_status::replay);
    CHECK(read_after(bus, "p45", ids[45]).status == gatehouse::log_read_status::replay);
    // One player alone over the bound keeps its newest update.
    const std::string big(5000, 'y');
    const auto big_id =
        publish_logged(bus, R"({"player_id":"q","type":"t","payload":")" + big + "\"}")
            .ids.at(0)
            .second;
    CHECK(read_after(bus, "q", big_id).status == gatehouse::log_read_status::replay);
    CHECK(read_after(bus, "p49", ids[49]).status == gatehouse::log_read_status::gap);
}

TEST_CASE("in_process_bus: log order is delivery order, across publishing threads",
          "[in_process_bus][update_log]") {
    collector got;
    gatehouse::in_process_bus bus;
    bus.start(got.handler());
    constexpr int threads = 4;
    constexpr int each = 250;
    std::vector<std::thread> publishers;
    for (int t = 0; t < threads; ++t) {
        publishers.emplace_back([&bus] {
            for (int n = 0; n < each; ++n) {
                bus.publish_logged(R"({"player_ids":["x","y"],"type":"t"})",
                                   [](std::error_code, const gatehouse::update_ids&) {});
            }
        });
    }
    for (auto& p : publishers) p.join();
    REQUIRE(got.wait_for(threads * each));
    std::string previous;
    const std::string key = R"("update_ids":{"x":")";
    for (const auto& m : got.messages()) {
        const auto at = m.find(key);
        REQUIRE(at != std::string::npos);
        const auto start = at + key.size();
        const std::string id = m.substr(start, m.find('"', start) - start);
        if (!previous.empty()) CHECK(gatehouse::compare_update_ids(previous, id) < 0);
        previous = id;
    }
    // The whole history replays in the same order.
    const auto first = got.messages().front();
    const auto at = first.find(key) + key.size();
    const auto replay = read_after(bus, "y", first.substr(at, first.find('"', at) - at));
    CHECK(replay.updates.size() == threads * each - 1);
    CHECK(replay.updates.back().update_id == previous);
    bus.stop();
}

TEST_CASE("in_process_bus: a read past its byte budget is a gap", "[in_process_bus][update_log]") {
    gatehouse::in_process_bus bus;
    std::vector<std::string> ids;
    std::vector<std::string> sent;
    std::size_t bytes = 0;
    for (int n = 0; n < 5; ++n) {
        sent.push_back(R"({"player_id":"p","type":"t","payload":)" + std::to_string(n * 1000) +
                       "}");
        ids.push_back(publish_logged(bus, sent.back()).ids.at(0).second);
        if (n > 0) bytes += sent.back().size();
    }
    const auto all = read_after(bus, "p", ids[0], bytes);
    REQUIRE(all.status == gatehouse::log_read_status::replay);
    REQUIRE(all.updates.size() == 4);
    CHECK(all.updates.back().message == sent.back());
    const auto over = read_after(bus, "p", ids[0], bytes - 1);
    CHECK(over.status == gatehouse::log_read_status::gap);
    CHECK(over.updates.empty());
    CHECK(read_after(bus, "p", ids[3], sent[4].size() - 1).status ==
          gatehouse::log_read_status::gap);
    CHECK(read_after(bus, "p", ids[4], 0).status == gatehouse::log_read_status::replay);
}

TEST_CASE("in_process_bus: ids do not repeat across logs in the same millisecond",
          "[in_process_bus][update_log]") {
    // Two processes' logs (one restarted within the millisecond, or after the clock stepped
    // back) given the same clock: their ids differ, so an id of the lost log is a gap.
    constexpr std::int64_t now = 1'700'000'000'000;
    gatehouse::detail::memory_update_log before(100, std::chrono::hours(1), 1 << 20);
    gatehouse::detail::memory_update_log after(100, std::chrono::hours(1), 1 << 20);
    const auto old_id = before.append({"p"}, "{}", now);
    (void)before.append({"p"}, "{}", now);
    const auto first = after.append({"p"}, "{}", now - 5);  // the clock stepped back
    const auto second = after.append({"p"}, "{}", now);
    CHECK(old_id.rfind(std::to_string(now) + "-", 0) == 0);
    CHECK(first != old_id);
    CHECK(second != old_id);
    CHECK(gatehouse::compare_update_ids(first, second) < 0);
    CHECK(after.read_after("p", old_id, 1 << 20, now).status == gatehouse::log_read_status::gap);
    // Within one log ids keep increasing, also in one millisecond and when the clock goes back.
    std::string previous = second;
    for (int n = 0; n < 100; ++n) {
        const auto id = after.append({"p"}, "{}", now - (n % 3));
        CHECK(gatehouse::compare_update_ids(previous, id) < 0);
        previous = id;
    }
}

TEST_CASE("in_process_bus: an id of a bus since destroyed is a gap; a full queue logs nothing",
          "[in_process_bus][update_log]") {
    std::string last;
    {
        gatehouse::in_process_bus before;
        last = publish_logged(before, R"({"player_id":"p","type":"t"})").ids.at(0).second;
    }
    gatehouse::in_process_bus_options o;
    o.max_pending_updates = 1;
    gatehouse::in_process_bus after(o);
    const auto first = publish_logged(after, R"({"player_id":"p","type":"t"})").ids.at(0).second;
    CHECK(first != last);
    CHECK(read_after(after, "p", last).status == gatehouse::log_read_status::gap);
    const auto refused = publish_logged(after, R"({"player_id":"p","type":"t"})");
    CHECK(refused.error == gatehouse::errc::bus_unavailable);
    CHECK(read_after(after, "p", first).updates.empty());
}

// ---------------------------------------------------------------------------------------------
// Idempotent commands (docs/protocol.md 6.5)

TEST_CASE("in_process_bus: a retried command gets its first id and is stored once",
          "[in_process_bus][dedupe]") {
    gatehouse::in_process_bus bus;
    std::atomic<int> handled{0};
    bus.on_command([&](const gatehouse::bus_entry&) { ++handled; });
    auto first = client_command("p-1", "c-9");
    const auto id = append_sync(bus, first);
    auto retry = client_command("p-1", "c-9");
    retry.origin.connection_id = "conn-2";  // another connection, later
    retry.payload = R"({"other":true})";
    CHECK(append_sync(bus, retry) == id);
    CHECK(append_sync(bus, retry) == id);
    CHECK(bus.size() == 1);
    CHECK(handled == 1);
    CHECK(bus.duplicates() == 2);
    const auto entries = bus.read("", 10);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].command.payload == R"({"move":[1,2]})");
}

TEST_CASE("in_process_bus: pairs differ by player, and ':' does not join two pairs",
          "[in_process_bus][dedupe]") {
    gatehouse::in_process_bus bus;
    const auto a = append_sync(bus, client_command("p-1", "c-1"));
    const auto b = append_sync(bus, client_command("p-2", "c-1"));
    const auto c = append_sync(bus, client_command("x:y", "z"));
    const auto d = append_sync(bus, client_command("x", "y:z"));
    CHECK(std::set<std::string>{a, b, c, d}.size() == 4);
    CHECK(bus.size() == 4);
    CHECK(bus.duplicates() == 0);
}

TEST_CASE("in_process_bus: gateway-assigned ids and a window of 0 never de-duplicate",
          "[in_process_bus][dedupe]") {
    gatehouse::in_process_bus bus;
    auto assigned = client_command("p-1", "gw.1");
    assigned.origin.correlation_assigned = true;
    CHECK(append_sync(bus, assigned) != append_sync(bus, assigned));

    gatehouse::in_process_bus_options off;
    off.dedupe_window = std::chrono::seconds{0};
    gatehouse::in_process_bus v1(off);
    const auto command = client_command("p-1", "c-1");
    CHECK(append_sync(v1, command) != append_sync(v1, command));
    CHECK(v1.size() == 2);
    CHECK(v1.duplicates() == 0);

    gatehouse::in_process_bus_options negative;
    negative.dedupe_window = std::chrono::seconds{-1};
    CHECK_THROWS_AS(gatehouse::in_process_bus(negative), std::invalid_argument);
}

TEST_CASE("in_process_bus: the same pair sent at once from many threads is stored once",
          "[in_process_bus][dedupe]") {
    gatehouse::in_process_bus bus;
    std::vector<std::string> ids(8);
    std::vector<std::thread> threads;
    std::atomic<bool> go{false};
    for (std::size_t t = 0; t < ids.size(); ++t) {
        threads.emplace_back([&, t] {
            while (!go.load()) std::this_thread::yield();
            bus.append(client_command("racer", "same"),
                       [&, t](std::error_code, std::string_view id) { ids[t] = std::string(id); });
        });
    }
    go = true;
    for (auto& t : threads) t.join();
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == 1);
    CHECK(bus.size() == 1);
    CHECK(bus.duplicates() == ids.size() - 1);
}

TEST_CASE("recent_commands: a pair is forgotten after the window", "[in_process_bus][dedupe]") {
    gatehouse::detail::recent_commands recent(std::chrono::seconds{2}, 1 << 20);
    CHECK(recent.find("p", "c", 1000) == nullptr);
    recent.remember("p", "c", "1-0", 1000);
    REQUIRE(recent.find("p", "c", 2999) != nullptr);
    CHECK(*recent.find("p", "c", 2999) == "1-0");
    CHECK(recent.find("p", "c", 3000) == nullptr);
    CHECK(recent.size() == 0);
    CHECK(recent.bytes() == 0);
}

TEST_CASE("recent_commands: past the memory bound the oldest pairs go first",
          "[in_process_bus][dedupe]") {
    const std::size_t each = gatehouse::detail::command_pair("p", "c-0").size() + 3 +
                             gatehouse::detail::recent_command_overhead;
    gatehouse::detail::recent_commands recent(std::chrono::seconds{60}, 3 * each);
    for (int i = 0; i < 5; ++i) {
        recent.remember("p", "c-" + std::to_string(i), "1-" + std::to_string(i), 1000 + i);
        CHECK(recent.bytes() <= 3 * each);
    }
    CHECK(recent.size() == 3);
    CHECK(recent.find("p", "c-0", 2000) == nullptr);
    CHECK(recent.find("p", "c-1", 2000) == nullptr);
    REQUIRE(recent.find("p", "c-4", 2000) != nullptr);
    CHECK(*recent.find("p", "c-2", 2000) == "1-2");
    // A pair bigger than the whole bound is not remembered (and evicts nothing).
    recent.remember(std::string(4 * each, 'p'), "c", "1-9", 2000);
    CHECK(recent.size() == 3);
}
