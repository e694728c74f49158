#include "gatehouse/metrics.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <limits>
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
