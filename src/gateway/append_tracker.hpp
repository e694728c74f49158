#pragma once
// The gateway's appends still waiting for the bus, so that shutdown can drain them (wait up to
// a deadline) and then cancel the rest: after `cancel()` a bus answer does nothing, and
// `cancel()` returns only once no answer is being handled, so the transport behind the
// answers may go away.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace gatehouse::detail {

// Thread safety: every member may be called from any thread.
class append_tracker {
public:
    // An append is handed to the bus.
    void appended() noexcept { state_.fetch_add(one_pending); }

    // The bus answered: returns false once cancelled (the answer must be dropped). Every
    // call is paired with `answered()`, whatever it returned.
    bool handling() noexcept { return (state_.fetch_add(one_running) & cancelled_bit) == 0; }
    void answered() noexcept;
    // An append counted by `appended()` that was not handed to the bus after all.
    void withdrawn() noexcept;

    std::size_t pending() const noexcept {
        return static_cast<std::size_t>(state_.load() & pending_mask);
    }
    // True once `cancel()` began: an append started now would have its answer dropped.
    bool cancelled() const noexcept { return (state_.load() & cancelled_bit) != 0; }
    // Waits until nothing is pending or `deadline` passed; true when nothing is.
    bool wait_drained(std::chrono::steady_clock::time_point deadline);
    // From now on `handling()` is false. Returns once no answer is being handled. Idempotent;
    // never from inside a bus callback (it would wait for itself).
    void cancel();

private:
    // One word, so that a command costs one atomic add when appended and two when answered,
    // and no lock: the low 31 bits count appends pending, the next 31 answers being handled,
    // and the top two bits say "cancelled" and "someone waits" (only then does an answer take
    // the mutex, to wake the waiter).
    static constexpr std::uint64_t one_pending = 1;
    static constexpr std::uint64_t pending_mask = (std::uint64_t{1} << 31) - 1;
    static constexpr std::uint64_t one_running = std::uint64_t{1} << 31;
    static constexpr std::uint64_t running_mask = pending_mask << 31;
    static constexpr std::uint64_t cancelled_bit = std::uint64_t{1} << 62;
    static constexpr std::uint64_t waiting_bit = std::uint64_t{1} << 63;

    std::atomic<std::uint64_t> state_{0};
    std::mutex mutex_;
    std::condition_variable changed_;
};

inline void append_tracker::answered() noexcept {
    const auto before = state_.fetch_sub(one_running + one_pending);
    if ((before & waiting_bit) != 0) {
        // Taken only while someone waits, so that the wake-up cannot be lost.
        std::lock_guard<std::mutex> lock(mutex_);
        changed_.notify_all();
    }
}

inline void append_tracker::withdrawn() noexcept {
    const auto before = state_.fetch_sub(one_pending);
    if ((before & waiting_bit) != 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        changed_.notify_all();
    }
}

inline bool append_tracker::wait_drained(std::chrono::steady_clock::time_point deadline) {
    state_.fetch_or(waiting_bit);
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_until(lock, deadline,
                               [this] { return (state_.load() & pending_mask) == 0; });
}

inline void append_tracker::cancel() {
    state_.fetch_or(cancelled_bit | waiting_bit);
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return (state_.load() & running_mask) == 0; });
}

}  // namespace gatehouse::detail
