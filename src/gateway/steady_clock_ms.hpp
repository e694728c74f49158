#pragma once
// Milliseconds on the two clocks the gateway reads: steady for keepalive and rate-limit
// bookkeeping, Unix for the `ts_ms` of accepted commands.

#include <chrono>
#include <cstdint>

namespace gatehouse::detail {

inline std::int64_t steady_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

inline std::int64_t unix_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace gatehouse::detail
