#include "gatehouse/attempt_limiter.hpp"

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/retry_after.hpp"

namespace gatehouse {
namespace {

using clock = std::chrono::steady_clock;

// Windows and lockouts are capped so that `now + span` cannot overflow the clock and a
// caller's absurd setting still means "very long" rather than undefined behaviour.
constexpr std::chrono::milliseconds max_span = std::chrono::hours(24 * 366 * 10);

std::chrono::milliseconds clamp_span(std::chrono::seconds s) {
    if (s <= std::chrono::seconds::zero()) return std::chrono::milliseconds::zero();
    if (s >= std::chrono::duration_cast<std::chrono::seconds>(max_span)) return max_span;
    return std::chrono::duration_cast<std::chrono::milliseconds>(s);
}

limit_decision refused(clock::duration remaining) {
    return limit_decision{false, detail::retry_after_seconds(remaining)};
}

// Every sweep walks all entries, so it runs once per max(this, entry count) calls: amortised
// O(1) per call, and expired entries never outnumber the live ones by more than that.
constexpr std::size_t sweep_every = 1024;

class memory_limiter final : public attempt_limiter {
public:
    limit_decision hit(std::string_view key, unsigned limit, std::chrono::seconds window) override {
        const auto span = clamp_span(window);
        // No window, no count: each hit is alone in its own window.
        if (span == span.zero()) {
            return limit == 0 ? refused(std::chrono::seconds(1)) : limit_decision{};
        }
        const auto now = clock::now();
        std::lock_guard<std::mutex> lock(mutex_);
        maybe_sweep(now);
        auto& c = hits_[std::string(key)];
        if (c.ends <= now) c = counter{0, now + span};
        ++c.count;
        if (c.count > limit) return refused(c.ends - now);
        return {};
    }

    limit_decision check_lockout(std::string_view key) override {
        const auto now = clock::now();
        std::lock_guard<std::mutex> lock(mutex_);
        maybe_sweep(now);
        return lock_state(std::string(key), now);
    }

    limit_decision record_failure(std::string_view key, unsigned max_failures,
                                  std::chrono::seconds lockout) override {
        const auto span = clamp_span(lockout);
        const auto now = clock::now();
        std::lock_guard<std::mutex> lock(mutex_);
        maybe_sweep(now);
        std::string k(key);
        // A zero lockout can lock nothing, and a failure window of zero counts nothing.
        if (span == span.zero()) return lock_state(k, now);
        auto& c = failures_[k];
        if (c.ends <= now) c = counter{0, now + span};
        ++c.count;
        // `>=`, not `==`: failures recorded while locked (a caller that did not check first)
        // renew the lockout instead of slipping past a count that already went by.
        const bool was_locked = !lock_state(k, now).allowed;
        if (c.count >= max_failures) locks_[k] = now + span;
        auto state = lock_state(k, now);
        state.lockout_started = !state.allowed && !was_locked;
        return state;
    }

    limit_decision begin_attempt(std::string_view key, unsigned max_failures,
                                 std::chrono::seconds lockout) override {
        const auto span = clamp_span(lockout);
        const auto now = clock::now();
        std::lock_guard<std::mutex> lock(mutex_);
        maybe_sweep(now);
        std::string k(key);
        const auto locked = lock_state(k, now);
        if (!locked.allowed || span == span.zero()) return locked;
        auto& c = failures_[k];
        if (c.ends <= now) c = counter{0, now + span};
        if (++c.count > max_failures) {
            locks_[k] = now + span;
            auto state = lock_state(k, now);
            state.lockout_started = true;
            return state;
        }
        return {};
    }

    void clear_failures(std::string_view key) override {
        std::lock_guard<std::mutex> lock(mutex_);
        failures_.erase(std::string(key));
    }

private:
    struct counter {
        std::uint64_t count = 0;
        clock::time_point ends{};
    };

    limit_decision lock_state(const std::string& key, clock::time_point now) {
        auto it = locks_.find(key);
        if (it == locks_.end()) return {};
        if (it->second <= now) {
            locks_.erase(it);
            return {};
        }
        return refused(it->second - now);
    }

    void maybe_sweep(clock::time_point now) {
        const std::size_t entries = hits_.size() + failures_.size() + locks_.size();
        if (++calls_since_sweep_ < std::max(sweep_every, entries)) return;
        calls_since_sweep_ = 0;
        for (auto it = hits_.begin(); it != hits_.end();) {
            it = it->second.ends <= now ? hits_.erase(it) : std::next(it);
        }
        for (auto it = failures_.begin(); it != failures_.end();) {
            it = it->second.ends <= now ? failures_.erase(it) : std::next(it);
        }
        for (auto it = locks_.begin(); it != locks_.end();) {
            it = it->second <= now ? locks_.erase(it) : std::next(it);
        }
    }

    std::mutex mutex_;
    std::unordered_map<std::string, counter> hits_;
    std::unordered_map<std::string, counter> failures_;
    std::unordered_map<std::string, clock::time_point> locks_;
    std::size_t calls_since_sweep_ = 0;
};

}  // namespace

std::unique_ptr<attempt_limiter> make_memory_limiter() {
    return std::make_unique<memory_limiter>();
}

}  // namespace gatehouse
