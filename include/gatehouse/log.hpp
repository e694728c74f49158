#pragma once
/// @file
/// `log_sink`: how the library reports what it does, without owning a logging library.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace gatehouse {

/// Severity of a log message.
enum class log_level : std::uint8_t { debug, info, warn, error };

/// Receives the library's log messages. Messages never contain tokens, passwords or keys:
/// paths and query strings that may carry them are redacted before they get here.
/// Called from any thread, concurrently: the sink synchronises if it must. Empty: silent.
using log_sink = std::function<void(log_level level, std::string_view message)>;

/// A request target (`path` with its query, if any) with any secret it may carry replaced
/// by `[redacted]`: the rest of the path after `/ws/player/` or `/ws/bot/` (matched
/// anywhere in the path, case-insensitively), and the non-empty value of any `token`,
/// `access_token` or `key` query parameter (names matched after percent-decoding,
/// case-insensitively). Everything else is kept verbatim, e.g.
/// `/ws/player/abc.def.ghi?codec=json` -> `/ws/player/[redacted]?codec=json`.
/// Thread safety: reentrant.
std::string redact_target(std::string_view path);

}  // namespace gatehouse
