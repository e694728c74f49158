#include "gatehouse/redis_limiter.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/retry_after.hpp"
#include "gatehouse/redis_client.hpp"

namespace gatehouse {
namespace {
using clock = std::chrono::steady_clock;

// As in the memory limiter: spans are capped so that no arithmetic on them can overflow.
constexpr std::chrono::milliseconds max_span = std::chrono::hours(24 * 366 * 10);

// A dead Redis must not cost every call a connect attempt (and with it up to a timeout).
constexpr std::chrono::seconds reconnect_interval{1};

std::chrono::milliseconds clamp_span(std::chrono::seconds s) {
    if (s <= std::chrono::seconds::zero()) return std::chrono::milliseconds::zero();
    if (s >= std::chrono::duration_cast<std::chrono::seconds>(max_span)) return max_span;
    return std::chrono::duration_cast<std::chrono::milliseconds>(s);
}

limit_decision refused_for(std::chrono::milliseconds remaining) {
    return limit_decision{false, detail::retry_after_seconds(remaining)};
}

// The answer of PTTL on a lock key. -2 (no key) is "not locked". -1 (a key without expiry)
// cannot come from these scripts; an operator may write one to ban a name, so it is honoured.
limit_decision lock_from_pttl(long long pttl) {
    if (pttl == -2) return {};
    return refused_for(std::chrono::milliseconds(std::max(pttl, 0LL)));
}

// The stricter of two answers: a lockout decided in memory during an outage outlives it.
limit_decision stricter(const limit_decision& a, const limit_decision& b) {
    if (a.allowed) return b;
    if (b.allowed) return a;
    return a.retry_after >= b.retry_after ? a : b;
}

// KEYS[1] the counter, ARGV[1] the window in ms. Returns {hits in the window, ms left}.
// A counter found without an expiry (which only a crash between two commands could leave,
// were this not one script) gets one, so that it cannot refuse for ever.
constexpr char hit_script[] = R"lua(
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
)lua";

// KEYS[1] the failure counter, KEYS[2] the lock; ARGV[1] max failures, ARGV[2] lockout in ms.
// Returns the PTTL of the lock after counting. `>=` as in the memory limiter: failures
// recorded while locked renew the lockout.
constexpr char failure_script[] = R"lua(
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
end
return redis.call('PTTL', KEYS[2])
)lua";

// KEYS[1] the failure counter, KEYS[2] the lock; ARGV[1] max failures, ARGV[2] lockout in ms.
// Admission of a login attempt: {the lock's PTTL when locked, 1 when this attempt (one past the
// limit) locked it, else 0}; {-2, 0} when admitted and counted.
constexpr char attempt_script[] = R"lua(
local locked = redis.call('PTTL', KEYS[2])
if locked ~= -2 then
  return {locked, 0}
end
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return {tonumber(ARGV[2]), 1}
end
return {-2, 0}
)lua";

struct script {
    std::string_view body;
};

// What to send: a plain command, or the keys and arguments of a script.
struct request {
    const script* lua = nullptr;
    std::size_t key_count = 0;
    std::vector<std::string> args;
    std::size_t expected_values = 1;  // integers in a well-formed reply
};

// What came back. Not ok with an empty `problem`: Redis was not tried for a reason that says
// nothing new about it (known down, or a reconnect not yet due while another is under way).
struct outcome {
    bool ok = false;
    std::vector<long long> values;
    std::string problem;
};

outcome failed(std::string problem) {
    outcome o;
    o.problem = std::move(problem);
    return o;
}

outcome from_reply(const redis_reply& reply, std::size_t expected) {
    outcome o;
    if (reply.is_error()) return failed("Redis answered an error: " + reply.str);
    if (reply.kind == redis_reply_kind::integer) {
        o.values.push_back(reply.integer);
    } else if (reply.kind == redis_reply_kind::array) {
        for (const auto& e : reply.elements) {
            if (e.kind != redis_reply_kind::integer) break;
            o.values.push_back(e.integer);
        }
    }
    if (o.values.size() != expected) return failed("unexpected reply from Redis");
    o.ok = true;
    return o;
}

// The link closed under the command before Redis could run it (a restarted Redis): one more
// try on a fresh connection is safe and spares a needless fallback. A timeout is not retried:
// the command may have run, and retrying costs another timeout.
bool link_was_stale(std::error_code ec) {
    return ec == std::errc::connection_reset || ec == std::errc::broken_pipe ||
           ec == std::errc::not_connected;
}

redis_client_options client_options(const redis_limiter_options& o) {
    redis_client_options c;
    c.url = o.url;
    c.timeout = o.timeout;
    return c;
}

class redis_limiter final : public attempt_limiter {
public:
    explicit redis_limiter(redis_limiter_options options)
        : options_(std::move(options)),
          client_(client_options(options_)),
          fallback_(make_memory_limiter()) {}

    limit_decision hit(std::string_view key, unsigned limit, std::chrono::seconds window) override {
        const auto span = clamp_span(window);
        if (span == span.zero()) return fallback_->hit(key, limit, window);
        request req;
        req.lua = &hit_;
        req.key_count = 1;
        req.args = {name("hit:", key), std::to_string(span.count())};
        req.expected_values = 2;
        const outcome o = run(req);
        if (!o.ok) return fallback_->hit(key, limit, window);
        if (o.values[0] > static_cast<long long>(limit)) {
            return refused_for(std::chrono::milliseconds(o.values[1]));
        }
        return {};
    }

    limit_decision check_lockout(std::string_view key) override {
        const limit_decision local = fallback_->check_lockout(key);
        request req;
        req.args = {"PTTL", name("lock:", key)};
        const outcome o = run(req);
        if (!o.ok) return local;
        return stricter(lock_from_pttl(o.values[0]), local);
    }

    limit_decision record_failure(std::string_view key, unsigned max_failures,
                                  std::chrono::seconds lockout) override {
        // PX 0 is an error in Redis; a zero lockout locks nothing, so there is nothing to count.
        if (clamp_span(lockout) == std::chrono::milliseconds::zero()) return check_lockout(key);
        if (auto d = lockout_script(failure_, key, max_failures, lockout)) return *d;
        return fallback_->record_failure(key, max_failures, lockout);
    }

    limit_decision begin_attempt(std::string_view key, unsigned max_failures,
                                 std::chrono::seconds lockout) override {
        if (clamp_span(lockout) == std::chrono::milliseconds::zero()) return check_lockout(key);
        if (auto d = lockout_script(attempt_, key, max_failures, lockout)) return *d;
        return fallback_->begin_attempt(key, max_failures, lockout);
    }

    void clear_failures(std::string_view key) override {
        // Failures counted in memory during an outage are forgotten too.
        fallback_->clear_failures(key);
        request req;
        req.args = {"DEL", name("fail:", key)};
        run(req);
    }

private:
    // Runs one of the two lockout scripts (same keys and arguments, both answering the lock's
    // PTTL); nullopt when Redis could not answer, for the caller's fallback.
    std::optional<limit_decision> lockout_script(const script& lua, std::string_view key,
                                                 unsigned max_failures,
                                                 std::chrono::seconds lockout) {
        request req;
        req.lua = &lua;
        req.key_count = 2;
        req.args = {name("fail:", key), name("lock:", key), std::to_string(max_failures),
                    std::to_string(clamp_span(lockout).count())};
        // The attempt script also says whether it locked the key (the audit log's
        // lockout_started).
        const bool attempt = &lua == &attempt_;
        req.expected_values = attempt ? 2 : 1;
        const outcome o = run(req);
        if (!o.ok) return std::nullopt;
        auto d = stricter(lock_from_pttl(o.values[0]), fallback_->check_lockout(key));
        d.lockout_started = attempt && o.values[1] == 1;
        return d;
    }

    std::string name(std::string_view kind, std::string_view key) const {
        std::string out;
        out.reserve(options_.key_prefix.size() + kind.size() + key.size());
        out.append(options_.key_prefix).append(kind).append(key);
        return out;
    }

    void log(log_level level, const std::string& message) const {
        if (options_.log) {
            options_.log(level, "redis limiter " + client_.redacted_url() + ": " + message);
        }
    }

    outcome run(const request& req) {
        outcome o = roundtrip(req);
        // exchange() makes each switch log exactly once.
        if (o.ok) {
            if (degraded_.exchange(false)) {
                log(log_level::info, "reachable again; limits are shared across instances again");
            }
        } else if (!o.problem.empty() && !degraded_.exchange(true)) {
            log(log_level::warn, o.problem +
                                     "; counting in this process's memory (limits hold per "
                                     "instance) until Redis is back");
        }
        return o;
    }

    outcome roundtrip(const request& req) {
        if (!client_.connected()) {
            // At most one connect attempt per reconnect_interval is claimed (the CAS: of
            // concurrent callers, one wins).
            const auto now = clock::now().time_since_epoch().count();
            auto due = next_connect_.load();
            const auto next = (clock::now() + reconnect_interval).time_since_epoch().count();
            const bool claimed = now >= due && next_connect_.compare_exchange_strong(due, next);
            // While Redis is known to be down and no reconnect is due, do not even try: a
            // login must not pay for an outage with a delay.
            if (!claimed && degraded_.load()) return {};
            // Otherwise connect, or join the attempt under way (the client's connect() waits
            // for it rather than making another): one connection, shared.
            if (const auto ec = client_.connect()) return failed(client_.last_error());
        }
        // A limiter call is a sub-millisecond round trip made once or twice per login, which
        // are themselves bounded by Argon2id hashing: calls from every worker thread share
        // the one pipelined connection.
        for (int pass = 0; pass < 2; ++pass) {
            redis_reply reply;
            std::error_code ec = send(req, false, reply);
            if (!ec && reply.is_error("NOSCRIPT")) {
                // The script cache was flushed, or this is a replica promoted since the hash
                // was loaded: EVAL runs the script and caches it again for the next EVALSHA.
                ec = send(req, true, reply);
            }
            if (!ec) return from_reply(reply, req.expected_values);
            if (pass == 0 && link_was_stale(ec) && !client_.connect()) continue;
            return failed(client_.last_error());
        }
        return failed(client_.last_error());
    }

    std::error_code send(const request& req, bool force_eval, redis_reply& reply) {
        if (!req.lua) return client_.command(req.args, reply);
        std::vector<std::string> argv;
        argv.reserve(req.args.size() + 3);
        std::string sha;
        if (!force_eval) {
            if (auto ec = sha_of(*req.lua, sha)) return ec;
        }
        if (sha.empty()) {
            argv.emplace_back("EVAL");
            argv.emplace_back(req.lua->body);
        } else {
            argv.emplace_back("EVALSHA");
            argv.push_back(sha);
        }
        argv.push_back(std::to_string(req.key_count));
        argv.insert(argv.end(), req.args.begin(), req.args.end());
        return client_.command(argv, reply);
    }

    // The script's hash from SCRIPT LOAD, asked once: it depends only on the script, so it
    // holds across reconnects (a Redis that lost its cache answers NOSCRIPT, see above).
    // Empty when SCRIPT is denied (an ACL may allow EVAL but not SCRIPT): EVAL then.
    std::error_code sha_of(const script& lua, std::string& sha) {
        {
            std::lock_guard<std::mutex> lock(sha_mutex_);
            const auto& known = shas_[index_of(lua)];
            if (known.asked) {
                sha = known.sha;
                return {};
            }
        }
        redis_reply reply;
        if (auto ec = client_.command({"SCRIPT", "LOAD", std::string(lua.body)}, reply)) {
            return ec;
        }
        std::lock_guard<std::mutex> lock(sha_mutex_);
        auto& known = shas_[index_of(lua)];
        known.asked = true;
        if (reply.kind == redis_reply_kind::string) known.sha = reply.str;
        sha = known.sha;
        return {};
    }

    std::size_t index_of(const script& lua) const {
        if (&lua == &hit_) return 0;
        if (&lua == &failure_) return 1;
        return 2;
    }

    struct script_hash {
        bool asked = false;
        std::string sha;
    };

    const redis_limiter_options options_;
    redis_client client_;
    const std::unique_ptr<attempt_limiter> fallback_;
    const script hit_{hit_script};
    const script failure_{failure_script};
    const script attempt_{attempt_script};

    std::mutex sha_mutex_;
    script_hash shas_[3];

    // Read by roundtrip()'s fast path.
    std::atomic<bool> degraded_{false};
    std::atomic<clock::rep> next_connect_{clock::time_point::min().time_since_epoch().count()};
};

}  // namespace

std::unique_ptr<attempt_limiter> make_redis_limiter(redis_limiter_options options) {
    redis_url where;
    if (parse_redis_url(options.url, where)) {
        // The URL itself is not quoted: it may hold a password.
        throw std::invalid_argument(
            "redis limiter: url is not redis://[user:password@]host[:port][/db]");
    }
    if (options.timeout <= std::chrono::milliseconds::zero()) {
        throw std::invalid_argument("redis limiter: timeout must be positive");
    }
    return std::make_unique<redis_limiter>(std::move(options));
}

}  // namespace gatehouse
