#pragma once
/// @file
/// `make_redis_limiter`: an `attempt_limiter` whose counts live in Redis, so that the login
/// lockout and the per-address limits hold across every instance sharing that Redis.

#include <chrono>
#include <memory>
#include <string>

#include "gatehouse/attempt_limiter.hpp"
#include "gatehouse/log.hpp"

namespace gatehouse {

/// Settings of the Redis limiter.
struct redis_limiter_options {
    /// `redis://[user:password@]host[:port][/db]`.
    std::string url;
    /// Prefix of every key it writes (`<prefix>hit:<key>`, `<prefix>fail:<key>`,
    /// `<prefix>lock:<key>`).
    std::string key_prefix = "gatehouse:limit:";
    /// Deadline of each step of a call: connecting (one connection, shared by the limiter's
    /// callers, who wait for one attempt rather than each making their own), each reply.
    /// Positive.
    std::chrono::milliseconds timeout{1000};
    /// Connection problems are reported here (never the password).
    log_sink log;
};

/// A limiter whose counters live in Redis, updated by Lua scripts (one round trip, atomic),
/// on a `redis_client`. While Redis cannot be reached it falls back to an in-memory limiter
/// (limits then hold per instance) and logs the switch each way; it reconnects on a later
/// call, at most one attempt a second, and while Redis is known to be down calls go to memory
/// at once rather than wait for it. A lockout decided in memory during an outage is still
/// honoured by `check_lockout` after it, and `clear_failures` clears both.
///
/// Does not connect until first used. Throws `std::invalid_argument` naming the option when
/// `url` is not a valid `redis://` URL (without quoting it) or `timeout` is not positive.
std::unique_ptr<attempt_limiter> make_redis_limiter(redis_limiter_options options);

}  // namespace gatehouse
