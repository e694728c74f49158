#pragma once
/// @file
/// `token_bucket`: the per-player command rate limit (`gateway_options::ws_rate_limit`: N per
/// second, burst 2N).

#include <chrono>

namespace gatehouse {

/// A token bucket: holds up to `burst` tokens, refilled continuously at `rate` per second;
/// each accepted event takes one. Starts full.
///
/// Thread safety: none; one bucket belongs to one connection (or is guarded by its owner).
class token_bucket {
public:
    using clock = std::chrono::steady_clock;

    /// `rate` tokens per second, `burst` at most. `rate <= 0` (or NaN or infinite) means
    /// unlimited; a `burst` below 1 (or NaN) is raised to 1.
    token_bucket(double rate, double burst, clock::time_point now = clock::now()) noexcept;

    /// Takes a token if one is available at `now`; false means over the limit.
    bool try_take(clock::time_point now = clock::now()) noexcept;

    /// Time until a token is available at `now` (zero when one is): `try_take(now + d)`
    /// succeeds for the returned `d`, barring takes in between. `clock::duration::max()` when
    /// the rate is too small for the wait to be represented.
    clock::duration time_until_available(clock::time_point now = clock::now()) const noexcept;

private:
    void refill(clock::time_point now) noexcept;

    double rate_;
    double burst_;
    double tokens_;
    clock::time_point last_;
};

}  // namespace gatehouse
