#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gatehouse/amqp_bus.hpp"
#include "gatehouse/errc.hpp"

// amqp_bus on a real rabbitmq-server that this test starts itself (tests/server/
// rabbitmq_fixture.py as a script: free loopback ports, its data in a temporary directory,
// stopped by PID): pipelined appends from several threads, and the lifetime promises of the
// header with commands in flight: destroyed by another thread, closed and destroyed from an
// answer running on the bus's own I/O thread. One broker for the whole case (a start takes
// seconds).

using namespace std::chrono_literals;
using gatehouse::amqp_bus;
using gatehouse::amqp_bus_options;

namespace {

struct broker {
    std::string dir;
    std::string url;
    bool up = false;

    broker() {
        char tmpl[] = "/tmp/gatehouse-amqp-unit-XXXXXX";
        if (mkdtemp(tmpl) == nullptr) return;
        dir = tmpl;
        const std::string cmd = std::string("/usr/bin/python3 ") + GATEHOUSE_TEST_RABBITMQ_SCRIPT +
                                " start " + dir + " >/dev/null";
        if (std::system(cmd.c_str()) != 0) return;
        std::ifstream f(dir + "/broker.json");
        const auto j = nlohmann::json::parse(f, nullptr, false);
        if (j.is_discarded()) return;
        url = j.at("url").get<std::string>();
        up = true;
    }
    ~broker() {
        if (dir.empty()) return;
        const std::string cmd = std::string("/usr/bin/python3 ") + GATEHOUSE_TEST_RABBITMQ_SCRIPT +
                                " stop " + dir + " >/dev/null 2>&1; rm -rf " + dir;
        [[maybe_unused]] const int rc = std::system(cmd.c_str());
    }
};

gatehouse::envelope command(int i) {
    gatehouse::envelope e;
    e.type = "move";
    e.payload = "{\"i\":" + std::to_string(i) + "}";
    e.correlation_id = "c-" + std::to_string(i);
    e.origin.player_id = "p";
    e.origin.connection_id = "local-1";
    return e;
}

// Counts answers; every `done` must run exactly once.
struct answers {
    std::mutex m;
    std::condition_variable cv;
    int ok = 0, failed = 0;
    std::set<std::string> ids;
    bool duplicate_id = false;

    gatehouse::append_handler handler() {
        return [this](std::error_code ec, std::string_view id) {
            std::lock_guard<std::mutex> lock(m);
            if (ec) {
                ++failed;
            } else {
                ++ok;
                if (!ids.insert(std::string(id)).second) duplicate_id = true;
            }
            cv.notify_all();
        };
    }
    bool wait(int total, std::chrono::milliseconds limit) {
        std::unique_lock<std::mutex> lock(m);
        return cv.wait_for(lock, limit, [&] { return ok + failed >= total; });
    }
};

amqp_bus_options options_for(const std::string& url, const std::string& exchange) {
    amqp_bus_options o;
    o.url = url;
    o.command_exchange = exchange;
    o.updates_exchange = exchange + ".updates";
    o.gateway_id = "unit";
    return o;
}

}  // namespace

TEST_CASE("amqp_bus on a real broker: pipelined appends and every lifetime promise",
          "[amqp_broker]") {
    broker b;
    REQUIRE(b.up);

    {
        // 1. 2000 appends from 4 threads, all confirmed, each id once.
        auto bus = std::make_shared<amqp_bus>(options_for(b.url, "unit.a"));
        REQUIRE(bus->wait_connected(30s));
        answers got;
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                for (int i = 0; i < 500; ++i) bus->append(command(t * 1000 + i), got.handler());
            });
        }
        for (auto& t : threads) t.join();
        REQUIRE(got.wait(2000, 30s));
        CHECK(got.ok == 2000);
        CHECK(got.failed == 0);
        CHECK_FALSE(got.duplicate_id);
        CHECK(bus->stats().appended == 2000);
    }
    {
        // 2. Destroyed by another thread with appends in flight: each answered exactly once,
        // before the destructor returns.
        answers got;
        {
            auto bus = std::make_unique<amqp_bus>(options_for(b.url, "unit.b"));
            REQUIRE(bus->wait_connected(30s));
            for (int i = 0; i < 1000; ++i) bus->append(command(i), got.handler());
        }
        std::lock_guard<std::mutex> lock(got.m);
        CHECK(got.ok + got.failed == 1000);
        CHECK_FALSE(got.duplicate_id);
    }
    {
        // 3. Closed, then destroyed (its last reference dropped), from inside an answer that
        // runs on the bus's own I/O thread; the rest still answered once each.
        auto bus = std::make_shared<amqp_bus>(options_for(b.url, "unit.c"));
        REQUIRE(bus->wait_connected(30s));
        answers got;
        std::atomic<bool> closed_inside{false};
        auto held = std::make_shared<std::shared_ptr<amqp_bus>>(bus);
        std::mutex held_mutex;
        bus->append(command(0), [&, held](std::error_code ec, std::string_view id) {
            got.handler()(ec, id);
            std::shared_ptr<amqp_bus> last;
            {
                std::lock_guard<std::mutex> lock(held_mutex);
                last = std::move(*held);
            }
            if (last) {
                last->close();
                closed_inside = true;
            }
            last.reset();  // may be the last reference: destroyed on its own I/O thread
        });
        for (int i = 1; i < 200; ++i) bus->append(command(i), got.handler());
        bus.reset();
        REQUIRE(got.wait(200, 30s));
        CHECK(closed_inside.load());
        std::lock_guard<std::mutex> lock(got.m);
        CHECK(got.ok + got.failed == 200);
    }
    {
        // 4. max_in_flight bounds what waits: with the I/O thread held inside an answer, the
        // first 8 appends wait and the other 92 are refused at once; answers make room again.
        std::promise<void> release;
        auto released = release.get_future().share();
        struct releaser {  // a failed REQUIRE must not leave the I/O thread held
            std::promise<void>& p;
            bool done = false;
            void operator()() {
                if (!done) p.set_value();
                done = true;
            }
            ~releaser() { (*this)(); }
        } let_go{release};
        auto o = options_for(b.url, "unit.d");
        o.max_in_flight = 8;
        auto bus = std::make_unique<amqp_bus>(o);
        REQUIRE(bus->wait_connected(30s));
        std::promise<std::error_code> first;
        auto first_answer = first.get_future();
        bus->append(command(0), [&first, released](std::error_code ec, std::string_view) {
            first.set_value(ec);
            released.wait();  // holds the I/O thread: nothing else is answered meanwhile
        });
        REQUIRE(first_answer.wait_for(30s) == std::future_status::ready);
        CHECK_FALSE(first_answer.get());
        answers got;
        for (int i = 1; i <= 100; ++i) bus->append(command(i), got.handler());
        {
            std::lock_guard<std::mutex> lock(got.m);
            CHECK(got.failed == 92);
            CHECK(got.ok == 0);
        }
        let_go();
        REQUIRE(got.wait(100, 30s));
        CHECK(got.ok == 8);
        answers again;
        for (int i = 0; i < 8; ++i) bus->append(command(200 + i), again.handler());
        REQUIRE(again.wait(8, 30s));
        CHECK(again.ok == 8);
    }
}
