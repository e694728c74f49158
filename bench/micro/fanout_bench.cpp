// Egress microbenchmarks: the part of "one published update -> many connections" that the
// gateway itself does, without sockets: parse the update message (docs/protocol.md section 5),
// look up its connections, encode once per codec in use and hand the shared frame to each
// connection. Connections here are in-memory sinks that count what they receive, so the
// figures are the gateway's own cost per update; the socket writes come on top.
//
//   parse_update/<shape>             parsing one update message
//   deliver/<target>/<N>/<codecs>    connection_manager::deliver to N connections
//   naive/broadcast/<N>/<codecs>     the same fan-out encoding once per connection, the
//                                    baseline "encode once per codec" is measured against
//
// How to run and read these: docs/benchmarks.md.

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/connection.hpp"
#include "gatehouse/connection_manager.hpp"
#include "gatehouse/update.hpp"

namespace {

// A connection that accepts every frame and only counts it.
class sink_connection final : public gatehouse::connection {
public:
    explicit sink_connection(std::string id) : id_(std::move(id)) {}
    const gatehouse::connection_id& id() const noexcept override { return id_; }
    gatehouse::send_status send(const gatehouse::shared_frame& frame) override {
        bytes_.fetch_add(frame.size(), std::memory_order_relaxed);
        return gatehouse::send_status::queued;
    }
    std::size_t buffered_bytes() const noexcept override { return 0; }
    void close(gatehouse::close_code, std::string_view) override {}
    std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

private:
    std::string id_;
    std::atomic<std::size_t> bytes_{0};
};

// A typical state update, about 200 bytes of JSON payload.
const std::string state_payload =
    R"({"tick":88123,"hp":87,"pos":[1023.5,-77.25,12.0],"buffs":["haste","shield"],)"
    R"("inventory":{"gold":1250,"gems":3},"target":"npc-3312","combo":4})";

struct fixture {
    gatehouse::connection_manager manager;
    std::vector<std::shared_ptr<sink_connection>> connections;

    // `n` connections of `n` players, alternating over `codecs` codecs (json, msgpack).
    fixture(int n, int codecs) {
        const std::shared_ptr<const gatehouse::codec> wire[] = {gatehouse::make_json_codec(),
                                                                gatehouse::make_msgpack_codec()};
        connections.reserve(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) {
            auto c = std::make_shared<sink_connection>("c-" + std::to_string(i));
            manager.add(
                c, {"p-" + std::to_string(i), gatehouse::client_kind::player, wire[i % codecs]});
            connections.push_back(std::move(c));
        }
    }
};

void parse_player(benchmark::State& state) {
    const std::string message =
        gatehouse::to_json(gatehouse::update_for_player("p-1", "state", state_payload, "c-1"));
    gatehouse::update u;
    for (auto _ : state) {
        if (gatehouse::parse_update(message, u)) state.SkipWithError("parse failed");
        benchmark::DoNotOptimize(u);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(message.size()));
}
BENCHMARK(parse_player)->Name("parse_update/player");

void deliver_broadcast(benchmark::State& state) {
    fixture f(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
    const auto u = gatehouse::update_for_everyone("state", state_payload);
    for (auto _ : state) {
        const auto r = f.manager.deliver(u);
        if (r.queued != f.connections.size()) state.SkipWithError("not delivered to all");
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));  // deliveries
}
BENCHMARK(deliver_broadcast)->Name("deliver/broadcast")->ArgsProduct({{100, 1000, 10000}, {1, 2}});

void deliver_player(benchmark::State& state) {
    fixture f(static_cast<int>(state.range(0)), 2);
    std::vector<gatehouse::update> updates;
    updates.reserve(64);
    for (std::int64_t i = 0; i < 64; ++i) {
        updates.push_back(gatehouse::update_for_player(
            "p-" + std::to_string(i * 97 % state.range(0)), "state", state_payload));
    }
    std::size_t i = 0;
    for (auto _ : state) {
        const auto r = f.manager.deliver(updates[i++ & 63]);
        if (r.queued != 1) state.SkipWithError("not delivered");
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(deliver_player)->Name("deliver/player")->Arg(10000);

// The baseline: what fan-out costs when every connection encodes for itself.
void naive_broadcast(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    const int codecs = static_cast<int>(state.range(1));
    const std::shared_ptr<const gatehouse::codec> wire[] = {gatehouse::make_json_codec(),
                                                            gatehouse::make_msgpack_codec()};
    std::vector<std::unique_ptr<sink_connection>> sinks;
    sinks.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        sinks.push_back(std::make_unique<sink_connection>("c-" + std::to_string(i)));
    }
    const auto u = gatehouse::update_for_everyone("state", state_payload);
    for (auto _ : state) {
        for (int i = 0; i < n; ++i) {
            std::string bytes;
            if (wire[i % codecs]->encode(u.message, bytes)) state.SkipWithError("encode failed");
            sinks[static_cast<std::size_t>(i)]->send(
                gatehouse::make_frame(std::move(bytes), wire[i % codecs]->frame()));
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(naive_broadcast)->Name("naive/broadcast")->ArgsProduct({{1000}, {1, 2}});

}  // namespace

int main(int argc, char** argv) {
    // Self-check before timing: a broadcast reaches every sink with the bytes its codec makes.
    fixture f(10, 2);
    const auto r = f.manager.deliver(gatehouse::update_for_everyone("state", state_payload));
    std::string json_frame;
    std::string msgpack_frame;
    const auto u = gatehouse::update_for_everyone("state", state_payload);
    gatehouse::make_json_codec()->encode(u.message, json_frame);
    gatehouse::make_msgpack_codec()->encode(u.message, msgpack_frame);
    bool ok = r.queued == 10 && f.manager.stats().encode_failures == 0;
    for (std::size_t i = 0; i < f.connections.size(); ++i) {
        const auto expected = i % 2 == 0 ? json_frame.size() : msgpack_frame.size();
        ok = ok && f.connections[i]->bytes() == expected;
    }
    if (!ok) {
        std::fprintf(stderr, "fanout_bench: self-check failed\n");
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
