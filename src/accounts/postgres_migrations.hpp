#pragma once
// The PostgreSQL schema's migrations, and applying them under an advisory lock.

#include <string>
#include <string_view>
#include <vector>

#include "accounts/postgres_pool.hpp"

namespace gatehouse::detail::postgres {

// Migrates the database of `l` to `migrations.size()`, one step per transaction, each under
// the advisory lock (one instance migrates, the others wait and then see its work). Empty on
// success, else why (without secrets).
std::string migrate(connection_pool::lease& l, const std::vector<std::string_view>& migrations,
                    const postgres_options& options);

}  // namespace gatehouse::detail::postgres
