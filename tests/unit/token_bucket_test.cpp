#include "gatehouse/token_bucket.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <limits>

namespace {

using gatehouse::token_bucket;
using namespace std::chrono_literals;

// An arbitrary fixed origin: every time point in these tests is injected.
const token_bucket::clock::time_point t0 = token_bucket::clock::time_point(1000h);

// Takes tokens at `now` until refused; bounded so a broken bucket cannot spin forever.
int drain(token_bucket& b, token_bucket::clock::time_point now, int limit = 100000) {
    int taken = 0;
    while (taken < limit && b.try_take(now)) ++taken;
    return taken;
}

}  // namespace

TEST_CASE("token_bucket: starts full and allows a burst", "[token_bucket]") {
    token_bucket b(100, 200, t0);
    CHECK(b.time_until_available(t0) == token_bucket::clock::duration::zero());
    CHECK(drain(b, t0) == 200);
    CHECK_FALSE(b.try_take(t0));
}

TEST_CASE("token_bucket: refills continuously at the rate", "[token_bucket]") {
    token_bucket b(10, 20, t0);  // one token per 100 ms
    REQUIRE(drain(b, t0) == 20);

    CHECK_FALSE(b.try_take(t0 + 99ms));
    CHECK(b.try_take(t0 + 100ms));
    CHECK_FALSE(b.try_take(t0 + 100ms));
    // Fractions accumulate: 50 ms + 50 ms make one token.
    CHECK_FALSE(b.try_take(t0 + 150ms));
    CHECK(b.try_take(t0 + 200ms));
    // One second refills ten tokens, no more.
    CHECK(drain(b, t0 + 1200ms) == 10);
    // A long idle refills to the burst, not beyond.
    CHECK(drain(b, t0 + 1h) == 20);
}

TEST_CASE("token_bucket: sustained rate over many small steps", "[token_bucket]") {
    token_bucket b(100, 1, t0);
    REQUIRE(b.try_take(t0));
    // Offer an event every millisecond for 10 s: about 100 per second get through.
    int accepted = 0;
    for (int ms = 1; ms <= 10000; ++ms) {
        if (b.try_take(t0 + std::chrono::milliseconds(ms))) ++accepted;
    }
    CHECK(accepted == 1000);
}

TEST_CASE("token_bucket: time_until_available", "[token_bucket]") {
    token_bucket b(4, 2, t0);  // one token per 250 ms
    REQUIRE(drain(b, t0) == 2);
    CHECK(b.time_until_available(t0) == 250ms);
    CHECK(b.time_until_available(t0 + 100ms) == 150ms);
    CHECK(b.time_until_available(t0 + 250ms) == token_bucket::clock::duration::zero());
    // It does not consume or refill: asking twice gives the same answer.
    CHECK(b.time_until_available(t0 + 100ms) == 150ms);
    // Whole milliseconds stay whole (naive floating point gives 207000001 ns here).
    CHECK(b.time_until_available(t0 + 43ms) == 207ms);
    CHECK(b.time_until_available(t0 + 103ms) == 147ms);

    SECTION("waiting that long is enough, at awkward rates") {
        for (const double rate : {3.0, 7.0, 0.3, 1e-3, 12345.678}) {
            INFO(rate);
            token_bucket c(rate, 1, t0);
            REQUIRE(c.try_take(t0));
            auto now = t0 + 1ns;
            for (int i = 0; i < 20; ++i) {
                const auto wait = c.time_until_available(now);
                CHECK(wait > token_bucket::clock::duration::zero());
                // Not meaningfully early: 0.1% before the time is still refused.
                CHECK_FALSE(c.try_take(now + wait - wait / 1000));
                now += wait;
                CHECK(c.try_take(now));
            }
        }
    }
    SECTION("a vanishing rate saturates instead of overflowing") {
        token_bucket c(1e-300, 1, t0);
        REQUIRE(c.try_take(t0));
        CHECK(c.time_until_available(t0) == token_bucket::clock::duration::max());
        CHECK_FALSE(c.try_take(t0 + 24h));
    }
}

TEST_CASE("token_bucket: rate <= 0 is unlimited", "[token_bucket]") {
    for (const double rate : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
        INFO(rate);
        token_bucket b(rate, 1, t0);
        CHECK(drain(b, t0, 10000) == 10000);
        CHECK(b.time_until_available(t0) == token_bucket::clock::duration::zero());
    }
}

TEST_CASE("token_bucket: odd bursts and time going backwards", "[token_bucket]") {
    SECTION("a burst below one still lets the rate through") {
        token_bucket b(10, 0, t0);
        CHECK(b.try_take(t0));
        CHECK_FALSE(b.try_take(t0));
        CHECK(b.try_take(t0 + 100ms));
    }
    SECTION("a fractional burst holds no more than the burst") {
        token_bucket b(10, 2.5, t0);
        CHECK(drain(b, t0) == 2);
        CHECK(drain(b, t0 + 1s) == 2);
    }
    SECTION("an earlier time point neither refills nor moves the bucket back") {
        token_bucket b(10, 1, t0 + 1s);
        REQUIRE(b.try_take(t0 + 1s));
        CHECK_FALSE(b.try_take(t0));
        CHECK(b.time_until_available(t0) == 100ms);
        CHECK_FALSE(b.try_take(t0 + 1s + 99ms));
        CHECK(b.try_take(t0 + 1s + 100ms));
    }
    SECTION("time points far apart do not overflow") {
        token_bucket b(10, 3, token_bucket::clock::time_point::min());
        REQUIRE(drain(b, token_bucket::clock::time_point::min()) == 3);
        CHECK(drain(b, token_bucket::clock::time_point::max()) == 3);
    }
}

TEST_CASE("token_bucket: the default clock", "[token_bucket]") {
    token_bucket b(1, 2);
    CHECK(b.try_take());
    CHECK(b.try_take());
    // Refilling a whole token takes a second, far longer than this test runs between calls.
    CHECK_FALSE(b.try_take());
    CHECK(b.time_until_available() > 900ms);
}
