#pragma once
/// @file
/// `attempt_limiter`: counts attempts per key (a login name, a client address) for the login
/// lockout and the per-address request limits of docs/protocol.md section 2. In memory for one
/// instance here; in Redis, so that every instance behind a load balancer shares the counts,
/// with `make_redis_limiter` (gatehouse/redis_limiter.hpp, the Redis component).

#include <chrono>
#include <memory>
#include <string_view>

namespace gatehouse {

/// The answer of a limiter: allowed, or refused until `retry_after` has passed.
struct limit_decision {
    bool allowed = true;
    /// When refused: how long until an attempt can succeed, rounded up to whole seconds and
    /// at least 1 (what a `Retry-After` header carries). Zero when allowed.
    std::chrono::seconds retry_after{0};
    /// `begin_attempt` and `record_failure`: this very call locked the key (for the audit log's
    /// `lockout_started`). A limiter that does not tell leaves it false.
    bool lockout_started = false;
};

/// Attempt counters. Keys are opaque strings chosen by the caller (e.g. `login:alice`,
/// `ip:203.0.113.7`); a limiter never interprets them, and compares them byte for byte.
///
/// Calls may block (a Redis round trip): call from worker threads, never from a gateway I/O
/// thread. Every operation is atomic per key, also across instances for the Redis limiter.
///
/// Thread safety: every member may be called from several threads concurrently.
class attempt_limiter {
public:
    virtual ~attempt_limiter() = default;

    /// A request rate limit: counts one hit for `key` in the current fixed window of
    /// `window`, and refuses it when it is more than `limit` hits in that window
    /// (`retry_after`: until the window ends). `limit` 0 refuses everything. The window starts
    /// at the key's first hit. A `window` of zero or less counts nothing (each hit is alone
    /// in its window); windows and lockouts longer than ten years count as ten years.
    virtual limit_decision hit(std::string_view key, unsigned limit,
                               std::chrono::seconds window) = 0;

    /// Lockout check before a login attempt: refused while `key` is locked out.
    virtual limit_decision check_lockout(std::string_view key) = 0;

    /// Counts a failed login for `key`. Failures are counted in a window of `lockout` that
    /// starts at the first failure; when this is failure number `max_failures` of the window,
    /// `key` is locked out for `lockout` from now; each later failure of the window renews
    /// the lockout (`max_failures` 0 acts as 1; a `lockout` of zero or less counts nothing and
    /// locks nothing). Returns the lockout state after counting
    /// (refused when this failure locked it, so a caller may answer 429 at once or, as
    /// docs/protocol.md section 2 asks, answer this attempt 401 and the next ones 429).
    virtual limit_decision record_failure(std::string_view key, unsigned max_failures,
                                          std::chrono::seconds lockout) = 0;

    /// Admits a login attempt for `key` before its password is checked, counting it as a
    /// failure in advance (in the same counter as `record_failure`, window `lockout` from the
    /// first): refused while `key` is locked out, and refused, locking `key` for `lockout` from
    /// now, when `max_failures` attempts are already counted in the window. The caller checks
    /// the password only when admitted, and calls `clear_failures` when it was right: a wrong
    /// one is already counted. Because admission and counting are one atomic step, concurrent
    /// attempts cannot check more than `max_failures` passwords between two lockouts (checking
    /// first and counting after the slow check would let every attempt in flight through).
    virtual limit_decision begin_attempt(std::string_view key, unsigned max_failures,
                                         std::chrono::seconds lockout) = 0;

    /// Forgets the failures of `key` (after a successful login). A lockout in force stays.
    virtual void clear_failures(std::string_view key) = 0;
};

/// A limiter in this process's memory. Entries expire with their windows; memory is bounded
/// by the number of keys active within the longest window in use.
std::unique_ptr<attempt_limiter> make_memory_limiter();

}  // namespace gatehouse
