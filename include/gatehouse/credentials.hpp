#pragma once
/// @file
/// Credentials at rest: Argon2id password hashes and opaque refresh tokens (docs/protocol.md
/// section 2). Both are slow or secret on purpose; call the hashing functions from worker
/// threads, never from a gateway I/O thread.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace gatehouse {

/// Argon2id cost. The defaults are libsodium's "interactive" limits (2 passes, 64 MiB): about
/// 0.1 s per hash on a server core. Lower them only for tests.
struct password_hash_cost {
    std::uint64_t passes = 2;                          ///< crypto_pwhash opslimit.
    std::size_t memory_bytes = std::size_t{64} << 20;  ///< crypto_pwhash memlimit.
};

/// Whether `hash_password` accepts `cost` (libsodium's Argon2id limits, as documented there),
/// without hashing anything: a start-up check that allocates nothing, however large the cost.
/// Thread safety: pure function.
bool valid_password_hash_cost(const password_hash_cost& cost) noexcept;

/// Hashes `password` with Argon2id and a random salt into `out`, an encoded string
/// (`$argon2id$v=19$m=...,t=...,p=1$salt$hash`) that carries its own parameters.
/// Errors: `std::errc::invalid_argument` for costs outside libsodium's Argon2id limits
/// (`crypto_pwhash_argon2id_OPSLIMIT_MIN/MAX`, `..._MEMLIMIT_MIN/MAX`: at least 1 pass and
/// 8 KiB), `std::errc::not_enough_memory` when the memory could not be had; `out` is then
/// unchanged.
/// Thread safety: may run on several threads at once.
std::error_code hash_password(std::string_view password, std::string& out,
                              const password_hash_cost& cost = {});

/// True when `password` matches `encoded` (as `hash_password` wrote it). False for any
/// malformed `encoded`. Takes as long as hashing did.
/// Thread safety: may run on several threads at once.
bool verify_password(std::string_view encoded, std::string_view password) noexcept;

/// A hash of a password nobody knows (32 random bytes, forgotten at once) made with `cost`:
/// verifying a login for an unknown user against it costs what a wrong password costs, so
/// timing does not tell whether a username exists. `accounts` makes one at construction.
/// Errors: as `hash_password`; `out` is then unchanged.
/// Thread safety: may run on several threads at once.
std::error_code make_decoy_password_hash(std::string& out, const password_hash_cost& cost = {});

/// A new refresh token: 32 random bytes from libsodium's CSPRNG as 43 characters of base64url
/// (no padding). Like libsodium itself, aborts the process if no randomness can be had.
/// Thread safety: may run on several threads at once.
std::string make_refresh_token();

/// What a store keeps of a refresh token: its SHA-256, 64 lowercase hex digits. A token is
/// random with 256 bits, so a fast hash suffices (no salt, no stretching), and lookups by hash
/// stay exact.
/// Thread safety: pure function.
std::string hash_refresh_token(std::string_view token);

}  // namespace gatehouse
