#include "gatehouse/token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace gatehouse {
namespace {

// Refills are computed in floating point, so waiting exactly `time_until_available` can leave
// the bucket a rounding error short of a whole token. This slack (far below any real rate's
// granularity) keeps the promise "after that wait, `try_take` succeeds".
constexpr double token_slack = 1e-9;

bool has_token(double tokens) noexcept { return tokens >= 1.0 - token_slack; }

// Seconds from `from` to `to`, zero when `to` is not later. The subtraction is done in
// unsigned arithmetic so that injected time points far apart cannot overflow.
double seconds_between(token_bucket::clock::time_point from,
                       token_bucket::clock::time_point to) noexcept {
    if (to <= from) return 0.0;
    const auto ticks = static_cast<std::uint64_t>(to.time_since_epoch().count()) -
                       static_cast<std::uint64_t>(from.time_since_epoch().count());
    using period = token_bucket::clock::period;
    return static_cast<double>(ticks) * static_cast<double>(period::num) /
           static_cast<double>(period::den);
}

}  // namespace

token_bucket::token_bucket(double rate, double burst, clock::time_point now) noexcept
    // A NaN or infinite rate is treated as no limit, like `rate <= 0`; a burst below one
    // token (or NaN) would refuse every event forever, so it is raised to one.
    : rate_(rate > 0 && std::isfinite(rate) ? rate : 0.0),
      burst_(burst >= 1.0 ? burst : 1.0),
      tokens_(burst_),
      last_(now) {}

void token_bucket::refill(clock::time_point now) noexcept {
    if (now <= last_) return;  // Never let an earlier time point move the bucket backwards.
    tokens_ = std::min(burst_, tokens_ + rate_ * seconds_between(last_, now));
    last_ = now;
}

bool token_bucket::try_take(clock::time_point now) noexcept {
    if (rate_ == 0.0) return true;
    refill(now);
    if (!has_token(tokens_)) return false;
    tokens_ -= 1.0;
    return true;
}

token_bucket::clock::duration token_bucket::time_until_available(
    clock::time_point now) const noexcept {
    if (rate_ == 0.0) return clock::duration::zero();
    const double tokens = std::min(burst_, tokens_ + rate_ * seconds_between(last_, now));
    if (has_token(tokens)) return clock::duration::zero();
    // Aim half the slack short of a whole token: far enough inside what `try_take` accepts
    // that the refill's own rounding cannot fall outside it, and a round number of seconds
    // stays a round number of ticks instead of gaining one.
    const double seconds = (1.0 - token_slack / 2 - tokens) / rate_;
    const double ticks = std::ceil(seconds * static_cast<double>(clock::period::den) /
                                   static_cast<double>(clock::period::num));
    // A vanishingly small rate can put the next token beyond what a duration holds.
    if (!(ticks < static_cast<double>(clock::duration::max().count()))) {
        return clock::duration::max();
    }
    return clock::duration(static_cast<clock::duration::rep>(ticks));
}

}  // namespace gatehouse
