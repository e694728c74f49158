#pragma once
// A PostgreSQL URL read for libpq: the connection parameters, gatehouse's own `pool_size`, the
// password kept aside for scrubbing messages, and the URL as people may see it.

#include <string>
#include <string_view>
#include <vector>

#include "accounts/postgres_user_store.hpp"

namespace gatehouse::detail::postgres {

// What connecting needs, parsed once from the URL.
struct conninfo {
    std::vector<std::string> keys;
    std::vector<std::string> values;
    std::string password;  // for scrubbing messages; empty when none was given
    std::string shown;     // the redacted URL
};

// Parses `url` for libpq into `out`, and its `pool_size` into `options`. Empty on success,
// else why (without secrets).
std::string parse_url(std::string_view url, postgres_options& options, conninfo& out);

}  // namespace gatehouse::detail::postgres
