#pragma once
// The clocks the library reads, as plain integers. Deadlines and idle timers use the steady
// clock (immune to wall-clock jumps); anything written down or compared with another
// process (token expiry, stored timestamps, stream ids) uses the Unix clock.

#include <chrono>
#include <cstdint>

namespace gatehouse::detail {

// Milliseconds on the steady clock: for deadlines within this process only.
inline std::int64_t steady_now_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Milliseconds since the Unix epoch.
inline std::int64_t unix_now_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Nanoseconds since the Unix epoch (trace spans' times, as OTLP writes them).
inline std::int64_t unix_now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Seconds since the Unix epoch (JWT `iat`/`exp`).
inline std::int64_t unix_now_seconds() noexcept {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace gatehouse::detail
