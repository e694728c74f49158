#pragma once
// Migrating a SQLite database to this build's schema, one recorded step per transaction.

#include <sqlite3.h>

#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::detail::sqlite {

// Migrates `db` to `migrations.size()`, one step per transaction. Empty on success, else why.
std::string migrate(sqlite3* db, const std::vector<std::string_view>& migrations);

}  // namespace gatehouse::detail::sqlite
