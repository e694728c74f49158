#pragma once
/// @file
/// `log_sink`: how the library reports what it does, without owning a logging library.

#include <chrono>
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

/// One line of the access log: an HTTP request answered, or a WebSocket or event stream that
/// ended. Views into the gateway's buffers, valid only during the call.
///
/// HTTP: every request the gateway answers, routed or refused (an upgrade or event stream the
/// gateway refuses is an `http` record with its status), and every request its transport
/// rejects itself (malformed, too large, the header deadline, an upgrade that is not RFC
/// 6455's: route `other`; method and target empty when the request line was not read whole).
struct access_record {
    enum class kind : std::uint8_t { http, websocket, event_stream };
    kind what = kind::http;
    std::string_view method;  ///< The request's method (`GET` for upgrades and streams).
    std::string_view target;  ///< Path and query as `redact_target` leaves them.
    std::string_view route;   ///< The route pattern that answered (`/login`, `/ws/`,
                              ///< `/ws/player`, `/ws/bot`, `/sse/player`, ...); `other` when
                              ///< none did (404, or the transport refused it).
    int status = 0;           ///< HTTP status (101 for a WebSocket, 200 for an event stream).
    int close_code = 0;       ///< WebSocket: the close code sent or received; 1006 when
                              ///< the connection ended without one. 0 otherwise.
    std::chrono::microseconds duration{0};  ///< HTTP: from the whole request read to its
                                            ///< answer handed to the connection (refused by
                                            ///< the transport: from its first byte); streams:
                                            ///< from the upgrade to the end.
    std::uint64_t bytes_received = 0;       ///< Body (HTTP) or message payload bytes read.
    std::uint64_t bytes_sent = 0;           ///< Body (HTTP) or message bytes queued to send.
    std::string_view client_address;        ///< As docs/protocol.md 6.2 defines it.
    std::string_view player_id;             ///< The authenticated identity (`bot:NAME` for a
                                            ///< bot); empty if none.
};

/// `http`, `websocket` or `event_stream`.
std::string_view to_string(access_record::kind what) noexcept;

/// Receives one `access_record` per answered request and per ended stream. Called from the
/// I/O threads, concurrently; must not block. Empty: no access log, and the gateway does not
/// build records.
using access_log_sink = std::function<void(const access_record& record)>;

/// One security-relevant event of the account routes, for an audit log. Never a password, a
/// token, a hash or a key. Views valid only during the call.
struct audit_record {
    /// `login_failed` (an unknown login name or a wrong password: one event, so that the log
    /// does not tell which names exist), `lockout_started` (the attempt that locked the login
    /// name), `login_locked_out` (a login refused during a lockout), `refresh_token_reused` (a
    /// rotated refresh token presented again: its whole family is revoked).
    std::string_view event;
    std::string_view username;        ///< The login name as the request gave it; empty when
                                      ///< not applicable.
    std::string_view player_id;       ///< When known.
    std::string_view client_address;  ///< As docs/protocol.md 6.2 defines it.
    std::string_view detail;          ///< A short reason, never secret.
};

/// Receives audit records; called from the account workers and the gateway's I/O threads,
/// concurrently; must not block. Empty: none.
using audit_sink = std::function<void(const audit_record& record)>;

/// `record` as one line of text, `key=value` pairs after the word `access` (values with spaces,
/// quotes, `=`, control or non-ASCII characters quoted and escaped as JSON strings), e.g.
/// `access type=http method=GET target=/health route=/health status=200 duration_ms=0.042
/// bytes_received=0 bytes_sent=15 client_address=127.0.0.1`. Empty fields are left out.
/// Thread safety: reentrant.
std::string access_line(const access_record& record);

/// How append_json_string writes characters beyond ASCII.
enum class json_escape : std::uint8_t {
    utf8,   ///< well-formed UTF-8 as it is
    ascii,  ///< each code point as `\uXXXX` (a surrogate pair past U+FFFF): the line stays ASCII
};

/// Appends `value` as a JSON string, quotes included: `"` and `\` escaped, control characters
/// (and DEL) as `\n`, `\r`, `\t` or `\u00XX`, and invalid UTF-8 (stray or overlong bytes,
/// surrogates, past U+10FFFF, cut-off sequences) replaced by U+FFFD, one per maximal invalid
/// prefix, so that every line parses. What access_line and audit_line quote with (`ascii`), and
/// what JSON log lines may use for any value. Thread safety: reentrant.
void append_json_string(std::string& out, std::string_view value,
                        json_escape mode = json_escape::utf8);

/// `record` as one line of text in the same shape, after the word `audit`:
/// `audit event=login_failed username=alice client_address=127.0.0.1`.
/// Thread safety: reentrant.
std::string audit_line(const audit_record& record);

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
