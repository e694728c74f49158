#include "gatehouse/metrics.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

TEST_CASE("metrics: an empty registry renders nothing", "[metrics]") {
    const gatehouse::metrics_registry registry;
    CHECK(registry.render().empty());
}

TEST_CASE("metrics: render is exact text format 0.0.4", "[metrics]") {
    gatehouse::metrics_registry registry;
    auto& frames = registry.counter("gatehouse_frames_total", "Frames received.");
    auto& invalid = registry.counter("gatehouse_errors_total", "Errors sent to clients, by code.",
                                     R"(code="invalid_frame")");
    auto& limited = registry.counter("gatehouse_errors_total", "ignored: the first help text stays",
                                     R"(code="rate_limited")");
    auto& connections = registry.gauge("gatehouse_connections", "Open connections.\nBy kind.",
                                       R"(client="player")");
    registry.gauge_callback("gatehouse_queue_bytes", R"(Queued bytes (C:\temp).)",
                            [] { return 1536.0; });
    registry.gauge("gatehouse_connections", "", R"(client="bot")").set(-2);

    frames.add();
    frames.add(41);
    invalid.add(3);
    connections.add(5);
    connections.add(-1);
    CHECK(limited.value() == 0);

    CHECK(registry.render() ==
          "# HELP gatehouse_frames_total Frames received.\n"
          "# TYPE gatehouse_frames_total counter\n"
          "gatehouse_frames_total 42\n"
          "# HELP gatehouse_errors_total Errors sent to clients, by code.\n"
          "# TYPE gatehouse_errors_total counter\n"
          "gatehouse_errors_total{code=\"invalid_frame\"} 3\n"
          "gatehouse_errors_total{code=\"rate_limited\"} 0\n"
          "# HELP gatehouse_connections Open connections.\\nBy kind.\n"
          "# TYPE gatehouse_connections gauge\n"
          "gatehouse_connections{client=\"player\"} 4\n"
          "gatehouse_connections{client=\"bot\"} -2\n"
          "# HELP gatehouse_queue_bytes Queued bytes (C:\\\\temp).\n"
          "# TYPE gatehouse_queue_bytes gauge\n"
          "gatehouse_queue_bytes 1536\n");
}

TEST_CASE("metrics: the same name and labels give the same object", "[metrics]") {
    gatehouse::metrics_registry registry;
    auto& a = registry.counter("c_total", "help");
    auto& b = registry.counter("c_total", "other help");
    CHECK(&a == &b);
    auto& labelled = registry.counter("c_total", "help", "x=\"1\"");
    CHECK(&labelled != &a);
    CHECK(&registry.counter("c_total", "help", "x=\"1\"") == &labelled);

    auto& g1 = registry.gauge("g", "help");
    CHECK(&registry.gauge("g", "help") == &g1);
    g1.set(7);
    CHECK(registry.gauge("g", "help").value() == 7);
}

TEST_CASE("metrics: references stay valid while more metrics are registered", "[metrics]") {
    gatehouse::metrics_registry registry;
    auto& first = registry.counter("first_total", "h");
    auto& first_gauge = registry.gauge("first_gauge", "h");
    for (int i = 0; i < 1000; ++i) {
        registry.counter("many_total", "h", "i=\"" + std::to_string(i) + "\"");
        registry.gauge("many_gauge", "h", "i=\"" + std::to_string(i) + "\"");
    }
    first.add(9);
    first_gauge.set(11);
    const auto text = registry.render();
    CHECK(text.find("\nfirst_total 9\n") != std::string::npos);
    CHECK(text.find("\nfirst_gauge 11\n") != std::string::npos);
    CHECK(text.find("\nmany_total{i=\"999\"} 0\n") != std::string::npos);
}

TEST_CASE("metrics: a name keeps the type it was first registered with", "[metrics]") {
    gatehouse::metrics_registry registry;
    auto& c = registry.counter("x_total", "a counter");
    c.add(2);
    const auto before = registry.render();

    // No throw; a working metric that is not rendered.
    auto& g = registry.gauge("x_total", "not a gauge");
    g.set(99);
    CHECK(g.value() == 99);
    registry.gauge_callback("x_total", "not a gauge either", [] { return 5.0; });
    CHECK(registry.render() == before);
    CHECK(before.find("# TYPE x_total counter\n") != std::string::npos);

    registry.gauge("y", "a gauge").set(1);
    auto& not_counter = registry.counter("y", "not a counter");
    not_counter.add(5);
    CHECK(not_counter.value() == 5);
    const auto text = registry.render();
    CHECK(text.find("# TYPE y gauge\ny 1\n") != std::string::npos);
    CHECK(text.find("counter\ny ") == std::string::npos);
    // The counter handed out for the conflict is its own, and stable.
    CHECK(&registry.counter("y", "again") != &not_counter);
}

TEST_CASE("metrics: callback gauge values are formatted exactly", "[metrics]") {
    struct sample {
        double value;
        const char* text;
    };
    const std::vector<sample> samples{
        {3.0, "3"},
        {-2.0, "-2"},
        {0.5, "0.5"},
        {0.1, "0.1"},
        {1234567.25, "1234567.25"},
        {1e15, "1000000000000000"},
        {9007199254740993.0, "9007199254740992"},
        {1e20, "1e+20"},
        {1.5e-7, "1.5e-07"},
        {-0.0, "0"},
        {0.0, "0"},
        {std::numeric_limits<double>::quiet_NaN(), "NaN"},
        {std::numeric_limits<double>::infinity(), "+Inf"},
        {-std::numeric_limits<double>::infinity(), "-Inf"},
    };
    for (const auto& s : samples) {
        INFO(s.text);
        gatehouse::metrics_registry registry;
        const double v = s.value;
        registry.gauge_callback("v", "h", [v] { return v; });
        CHECK(registry.render() == std::string("# HELP v h\n# TYPE v gauge\nv ") + s.text + "\n");
    }
}

TEST_CASE("metrics: callbacks are read at render time, replaced, and may fail", "[metrics]") {
    gatehouse::metrics_registry registry;
    std::atomic<int> depth{1};
    registry.gauge_callback(
        "queue", "h", [&] { return static_cast<double>(depth.load()); }, "q=\"a\"");
    CHECK(registry.render().find("queue{q=\"a\"} 1\n") != std::string::npos);
    depth = 17;
    CHECK(registry.render().find("queue{q=\"a\"} 17\n") != std::string::npos);

    // Registering the same series again replaces the callback, without a second line.
    registry.gauge_callback(
        "queue", "h", [] { return 3.0; }, "q=\"a\"");
    auto text = registry.render();
    CHECK(text == "# HELP queue h\n# TYPE queue gauge\nqueue{q=\"a\"} 3\n");

    registry.gauge_callback("queue", "h", {}, "q=\"b\"");  // Empty: ignored.
    registry.gauge_callback(
        "queue", "h", []() -> double { throw std::runtime_error("x"); }, "q=\"c\"");
    text = registry.render();
    CHECK(text.find("q=\"b\"") == std::string::npos);
    CHECK(text.find("queue{q=\"c\"} NaN\n") != std::string::npos);

    // A stored gauge and a callback with the same labels: the first keeps the line.
    auto& stored = registry.gauge("queue", "h", "q=\"a\"");
    stored.set(1000);
    CHECK(registry.render().find("queue{q=\"a\"} 3\n") != std::string::npos);
    registry.gauge("queue", "h", "q=\"d\"").set(4);
    registry.gauge_callback(
        "queue", "h", [] { return 8.0; }, "q=\"d\"");
    CHECK(registry.render().find("queue{q=\"d\"} 4\n") != std::string::npos);
}

TEST_CASE("metrics: updates and render run concurrently", "[metrics]") {
    gatehouse::metrics_registry registry;
    auto& c = registry.counter("c_total", "h");
    auto& g = registry.gauge("g", "h");
    constexpr int per_thread = 20000;
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < per_thread; ++i) {
                c.add();
                g.add(1);
                g.add(-1);
            }
        });
    }
    for (int i = 0; i < 50; ++i) CHECK_FALSE(registry.render().empty());
    for (auto& t : threads) t.join();
    CHECK(c.value() == 2 * per_thread);
    CHECK(registry.render() ==
          "# HELP c_total h\n# TYPE c_total counter\nc_total 40000\n"
          "# HELP g h\n# TYPE g gauge\ng 0\n");
}

TEST_CASE("metrics: counter callbacks render as counters and keep their family's type",
          "[metrics]") {
    gatehouse::metrics_registry registry;
    std::atomic<int> sent{0};
    registry.counter_callback("frames_total", "Frames.",
                              [&] { return static_cast<double>(sent.load()); });
    sent = 42;
    CHECK(registry.render() ==
          "# HELP frames_total Frames.\n# TYPE frames_total counter\n"
          "frames_total 42\n");

    // Same family: a stored counter with other labels joins it; a gauge callback does not.
    registry.counter("frames_total", "Frames.", "kind=\"x\"").add(2);
    registry.gauge_callback(
        "frames_total", "Frames.", [] { return 9.0; }, "kind=\"y\"");
    const auto text = registry.render();
    CHECK(text.find("frames_total{kind=\"x\"} 2\n") != std::string::npos);
    CHECK(text.find("kind=\"y\"") == std::string::npos);
    CHECK(text.find("# TYPE frames_total counter\n") != std::string::npos);
}

TEST_CASE("metrics: a histogram renders cumulative buckets, sum and count", "[metrics]") {
    gatehouse::metrics_registry registry;
    auto& h = registry.histogram("gatehouse_op_seconds", "Operation time.", "op=\"a\"",
                                 {0.001, 0.25, 1, 2.5});
    h.observe(0.0005);
    h.observe(0.001);  // a bound is inclusive: `le`
    h.observe(0.3);
    h.observe(3.0);                                       // above the last bound: +Inf only
    h.observe(std::numeric_limits<double>::quiet_NaN());  // ignored
    h.observe(std::chrono::milliseconds(250));            // 0.25 s, in the 0.25 bucket
    auto& unlabelled = registry.histogram("gatehouse_empty_seconds", "Nothing yet.", "", {0.5});
    CHECK(unlabelled.count() == 0);

    CHECK(registry.render() ==
          "# HELP gatehouse_op_seconds Operation time.\n"
          "# TYPE gatehouse_op_seconds histogram\n"
          "gatehouse_op_seconds_bucket{op=\"a\",le=\"0.001\"} 2\n"
          "gatehouse_op_seconds_bucket{op=\"a\",le=\"0.25\"} 3\n"
          "gatehouse_op_seconds_bucket{op=\"a\",le=\"1\"} 4\n"
          "gatehouse_op_seconds_bucket{op=\"a\",le=\"2.5\"} 4\n"
          "gatehouse_op_seconds_bucket{op=\"a\",le=\"+Inf\"} 5\n"
          "gatehouse_op_seconds_sum{op=\"a\"} 3.5515\n"
          "gatehouse_op_seconds_count{op=\"a\"} 5\n"
          "# HELP gatehouse_empty_seconds Nothing yet.\n"
          "# TYPE gatehouse_empty_seconds histogram\n"
          "gatehouse_empty_seconds_bucket{le=\"0.5\"} 0\n"
          "gatehouse_empty_seconds_bucket{le=\"+Inf\"} 0\n"
          "gatehouse_empty_seconds_sum 0\n"
          "gatehouse_empty_seconds_count 0\n");
    CHECK(h.count() == 5);
    CHECK(h.bucket(0) == 2);
    CHECK(h.bucket(4) == 1);
    CHECK(h.bucket(5) == 0);
}

TEST_CASE("metrics: histogram bounds are written as Prometheus clients write them", "[metrics]") {
    gatehouse::metrics_registry registry;
    registry.histogram("d_seconds", "h");  // the default latency bounds
    registry.histogram("x", "h", "", {1e-5, 0.0001, 0.1, 100000, 1e6, 2.5e6});
    const auto text = registry.render();
    CHECK(text.find("d_seconds_bucket{le=\"0.0001\"} 0\n"
                    "d_seconds_bucket{le=\"0.00025\"} 0\n"
                    "d_seconds_bucket{le=\"0.0005\"} 0\n"
                    "d_seconds_bucket{le=\"0.001\"} 0\n") != std::string::npos);
    CHECK(text.find("d_seconds_bucket{le=\"1\"} 0\n"
                    "d_seconds_bucket{le=\"2.5\"} 0\n"
                    "d_seconds_bucket{le=\"5\"} 0\n"
                    "d_seconds_bucket{le=\"10\"} 0\n"
                    "d_seconds_bucket{le=\"+Inf\"} 0\n") != std::string::npos);
    CHECK(text.find("x_bucket{le=\"1e-05\"} 0\n"
                    "x_bucket{le=\"0.0001\"} 0\n"
                    "x_bucket{le=\"0.1\"} 0\n"
                    "x_bucket{le=\"100000\"} 0\n"
                    "x_bucket{le=\"1e+06\"} 0\n"
                    "x_bucket{le=\"2.5e+06\"} 0\n"
                    "x_bucket{le=\"+Inf\"} 0\n") != std::string::npos);
    CHECK(gatehouse::metric_histogram::default_latency_bounds().size() == 16);
}

TEST_CASE("metrics: histogram bounds are checked", "[metrics]") {
    using gatehouse::metric_histogram;
    const double inf = std::numeric_limits<double>::infinity();
    CHECK_THROWS_AS(metric_histogram({1, 1}), std::invalid_argument);
    CHECK_THROWS_AS(metric_histogram({2, 1}), std::invalid_argument);
    CHECK_THROWS_AS(metric_histogram({std::nan(""), 1}), std::invalid_argument);
    CHECK_THROWS_AS(metric_histogram({inf, 1}), std::invalid_argument);
    CHECK_THROWS_AS(metric_histogram({-inf}), std::invalid_argument);
    // A trailing +Inf is the bucket that is always there.
    const metric_histogram h({0.5, inf});
    CHECK(h.upper_bounds() == std::vector<double>{0.5});
    gatehouse::metrics_registry registry;
    CHECK_THROWS_AS(registry.histogram("h", "h", "", {3, 2}), std::invalid_argument);
}

TEST_CASE("metrics: histogram series are found again and keep their family's type", "[metrics]") {
    gatehouse::metrics_registry registry;
    auto& a = registry.histogram("t_seconds", "h", "k=\"a\"", {1});
    CHECK(&registry.histogram("t_seconds", "h", "k=\"a\"", {5, 6}) == &a);  // bounds ignored
    CHECK(&registry.histogram("t_seconds", "h", "k=\"b\"") != &a);
    registry.counter("c_total", "h").add(1);
    auto& not_rendered = registry.histogram("c_total", "h");
    not_rendered.observe(1);
    CHECK(not_rendered.count() == 1);
    auto& not_counter = registry.counter("t_seconds", "h");
    not_counter.add();
    const auto text = registry.render();
    CHECK(text.find("c_total_bucket") == std::string::npos);
    CHECK(text.find("# TYPE t_seconds histogram\n") != std::string::npos);
    CHECK(text.find("\nt_seconds ") == std::string::npos);
    CHECK(text.find("t_seconds_bucket{k=\"b\",le=\"0.0001\"} 0\n") != std::string::npos);
}

TEST_CASE("metrics: a shared histogram outlives whichever owner goes first", "[metrics]") {
    auto owned = std::make_shared<gatehouse::metric_histogram>(std::vector<double>{1});
    owned->observe(0.5);
    {
        gatehouse::metrics_registry registry;
        registry.add_histogram("s_seconds", "Shared.", owned, "side=\"x\"");
        registry.add_histogram("s_seconds", "Shared.", nullptr, "side=\"y\"");  // ignored
        // Labels taken: the first stays; histogram() then hands out an unrendered one.
        registry.add_histogram("s_seconds", "Shared.",
                               std::make_shared<gatehouse::metric_histogram>(), "side=\"x\"");
        registry.histogram("s_seconds", "Shared.", "side=\"x\"").observe(7);
        CHECK(registry.render() ==
              "# HELP s_seconds Shared.\n# TYPE s_seconds histogram\n"
              "s_seconds_bucket{side=\"x\",le=\"1\"} 1\n"
              "s_seconds_bucket{side=\"x\",le=\"+Inf\"} 1\n"
              "s_seconds_sum{side=\"x\"} 0.5\n"
              "s_seconds_count{side=\"x\"} 1\n");
    }
    owned->observe(2);  // the registry is gone; its owner still uses it
    CHECK(owned->count() == 2);

    gatehouse::metrics_registry registry;
    std::weak_ptr<gatehouse::metric_histogram> weak = owned;
    registry.add_histogram("s_seconds", "Shared.", std::move(owned));
    CHECK_FALSE(weak.expired());  // its owner let go; the registry keeps rendering it
    CHECK(registry.render().find("s_seconds_count 2\n") != std::string::npos);
}

TEST_CASE("metrics: histogram observations and render run concurrently", "[metrics]") {
    gatehouse::metrics_registry registry;
    auto& h = registry.histogram("c_seconds", "h", "", {0.25, 0.5, 0.75});
    constexpr int per_thread = 50000;
    constexpr int threads_n = 4;
    std::vector<std::thread> threads;
    for (int t = 0; t < threads_n; ++t) {
        threads.emplace_back([&h, t] {
            // Each thread its own bucket, and values whose sums are exact in a double.
            const double v = 0.25 * (t + 1);
            for (int i = 0; i < per_thread; ++i) h.observe(v);
        });
    }
    // Every render is consistent within itself: cumulative buckets never decrease and the
    // +Inf bucket is the count.
    for (int r = 0; r < 200; ++r) {
        const auto text = registry.render();
        std::uint64_t previous = 0;
        std::uint64_t inf = 0;
        std::size_t at = 0;
        while ((at = text.find("c_seconds_bucket{", at)) != std::string::npos) {
            const auto space = text.find("} ", at);
            const auto value = std::stoull(text.substr(space + 2));
            CHECK(value >= previous);
            previous = value;
            if (text.compare(at, 27, "c_seconds_bucket{le=\"+Inf\"}") == 0) inf = value;
            at = space;
        }
        const auto count_at = text.find("c_seconds_count ");
        REQUIRE(count_at != std::string::npos);
        CHECK(std::stoull(text.substr(count_at + 16)) == inf);
    }
    for (auto& t : threads) t.join();
    CHECK(h.count() == std::uint64_t{threads_n} * per_thread);
    CHECK(h.bucket(0) == per_thread);
    CHECK(h.bucket(1) == per_thread);
    CHECK(h.bucket(2) == per_thread);
    CHECK(h.bucket(3) == per_thread);
    CHECK(h.sum() == per_thread * (0.25 + 0.5 + 0.75 + 1.0));
}
