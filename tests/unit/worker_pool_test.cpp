#include "gatehouse/worker_pool.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using gatehouse::worker_pool;
using namespace std::chrono_literals;

// Polls `done` until it holds or `limit` passes; every wait in these tests is bounded.
template <typename Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// A job that holds its thread until released (or 5 s pass), so the queue behind it fills.
struct blocker {
    std::promise<void> release_promise;
    std::shared_future<void> released{release_promise.get_future().share()};
    std::atomic<bool> started{false};

    std::function<void()> job() {
        return [this] {
            started = true;
            released.wait_for(5s);
        };
    }
    void release() { release_promise.set_value(); }
};

}  // namespace

TEST_CASE("worker_pool: runs jobs on its own threads", "[worker_pool]") {
    worker_pool pool(2);
    std::promise<std::thread::id> ran_on;
    auto id = ran_on.get_future();
    REQUIRE(pool.post([&] { ran_on.set_value(std::this_thread::get_id()); }));
    REQUIRE(id.wait_for(5s) == std::future_status::ready);
    CHECK(id.get() != std::this_thread::get_id());
}

TEST_CASE("worker_pool: threads run jobs concurrently", "[worker_pool]") {
    worker_pool pool(3);
    std::atomic<int> arrived{0};
    std::atomic<int> met{0};
    for (int i = 0; i < 3; ++i) {
        // Each waits until all three are running at once: only three threads can do that.
        REQUIRE(pool.post([&] {
            ++arrived;
            if (eventually([&] { return arrived.load() == 3; }, 5000ms)) ++met;
        }));
    }
    REQUIRE(eventually([&] { return met.load() == 3; }));
}

TEST_CASE("worker_pool: zero threads still means one", "[worker_pool]") {
    worker_pool pool(0);
    CHECK(pool.threads() == 1);
    CHECK(worker_pool(3).threads() == 3);
    std::atomic<bool> ran{false};
    REQUIRE(pool.post([&] { ran = true; }));
    CHECK(eventually([&] { return ran.load(); }));
}

TEST_CASE("worker_pool: one thread runs jobs in FIFO order", "[worker_pool]") {
    worker_pool pool(1);
    std::mutex m;
    std::vector<int> order;
    constexpr int n = 200;
    for (int i = 0; i < n; ++i) {
        REQUIRE(pool.post([&, i] {
            std::lock_guard<std::mutex> lock(m);
            order.push_back(i);
        }));
    }
    REQUIRE(eventually([&] {
        std::lock_guard<std::mutex> lock(m);
        return order.size() == static_cast<std::size_t>(n);
    }));
    std::lock_guard<std::mutex> lock(m);
    for (int i = 0; i < n; ++i) {
        INFO("position " << i);
        REQUIRE(order[static_cast<std::size_t>(i)] == i);
    }
}

TEST_CASE("worker_pool: a full queue refuses, and destroys the job unrun", "[worker_pool]") {
    blocker b;
    worker_pool pool(1, 2);
    REQUIRE(pool.post(b.job()));
    REQUIRE(eventually([&] { return b.started.load(); }));
    CHECK(pool.queued() == 0);

    std::atomic<int> ran{0};
    CHECK(pool.post([&] { ++ran; }));
    CHECK(pool.post([&] { ++ran; }));
    CHECK(pool.queued() == 2);

    // The refused job's captures are gone once post() returns, on this thread.
    auto token = std::make_shared<int>(7);
    std::weak_ptr<int> watch = token;
    CHECK_FALSE(pool.post([&ran, token = std::move(token)] { ran += *token; }));
    CHECK(watch.expired());
    CHECK(pool.queued() == 2);

    b.release();
    REQUIRE(eventually([&] { return ran.load() == 2 && pool.queued() == 0; }));
    // Room again once the queue drained.
    CHECK(pool.post([&] { ++ran; }));
    CHECK(eventually([&] { return ran.load() == 3; }));
    CHECK(ran.load() == 3);
}

TEST_CASE("worker_pool: an empty job is refused", "[worker_pool]") {
    worker_pool pool(1);
    CHECK_FALSE(pool.post(std::function<void()>{}));
    CHECK(pool.queued() == 0);
}

TEST_CASE("worker_pool: the destructor runs the jobs already queued", "[worker_pool]") {
    std::atomic<int> ran{0};
    blocker b;
    std::thread releaser;
    {
        worker_pool pool(1);
        REQUIRE(pool.post(b.job()));
        REQUIRE(eventually([&] { return b.started.load(); }));
        for (int i = 0; i < 20; ++i) REQUIRE(pool.post([&] { ++ran; }));
        REQUIRE(pool.queued() == 20);
        // Released while the destructor is already waiting: the 20 are still queued then.
        releaser = std::thread([&] {
            std::this_thread::sleep_for(300ms);
            b.release();
        });
    }
    releaser.join();
    CHECK(ran.load() == 20);
}

TEST_CASE("worker_pool: jobs posted by a job during destruction are refused", "[worker_pool]") {
    std::atomic<int> refused{0};
    std::atomic<int> ran{0};
    blocker b;
    std::thread releaser;
    {
        worker_pool pool(1);
        REQUIRE(pool.post(b.job()));
        REQUIRE(eventually([&] { return b.started.load(); }));
        REQUIRE(pool.post([&] {
            ++ran;
            if (!pool.post([&] { ++ran; })) ++refused;
        }));
        releaser = std::thread([&] {
            std::this_thread::sleep_for(300ms);
            b.release();
        });
    }
    releaser.join();
    CHECK(ran.load() == 1);
    CHECK(refused.load() == 1);
}

TEST_CASE("worker_pool: a throwing job does not kill its thread", "[worker_pool]") {
    worker_pool pool(1);
    REQUIRE(pool.post([] { throw std::runtime_error("boom"); }));
    REQUIRE(pool.post([] { throw 42; }));
    std::atomic<bool> ran{false};
    REQUIRE(pool.post([&] { ran = true; }));
    CHECK(eventually([&] { return ran.load(); }));
}

TEST_CASE("worker_pool: a job may post another job", "[worker_pool]") {
    worker_pool pool(1);
    std::mutex m;
    std::vector<int> order;
    std::atomic<bool> posted{false};
    REQUIRE(pool.post([&] {
        posted = pool.post([&] {
            std::lock_guard<std::mutex> lock(m);
            order.push_back(2);
        });
        std::lock_guard<std::mutex> lock(m);
        order.push_back(1);
    }));
    REQUIRE(eventually([&] {
        std::lock_guard<std::mutex> lock(m);
        return order.size() == 2;
    }));
    CHECK(posted.load());
    std::lock_guard<std::mutex> lock(m);
    // One thread: the inner job waits for the outer one to finish.
    CHECK(order == std::vector<int>{1, 2});
}

TEST_CASE("worker_pool: concurrent posts from many threads all run", "[worker_pool]") {
    std::atomic<int> ran{0};
    std::atomic<int> accepted{0};
    {
        worker_pool pool(2, 100000);
        std::vector<std::thread> posters;
        for (int t = 0; t < 4; ++t) {
            posters.emplace_back([&] {
                for (int i = 0; i < 500; ++i) {
                    if (pool.post([&] { ++ran; })) ++accepted;
                }
            });
        }
        for (auto& t : posters) t.join();
    }
    CHECK(accepted.load() == 2000);
    CHECK(ran.load() == 2000);
}

TEST_CASE("worker_pool: stop runs the queued jobs, refuses new ones, and may repeat",
          "[worker_pool]") {
    std::atomic<int> ran{0};
    blocker b;
    worker_pool pool(2);
    REQUIRE(pool.post(b.job()));
    REQUIRE(eventually([&] { return b.started.load(); }));
    for (int i = 0; i < 10; ++i) REQUIRE(pool.post([&] { ++ran; }));
    std::thread releaser([&] {
        std::this_thread::sleep_for(300ms);
        b.release();
    });
    pool.stop();
    // Returned only once everything queued before it had run.
    CHECK(ran.load() == 10);
    CHECK(pool.queued() == 0);
    CHECK_FALSE(pool.post([&] { ++ran; }));
    pool.stop();
    releaser.join();
    CHECK(ran.load() == 10);
}

TEST_CASE("worker_pool: stop from several threads at once", "[worker_pool]") {
    std::atomic<int> ran{0};
    worker_pool pool(2);
    for (int i = 0; i < 50; ++i) REQUIRE(pool.post([&] { ++ran; }));
    std::vector<std::thread> stoppers;
    for (int i = 0; i < 3; ++i) stoppers.emplace_back([&] { pool.stop(); });
    for (auto& t : stoppers) t.join();
    CHECK(ran.load() == 50);
    CHECK_FALSE(pool.post([&] { ++ran; }));
}
