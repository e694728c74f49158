#pragma once
// How long a session may live on its access token (docs/protocol.md 6.3): the deadline (the token's
// `exp`), whether `gatehouse.token_expiring` went out for it, and whether the session has
// expired. The keepalive sweep asks it what is due; an in-band refresh moves the deadline. One
// mutex decides a refresh racing the expiry: whichever takes it first wins, and a session that
// expired stays expired (the refresh then goes unanswered and the 4001 close follows).
//
// The sweep reads one atomic (the next time anything is due) for a session with nothing due,
// so walking every session each sweep costs a load; commands never look at it.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>

namespace gatehouse::detail {

// Thread safety: every member may be called from any thread.
class session_lifetime {
public:
    // `expires_at`: Unix seconds, 0 for a token that does not say. `enforced` is false for
    // bots and when `gateway_options::session_expiry` is off: then nothing is ever due and
    // extend() only reports success.
    session_lifetime(std::int64_t expires_at, bool enforced) noexcept : enforced_(enforced) {
        std::lock_guard<std::mutex> lock(mutex_);
        set_deadline(expires_at);
    }
    session_lifetime(const session_lifetime&) = delete;
    session_lifetime& operator=(const session_lifetime&) = delete;

    // How long before the deadline `gatehouse.token_expiring` is sent.
    static constexpr std::int64_t warning_ms = 60000;

    enum class due : std::uint8_t {
        nothing,
        warn,    // send gatehouse.token_expiring (once per deadline)
        expire,  // the token expired: close the session (once)
    };

    // What is due at `unix_ms`; `exp` is the deadline it is about (Unix seconds).
    due check(std::int64_t unix_ms, std::int64_t& exp) {
        if (unix_ms < next_due_ms_.load(std::memory_order_acquire)) return due::nothing;
        std::lock_guard<std::mutex> lock(mutex_);
        exp = exp_;
        if (expired_ || exp_ == 0) return due::nothing;
        if (unix_ms >= exp_ * 1000) {
            expired_ = true;
            next_due_ms_.store(never, std::memory_order_release);
            return due::expire;
        }
        if (warned_ || unix_ms < exp_ * 1000 - warning_ms) return due::nothing;
        warned_ = true;
        next_due_ms_.store(exp_ * 1000, std::memory_order_release);
        return due::warn;
    }

    // A refresh verified at `unix_ms` to a token expiring at `expires_at` (0: does not say).
    // False when the session expired already (decided by check(), or due at `unix_ms`): the
    // refresh came too late and changes nothing. Otherwise the new deadline holds, and a new
    // warning is due a minute before it.
    bool extend(std::int64_t expires_at, std::int64_t unix_ms) {
        if (!enforced_) return true;
        std::lock_guard<std::mutex> lock(mutex_);
        if (expired_ || (exp_ != 0 && unix_ms >= exp_ * 1000)) return false;
        set_deadline(expires_at);
        return true;
    }

    bool enforced() const noexcept { return enforced_; }

private:
    static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

    // Past any real token (year 287396), and small enough that milliseconds cannot overflow.
    static constexpr std::int64_t latest_exp = std::int64_t{9} * 1000 * 1000 * 1000 * 1000;

    // Called with mutex_ held.
    void set_deadline(std::int64_t expires_at) {
        exp_ = enforced_ && expires_at > 0 ? std::min(expires_at, latest_exp) : 0;
        warned_ = false;
        next_due_ms_.store(exp_ == 0 ? never : exp_ * 1000 - warning_ms, std::memory_order_release);
    }

    const bool enforced_;
    std::mutex mutex_;
    std::int64_t exp_ = 0;  // Unix seconds; 0: never
    bool warned_ = false;
    bool expired_ = false;
    // Unix ms from which check() has something to do; `never` when nothing will.
    std::atomic<std::int64_t> next_due_ms_{never};
};

}  // namespace gatehouse::detail
