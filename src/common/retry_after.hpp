#pragma once
// The value of a Retry-After header (RFC 9110 section 10.2.3) for a wait.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

namespace gatehouse::detail {

// Whole seconds, rounded up, and at least 1: the header cannot say less than a second, and
// a Retry-After of 0 invites an immediate retry that would be refused again.
template <class Rep, class Period>
std::chrono::seconds retry_after_seconds(std::chrono::duration<Rep, Period> wait) {
    return std::max(std::chrono::ceil<std::chrono::seconds>(wait), std::chrono::seconds(1));
}

template <class Rep, class Period>
std::string retry_after_value(std::chrono::duration<Rep, Period> wait) {
    return std::to_string(retry_after_seconds(wait).count());
}

}  // namespace gatehouse::detail
