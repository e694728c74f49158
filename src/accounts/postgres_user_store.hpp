#pragma once
/// @file
/// The PostgreSQL `user_store` behind `open_user_store("postgresql://...")`, with the hooks
/// its tests need: opening with another migration list (a "future" build) or other timeouts,
/// reading the recorded schema history, and the URL as it may be shown to people.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "accounts/sqlite_user_store.hpp"  // sqlite_schema_step: one row of schema_migrations
#include "gatehouse/user_store.hpp"

namespace gatehouse::detail {

/// The schema migrations of this build for PostgreSQL, in order, as for
/// `sqlite_migrations()`: element `i` takes the schema from version `i` to `i + 1`; released
/// elements are never edited. Same tables, columns and meaning as the SQLite schema, and the
/// same version numbers.
/// Thread safety: immutable.
const std::vector<std::string_view>& postgres_migrations();

/// How a PostgreSQL store connects and how long it waits. The defaults are what
/// `open_user_store` uses; the URL may override `pool_size` (`?pool_size=N`) and libpq's
/// own `connect_timeout`.
struct postgres_options {
    /// Connections at most, opened on demand and kept (1-64).
    std::size_t pool_size = 4;
    /// libpq's `connect_timeout` (whole seconds, libpq's minimum is 2) when the URL sets none.
    int connect_timeout_s = 5;
    /// How long a call waits for a free connection before `errc::store_unavailable`.
    std::chrono::milliseconds acquire_timeout{5000};
    /// The longest any one statement may take, enforced on both sides: the server's
    /// `statement_timeout`, and a client-side deadline that drops the connection (a server
    /// that stopped answering, or a network that lost it, does not hang the caller).
    std::chrono::milliseconds query_timeout{5000};
    /// The same for a migration step, the wait for another instance's migration included.
    std::chrono::milliseconds migration_timeout{60000};
};

/// Opens the database a `postgresql://` or `postgres://` URL names (libpq's URI syntax; every
/// libpq parameter may be given as a query parameter, plus gatehouse's `pool_size`), migrates
/// it with `migrations` under an advisory lock (one instance migrates, the others wait and
/// then see its work) and keeps one connection of the pool.
/// @param url the URL; never repeated with its password.
/// @param migrations the steps, as for `postgres_migrations()`.
/// @param options timeouts and pool size (the URL's `pool_size` wins).
/// @param out receives the store; unchanged on error.
/// @param log receives why the database cannot be used (for an operator; without secrets).
/// @return empty, or `errc::store_unavailable` when the database cannot be reached,
///         migrated, or records a schema version above `migrations.size()`.
/// Throws `std::invalid_argument` for a URL libpq cannot parse or a bad `pool_size` (bad
/// configuration; the message never repeats the password).
/// Thread safety: reentrant; any number of stores (and processes) may share one database.
std::error_code open_postgres_user_store(std::string_view url,
                                         const std::vector<std::string_view>& migrations,
                                         const postgres_options& options,
                                         std::unique_ptr<user_store>& out, const log_sink& log);

/// The migrations recorded in the database of `store`, by ascending version.
/// @return empty, `std::errc::invalid_argument` when `store` is not a PostgreSQL store, or
///         `errc::store_unavailable`.
/// Thread safety: as any `user_store` member.
std::error_code postgres_schema_history(user_store& store, std::vector<sqlite_schema_step>& out);

/// `url` for logs and problems: user, hosts, ports and database name kept, the password (in
/// the user information or a `password` parameter) and every other parameter dropped. A URL
/// libpq cannot parse gives `postgresql://(unparsable URL)`.
/// Thread safety: reentrant.
std::string redacted_postgres_url(std::string_view url);

}  // namespace gatehouse::detail
