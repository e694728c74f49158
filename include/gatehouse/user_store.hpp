#pragma once
/// @file
/// `user_store`: where accounts, their settings and their refresh tokens live (docs/protocol.md
/// section 2). SQLite (`open_user_store("sqlite:PATH")`) and PostgreSQL
/// (`open_user_store("postgresql://...")`) are built in; any other store implements the same
/// interface.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "gatehouse/log.hpp"

namespace gatehouse {

/// One account.
struct user_record {
    std::string player_id;           ///< Opaque, non-empty, unique; the JWT `sub`.
    std::string username;            ///< As registered (case kept; unique case-insensitively).
    std::string email;               ///< As registered (case kept; unique case-insensitively).
    std::string password_hash;       ///< An encoded Argon2id hash (`hash_password()`).
    std::string display_name;        ///< Empty means "the username".
    std::string preferences = "{}";  ///< A JSON object, as text.
    std::int64_t created_at_ms = 0;  ///< Unix milliseconds.
};

/// One refresh token as stored: never the token itself, only its hash.
struct refresh_token_record {
    std::string token_hash;  ///< `hash_refresh_token(token)`.
    std::string family_id;   ///< Every token rotated from one login shares it.
    std::string player_id;
    std::int64_t expires_at_ms = 0;  ///< Unix milliseconds.
};

/// Accounts and refresh tokens.
///
/// Every call is synchronous and may block (disk, network): call it from worker threads, never
/// from a gateway I/O thread. Errors: the `errc` values named on each member, or
/// `errc::store_unavailable` when the storage itself failed (the details are the store's to
/// log, without secrets).
///
/// Thread safety: every member may be called from several threads concurrently.
class user_store {
public:
    virtual ~user_store() = default;

    /// Adds `user`, generating `player_id` when empty and `created_at_ms` when 0 (both written
    /// back). `errc::username_taken` / `errc::email_taken` when another account has that
    /// username / email, compared case-insensitively (ASCII); the username is checked first.
    /// A caller-chosen `player_id` that is already in use: `std::errc::invalid_argument`.
    /// On any error `user` is left as it was.
    virtual std::error_code create_user(user_record& user) = 0;

    /// The account whose username or email equals `login` case-insensitively (ASCII); a
    /// username match wins over another account's email match. `errc::user_not_found` when
    /// none; `out` is left as it was on any error.
    virtual std::error_code find_user_by_login(std::string_view login, user_record& out) = 0;

    /// The account with that player id; `errc::user_not_found` when none (`out` unchanged).
    virtual std::error_code find_user(std::string_view player_id, user_record& out) = 0;

    /// Replaces the display name and preferences (JSON object text, validated by the caller);
    /// `errc::user_not_found` when none.
    virtual std::error_code update_settings(std::string_view player_id,
                                            std::string_view display_name,
                                            std::string_view preferences) = 0;

    /// Replaces the password hash and revokes every refresh token of the player, in one
    /// transaction; `errc::user_not_found` when none.
    virtual std::error_code update_password(std::string_view player_id,
                                            std::string_view password_hash) = 0;

    /// Stores a new refresh token (a new family at login). `errc::user_not_found` when
    /// `token.player_id` names no account; `std::errc::invalid_argument` when that token hash
    /// is already stored.
    virtual std::error_code add_refresh_token(const refresh_token_record& token) = 0;

    /// Rotation, in one transaction: when `presented_hash` names a live token (not used, not
    /// revoked, `now_ms` before its expiry), marks it used and stores `next` in the same family
    /// for the same player (`next.family_id` and `next.player_id` are filled from the old
    /// token and written back). When it names a token already used, revokes the whole family
    /// and answers `errc::refresh_token_reused` (a stolen token was replayed, or the client
    /// raced itself: either way the session ends), even when it has expired since. Unknown,
    /// expired or revoked (a used token of a revoked family included):
    /// `errc::invalid_refresh_token`. A `next.token_hash` already stored:
    /// `std::errc::invalid_argument`. On `refresh_token_reused`, `next.family_id` and
    /// `next.player_id` name the revoked family and its player (for a security log); on other
    /// errors `next` is unchanged. Nothing is stored on error, except the revocation that
    /// `refresh_token_reused` announces.
    virtual std::error_code rotate_refresh_token(std::string_view presented_hash,
                                                 std::int64_t now_ms,
                                                 refresh_token_record& next) = 0;

    /// Logout: revokes the family of a live token; `errc::invalid_refresh_token` when the
    /// token is unknown, expired, used or revoked.
    virtual std::error_code revoke_refresh_family(std::string_view presented_hash,
                                                  std::int64_t now_ms) = 0;

    /// Revokes every refresh token of the player (none, for an unknown player: not an error).
    virtual std::error_code revoke_player_tokens(std::string_view player_id) = 0;

    /// Deletes the refresh tokens of families that can never produce a live token again:
    /// every token of the family expired at `now_ms`, or every one revoked. A used token of a
    /// family with a live token is kept, so that replaying it still revokes the family
    /// (`rotate_refresh_token`); a pruned token is simply unknown (`invalid_refresh_token`).
    /// At most 10000 families' tokens per call; `removed` says how many tokens went. The
    /// accounts layer calls it periodically (docs/accounts.md). The default does nothing
    /// (`removed` = 0), for stores that expire tokens by themselves.
    virtual std::error_code prune_refresh_tokens(std::int64_t now_ms, std::size_t& removed);

    /// Whether the store answers now, for health checks (`gatehouse-server`'s `/ready`): one
    /// cheap round trip, within the store's own deadlines (PostgreSQL: `SELECT 1` on a pooled
    /// connection); `errc::store_unavailable` when it does not answer. It may block that long,
    /// so call it from a thread of its own, never an I/O thread. The default succeeds, for
    /// stores with nothing to reach (SQLite: a local file).
    virtual std::error_code ping();
};

/// Opens the store a URL names (the reference server's `--db`):
/// - `sqlite:PATH` (created when missing; PATH is a plain file name, relative to the working
///   directory unless absolute) or `sqlite::memory:` (one private in-memory database). Files
///   are used in WAL journal mode.
/// - `postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]` (or
///   `postgres://`): libpq's URI syntax, every libpq parameter allowed, plus `pool_size=N`
///   (1-64, default 4 connections). The database must exist; the schema is created in it.
///   Unless the URL sets `connect_timeout`, connecting gives up after 5 seconds, and every
///   statement after 5 seconds (on the server and on the client side), so an unreachable
///   database gives errors, not hangs.
///
/// The scheme is case-insensitive. The schema is created or migrated to the current version
/// at open, one transaction per version step, and each step recorded in the database (table
/// `schema_migrations`); on PostgreSQL under an advisory lock, so that of several instances
/// starting at once one migrates and the others wait for it.
/// Throws `std::invalid_argument` for a URL that is bad configuration: another scheme, or a
/// malformed URL (no scheme, an empty PATH, `sqlite://...`, whose meaning other tools disagree
/// on, a URL libpq cannot parse, a `pool_size` outside 1-64); its message says why and never
/// repeats a password.
/// Errors: `errc::store_unavailable` when the database cannot be opened, reached or
/// migrated, or was written by a newer gatehouse (a schema version above this build's); why
/// goes to `log` at error level, without secrets. `out` is set only on success.
/// Thread safety: reentrant; several stores, in one or several processes, may share a file or
/// a database.
std::error_code open_user_store(std::string_view url, std::unique_ptr<user_store>& out,
                                const log_sink& log = {});

/// Checks a store URL as `open_user_store` does before opening anything (scheme, syntax,
/// PostgreSQL's parameters and `pool_size`), for a start-up check that must not connect.
/// Throws `std::invalid_argument` with `open_user_store`'s message for a bad URL.
void check_user_store_url(std::string_view url);

/// The schema version this build creates and migrates to.
int user_store_schema_version() noexcept;

}  // namespace gatehouse
