#pragma once
/// @file
/// HS256 JSON Web Tokens: the access tokens of docs/protocol.md section 2.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace gatehouse {

/// The claims gatehouse reads and writes.
struct jwt_claims {
    std::string sub;                 ///< The player id; non-empty.
    std::int64_t iat = 0;            ///< Issued at, Unix seconds.
    std::int64_t exp = 0;            ///< Expires at, Unix seconds.
    std::vector<std::string> roles;  ///< Optional `roles` claim.
};

/// How strictly `verify_jwt` treats the clock.
struct jwt_verify_options {
    /// `iat` may be this far after `now` (clocks of minting services drift); `exp` gets no
    /// leeway.
    std::chrono::seconds max_clock_skew{60};
};

/// Verifies an HS256 token with `secret` at time `now_unix_s` and fills `out`.
///
/// Accepts only `alg` HS256 (the header's `typ`, when present, must be `JWT`, in any case;
/// a header with `crit` is refused); compares signatures in constant time; requires `sub`
/// (non-empty string), `iat` and `exp` (integers that fit `std::int64_t`; `1.0`, `1e9` or
/// `"1"` do not), and `roles`, when present, to be an array of strings. An `nbf` claim, when
/// present, must be such an integer too and is honoured like `iat`. Segments are strict
/// base64url (RFC 7515): no `=` padding, nothing outside the alphabet, unused trailing bits
/// zero. A token longer than 8 KiB is refused unread. An empty `secret` verifies nothing
/// (`errc::token_bad_signature`), as anyone could sign with it.
/// Errors: `errc::invalid_token` (malformed, too long, missing or mistyped claims),
/// `errc::token_algorithm_refused` (`alg` missing or not exactly `HS256`, `none` included),
/// `errc::token_bad_signature`, `errc::token_expired` (`exp <= now`),
/// `errc::token_issued_in_future` (`iat` or `nbf` later than `now + max_clock_skew`). The
/// header is checked first, then the signature, and only then are the claims parsed.
/// `out` is written only on success. Never throws on bad input.
/// Thread safety: reentrant.
std::error_code verify_jwt(std::string_view token, std::string_view secret, std::int64_t now_unix_s,
                           jwt_claims& out, const jwt_verify_options& options = {});

/// Signs `claims` as an HS256 token (header `{"alg":"HS256","typ":"JWT"}`; `roles` is left
/// out when empty). Does not check the claims: an empty `sub` signs, and `verify_jwt` refuses
/// it. Returns an empty string when `sub` or a role is not valid UTF-8 (JSON cannot carry
/// it). An empty `secret` signs too, but no `verify_jwt` accepts the result.
/// Thread safety: reentrant.
std::string sign_jwt(const jwt_claims& claims, std::string_view secret);

/// The current time in Unix seconds (system clock).
std::int64_t unix_now_seconds() noexcept;

}  // namespace gatehouse
