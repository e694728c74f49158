#include "gatehouse/attempt_limiter.hpp"
#include "gatehouse/redis_limiter.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <hiredis/hiredis.h>

#include "redis_server_fixture.hpp"

namespace {

using gatehouse::attempt_limiter;
using gatehouse::limit_decision;
using gatehouse::log_level;
using gatehouse_test::redis_server;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Collects what a limiter logs.
class log_capture {
public:
    gatehouse::log_sink sink() {
        auto lines = lines_;
        return [lines](log_level level, std::string_view message) {
            std::lock_guard<std::mutex> lock(lines->mutex);
            lines->entries.emplace_back(level, std::string(message));
        };
    }
    std::size_t count(log_level level, std::string_view needle = {}) const {
        std::lock_guard<std::mutex> lock(lines_->mutex);
        std::size_t n = 0;
        for (const auto& [l, text] : lines_->entries) {
            if (l == level && text.find(needle) != std::string::npos) ++n;
        }
        return n;
    }
    std::string all() const {
        std::lock_guard<std::mutex> lock(lines_->mutex);
        std::string out;
        for (const auto& entry : lines_->entries) out += entry.second + "\n";
        return out;
    }

private:
    struct store {
        mutable std::mutex mutex;
        std::vector<std::pair<log_level, std::string>> entries;
    };
    std::shared_ptr<store> lines_ = std::make_shared<store>();
};

std::unique_ptr<attempt_limiter> redis_limiter(const std::string& url, log_capture& logs,
                                               std::chrono::milliseconds timeout = 500ms,
                                               std::string prefix = "gatehouse:limit:") {
    gatehouse::redis_limiter_options options;
    options.url = url;
    options.timeout = timeout;
    options.key_prefix = std::move(prefix);
    options.log = logs.sink();
    auto out = gatehouse::make_redis_limiter(std::move(options));
    REQUIRE(out);
    return out;
}

// Where the counts live, for the tests that every limiter must pass: this process's memory,
// or a real redis-server. A Redis limiter that quietly fell back to memory would pass them
// too, so for Redis every test also requires that nothing was logged as a warning.
class backend {
public:
    explicit backend(const std::string& kind) {
        if (kind == "redis") server_ = std::make_unique<redis_server>();
    }
    std::unique_ptr<attempt_limiter> make() {
        if (!server_) return gatehouse::make_memory_limiter();
        return redis_limiter(server_->url(), logs_);
    }
    void require_no_fallback() const {
        INFO(logs_.all());
        REQUIRE(logs_.count(log_level::warn) == 0);
        REQUIRE(logs_.count(log_level::error) == 0);
    }

private:
    std::unique_ptr<redis_server> server_;
    log_capture logs_;
};

bool within(std::chrono::seconds value, std::chrono::seconds low, std::chrono::seconds high) {
    return value >= low && value <= high;
}

// Calls `attempt` every 50 ms until it returns true or `limit` passes.
template <typename Fn>
bool eventually(Fn attempt, std::chrono::milliseconds limit = 6000ms) {
    const auto deadline = steady::now() + limit;
    while (!attempt()) {
        if (steady::now() >= deadline) return false;
        std::this_thread::sleep_for(50ms);
    }
    return true;
}

// A plain hiredis connection, to look at what the limiter wrote.
class raw_client {
public:
    explicit raw_client(std::uint16_t port, std::vector<std::string> auth = {}) {
        ctx_ = redisConnectWithTimeout("127.0.0.1", port, timeval{2, 0});
        REQUIRE(ctx_);
        REQUIRE(ctx_->err == 0);
        REQUIRE(redisSetTimeout(ctx_, timeval{2, 0}) == REDIS_OK);
        if (!auth.empty()) {
            auth.insert(auth.begin(), "AUTH");
            command(auth);
        }
    }
    ~raw_client() { redisFree(ctx_); }
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;

    // The reply as text: an integer in decimal, a status or string as is, an error with `-`.
    std::string command(const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lengths.push_back(a.size());
        }
        auto* reply = static_cast<redisReply*>(
            redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lengths.data()));
        REQUIRE(reply);
        std::string out;
        switch (reply->type) {
            case REDIS_REPLY_INTEGER: out = std::to_string(reply->integer); break;
            case REDIS_REPLY_ERROR: out = "-" + std::string(reply->str, reply->len); break;
            case REDIS_REPLY_STATUS:
            case REDIS_REPLY_STRING: out = std::string(reply->str, reply->len); break;
            case REDIS_REPLY_NIL: out = "(nil)"; break;
            default: out = "(other)"; break;
        }
        freeReplyObject(reply);
        return out;
    }
    long long integer(const std::vector<std::string>& args) {
        const std::string text = command(args);
        INFO(text);
        REQUIRE(!text.empty());
        REQUIRE(text[0] != '-');
        return std::stoll(text);
    }

private:
    redisContext* ctx_ = nullptr;
};

// Hits `key` from `threads` threads, `per_thread` times each, alternating between limiters;
// returns how many were allowed.
int hammer_hits(const std::vector<attempt_limiter*>& limiters, const std::string& key,
                unsigned limit, int threads, int per_thread) {
    std::atomic<int> allowed{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        attempt_limiter* l = limiters[static_cast<std::size_t>(t) % limiters.size()];
        workers.emplace_back([&, l] {
            for (int i = 0; i < per_thread; ++i) {
                if (l->hit(key, limit, 60s).allowed) ++allowed;
            }
        });
    }
    for (auto& w : workers) w.join();
    return allowed.load();
}

}  // namespace

// --- behaviour every limiter shares ------------------------------------------------------------

TEST_CASE("limiter: counts hits in a fixed window and refuses past the limit", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto l = be.make();

    for (int i = 0; i < 3; ++i) {
        const auto d = l->hit("ip:203.0.113.7", 3, 2s);
        CHECK(d.allowed);
        CHECK(d.retry_after == 0s);
    }
    const auto refused = l->hit("ip:203.0.113.7", 3, 2s);
    CHECK_FALSE(refused.allowed);
    CHECK(within(refused.retry_after, 1s, 2s));
    // Still refused: refused hits count too, and never reopen the window.
    CHECK_FALSE(l->hit("ip:203.0.113.7", 3, 2s).allowed);

    // A limit of 0 refuses everything, with a Retry-After of at least 1.
    const auto zero = l->hit("ip:198.51.100.1", 0, 1s);
    CHECK_FALSE(zero.allowed);
    CHECK(zero.retry_after == 1s);
    be.require_no_fallback();
}

TEST_CASE("limiter: a window ends and counting starts again", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto l = be.make();

    REQUIRE(l->hit("ip:a", 2, 1s).allowed);
    REQUIRE(l->hit("ip:a", 2, 1s).allowed);
    const auto refused = l->hit("ip:a", 2, 1s);
    REQUIRE_FALSE(refused.allowed);
    CHECK(refused.retry_after == 1s);

    // Retry-After is honest: waiting that long is enough.
    std::this_thread::sleep_for(refused.retry_after + 50ms);
    CHECK(l->hit("ip:a", 2, 1s).allowed);
    CHECK(l->hit("ip:a", 2, 1s).allowed);
    CHECK_FALSE(l->hit("ip:a", 2, 1s).allowed);
    be.require_no_fallback();
}

TEST_CASE("limiter: locks out after exactly max_failures", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto l = be.make();

    CHECK(l->check_lockout("login:alice").allowed);
    CHECK(l->record_failure("login:alice", 3, 2s).allowed);
    CHECK(l->check_lockout("login:alice").allowed);
    CHECK(l->record_failure("login:alice", 3, 2s).allowed);
    CHECK(l->check_lockout("login:alice").allowed);

    const auto third = l->record_failure("login:alice", 3, 2s);
    CHECK_FALSE(third.allowed);
    CHECK(within(third.retry_after, 1s, 2s));
    const auto check = l->check_lockout("login:alice");
    CHECK_FALSE(check.allowed);
    CHECK(within(check.retry_after, 1s, 2s));

    // max_failures 1: the first failure locks.
    CHECK_FALSE(l->record_failure("login:bob", 1, 2s).allowed);
    CHECK_FALSE(l->check_lockout("login:bob").allowed);
    be.require_no_fallback();
}

TEST_CASE("limiter: a lockout refuses until it ends, then allows", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto l = be.make();

    REQUIRE(l->record_failure("login:carol", 2, 1s).allowed);
    const auto locked = l->record_failure("login:carol", 2, 1s);
    REQUIRE_FALSE(locked.allowed);
    CHECK(locked.retry_after == 1s);
    const auto during = l->check_lockout("login:carol");
    CHECK_FALSE(during.allowed);
    CHECK(during.retry_after == 1s);

    std::this_thread::sleep_for(during.retry_after + 50ms);
    CHECK(l->check_lockout("login:carol").allowed);
    // The failure window ended with it: counting starts from one again.
    CHECK(l->record_failure("login:carol", 2, 1s).allowed);
    CHECK_FALSE(l->record_failure("login:carol", 2, 1s).allowed);
    be.require_no_fallback();
}

TEST_CASE("limiter: clear_failures forgets failures but not a lockout", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto l = be.make();

    REQUIRE(l->record_failure("login:dave", 3, 10s).allowed);
    REQUIRE(l->record_failure("login:dave", 3, 10s).allowed);
    l->clear_failures("login:dave");
    CHECK(l->record_failure("login:dave", 3, 10s).allowed);
    CHECK(l->record_failure("login:dave", 3, 10s).allowed);
    CHECK_FALSE(l->record_failure("login:dave", 3, 10s).allowed);

    l->clear_failures("login:dave");
    const auto still = l->check_lockout("login:dave");
    CHECK_FALSE(still.allowed);
    CHECK(within(still.retry_after, 1s, 10s));

    // Clearing a key never seen is harmless.
    l->clear_failures("login:nobody");
    CHECK(l->check_lockout("login:nobody").allowed);
    be.require_no_fallback();
}

TEST_CASE("limiter: keys are independent and compared byte for byte", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto l = be.make();

    REQUIRE(l->hit("ip:a", 1, 10s).allowed);
    CHECK_FALSE(l->hit("ip:a", 1, 10s).allowed);
    CHECK(l->hit("ip:b", 1, 10s).allowed);

    // Keys that agree up to a NUL byte are still different keys.
    const std::string k1("x\0y", 3), k2("x\0z", 3);
    CHECK(l->hit(k1, 1, 10s).allowed);
    CHECK(l->hit(k2, 1, 10s).allowed);
    CHECK(l->hit("x", 1, 10s).allowed);
    CHECK_FALSE(l->hit(k1, 1, 10s).allowed);
    // Anything at all may be in a key.
    const std::string odd = "login:\r\n*3\r\n$3\r\nDEL \xff\xfe \"quoted\" {tag}";
    CHECK(l->record_failure(odd, 2, 10s).allowed);
    CHECK_FALSE(l->record_failure(odd, 2, 10s).allowed);
    CHECK_FALSE(l->check_lockout(odd).allowed);
    CHECK(l->check_lockout("login:").allowed);
    CHECK(l->hit("", 1, 10s).allowed);
    CHECK_FALSE(l->hit("", 1, 10s).allowed);

    // Locking one login leaves another alone.
    REQUIRE_FALSE(l->record_failure("login:erin", 1, 10s).allowed);
    CHECK(l->check_lockout("login:frank").allowed);
    CHECK(l->record_failure("login:frank", 2, 10s).allowed);

    // Hits, failures and locks of one key are separate counters.
    REQUIRE(l->hit("login:gina", 1, 10s).allowed);
    REQUIRE_FALSE(l->hit("login:gina", 1, 10s).allowed);
    CHECK(l->check_lockout("login:gina").allowed);
    CHECK(l->record_failure("login:gina", 2, 10s).allowed);
    REQUIRE_FALSE(l->record_failure("login:hank", 1, 10s).allowed);
    CHECK(l->hit("login:hank", 1, 10s).allowed);
    be.require_no_fallback();
}

TEST_CASE("limiter: concurrent callers on one key get exactly the limit", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto l = be.make();

    CHECK(hammer_hits({l.get()}, "ip:busy", 100, 8, 40) == 100);

    // Failures: numbers 1..49 are allowed, the 50th locks, later ones find it locked.
    std::atomic<int> allowed{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 8; ++t) {
        workers.emplace_back([&] {
            for (int i = 0; i < 10; ++i) {
                if (l->record_failure("login:target", 50, 30s).allowed) ++allowed;
            }
        });
    }
    for (auto& w : workers) w.join();
    CHECK(allowed.load() == 49);
    CHECK_FALSE(l->check_lockout("login:target").allowed);
    be.require_no_fallback();
}

TEST_CASE("limiter: begin_attempt admits max_failures attempts, then locks", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto l = be.make();

    for (int i = 0; i < 3; ++i) CHECK(l->begin_attempt("login:dave", 3, 2s).allowed);
    const auto fourth = l->begin_attempt("login:dave", 3, 2s);
    CHECK_FALSE(fourth.allowed);
    CHECK(fourth.lockout_started);  // this attempt locked it (the audit log's lockout_started)
    CHECK(within(fourth.retry_after, 1s, 2s));
    CHECK_FALSE(l->check_lockout("login:dave").allowed);
    const auto fifth = l->begin_attempt("login:dave", 3, 2s);
    CHECK_FALSE(fifth.allowed);
    CHECK_FALSE(fifth.lockout_started);

    // A right password clears what was counted: the next attempts start from zero.
    CHECK(l->begin_attempt("login:erin", 3, 2s).allowed);
    CHECK(l->begin_attempt("login:erin", 3, 2s).allowed);
    l->clear_failures("login:erin");
    for (int i = 0; i < 3; ++i) CHECK(l->begin_attempt("login:erin", 3, 2s).allowed);
    CHECK_FALSE(l->begin_attempt("login:erin", 3, 2s).allowed);

    // The lockout ends, and counting starts again.
    CHECK(eventually([&] { return l->check_lockout("login:dave").allowed; }, 4000ms));
    CHECK(l->begin_attempt("login:dave", 3, 2s).allowed);
    be.require_no_fallback();
}

TEST_CASE("limiter: concurrent begin_attempt admits exactly max_failures", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto first = be.make();
    auto second = be.make();  // for Redis, a second instance sharing the counts

    std::atomic<int> admitted{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 8; ++t) {
        attempt_limiter* l = t % 2 == 0 ? first.get() : second.get();
        workers.emplace_back([&, l] {
            for (int i = 0; i < 10; ++i) {
                if (l->begin_attempt("login:contested", 5, 30s).allowed) ++admitted;
            }
        });
    }
    for (auto& w : workers) w.join();
    // In memory each limiter counts alone; in Redis the two share one count.
    CHECK(admitted.load() == (kind == "redis" ? 5 : 10));
    CHECK_FALSE(first->check_lockout("login:contested").allowed);
    be.require_no_fallback();
}

TEST_CASE("limiter: absurd windows and lockouts do not break it", "[limiter]") {
    const std::string kind = GENERATE(as<std::string>{}, "memory", "redis");
    INFO(kind);
    backend be(kind);
    auto l = be.make();

    // No window: every hit is alone in its own.
    CHECK(l->hit("k", 1, 0s).allowed);
    CHECK(l->hit("k", 1, 0s).allowed);
    CHECK_FALSE(l->hit("k", 0, 0s).allowed);
    CHECK(l->hit("k", 1, -5s).allowed);
    // No lockout: failures lock nothing.
    CHECK(l->record_failure("login:z", 1, 0s).allowed);
    CHECK(l->check_lockout("login:z").allowed);
    // Enormous spans: still counted, no overflow.
    CHECK(l->hit("huge", 1, std::chrono::seconds::max()).allowed);
    const auto d = l->hit("huge", 1, std::chrono::seconds::max());
    CHECK_FALSE(d.allowed);
    CHECK(d.retry_after > std::chrono::hours(24 * 365));
    CHECK_FALSE(l->record_failure("login:huge", 1, std::chrono::seconds::max()).allowed);
    CHECK_FALSE(l->check_lockout("login:huge").allowed);
    be.require_no_fallback();
}

TEST_CASE("limiter: memory, expired entries are swept without touching live ones", "[limiter]") {
    auto l = gatehouse::make_memory_limiter();
    REQUIRE(l->hit("live", 1, 60s).allowed);
    REQUIRE_FALSE(l->record_failure("login:live", 1, 60s).allowed);
    for (int i = 0; i < 3000; ++i) {
        (void)l->hit("short:" + std::to_string(i), 1, 1s);
        (void)l->record_failure("login:short:" + std::to_string(i), 5, 1s);
    }
    std::this_thread::sleep_for(1100ms);
    // Enough calls for a sweep, which must walk past the live entries.
    for (int i = 0; i < 9000; ++i) (void)l->check_lockout("other:" + std::to_string(i % 7));
    CHECK_FALSE(l->hit("live", 1, 60s).allowed);
    CHECK_FALSE(l->check_lockout("login:live").allowed);
    CHECK(l->hit("short:1", 1, 1s).allowed);
}

// --- Redis ------------------------------------------------------------------------------------

TEST_CASE("limiter: two Redis limiters share their counts", "[limiter]") {
    redis_server server;
    log_capture logs;
    auto a = redis_limiter(server.url(), logs);
    auto b = redis_limiter(server.url(), logs);

    REQUIRE(a->hit("ip:shared", 3, 10s).allowed);
    REQUIRE(b->hit("ip:shared", 3, 10s).allowed);
    REQUIRE(a->hit("ip:shared", 3, 10s).allowed);
    CHECK_FALSE(b->hit("ip:shared", 3, 10s).allowed);

    CHECK(a->record_failure("login:ivy", 3, 10s).allowed);
    CHECK(b->record_failure("login:ivy", 3, 10s).allowed);
    CHECK_FALSE(a->record_failure("login:ivy", 3, 10s).allowed);
    CHECK_FALSE(b->check_lockout("login:ivy").allowed);

    CHECK(a->record_failure("login:jack", 2, 10s).allowed);
    b->clear_failures("login:jack");
    CHECK(a->record_failure("login:jack", 2, 10s).allowed);

    // Concurrent callers across instances: still exactly the limit.
    CHECK(hammer_hits({a.get(), b.get()}, "ip:busy", 60, 6, 25) == 60);
    INFO(logs.all());
    CHECK(logs.count(log_level::warn) == 0);
}

TEST_CASE("limiter: Redis keys are <prefix>hit:, fail: and lock:<key>", "[limiter]") {
    redis_server server;
    log_capture logs;
    auto l = redis_limiter(server.url(), logs, 500ms, "t:");
    raw_client raw(server.port());

    REQUIRE(l->hit("ip:a", 5, 10s).allowed);
    CHECK(raw.command({"GET", "t:hit:ip:a"}) == "1");
    const long long hit_ttl = raw.integer({"PTTL", "t:hit:ip:a"});
    CHECK(hit_ttl > 8000);
    CHECK(hit_ttl <= 10000);

    REQUIRE(l->record_failure("login:kim", 2, 20s).allowed);
    CHECK(raw.command({"GET", "t:fail:login:kim"}) == "1");
    CHECK(raw.integer({"PTTL", "t:fail:login:kim"}) > 15000);
    CHECK(raw.integer({"EXISTS", "t:lock:login:kim"}) == 0);
    REQUIRE_FALSE(l->record_failure("login:kim", 2, 20s).allowed);
    CHECK(raw.integer({"PTTL", "t:lock:login:kim"}) > 15000);

    l->clear_failures("login:kim");
    CHECK(raw.integer({"EXISTS", "t:fail:login:kim"}) == 0);
    CHECK(raw.integer({"EXISTS", "t:lock:login:kim"}) == 1);

    // A lock written by hand (an operator's ban, without expiry) is honoured.
    raw.command({"SET", "t:lock:login:banned", "1"});
    CHECK_FALSE(l->check_lockout("login:banned").allowed);
    // A key wrongly left without expiry gets one on the next hit instead of refusing for ever.
    raw.command({"SET", "t:hit:ip:stuck", "100"});
    CHECK_FALSE(l->hit("ip:stuck", 5, 10s).allowed);
    CHECK(raw.integer({"PTTL", "t:hit:ip:stuck"}) > 0);

    // Binary keys arrive intact.
    REQUIRE(l->hit(std::string("nul\0byte", 8), 5, 10s).allowed);
    CHECK(raw.command({"GET", std::string("t:hit:nul\0byte", 14)}) == "1");
    CHECK(raw.integer({"EXISTS", "t:hit:nul"}) == 0);
    INFO(logs.all());
    CHECK(logs.count(log_level::warn) == 0);
}

TEST_CASE("limiter: a flushed script cache is reloaded through EVAL", "[limiter]") {
    redis_server server;
    log_capture logs;
    auto a = redis_limiter(server.url(), logs);
    auto b = redis_limiter(server.url(), logs);
    raw_client raw(server.port());

    REQUIRE(a->hit("ip:a", 2, 10s).allowed);
    REQUIRE(a->record_failure("login:x", 5, 10s).allowed);
    // Both connected (and so both loaded the scripts) before the flush.
    REQUIRE(b->check_lockout("login:x").allowed);
    REQUIRE(raw.command({"SCRIPT", "FLUSH"}) == "OK");
    // Same connections, scripts gone: NOSCRIPT, then EVAL, counted in Redis all the same.
    CHECK(b->hit("ip:a", 2, 10s).allowed);
    CHECK_FALSE(a->hit("ip:a", 2, 10s).allowed);
    CHECK(b->record_failure("login:x", 5, 10s).allowed);
    CHECK(raw.command({"GET", "gatehouse:limit:fail:login:x"}) == "2");
    INFO(logs.all());
    CHECK(logs.count(log_level::warn) == 0);
}

TEST_CASE("limiter: Redis killed, it falls back to memory, quickly and without throwing",
          "[limiter]") {
    redis_server server;
    log_capture logs;
    auto l = redis_limiter(server.url(), logs, 300ms);
    REQUIRE(l->hit("warm", 10, 10s).allowed);
    REQUIRE(l->record_failure("login:before", 5, 10s).allowed);
    REQUIRE(logs.count(log_level::warn) == 0);

    server.kill_now();
    const auto start = steady::now();
    auto slowest = steady::duration::zero();
    int allowed = 0;
    // Spread over more than one reconnect interval, so that reconnects are tried too.
    for (int i = 0; i < 12; ++i) {
        const auto t0 = steady::now();
        if (l->hit("ip:during", 3, 30s).allowed) ++allowed;
        slowest = std::max(slowest, steady::now() - t0);
        std::this_thread::sleep_for(100ms);
    }
    // Still limits, in this process's memory.
    CHECK(allowed == 3);
    CHECK(l->record_failure("login:during", 2, 30s).allowed);
    CHECK_FALSE(l->record_failure("login:during", 2, 30s).allowed);
    CHECK_FALSE(l->check_lockout("login:during").allowed);
    l->clear_failures("login:during");
    CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(slowest) < 1000ms);
    CHECK(steady::now() - start < 4s);
    INFO(logs.all());
    // The switch is logged once, not once per call.
    CHECK(logs.count(log_level::warn) == 1);
    CHECK(logs.count(log_level::info, "reachable again") == 0);
}

TEST_CASE("limiter: writing to a connection Redis closed does not raise SIGPIPE", "[limiter]") {
    redis_server server;
    log_capture logs;
    auto l = redis_limiter(server.url(), logs, 300ms);
    REQUIRE(l->hit("warm", 10, 10s).allowed);
    server.kill_now();
    // A command larger than the socket buffer takes several write(2) calls; the peer's reset
    // arrives between them, and the next write fails with EPIPE, which raises SIGPIPE unless
    // the limiter keeps it from ending the process.
    const std::string big(8 * 1024 * 1024, 'k');
    CHECK(l->hit(big, 1, 10s).allowed);
    CHECK_FALSE(l->hit(big, 1, 10s).allowed);
    CHECK(logs.count(log_level::warn) == 1);
}

TEST_CASE("limiter: Redis restarted, counts are shared again", "[limiter]") {
    redis_server server;
    log_capture logs_a, logs_b;
    auto a = redis_limiter(server.url(), logs_a, 300ms);
    auto b = redis_limiter(server.url(), logs_b, 300ms);
    REQUIRE(a->hit("warm", 10, 10s).allowed);
    REQUIRE(b->hit("warm", 10, 10s).allowed);

    server.kill_now();
    // Apart: each counts alone.
    CHECK(a->hit("ip:apart", 1, 30s).allowed);
    CHECK(b->hit("ip:apart", 1, 30s).allowed);
    REQUIRE(logs_a.count(log_level::warn) == 1);
    REQUIRE(logs_b.count(log_level::warn) == 1);
    // A lockout decided during the outage.
    REQUIRE_FALSE(a->record_failure("login:outage", 1, 30s).allowed);

    server.restart();
    REQUIRE(eventually([&] {
        (void)a->hit("probe", 1000, 10s);
        (void)b->hit("probe", 1000, 10s);
        return logs_a.count(log_level::info, "reachable again") == 1 &&
               logs_b.count(log_level::info, "reachable again") == 1;
    }));
    CHECK(a->hit("ip:together", 2, 30s).allowed);
    CHECK(b->hit("ip:together", 2, 30s).allowed);
    CHECK_FALSE(a->hit("ip:together", 2, 30s).allowed);
    CHECK_FALSE(b->hit("ip:together", 2, 30s).allowed);
    // The lockout from the outage outlives it on the instance that decided it.
    CHECK_FALSE(a->check_lockout("login:outage").allowed);
    INFO(logs_a.all() + logs_b.all());
    CHECK(logs_a.count(log_level::warn) == 1);
    CHECK(logs_b.count(log_level::warn) == 1);
}

TEST_CASE("limiter: a hung Redis costs at most about one timeout", "[limiter]") {
    redis_server server;
    log_capture logs;
    auto l = redis_limiter(server.url(), logs, 300ms);
    REQUIRE(l->hit("warm", 10, 10s).allowed);

    server.pause();
    auto slowest = steady::duration::zero();
    int allowed = 0;
    const auto start = steady::now();
    for (int i = 0; i < 15; ++i) {
        const auto t0 = steady::now();
        if (l->hit("ip:hung", 3, 30s).allowed) ++allowed;
        slowest = std::max(slowest, steady::now() - t0);
        std::this_thread::sleep_for(100ms);
    }
    const auto elapsed = steady::now() - start;
    server.resume();
    CHECK(allowed == 3);
    CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(slowest) < 1000ms);
    // 15 calls with 1.5 s of sleeps: only a few pay the timeout (not one per call).
    CHECK(elapsed < 3500ms);
    CHECK(logs.count(log_level::warn) == 1);

    REQUIRE(eventually([&] {
        (void)l->hit("probe", 1000, 10s);
        return logs.count(log_level::info, "reachable again") == 1;
    }));
    auto other = redis_limiter(server.url(), logs, 300ms);
    CHECK(l->hit("ip:after", 1, 30s).allowed);
    CHECK_FALSE(other->hit("ip:after", 1, 30s).allowed);
}

TEST_CASE("limiter: many threads during an outage are neither slowed nor stopped", "[limiter]") {
    redis_server server;
    log_capture logs;
    auto l = redis_limiter(server.url(), logs, 300ms);
    REQUIRE(l->hit("warm", 10, 10s).allowed);
    server.kill_now();
    const auto start = steady::now();
    CHECK(hammer_hits({l.get()}, "ip:outage", 50, 6, 30) == 50);
    CHECK(steady::now() - start < 3s);
    CHECK(logs.count(log_level::warn) == 1);
}

TEST_CASE("limiter: AUTH with a password, an ACL user, and SELECT from the URL", "[limiter]") {
    SECTION("password only") {
        redis_server server({"--requirepass", "s3cret-pw"});
        log_capture logs;
        auto a = redis_limiter(server.url(":s3cret-pw@"), logs);
        auto b = redis_limiter(server.url(":s3cret-pw@"), logs);
        CHECK(a->hit("ip:a", 1, 10s).allowed);
        CHECK_FALSE(b->hit("ip:a", 1, 10s).allowed);
        INFO(logs.all());
        CHECK(logs.count(log_level::warn) == 0);
    }
    SECTION("ACL user and database") {
        redis_server server({"--user", "alice", "on", ">alice-pw", "~*", "&*", "+@all", "--user",
                             "default", "off"});
        log_capture logs;
        auto a = redis_limiter(server.url("alice:alice-pw@", "/3"), logs);
        auto b = redis_limiter(server.url("alice:alice-pw@", "/3"), logs);
        CHECK(a->hit("ip:a", 1, 10s).allowed);
        CHECK_FALSE(b->hit("ip:a", 1, 10s).allowed);
        INFO(logs.all());
        CHECK(logs.count(log_level::warn) == 0);

        raw_client raw(server.port(), {"alice", "alice-pw"});
        CHECK(raw.integer({"EXISTS", "gatehouse:limit:hit:ip:a"}) == 0);
        REQUIRE(raw.command({"SELECT", "3"}) == "OK");
        CHECK(raw.integer({"EXISTS", "gatehouse:limit:hit:ip:a"}) == 1);
    }
    SECTION("an ACL user who may not use SCRIPT still gets scripts, through EVAL") {
        redis_server server({"--user", "bob", "on", ">bob-pw", "~*", "&*", "+@all", "-script"});
        log_capture logs;
        auto a = redis_limiter(server.url("bob:bob-pw@"), logs);
        auto b = redis_limiter(server.url("bob:bob-pw@"), logs);
        CHECK(a->hit("ip:a", 1, 10s).allowed);
        CHECK_FALSE(b->hit("ip:a", 1, 10s).allowed);
        CHECK(a->record_failure("login:x", 2, 10s).allowed);
        CHECK_FALSE(b->record_failure("login:x", 2, 10s).allowed);
        INFO(logs.all());
        CHECK(logs.count(log_level::warn) == 0);
    }
    SECTION("a wrong password falls back, and is never logged") {
        redis_server server({"--requirepass", "s3cret-pw"});
        log_capture logs;
        auto l = redis_limiter(server.url(":hunter2-wrong@"), logs);
        CHECK(l->hit("ip:a", 1, 10s).allowed);
        CHECK_FALSE(l->hit("ip:a", 1, 10s).allowed);
        INFO(logs.all());
        CHECK(logs.count(log_level::warn) == 1);
        CHECK(logs.count(log_level::warn, "AUTH") == 1);
        CHECK(logs.all().find("hunter2") == std::string::npos);
        CHECK(logs.all().find("s3cret") == std::string::npos);
    }
}

TEST_CASE("limiter: make_redis_limiter checks its options and connects lazily", "[limiter]") {
    gatehouse::redis_limiter_options options;

    // Bad configuration throws, naming the option and never quoting the URL (a password).
    options.url = "http://user:hunter2@127.0.0.1:6379";
    try {
        (void)gatehouse::make_redis_limiter(options);
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        CHECK(what.find("url") != std::string::npos);
        CHECK(what.find("hunter2") == std::string::npos);
    }

    for (const char* bad : {"", "redis://", "redis://host:0", "redis://host/16", "redis://u@h"}) {
        INFO(bad);
        options.url = bad;
        CHECK_THROWS_AS(gatehouse::make_redis_limiter(options), std::invalid_argument);
    }

    options.url = "redis://127.0.0.1:6379";
    options.timeout = 0ms;
    CHECK_THROWS_WITH(gatehouse::make_redis_limiter(options), Catch::Contains("timeout"));

    // Nothing listens on a port freed by a stopped server: creating still succeeds at once,
    // and the first call falls back.
    std::string url;
    {
        redis_server server;
        url = server.url();
    }
    log_capture logs;
    options.url = url;
    options.timeout = 300ms;
    options.log = logs.sink();
    const auto t0 = steady::now();
    auto out = gatehouse::make_redis_limiter(options);
    REQUIRE(out);
    CHECK(steady::now() - t0 < 100ms);
    CHECK(logs.all().empty());
    CHECK(out->hit("ip:a", 1, 10s).allowed);
    CHECK_FALSE(out->hit("ip:a", 1, 10s).allowed);
    CHECK(logs.count(log_level::warn) == 1);
}
