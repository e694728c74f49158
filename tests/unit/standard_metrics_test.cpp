#include "metrics/standard_metrics.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifdef __linux__
#include <unistd.h>
#endif

#include "gatehouse/version.hpp"

// gatehouse_build_info and the process families (read from /proc when rendered).

namespace {

// `name value` lines of unlabelled samples.
std::map<std::string, double> unlabelled_samples(const std::string& text) {
    std::map<std::string, double> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#' || line.find('{') != std::string::npos) continue;
        const auto space = line.find(' ');
        out[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return out;
}

}  // namespace

TEST_CASE("standard metrics: build info names this version and compiler", "[metrics]") {
    const auto labels = gatehouse::detail::build_info_labels();
    CHECK(labels.rfind(std::string("version=\"") + gatehouse::version_string + "\",", 0) == 0);
    CHECK(labels.find(",compiler=\"") != std::string::npos);
    gatehouse::metrics_registry registry;
    gatehouse::detail::register_standard_metrics(registry);
    const auto text = registry.render();
    CHECK(text.find("# TYPE gatehouse_build_info gauge\ngatehouse_build_info{" + labels +
                    "} 1\n") != std::string::npos);
}

#ifdef __linux__
TEST_CASE("standard metrics: process families read from /proc", "[metrics]") {
    gatehouse::metrics_registry registry;
    gatehouse::detail::register_standard_metrics(registry);
    const auto text = registry.render();
    CHECK(text.find("# TYPE process_cpu_seconds_total counter") != std::string::npos);
    CHECK(text.find("# TYPE process_resident_memory_bytes gauge") != std::string::npos);
    const auto samples = unlabelled_samples(text);
    REQUIRE(samples.count("process_cpu_seconds_total") == 1);
    CHECK(samples.at("process_cpu_seconds_total") >= 0);
    CHECK(samples.at("process_resident_memory_bytes") > 1024 * 1024);
    CHECK(samples.at("process_virtual_memory_bytes") >=
          samples.at("process_resident_memory_bytes"));
    CHECK(samples.at("process_open_fds") >= 3);
    CHECK(samples.at("process_max_fds") >= samples.at("process_open_fds"));
    CHECK(samples.at("process_threads") >= 1);
    // This test process started within the last day, and not in the future.
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    CHECK(samples.at("process_start_time_seconds") <= now + 1);
    CHECK(samples.at("process_start_time_seconds") > now - 86400);
}

TEST_CASE("standard metrics: process_open_fds counts descriptors as they open and close",
          "[metrics]") {
    gatehouse::metrics_registry registry;
    gatehouse::detail::register_standard_metrics(registry);
    const auto open_fds = [&registry] {
        return unlabelled_samples(registry.render()).at("process_open_fds");
    };
    const double before = open_fds();
    std::vector<int> fds;
    for (int i = 0; i < 100; ++i) fds.push_back(dup(0));
    // Other threads of the test binary may open or close a few meanwhile.
    CHECK(open_fds() >= before + 95);
    CHECK(open_fds() <= before + 105);
    for (const int fd : fds) close(fd);
    CHECK(open_fds() <= before + 5);
}
#endif
