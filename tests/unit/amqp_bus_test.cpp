#include "gatehouse/amqp_bus.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "amqp/url.hpp"
#include "gatehouse/errc.hpp"

// The bus without a broker: its URL, its options, and what it promises while the broker is
// away (the broker-backed behaviour is tests/server/test_amqp_bus.py and test_amqp_faults.py,
// against a real rabbitmq-server).

using namespace std::chrono_literals;
using gatehouse::amqp_bus;
using gatehouse::amqp_bus_options;
namespace a = gatehouse::detail::amqp;

namespace {

// A loopback port nobody listens on right now: connecting to it is refused at once.
std::uint16_t closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

amqp_bus_options away_options() {
    amqp_bus_options o;
    o.url = "amqp://gw:s3cret-pw@127.0.0.1:" + std::to_string(closed_port()) + "/games";
    o.timeout = 500ms;
    o.reconnect_min = 10ms;
    o.reconnect_max = 50ms;
    return o;
}

gatehouse::envelope command() {
    gatehouse::envelope e;
    e.type = "move";
    e.payload = "{\"x\":1}";
    e.correlation_id = "c-1";
    e.origin.player_id = "p1";
    e.origin.connection_id = "local-1";
    return e;
}

}  // namespace

TEST_CASE("amqp URLs: defaults, percent-decoding, the redacted form", "[amqp]") {
    a::url u;
    REQUIRE_FALSE(a::parse_url("amqp://host.example", u));
    CHECK(u.user == "guest");
    CHECK(u.password == "guest");
    CHECK(u.host == "host.example");
    CHECK(u.port == 5672);
    CHECK(u.vhost == "/");

    REQUIRE_FALSE(a::parse_url("amqp://us%40er:p%3Aw%2Fd@127.0.0.1:5673/%2fgames", u));
    CHECK(u.user == "us@er");
    CHECK(u.password == "p:w/d");
    CHECK(u.port == 5673);
    CHECK(u.vhost == "/games");
    CHECK(a::redacted(u) == "amqp://us@er:***@127.0.0.1:5673/%2fgames");

    REQUIRE_FALSE(a::parse_url("amqp://h:1/", u));
    CHECK(u.vhost == "/");  // named no vhost: the default one

    REQUIRE_FALSE(a::parse_url("amqp://", u));  // every part defaulted, as pika reads it
    CHECK(u.host == "localhost");

    for (const char* bad :
         {"amqps://h/", "http://h/", "amqp://h:notaport/", "amqp://h:70000/", "redis://h"}) {
        INFO(bad);
        CHECK(a::parse_url(bad, u));
    }
}

TEST_CASE("amqp_bus refuses unusable options at construction", "[amqp]") {
    CHECK(gatehouse::check_amqp_url("amqps://u:topsecret@h/"));
    CHECK(gatehouse::check_amqp_url("http://h/"));
    CHECK_FALSE(gatehouse::check_amqp_url("amqp://u:p@h:5673/vhost"));
    auto bad_url = away_options();
    bad_url.url = "amqps://u:topsecret@h/";
    try {
        amqp_bus bus(bad_url);
        FAIL("constructed");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("topsecret") == std::string::npos);
    }
    auto no_exchange = away_options();
    no_exchange.command_exchange.clear();
    CHECK_THROWS_AS(amqp_bus(no_exchange), std::invalid_argument);
    auto long_exchange = away_options();
    long_exchange.updates_exchange.assign(256, 'x');
    CHECK_THROWS_AS(amqp_bus(long_exchange), std::invalid_argument);
    auto no_timeout = away_options();
    no_timeout.timeout = 0ms;
    CHECK_THROWS_AS(amqp_bus(no_timeout), std::invalid_argument);
    auto backwards = away_options();
    backwards.reconnect_max = 1ms;
    CHECK_THROWS_AS(amqp_bus(backwards), std::invalid_argument);
}

TEST_CASE("amqp_bus without its broker: unready, every append refused at once, prompt close",
          "[amqp]") {
    // Logged on the bus's thread: kept, and checked on this one (Catch is not thread-safe).
    std::mutex log_mutex;
    std::vector<std::string> lines;
    auto o = away_options();
    o.log = [&](gatehouse::log_level, std::string_view line) {
        std::lock_guard<std::mutex> lock(log_mutex);
        lines.emplace_back(line);
    };
    auto bus = std::make_unique<amqp_bus>(o);
    CHECK(bus->redacted_url().find("s3cret-pw") == std::string::npos);
    CHECK_FALSE(bus->connected());
    CHECK_FALSE(bus->wait_connected(200ms));
    bus->start([](std::string_view) { FAIL("no broker, no update"); });

    const auto caller = std::this_thread::get_id();
    for (int i = 0; i < 100; ++i) {
        int calls = 0;
        std::error_code got;
        bus->append(command(), [&](std::error_code ec, std::string_view id) {
            ++calls;
            got = ec;
            CHECK(id.empty());
            CHECK(std::this_thread::get_id() == caller);  // at once, on the calling thread
        });
        REQUIRE(calls == 1);
        CHECK(got == gatehouse::errc::bus_unavailable);
    }
    CHECK(bus->stats().append_failures == 100);
    CHECK(bus->stats().appended == 0);

    // It keeps retrying (logged sparingly) and closes promptly from there.
    std::this_thread::sleep_for(200ms);
    const auto t0 = std::chrono::steady_clock::now();
    bus->stop();
    bus->stop();
    bus->close();
    bus->close();
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    int after = 0;
    bus->append(command(), [&](std::error_code ec, std::string_view) {
        ++after;
        CHECK(ec == gatehouse::errc::bus_unavailable);
    });
    CHECK(after == 1);
    bus.reset();
    std::lock_guard<std::mutex> lock(log_mutex);  // the bus's thread has ended
    CHECK_FALSE(lines.empty());
    for (const auto& line : lines) CHECK(line.find("s3cret-pw") == std::string::npos);
}

TEST_CASE("amqp_bus closed and destroyed from inside its own answer", "[amqp]") {
    auto bus = std::make_shared<amqp_bus>(away_options());
    std::weak_ptr<amqp_bus> weak = bus;
    int calls = 0;
    auto held = bus;
    bus.reset();
    held->append(command(), [&calls, &held](std::error_code ec, std::string_view) {
        ++calls;
        CHECK(ec == gatehouse::errc::bus_unavailable);
        held->close();
        held.reset();  // the last reference, dropped inside the callback
    });
    CHECK(calls == 1);
    CHECK(weak.expired());
}
