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

/// A request target (`path` with its query, if any) with anything that may be a secret
/// replaced by `[redacted]`. The rule keeps what is known to be harmless rather than hunting
/// for known secret names, so no spelling slips past it. Path segments are read percent-decoded
/// (repeatedly), case-folded, with `\` as `/`:
/// - from the first segment that begins with `ws` (`/ws/`, `/WS/`, `/%77s/`, `/wss/`), the
///   rest of the path is redacted except `player` or `bot` right after it
///   (`/ws/player/[redacted]`, `/ws//player/x` -> `/ws/[redacted]`);
/// - a segment that decodes to text with a `/` in it (`ws%2Fplayer%2F...`) is redacted with
///   the rest of the path;
/// - any other segment is redacted when it looks like a credential: it contains `eyJ` (every
///   JWT does), or has at least 32 characters, or at least 20 with letters and digits.
///
/// In the query, names and values are read as `http_request::query_param` reads them; every
/// non-empty value is redacted unless its name is `codec` or `resume` and it is a short word
/// (at most 64 of `A-Z a-z 0-9 _ . : -`, not credential-like); a parameter without `=` is
/// redacted unless it is one of those names; a name that looks like a credential is redacted
/// too. Empty values are kept (`token=` says the token was missing). Examples:
/// `/ws/player/abc.def.ghi?codec=json` -> `/ws/player/[redacted]?codec=json`,
/// `/sse/player?jwt=abc` -> `/sse/player?jwt=[redacted]`.
/// Thread safety: reentrant.
std::string redact_target(std::string_view path);

}  // namespace gatehouse
