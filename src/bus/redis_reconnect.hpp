#pragma once
// What the Redis command producer and update subscriber share about reconnecting: the backoff
// between attempts (common to every bus) and how a failed connection is described in a log line.

#include <string>
#include <system_error>

#include "common/backoff.hpp"
#include "redis/connection.hpp"

namespace gatehouse::detail::redis {

/// The reconnect backoff (src/common/backoff.hpp).
using detail::backoff;

/// Why `c` failed, for a log line: the error and Redis's own message when it gave one.
inline std::string describe(const connection& c, std::error_code ec) {
    const auto& detail = c.last_error();
    return detail.empty() ? ec.message() : ec.message() + ": " + detail;
}

}  // namespace gatehouse::detail::redis
