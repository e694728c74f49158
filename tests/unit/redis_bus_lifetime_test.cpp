// The Redis bus's parts are safe to destroy at any time: every append in flight is answered
// exactly once, no callback runs once close() or the destructor returned, and a part may be
// destroyed from its own callback. Run under the `ci` preset (ASan + UBSan) as well.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gatehouse/errc.hpp"
#include "gatehouse/redis_bus.hpp"
#include "gatehouse/redis_client.hpp"
#include "gatehouse/redis_command_producer.hpp"
#include "gatehouse/redis_update_subscriber.hpp"
#include "gatehouse/update_log.hpp"
#include "redis_server_fixture.hpp"

using namespace std::chrono_literals;
using gatehouse::errc;
using gatehouse::redis_command_producer;
using gatehouse::redis_command_producer_options;
using gatehouse::redis_update_subscriber;
using gatehouse::redis_update_subscriber_options;
using gatehouse_test::redis_server;

namespace {

redis_command_producer_options producer_options(const redis_server& server) {
    redis_command_producer_options o;
    o.url = server.url();
    o.command_stream = "test:commands";
    o.gateway_id = "gw-test";
    o.timeout = 1000ms;
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    return o;
}

redis_update_subscriber_options subscriber_options(const redis_server& server) {
    redis_update_subscriber_options o;
    o.url = server.url();
    o.updates_channel = "test:updates";
    o.timeout = 1000ms;
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    return o;
}

gatehouse::envelope sample_command() {
    gatehouse::envelope e;
    e.type = "move";
    e.payload = R"({"x": 1})";
    e.format = gatehouse::payload_format::json;
    e.origin.player_id = "alice";
    e.origin.connection_id = "gw-test-1";
    return e;
}

// Counts answers per append and checks that none comes twice or after the producer is gone.
struct answers {
    explicit answers(int n) : calls(static_cast<std::size_t>(n)) {
        for (auto& c : calls) c.store(0);
    }
    std::vector<std::atomic<int>> calls;
    std::atomic<int> ok{0}, unavailable{0}, other{0};
    std::atomic<bool> gone{false};  // set once close()/destruction returned
    std::atomic<int> late{0};       // answers after that

    gatehouse::append_handler handler(int n) {
        return [this, n](std::error_code ec, std::string_view) {
            if (gone.load()) late.fetch_add(1);
            calls[static_cast<std::size_t>(n)].fetch_add(1);
            if (!ec) {
                ok.fetch_add(1);
            } else if (ec == errc::bus_unavailable) {
                unavailable.fetch_add(1);
            } else {
                other.fetch_add(1);
            }
        };
    }
    // The update log's answers count as the appends' do: ok, or unavailable.
    gatehouse::logged_publish_handler logged(int n) {
        return [this, n](std::error_code ec, const gatehouse::update_ids&) { handler(n)(ec, {}); };
    }
    gatehouse::log_read_handler read(int n) {
        return [this, n](gatehouse::log_read_result r) {
            handler(n)(r.status == gatehouse::log_read_status::unavailable
                           ? make_error_code(errc::bus_unavailable)
                           : std::error_code{},
                       {});
        };
    }
    bool each_once() const {
        for (const auto& c : calls) {
            if (c.load() != 1) return false;
        }
        return true;
    }
};

template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return done();
}

// PUBLISHes on a connection of its own; false when Redis did not take it. No assertion
// inside: it also runs on threads other than Catch's.
bool try_publish(const redis_server& server, const std::string& message) {
    gatehouse::redis_client_options o;
    o.url = server.url();
    gatehouse::redis_client client(o);
    gatehouse::redis_reply r;
    return !client.command({"PUBLISH", "test:updates", message}, r);
}

void publish(const redis_server& server, const std::string& message) {
    REQUIRE(try_publish(server, message));
}

}  // namespace

TEST_CASE("redis lifetime: a producer destroyed with appends in flight answers each once",
          "[redis_lifetime]") {
    redis_server server;
    constexpr int count = 300;
    answers a(count);
    {
        redis_command_producer producer(producer_options(server));
        REQUIRE(producer.wait_connected(5000ms));
        // Appends from other threads while the destructor runs: each is answered, by Redis
        // or with bus_unavailable, exactly once.
        std::vector<std::thread> threads;
        for (int t = 0; t < 3; ++t) {
            threads.emplace_back([&, t] {
                for (int n = t; n < count; n += 3) producer.append(sample_command(), a.handler(n));
            });
        }
        for (auto& t : threads) t.join();
    }
    a.gone = true;
    CHECK(a.each_once());
    CHECK(a.ok.load() + a.unavailable.load() == count);
    CHECK(a.other.load() == 0);
    CHECK(a.late.load() == 0);
}

TEST_CASE("redis lifetime: a producer destroyed with logged publishes and reads in flight",
          "[redis_lifetime]") {
    redis_server server;
    constexpr int count = 300;
    answers a(count);
    std::string known_id;
    {
        redis_command_producer producer(producer_options(server));
        REQUIRE(producer.wait_connected(5000ms));
        std::atomic<bool> first{false};
        producer.publish_logged(R"({"player_id":"p","type":"t"})",
                                [&](std::error_code ec, gatehouse::update_ids ids) {
                                    if (!ec && ids.size() == 1) known_id = ids[0].second;
                                    first = true;
                                });
        REQUIRE(eventually([&] { return first.load(); }));
        REQUIRE_FALSE(known_id.empty());
        // Appends, logged publishes and log reads from other threads while the destructor
        // runs: each is answered exactly once.
        std::vector<std::thread> threads;
        for (int t = 0; t < 3; ++t) {
            threads.emplace_back([&, t] {
                for (int n = t; n < count; n += 3) {
                    if (t == 0) producer.append(sample_command(), a.handler(n));
                    if (t == 1)
                        producer.publish_logged(R"({"player_id":"p","type":"t"})", a.logged(n));
                    if (t == 2) producer.read_after("p", known_id, 1 << 20, a.read(n));
                }
            });
        }
        for (auto& t : threads) t.join();
    }
    a.gone = true;
    CHECK(a.each_once());
    CHECK(a.ok.load() + a.unavailable.load() == count);
    CHECK(a.other.load() == 0);
    CHECK(a.late.load() == 0);
}

TEST_CASE("redis lifetime: a producer on a hung Redis closes at once, answering all",
          "[redis_lifetime]") {
    redis_server server;
    constexpr int count = 100;
    answers a(count);
    auto producer = std::make_unique<redis_command_producer>(producer_options(server));
    REQUIRE(producer->wait_connected(5000ms));
    server.pause();  // nothing is answered by Redis from here on
    for (int n = 0; n < count; ++n) {
        if (n % 3 == 0) producer->append(sample_command(), a.handler(n));
        if (n % 3 == 1) producer->publish_logged(R"({"player_id":"p","type":"t"})", a.logged(n));
        if (n % 3 == 2) producer->read_after("p", "1-0", 1 << 20, a.read(n));
    }
    const auto t0 = std::chrono::steady_clock::now();
    producer.reset();
    a.gone = true;
    // Long before the 1 s reply deadline: closing does not wait for Redis.
    CHECK(std::chrono::steady_clock::now() - t0 < 500ms);
    CHECK(a.each_once());
    CHECK(a.unavailable.load() == count);
    server.resume();
}

TEST_CASE("redis lifetime: a producer with Redis killed, then destroyed", "[redis_lifetime]") {
    redis_server server;
    constexpr int count = 200;
    answers a(count);
    {
        redis_command_producer producer(producer_options(server));
        REQUIRE(producer.wait_connected(5000ms));
        for (int n = 0; n < count / 2; ++n) producer.append(sample_command(), a.handler(n));
        server.kill_now();
        for (int n = count / 2; n < count; ++n) producer.append(sample_command(), a.handler(n));
        // Reconnecting with backoff meanwhile.
        std::this_thread::sleep_for(50ms);
    }
    a.gone = true;
    CHECK(a.each_once());
    CHECK(a.ok.load() + a.unavailable.load() == count);
    CHECK(a.late.load() == 0);
}

TEST_CASE("redis lifetime: a producer destroyed from its own callback", "[redis_lifetime]") {
    redis_server server;
    constexpr int count = 50;
    answers a(count);
    std::atomic<bool> released{false};
    std::atomic<bool> closed_in_callback{false};
    auto producer = std::make_shared<redis_command_producer>(producer_options(server));
    REQUIRE(producer->wait_connected(5000ms));
    std::weak_ptr<redis_command_producer> watch = producer;
    // The first command's callback holds the last owner once the test lets go of its own, and
    // drops it: the producer is destroyed on its own I/O thread, with commands in flight.
    producer->append(sample_command(),
                     [&, owner = producer](std::error_code ec, std::string_view) mutable {
                         (void)eventually([&] { return released.load(); });
                         a.calls[0].fetch_add(1);
                         if (!ec) a.ok.fetch_add(1);
                         owner.reset();
                         closed_in_callback = watch.expired();
                     });
    for (int n = 1; n < count; ++n) producer->append(sample_command(), a.handler(n));
    producer.reset();
    released = true;
    REQUIRE(eventually([&] { return a.each_once(); }));
    CHECK(closed_in_callback.load());
    CHECK(a.ok.load() + a.unavailable.load() == count);
    CHECK(a.other.load() == 0);
}

TEST_CASE("redis lifetime: a subscriber destroyed while delivering", "[redis_lifetime]") {
    redis_server server;
    std::atomic<int> delivered{0};
    std::atomic<bool> gone{false};
    std::atomic<int> late{0};
    {
        redis_update_subscriber subscriber(subscriber_options(server));
        subscriber.start([&](std::string_view) {
            if (gone.load()) late.fetch_add(1);
            delivered.fetch_add(1);
            std::this_thread::sleep_for(2ms);  // a slow handler: destruction finds it running
        });
        REQUIRE(subscriber.wait_connected(5000ms));
        std::thread publisher([&] {
            for (int n = 0; n < 50; ++n) (void)try_publish(server, "{}");
        });
        REQUIRE(eventually([&] { return delivered.load() > 0; }));
        publisher.join();
    }
    gone = true;
    std::this_thread::sleep_for(20ms);
    CHECK(late.load() == 0);
}

TEST_CASE("redis lifetime: stop(), close() and destruction from the subscriber's handler",
          "[redis_lifetime]") {
    redis_server server;
    SECTION("stop() from the handler") {
        redis_update_subscriber subscriber(subscriber_options(server));
        std::atomic<int> delivered{0};
        subscriber.start([&](std::string_view) {
            delivered.fetch_add(1);
            subscriber.stop();
        });
        REQUIRE(subscriber.wait_connected(5000ms));
        publish(server, "one");
        REQUIRE(eventually([&] { return delivered.load() == 1; }));
        REQUIRE(eventually([&] { return !subscriber.connected(); }));
        publish(server, "two");
        std::this_thread::sleep_for(50ms);
        CHECK(delivered.load() == 1);
    }
    SECTION("the last owner dropped in the handler") {
        auto subscriber = std::make_shared<redis_update_subscriber>(subscriber_options(server));
        std::atomic<int> delivered{0};
        std::weak_ptr<redis_update_subscriber> watch = subscriber;
        auto owner = std::make_shared<std::shared_ptr<redis_update_subscriber>>(subscriber);
        subscriber->start([&delivered, owner](std::string_view) {
            delivered.fetch_add(1);
            owner->reset();  // destroys the subscriber, on its own I/O thread
        });
        REQUIRE(subscriber->wait_connected(5000ms));
        subscriber.reset();
        publish(server, "bye");
        REQUIRE(eventually([&] { return watch.expired(); }));
        publish(server, "after");
        std::this_thread::sleep_for(50ms);
        CHECK(delivered.load() == 1);
    }
}

TEST_CASE("redis lifetime: a subscriber destroyed from its resubscribed handler",
          "[redis_lifetime]") {
    redis_server server;
    auto subscriber = std::make_shared<redis_update_subscriber>(subscriber_options(server));
    std::atomic<int> told{0};
    std::weak_ptr<redis_update_subscriber> watch = subscriber;
    auto owner = std::make_shared<std::shared_ptr<redis_update_subscriber>>(subscriber);
    subscriber->on_resubscribed([&told, owner] {
        told.fetch_add(1);
        owner->reset();  // destroys the subscriber, on its own I/O thread
    });
    subscriber->start([](std::string_view) {});
    REQUIRE(subscriber->wait_connected(5000ms));
    subscriber.reset();
    {
        gatehouse::redis_client_options o;
        o.url = server.url();
        gatehouse::redis_client client(o);
        gatehouse::redis_reply r;
        REQUIRE_FALSE(client.command({"CLIENT", "KILL", "TYPE", "pubsub"}, r));
        CHECK(r.integer == 1);
    }
    REQUIRE(eventually([&] { return watch.expired(); }));
    CHECK(told.load() == 1);
}

TEST_CASE("redis lifetime: redis_bus destroyed with appends in flight and Redis killed",
          "[redis_lifetime]") {
    redis_server server;
    constexpr int count = 200;
    answers a(count);
    {
        gatehouse::redis_bus_options o;
        o.url = server.url();
        o.command_stream = "test:commands";
        o.updates_channel = "test:updates";
        o.timeout = 1000ms;
        o.reconnect_min = 20ms;
        o.reconnect_max = 200ms;
        gatehouse::redis_bus bus(o);
        bus.start([](std::string_view) {});
        REQUIRE(bus.wait_connected(5000ms));
        for (int n = 0; n < count / 2; ++n) bus.append(sample_command(), a.handler(n));
        server.kill_now();
        for (int n = count / 2; n < count; ++n) {
            if (n % 2 == 0)
                bus.publish_logged(R"({"player_ids":["p","q"],"type":"t"})", a.logged(n));
            if (n % 2 == 1) bus.read_after("p", "1-0", 1 << 20, a.read(n));
        }
    }
    a.gone = true;
    CHECK(a.each_once());
    CHECK(a.late.load() == 0);
}

TEST_CASE("redis lifetime: redis_bus destroyed from its update handler and from an ack",
          "[redis_lifetime]") {
    redis_server server;
    gatehouse::redis_bus_options o;
    o.url = server.url();
    o.command_stream = "test:commands";
    o.updates_channel = "test:updates";
    o.timeout = 1000ms;
    SECTION("from the update handler") {
        auto bus = std::make_shared<gatehouse::redis_bus>(o);
        std::weak_ptr<gatehouse::redis_bus> watch = bus;
        auto owner = std::make_shared<std::shared_ptr<gatehouse::redis_bus>>(bus);
        bus->start([owner](std::string_view) { owner->reset(); });
        REQUIRE(bus->wait_connected(5000ms));
        bus.reset();
        publish(server, "bye");
        CHECK(eventually([&] { return watch.expired(); }));
    }
    SECTION("from an append's callback") {
        auto bus = std::make_shared<gatehouse::redis_bus>(o);
        REQUIRE(bus->wait_connected(5000ms));
        std::weak_ptr<gatehouse::redis_bus> watch = bus;
        std::atomic<bool> released{false};
        bus->append(sample_command(), [&, owner = bus](std::error_code, std::string_view) mutable {
            (void)eventually([&] { return released.load(); });
            owner.reset();
        });
        bus.reset();
        released = true;
        CHECK(eventually([&] { return watch.expired(); }));
    }
    SECTION("from a logged publish's callback and a log read's") {
        auto bus = std::make_shared<gatehouse::redis_bus>(o);
        REQUIRE(bus->wait_connected(5000ms));
        std::weak_ptr<gatehouse::redis_bus> watch = bus;
        std::atomic<bool> released{false};
        std::atomic<int> answered{0};
        bus->publish_logged(
            R"({"player_id":"p","type":"t"})",
            [&, owner = bus](std::error_code, const gatehouse::update_ids&) mutable {
                (void)eventually([&] { return released.load(); });
                // Counted before the release: the last release destroys the bus, and once the
                // test sees it gone it leaves the scope these references point into.
                answered.fetch_add(1);
                owner.reset();
            });
        bus->read_after("p", "1-0", 1 << 20, [&, owner = bus](gatehouse::log_read_result) mutable {
            answered.fetch_add(1);
            owner.reset();
        });
        bus.reset();
        released = true;
        CHECK(eventually([&] { return watch.expired(); }));
        CHECK(eventually([&] { return answered.load() == 2; }));
    }
}
