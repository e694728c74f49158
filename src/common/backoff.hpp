#pragma once
// Reconnect backoff, shared by every bus that reconnects by itself (Redis, AMQP).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace gatehouse::detail {

/// Exponential backoff with jitter, so that many gateways losing one server do not all knock
/// on it in the same millisecond when it returns. Thread safety: none (one I/O thread).
class backoff {
public:
    backoff(std::chrono::milliseconds min, std::chrono::milliseconds max) : min_(min), max_(max) {}

    /// The wait before the next attempt: 75-125% of min * 2^attempts, capped at max.
    std::chrono::milliseconds next() {
        const auto base = std::min(max_, min_ * (std::int64_t{1} << std::min(attempt_, 20)));
        ++attempt_;
        std::uniform_int_distribution<std::int64_t> spread(base.count() * 3 / 4,
                                                           base.count() * 5 / 4);
        return std::min(max_, std::chrono::milliseconds{std::max<std::int64_t>(1, spread(rng_))});
    }
    void reset() noexcept { attempt_ = 0; }
    int attempts() const noexcept { return attempt_; }

private:
    std::chrono::milliseconds min_, max_;
    int attempt_ = 0;
    std::minstd_rand rng_{std::random_device{}()};
};

}  // namespace gatehouse::detail
