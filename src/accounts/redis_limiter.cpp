#include "gatehouse/attempt_limiter.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <hiredis/hiredis.h>

#include "redis/url.hpp"

namespace gatehouse {
namespace {
namespace r = detail::redis;
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
    auto secs = std::chrono::ceil<std::chrono::seconds>(remaining);
    return limit_decision{false, std::max(secs, std::chrono::seconds(1))};
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
// Admission of a login attempt: the lock's PTTL when locked (also when this attempt, one past
// the limit, locked it); -2 when admitted and counted.
constexpr char attempt_script[] = R"lua(
local locked = redis.call('PTTL', KEYS[2])
if locked ~= -2 then
  return locked
end
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return tonumber(ARGV[2])
end
return -2
)lua";

struct context_deleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

struct reply_deleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// hiredis 0.14 writes with write(2), which raises SIGPIPE on a connection the peer has reset,
// and SIGPIPE's default action ends the process. A library cannot count on its host ignoring
// SIGPIPE, so the signal is blocked on this thread around each exchange, and one raised
// meanwhile is consumed before the old mask comes back (one already pending is left alone).
class sigpipe_guard {
public:
    sigpipe_guard() noexcept {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        sigset_t pending;
        sigemptyset(&pending);
        was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
        blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
    }
    ~sigpipe_guard() {
        if (!blocked_) return;
        if (!was_pending_) {
            sigset_t pending;
            sigemptyset(&pending);
            if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
                const timespec zero{0, 0};
                while (sigtimedwait(&pipe_, nullptr, &zero) == -1 && errno == EINTR) {
                }
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    sigpipe_guard(const sigpipe_guard&) = delete;
    sigpipe_guard& operator=(const sigpipe_guard&) = delete;

private:
    sigset_t pipe_;
    sigset_t old_;
    bool was_pending_ = false;
    bool blocked_ = false;
};

// A mutex whose lock can give up after a deadline. std::timed_mutex would do, but with GCC 12
// its try_lock_for calls pthread_mutex_clocklock, which ThreadSanitizer does not intercept:
// every use would be reported as a race, drowning real ones.
class deadline_mutex {
public:
    void lock() {
        std::unique_lock<std::mutex> lock(mutex_);
        released_.wait(lock, [this] { return !held_; });
        held_ = true;
    }
    template <typename Rep, typename Period>
    bool try_lock_for(const std::chrono::duration<Rep, Period>& limit) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!released_.wait_for(lock, limit, [this] { return !held_; })) return false;
        held_ = true;
        return true;
    }
    void unlock() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            held_ = false;
        }
        released_.notify_one();
    }

private:
    std::mutex mutex_;
    std::condition_variable released_;
    bool held_ = false;
};

// One command on `c`, arguments passed with their lengths (keys are arbitrary bytes). Null when
// no reply came; `c->err` then says why and `io_errno` holds errno as the failure left it.
reply_ptr exchange(redisContext* c, const std::vector<std::string>& args, int& io_errno) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    sigpipe_guard guard;
    errno = 0;
    void* reply = redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data());
    io_errno = errno;
    return reply_ptr(static_cast<redisReply*>(reply));
}

timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

struct script {
    std::string_view body;
    std::string sha;  // from SCRIPT LOAD; empty: send EVAL
};

// What to send: a plain command, or the keys and arguments of a script.
struct request {
    script* lua = nullptr;
    std::size_t key_count = 0;
    std::vector<std::string> args;
    std::size_t expected_values = 1;  // integers in a well-formed reply
};

// What came back. Not ok with an empty `problem`: Redis was not tried for a reason that says
// nothing new about it (known down, or the connection busy past the deadline).
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

outcome from_reply(const redisReply& reply, std::size_t expected) {
    outcome o;
    if (reply.type == REDIS_REPLY_ERROR) {
        return failed("Redis answered an error: " + std::string(reply.str, reply.len));
    }
    if (reply.type == REDIS_REPLY_INTEGER) {
        o.values.push_back(reply.integer);
    } else if (reply.type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i < reply.elements; ++i) {
            if (reply.element[i]->type != REDIS_REPLY_INTEGER) break;
            o.values.push_back(reply.element[i]->integer);
        }
    }
    if (o.values.size() != expected) return failed("unexpected reply from Redis");
    o.ok = true;
    return o;
}

class redis_limiter final : public attempt_limiter {
public:
    redis_limiter(redis_limiter_options options, r::url where)
        : options_(std::move(options)),
          where_(std::move(where)),
          redacted_(r::redacted(where_)),
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
    std::optional<limit_decision> lockout_script(script& lua, std::string_view key,
                                                 unsigned max_failures,
                                                 std::chrono::seconds lockout) {
        request req;
        req.lua = &lua;
        req.key_count = 2;
        req.args = {name("fail:", key), name("lock:", key), std::to_string(max_failures),
                    std::to_string(clamp_span(lockout).count())};
        const outcome o = run(req);
        if (!o.ok) return std::nullopt;
        return stricter(lock_from_pttl(o.values[0]), fallback_->check_lockout(key));
    }

    std::string name(std::string_view kind, std::string_view key) const {
        std::string out;
        out.reserve(options_.key_prefix.size() + kind.size() + key.size());
        out.append(options_.key_prefix).append(kind).append(key);
        return out;
    }

    void log(log_level level, const std::string& message) const {
        if (options_.log) options_.log(level, "redis limiter " + redacted_ + ": " + message);
    }

    outcome run(const request& req) {
        outcome o = roundtrip(req);
        // Logged here, after the connection lock is released: a slow sink must not hold up
        // the other callers. exchange() makes each switch log exactly once.
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
        // While Redis is known to be down and no reconnect is due, do not even wait for the
        // lock: a login must not pay for an outage with a delay.
        if (degraded_.load() && !connected_.load() &&
            (connecting_.load() ||
             clock::now().time_since_epoch().count() < next_connect_.load())) {
            return {};
        }
        // A single connection, one exchange at a time: a limiter call is a sub-millisecond
        // round trip made once or twice per login, which are themselves bounded by Argon2id
        // hashing, so one connection carries thousands of calls a second; a pool would add
        // reconnect bookkeeping per connection for throughput nobody needs. The timed lock
        // keeps a hung Redis from queueing callers for longer than the deadline.
        std::unique_lock<deadline_mutex> lock(mutex_, std::defer_lock);
        if (!lock.try_lock_for(options_.timeout)) return {};

        std::string why;
        for (int pass = 0; pass < 2; ++pass) {
            if (!ctx_) {
                const auto now = clock::now();
                if (now.time_since_epoch().count() < next_connect_.load()) {
                    return failed(why.empty() ? "not connected" : why);
                }
                next_connect_.store((now + reconnect_interval).time_since_epoch().count());
                connecting_.store(true);
                ctx_ = connect(why);
                connecting_.store(false);
                if (!ctx_) return failed(why);
                connected_.store(true);
            }
            int io_errno = 0;
            reply_ptr reply = send(req, false, io_errno);
            if (reply && reply->type == REDIS_REPLY_ERROR &&
                std::string_view(reply->str, reply->len).substr(0, 8) == "NOSCRIPT") {
                // The script cache was flushed, or this is a replica promoted since connect:
                // EVAL runs the script and caches it again for the next EVALSHA.
                reply = send(req, true, io_errno);
            }
            if (reply) return from_reply(*reply, req.expected_values);

            why = std::string("connection failed: ") + ctx_->errstr;
            // Closed or reset by the peer: the command never ran, so one attempt on a fresh
            // connection is safe and spares a needless fallback after a Redis restart. A
            // timeout is not retried: the command may have run, and retrying costs another.
            const bool stale =
                ctx_->err == REDIS_ERR_EOF ||
                (ctx_->err == REDIS_ERR_IO && (io_errno == ECONNRESET || io_errno == EPIPE));
            ctx_.reset();
            connected_.store(false);
            if (!stale) break;
        }
        return failed(why);
    }

    reply_ptr send(const request& req, bool force_eval, int& io_errno) {
        if (!req.lua) return exchange(ctx_.get(), req.args, io_errno);
        std::vector<std::string> argv;
        argv.reserve(req.args.size() + 3);
        if (force_eval || req.lua->sha.empty()) {
            argv.emplace_back("EVAL");
            argv.emplace_back(req.lua->body);
        } else {
            argv.emplace_back("EVALSHA");
            argv.emplace_back(req.lua->sha);
        }
        argv.push_back(std::to_string(req.key_count));
        argv.insert(argv.end(), req.args.begin(), req.args.end());
        return exchange(ctx_.get(), argv, io_errno);
    }

    // Connects, authenticates, selects the database and loads the scripts. Null on failure,
    // with `why` (never the password: Redis's AUTH errors do not repeat it).
    context_ptr connect(std::string& why) {
        const timeval tv = to_timeval(options_.timeout);
        context_ptr c(redisConnectWithTimeout(where_.host.c_str(), where_.port, tv));
        if (!c) {
            why = "cannot allocate a connection";
            return nullptr;
        }
        if (c->err) {
            why = std::string("cannot connect: ") + c->errstr;
            return nullptr;
        }
        // Without it a hung Redis would block this call, and every caller behind it, for ever.
        if (redisSetTimeout(c.get(), tv) != REDIS_OK) {
            why = std::string("cannot set the timeout: ") + c->errstr;
            return nullptr;
        }
        auto step = [&](const std::vector<std::string>& args, const char* what) -> reply_ptr {
            int io_errno = 0;
            reply_ptr reply = exchange(c.get(), args, io_errno);
            if (!reply) {
                why = std::string(what) + " failed: " + c->errstr;
            } else if (reply->type == REDIS_REPLY_ERROR) {
                why = std::string(what) + " refused: " + std::string(reply->str, reply->len);
                return nullptr;
            }
            return reply;
        };
        if (!where_.password.empty()) {
            std::vector<std::string> auth{"AUTH"};
            if (!where_.user.empty()) auth.push_back(where_.user);
            auth.push_back(where_.password);
            if (!step(auth, "AUTH")) return nullptr;
        }
        if (where_.db != 0 && !step({"SELECT", std::to_string(where_.db)}, "SELECT")) {
            return nullptr;
        }
        for (script* s : {&hit_, &failure_, &attempt_}) {
            int io_errno = 0;
            reply_ptr reply = exchange(c.get(), {"SCRIPT", "LOAD", std::string(s->body)}, io_errno);
            if (!reply) {
                why = std::string("SCRIPT LOAD failed: ") + c->errstr;
                return nullptr;
            }
            // A user whose ACL denies SCRIPT may still be allowed EVAL: use that instead.
            s->sha = reply->type == REDIS_REPLY_STRING ? std::string(reply->str, reply->len)
                                                       : std::string();
        }
        log(log_level::debug, "connected");
        return c;
    }

    const redis_limiter_options options_;
    const r::url where_;
    const std::string redacted_;
    const std::unique_ptr<attempt_limiter> fallback_;

    // Guards the connection and the scripts' hashes.
    deadline_mutex mutex_;
    context_ptr ctx_;
    script hit_{hit_script, {}};
    script failure_{failure_script, {}};
    script attempt_{attempt_script, {}};

    // Read without the lock by roundtrip()'s fast path.
    std::atomic<bool> degraded_{false};
    std::atomic<bool> connected_{false};
    std::atomic<bool> connecting_{false};
    std::atomic<clock::rep> next_connect_{clock::time_point::min().time_since_epoch().count()};
};

}  // namespace

std::error_code make_redis_limiter(redis_limiter_options options,
                                   std::unique_ptr<attempt_limiter>& out, std::string& problem) {
    r::url where;
    if (r::parse_url(options.url, where)) {
        problem = "not a valid URL; expected redis://[user:password@]host[:port][/db]";
        return std::make_error_code(std::errc::invalid_argument);
    }
    if (options.timeout <= std::chrono::milliseconds::zero()) {
        problem = "the timeout must be positive";
        return std::make_error_code(std::errc::invalid_argument);
    }
    out = std::make_unique<redis_limiter>(std::move(options), std::move(where));
    return {};
}

}  // namespace gatehouse
