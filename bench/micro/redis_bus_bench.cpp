// The ingress hot path on Redis (DESIGN.md): command -> XADD pipelined on one connection ->
// ack when the reply arrives. Measures `redis_bus::append` (its command producer,
// `redis_command_producer::append`) against a redis-server this program
// starts on a free loopback port (and stops by PID), with W commands kept outstanding, and a
// baseline in the same run: synchronous hiredis, one XADD round trip at a time, which is what a
// gateway without pipelining gets. Prints one JSON line per workload.
//
//   gatehouse_redis_bus_bench [commands per workload, default 200000] [--batch-scheduling]
//
// --batch-scheduling runs the producer's I/O thread under SCHED_BATCH (the library's opt-in,
// `batch_scheduling`); without it the thread keeps the default policy, as the library does.
//
// Speed is read from these figures (docs/benchmarks.md), never asserted: the CTest smoke run
// only checks that every command was acked and is on the stream.

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "gatehouse/errc.hpp"
#include "gatehouse/redis_command_producer.hpp"
#include "redis_server_fixture.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

gatehouse::envelope sample_command() {
    gatehouse::envelope e;
    e.type = "player.move";
    e.payload = R"({"x":12.5,"y":-3.25,"facing":"north","run":true})";
    e.correlation_id = "c-0000000001";
    e.origin.player_id = "p_6787a5d935c3309dc8b05d91";
    e.origin.connection_id = "bench-gw-1";
    e.origin.accepted_at_ms = 1700000000000;
    return e;
}

struct percentiles {
    double p50 = 0, p99 = 0, p999 = 0;
};

percentiles of(std::vector<double>& us) {
    percentiles p;
    if (us.empty()) return p;
    std::sort(us.begin(), us.end());
    const auto at = [&](double q) {
        return us[std::min(us.size() - 1,
                           static_cast<std::size_t>(q * static_cast<double>(us.size())))];
    };
    p.p50 = at(0.50);
    p.p99 = at(0.99);
    p.p999 = at(0.999);
    return p;
}

// `count` appends with at most `window` outstanding; returns false when any failed.
bool run_bus(gatehouse::command_bus& bus, std::size_t count, std::size_t window,
             const char* label) {
    std::mutex m;
    std::condition_variable cv;
    std::size_t outstanding = 0, done = 0, failed = 0;
    std::vector<double> latency_us;
    latency_us.reserve(count);
    const auto command = sample_command();
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < count; ++i) {
        {
            std::unique_lock<std::mutex> lock(m);
            cv.wait(lock, [&] { return outstanding < window; });
            ++outstanding;
        }
        const auto sent = clock_type::now();
        bus.append(command, [&, sent](std::error_code ec, std::string_view) {
            const auto us =
                std::chrono::duration<double, std::micro>(clock_type::now() - sent).count();
            std::lock_guard<std::mutex> lock(m);
            latency_us.push_back(us);
            --outstanding;
            ++done;
            if (ec) ++failed;
            cv.notify_all();
        });
    }
    {
        std::unique_lock<std::mutex> lock(m);
        cv.wait_for(lock, std::chrono::seconds(60), [&] { return done == count; });
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    std::lock_guard<std::mutex> lock(m);
    const auto p = of(latency_us);
    std::printf(
        "{\"bench\":\"%s\",\"window\":%zu,\"commands\":%zu,\"acked\":%zu,\"failed\":%zu,"
        "\"per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f}\n",
        label, window, count, done - failed, failed, static_cast<double>(done) / seconds, p.p50,
        p.p99, p.p999);
    std::fflush(stdout);
    return done == count && failed == 0;
}

// The baseline: a blocking client, one XADD round trip per command.
bool run_sync_hiredis(std::uint16_t port, std::size_t count) {
    timeval tv{5, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == nullptr || c->err != 0) return false;
    const auto e = sample_command();
    const std::string ts = std::to_string(e.origin.accepted_at_ms);
    const std::vector<std::string> argv{"XADD",
                                        "bench:sync",
                                        "*",
                                        "type",
                                        e.type,
                                        "payload",
                                        e.payload,
                                        "codec",
                                        "json",
                                        "correlation_id",
                                        e.correlation_id,
                                        "player_id",
                                        e.origin.player_id,
                                        "connection_id",
                                        e.origin.connection_id,
                                        "gateway_id",
                                        "bench",
                                        "client",
                                        "player",
                                        "ts_ms",
                                        ts};
    std::vector<const char*> args;
    std::vector<std::size_t> lengths;
    for (const auto& a : argv) {
        args.push_back(a.data());
        lengths.push_back(a.size());
    }
    std::vector<double> latency_us;
    latency_us.reserve(count);
    std::size_t failed = 0;
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < count; ++i) {
        const auto sent = clock_type::now();
        auto* r = static_cast<redisReply*>(
            redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lengths.data()));
        if (r == nullptr || r->type != REDIS_REPLY_STRING) ++failed;
        if (r != nullptr) freeReplyObject(r);
        latency_us.push_back(
            std::chrono::duration<double, std::micro>(clock_type::now() - sent).count());
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    redisFree(c);
    const auto p = of(latency_us);
    std::printf(
        "{\"bench\":\"hiredis_sync_xadd\",\"window\":1,\"commands\":%zu,\"acked\":%zu,"
        "\"failed\":%zu,\"per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f}\n",
        count, count - failed, failed, static_cast<double>(count) / seconds, p.p50, p.p99, p.p999);
    std::fflush(stdout);
    return failed == 0;
}

int run(int argc, char** argv) {
    const std::size_t count = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 200000;
    const bool batch = argc > 2 && std::string(argv[2]) == "--batch-scheduling";
    if (count == 0 || (argc > 2 && !batch) || argc > 3) {
        std::fprintf(stderr, "usage: %s [commands per workload > 0] [--batch-scheduling]\n",
                     argv[0]);
        return 2;
    }
    gatehouse_test::redis_server server;
    gatehouse::redis_command_producer_options options;
    options.url = server.url();
    options.command_stream = "bench:commands";
    options.gateway_id = "bench";
    options.stream_maxlen = 100000;  // keeps redis-server's memory flat across workloads
    options.batch_scheduling = batch;
    // The plain XADD path that docs/benchmarks.md ("Ingress on Redis") measures: every command
    // here has the same correlation id, which de-duplication would answer from the first
    // (docs/protocol.md 6.5; bench/redis_append_cost.py measures that path).
    options.dedupe_window = std::chrono::seconds{0};
    gatehouse::redis_command_producer bus(options);
    if (!bus.wait_connected(std::chrono::seconds(5))) {
        std::fprintf(stderr, "the command producer did not connect\n");
        return 1;
    }
    bool ok = run_sync_hiredis(server.port(), std::min<std::size_t>(count, 50000));
    for (const std::size_t window : {std::size_t{1}, std::size_t{16}, std::size_t{256}}) {
        const auto n = window == 1 ? std::min<std::size_t>(count, 50000) : count;
        ok = run_bus(bus, n, window, "redis_bus_append") && ok;
    }
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        // redis-server could not be started, or memory ran out.
        std::fprintf(stderr, "gatehouse_redis_bus_bench: %s\n", e.what());
        return 1;
    }
}
