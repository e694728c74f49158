// src/common/: the small helpers every layer shares (one place each).
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "common/clock.hpp"
#include "common/constant_time.hpp"
#include "common/hex.hpp"
#include "common/retry_after.hpp"

using namespace std::chrono_literals;
namespace d = gatehouse::detail;

TEST_CASE("common: hex digits both ways", "[common]") {
    for (int v = 0; v < 16; ++v) CHECK(d::hex_value(d::hex_digits_lower[v]) == v);
    CHECK(d::hex_value('A') == 10);
    CHECK(d::hex_value('F') == 15);
    CHECK(d::hex_value('g') == -1);
    CHECK(d::hex_value('G') == -1);
    CHECK(d::hex_value('/') == -1);
    CHECK(d::hex_value(':') == -1);
    CHECK(d::hex_value('\0') == -1);
    CHECK(d::hex_value(static_cast<char>(0xC1)) == -1);
    static_assert(d::hex_value('b') == 11);
}

TEST_CASE("common: Retry-After is whole seconds, rounded up, at least one", "[common]") {
    CHECK(d::retry_after_seconds(0ms) == 1s);
    CHECK(d::retry_after_seconds(-5s) == 1s);
    CHECK(d::retry_after_seconds(1ms) == 1s);
    CHECK(d::retry_after_seconds(1000ms) == 1s);
    CHECK(d::retry_after_seconds(1001ms) == 2s);
    CHECK(d::retry_after_seconds(std::chrono::microseconds(2'000'001)) == 3s);
    CHECK(d::retry_after_seconds(90s) == 90s);
    CHECK(d::retry_after_value(1500ms) == "2");
}

TEST_CASE("common: constant-time equality", "[common]") {
    CHECK(d::constant_time_equal("", ""));
    CHECK(d::constant_time_equal("abc", "abc"));
    CHECK_FALSE(d::constant_time_equal("abc", "abd"));
    CHECK_FALSE(d::constant_time_equal("abc", "ab"));
    CHECK_FALSE(d::constant_time_equal("ab", "abc"));
    CHECK(d::constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
    CHECK_FALSE(d::constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

TEST_CASE("common: clocks", "[common]") {
    const auto unix_ms = d::unix_now_ms();
    const auto unix_s = d::unix_now_seconds();
    // Both read the same clock: the seconds are the milliseconds' (within a tick).
    CHECK(unix_s - unix_ms / 1000 >= 0);
    CHECK(unix_s - unix_ms / 1000 <= 1);
    CHECK(unix_ms > std::int64_t{1'600'000'000'000});  // after 2020: a Unix clock in ms

    const auto before = d::steady_now_ms();
    std::this_thread::sleep_for(5ms);
    CHECK(d::steady_now_ms() - before >= 5);
}
