// Histogram microbenchmarks: what one observation costs on the command path, for
// gatehouse's lock-free `metric_histogram` against prometheus-cpp's `Histogram` (issue 19:
// "use prometheus-cpp from Debian if it fits the hot path, or show why the registry stays").
//
//   observe/lockfree            metric_histogram::observe
//   observe/prometheus_cpp      prometheus::Histogram::Observe (Debian's prometheus-cpp-dev;
//                               only when CMake found it)
//   observe/mutex               the same design rebuilt here, so the comparison runs without
//                               the package too: find the bucket, then under a std::mutex add
//                               to the sum and the bucket's count, each an atomic double
//                               changed by a compare-and-swap loop (prometheus::Gauge::Change)
//   observe/now_and_lockfree    two steady_clock reads and one observe: what the gateway
//                               adds per acked command
//
// Each runs on one thread and on two threads observing into one shared histogram
// (`/threads:2`), the contended case of two I/O threads acking at once.
// How to run and read these: docs/benchmarks.md, "Histograms (issue 19)".

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <utility>
#include <vector>

#include "gatehouse/metrics.hpp"

#ifdef GATEHOUSE_BENCH_PROMETHEUS_CPP
#include <prometheus/histogram.h>
#endif

namespace {

// prometheus-cpp 1.x, core/src/histogram.cc and gauge.cc, as far as Observe goes.
class mutex_histogram {
public:
    explicit mutex_histogram(std::vector<double> bounds)
        : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

    void observe(double value) {
        const auto index = static_cast<std::size_t>(std::distance(
            bounds_.begin(), std::find_if(bounds_.begin(), bounds_.end(),
                                          [value](double bound) { return bound >= value; })));
        std::lock_guard<std::mutex> lock(mutex_);
        sum_.change(value);
        counts_[index].change(1.0);
    }

    std::uint64_t count() const {
        std::lock_guard<std::mutex> lock(mutex_);
        double total = 0;
        for (const auto& c : counts_) total += c.value.load();
        return static_cast<std::uint64_t>(total);
    }

private:
    struct atomic_double {  // prometheus::Gauge
        std::atomic<double> value{0.0};
        void change(double by) {
            double current = value.load();
            while (!value.compare_exchange_weak(current, current + by)) {
            }
        }
    };

    const std::vector<double> bounds_;
    mutable std::mutex mutex_;
    atomic_double sum_;
    std::vector<atomic_double> counts_;
};

// Command acks as the gateway sees them: mostly a few hundred microseconds to a few
// milliseconds, with a tail, spread over the default bounds so the bucket search varies.
std::vector<double> make_latencies() {
    std::vector<double> out;
    std::uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 4096; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const double unit = static_cast<double>(x >> 11) / 9007199254740992.0;  // [0, 1)
        out.push_back(0.00005 * std::pow(10.0, 4.0 * unit * unit));             // 50 µs .. 0.5 s
    }
    return out;
}

const std::vector<double> latencies = make_latencies();

// Shared by the threads of one benchmark run (Google Benchmark runs /threads:2 as two threads
// of the same function); each benchmark has its own.
gatehouse::metric_histogram lockfree_shared;
gatehouse::metric_histogram now_shared;
mutex_histogram mutex_shared(gatehouse::metric_histogram::default_latency_bounds());

template <class Histogram>
void run_observe(benchmark::State& state, Histogram& h) {
    std::size_t i = static_cast<std::size_t>(state.thread_index()) * 997;
    for (auto _ : state) {
        h.observe(latencies[i++ & (latencies.size() - 1)]);
    }
    state.SetItemsProcessed(state.iterations());
}

void observe_lockfree(benchmark::State& state) { run_observe(state, lockfree_shared); }
void observe_mutex(benchmark::State& state) { run_observe(state, mutex_shared); }

#ifdef GATEHOUSE_BENCH_PROMETHEUS_CPP
// Used as an application keeps one: a reference to the Histogram its Family handed out.
prometheus::Histogram prometheus_shared(gatehouse::metric_histogram::default_latency_bounds());
struct prometheus_adapter {
    void observe(double v) { prometheus_shared.Observe(v); }
};
void observe_prometheus_cpp(benchmark::State& state) {
    prometheus_adapter h;
    run_observe(state, h);
}
BENCHMARK(observe_prometheus_cpp)->Name("observe/prometheus_cpp")->Threads(1)->Threads(2);
#endif

void observe_now_and_lockfree(benchmark::State& state) {
    for (auto _ : state) {
        const auto start = std::chrono::steady_clock::now();
        benchmark::ClobberMemory();
        now_shared.observe(std::chrono::steady_clock::now() - start);
    }
    state.SetItemsProcessed(state.iterations());
}

BENCHMARK(observe_lockfree)->Name("observe/lockfree")->Threads(1)->Threads(2);
BENCHMARK(observe_mutex)->Name("observe/mutex")->Threads(1)->Threads(2);
BENCHMARK(observe_now_and_lockfree)->Name("observe/now_and_lockfree")->Threads(1)->Threads(2);

// Both must have counted every observation, whatever the threads did.
bool self_check() {
    gatehouse::metric_histogram a;
    mutex_histogram b(gatehouse::metric_histogram::default_latency_bounds());
    for (const double v : latencies) {
        a.observe(v);
        b.observe(v);
    }
    bool ok = a.count() == latencies.size() && b.count() == latencies.size();
#ifdef GATEHOUSE_BENCH_PROMETHEUS_CPP
    prometheus::Histogram c(gatehouse::metric_histogram::default_latency_bounds());
    for (const double v : latencies) c.Observe(v);
    ok = ok && c.Collect().histogram.sample_count == latencies.size();
#endif
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (!self_check()) {
        std::fputs("histogram_bench: self-check failed\n", stderr);
        return EXIT_FAILURE;
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return EXIT_FAILURE;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return EXIT_SUCCESS;
}
