#pragma once
/// @file
/// The SQLite `user_store` behind `open_user_store("sqlite:...")`, with the hooks its tests
/// need: opening with another migration list (a "future" build) and reading the recorded
/// schema history.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "gatehouse/user_store.hpp"

namespace gatehouse::detail {

/// The schema migrations of this build, in order: element `i` takes the schema from version
/// `i` to version `i + 1` (version 0 is an empty database). Each is constant SQL, run in one
/// transaction with the row recording it. A new schema version is one more element at the end;
/// released elements are never edited.
/// Thread safety: immutable.
const std::vector<std::string_view>& sqlite_migrations();

/// Opens (creating when missing) the SQLite database at `path` (`:memory:` for a private
/// in-memory one) and migrates it with `migrations` (normally `sqlite_migrations()`).
/// @param path a file name, taken literally (no URI interpretation); must not be empty.
/// @param migrations the steps, as for `sqlite_migrations()`.
/// @param out receives the store; unchanged on error.
/// @param log receives why, on error (for an operator; without secrets).
/// @return empty, or `errc::store_unavailable` when the database cannot be opened, is not a
///         database, cannot be migrated, or records a version above `migrations.size()`.
/// Thread safety: reentrant; several stores (and processes) may open one file at once.
std::error_code open_sqlite_user_store(std::string_view path,
                                       const std::vector<std::string_view>& migrations,
                                       std::unique_ptr<user_store>& out, const log_sink& log);

/// One row of the `schema_migrations` table.
struct sqlite_schema_step {
    int version = 0;                 ///< The version this step migrated to.
    std::int64_t applied_at_ms = 0;  ///< When, in Unix milliseconds.
};

/// The migrations recorded in the database of `store`, by ascending version.
/// @return empty, `std::errc::invalid_argument` when `store` is not a SQLite store, or
///         `errc::store_unavailable`.
/// Thread safety: as any `user_store` member.
std::error_code sqlite_schema_history(user_store& store, std::vector<sqlite_schema_step>& out);

}  // namespace gatehouse::detail
