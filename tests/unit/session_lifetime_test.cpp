#include "gateway/session_lifetime.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <thread>
#include <vector>

// A session's deadline (docs/protocol.md 6.3): the warning once a minute before, the expiry once at
// the token's exp, a refresh moving both, and a refresh racing the expiry decided one way.

using gatehouse::detail::session_lifetime;
using due = session_lifetime::due;

namespace {
constexpr std::int64_t exp_s = 1000000;  // a token's exp, Unix seconds
constexpr std::int64_t exp_ms = exp_s * 1000;
}  // namespace

TEST_CASE("session lifetime: warns once a minute before exp, expires once at exp",
          "[session_lifetime]") {
    session_lifetime life(exp_s, true);
    std::int64_t exp = 0;
    CHECK(life.check(exp_ms - 60001, exp) == due::nothing);
    CHECK(life.check(exp_ms - 60000, exp) == due::warn);
    CHECK(exp == exp_s);
    CHECK(life.check(exp_ms - 30000, exp) == due::nothing);
    CHECK(life.check(exp_ms - 1, exp) == due::nothing);
    CHECK(life.check(exp_ms, exp) == due::expire);  // exp <= now is expired, as for the JWT
    CHECK(exp == exp_s);
    CHECK(life.check(exp_ms + 5000, exp) == due::nothing);
}

TEST_CASE("session lifetime: less than a minute left warns at the first check",
          "[session_lifetime]") {
    session_lifetime life(exp_s, true);
    std::int64_t exp = 0;
    CHECK(life.check(exp_ms - 2000, exp) == due::warn);
    // A sweep that comes late finds it expired without a second warning.
    CHECK(life.check(exp_ms + 10, exp) == due::expire);
}

TEST_CASE("session lifetime: a refresh moves the deadline and re-arms the warning",
          "[session_lifetime]") {
    session_lifetime life(exp_s, true);
    std::int64_t exp = 0;
    CHECK(life.check(exp_ms - 1000, exp) == due::warn);
    CHECK(life.extend(exp_s + 600, exp_ms - 500));
    CHECK(life.check(exp_ms, exp) == due::nothing);  // the old deadline means nothing now
    CHECK(life.check(exp_ms + 539999, exp) == due::nothing);
    CHECK(life.check(exp_ms + 540000, exp) == due::warn);
    CHECK(exp == exp_s + 600);
    CHECK(life.check(exp_ms + 600000, exp) == due::expire);
}

TEST_CASE("session lifetime: an earlier exp from a refresh is the deadline too",
          "[session_lifetime]") {
    session_lifetime life(exp_s, true);
    std::int64_t exp = 0;
    CHECK(life.extend(exp_s - 100, exp_ms - 200000));
    CHECK(life.check(exp_ms - 160000, exp) == due::warn);
    CHECK(exp == exp_s - 100);
    CHECK(life.check(exp_ms - 100000, exp) == due::expire);
}

TEST_CASE("session lifetime: a refresh read at or after the deadline changes nothing",
          "[session_lifetime]") {
    std::int64_t exp = 0;
    SECTION("the sweep decided first") {
        session_lifetime life(exp_s, true);
        CHECK(life.check(exp_ms + 3, exp) == due::expire);
        CHECK_FALSE(life.extend(exp_s + 600, exp_ms - 1));  // read earlier, decided later
        CHECK(life.check(exp_ms + 600000, exp) == due::nothing);
    }
    SECTION("no sweep yet, but the deadline has passed") {
        session_lifetime life(exp_s, true);
        CHECK_FALSE(life.extend(exp_s + 600, exp_ms));
        CHECK(life.check(exp_ms, exp) == due::expire);
    }
}

TEST_CASE("session lifetime: unenforced or without exp, nothing is ever due",
          "[session_lifetime]") {
    std::int64_t exp = 0;
    session_lifetime off(exp_s, false);  // a bot, or --session-expiry off
    CHECK(off.check(exp_ms + 1, exp) == due::nothing);
    CHECK(off.extend(exp_s + 1, exp_ms + 1));  // answered, never enforced
    CHECK(off.check(exp_ms + 10000000, exp) == due::nothing);
    session_lifetime no_exp(0, true);  // a token_verifier that does not say
    CHECK(no_exp.check(exp_ms * 10, exp) == due::nothing);
    // A refresh with an exp starts the clock; one without stops it again.
    CHECK(no_exp.extend(exp_s, 0));
    CHECK(no_exp.check(exp_ms, exp) == due::expire);
    session_lifetime stopped(exp_s, true);
    CHECK(stopped.extend(0, exp_ms - 1));
    CHECK(stopped.check(exp_ms * 2, exp) == due::nothing);
    // An absurd exp does not overflow into the past.
    session_lifetime far(INT64_MAX, true);
    CHECK(far.check(exp_ms, exp) == due::nothing);
}

TEST_CASE("session lifetime: a refresh racing the expiry is decided one way",
          "[session_lifetime]") {
    // Many rounds of a sweep and a refresh on two threads at the deadline: either the refresh
    // won (the session never expires at the old deadline) or the expiry did (the refresh
    // failed); never both, never neither.
    for (int round = 0; round < 200; ++round) {
        session_lifetime life(exp_s, true);
        bool expired = false;
        bool refreshed = false;
        std::thread sweeper([&] {
            std::int64_t exp = 0;
            expired = life.check(exp_ms, exp) == due::expire;
        });
        std::thread refresher([&] { refreshed = life.extend(exp_s + 600, exp_ms - 1); });
        sweeper.join();
        refresher.join();
        CHECK(expired != refreshed);
    }
}
