#pragma once
/// @file
/// `gatehouse::errc`: the library's runtime errors, as `std::error_code`s.
///
/// Thread safety: the category is an immutable singleton, safe to use from any thread.

#include <system_error>

namespace gatehouse {

/// Runtime errors of the library (codec errors proper are `client::status`, in
/// `codec_category()`).
enum class errc {
    unknown_codec = 1,              ///< No codec is registered under that name.
    codec_already_registered = 2,   ///< A codec with that name is registered already.
    invalid_codec_name = 3,         ///< A codec name outside 1-32 of `[a-z0-9_.-]`.
    payload_not_representable = 4,  ///< The payload cannot be carried in the target format.

    // Authentication (each is an HTTP 401 at upgrade).
    invalid_token = 5,            ///< Not a well-formed JWT, or a required claim is missing.
    token_algorithm_refused = 6,  ///< `alg` is not HS256 (`none` included).
    token_bad_signature = 7,      ///< The signature does not verify with the key.
    token_expired = 8,            ///< `exp` is not in the future.
    token_issued_in_future = 9,   ///< `iat` is later than now plus the allowed clock skew.
    unknown_bot_key = 10,         ///< No configured bot key matches.

    // Command bus and routing.
    bus_unavailable = 11,  ///< The bus did not accept the command; the client may retry.
    rate_limited = 12,     ///< Over the per-connection or per-player command rate.
    invalid_update = 13,  ///< A published update message is malformed (docs/protocol.md section 5).
    shutting_down = 14,   ///< The gateway is stopping and takes no new work.

    // Configuration and start-up.
    invalid_listen_address = 15,  ///< Not `HOST:PORT` (IPv4, `[v6]` or a name that resolves).
    tls_setup_failed = 16,        ///< The certificate or key could not be loaded.

    // Accounts (docs/protocol.md section 2).
    username_taken = 17,         ///< Another account has that username (case-insensitively).
    email_taken = 18,            ///< Another account has that email (case-insensitively).
    user_not_found = 19,         ///< No account matches.
    invalid_refresh_token = 20,  ///< Unknown, expired, revoked or already-rotated refresh token.
    refresh_token_reused = 21,   ///< An already-rotated token was presented: family revoked.
    store_unavailable = 22,      ///< The user store failed (I/O, corruption, busy).
    unsupported_store = 23,      ///< No longer returned: open_user_store throws for such URLs.
};

/// The category of `errc` values; its name is `"gatehouse"`.
const std::error_category& gatehouse_category() noexcept;

/// Makes an error code of `e` in `gatehouse_category()`.
std::error_code make_error_code(errc e) noexcept;

}  // namespace gatehouse

template <>
struct std::is_error_code_enum<gatehouse::errc> : std::true_type {};
