#include "gatehouse/user_store.hpp"

#include <cstddef>
#include <stdexcept>
#include <string>

#include "accounts/postgres_user_store.hpp"
#include "accounts/sqlite_user_store.hpp"
#include "gatehouse/errc.hpp"
#include "http/text.hpp"

namespace gatehouse {
namespace {

// RFC 3986 scheme syntax, compared case-insensitively. Only a name that passes is echoed in a
// message: whatever else the operator typed may hold a password.
bool scheme_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

}  // namespace

std::error_code open_user_store(std::string_view url, std::unique_ptr<user_store>& out,
                                const log_sink& log) {
    const auto refuse = [](const std::string& why) -> std::error_code {
        throw std::invalid_argument(why);
    };
    constexpr std::string_view usage =
        "use sqlite:PATH, sqlite::memory: or postgresql://[user[:password]@]host[:port]/dbname";

    const std::size_t colon = url.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        return refuse(std::string("not a store URL; ") + std::string(usage));
    }
    const std::string scheme = detail::ascii_lower_copy(url.substr(0, colon));
    const std::string_view rest = url.substr(colon + 1);
    for (const char c : scheme) {
        if (!scheme_char(c)) return refuse(std::string("not a store URL; ") + std::string(usage));
    }

    if (scheme == "sqlite") {
        if (rest.empty()) {
            return refuse(
                "sqlite: needs a file name, e.g. sqlite:gatehouse.db, or sqlite::memory:");
        }
        // `sqlite://x` would otherwise open the file `//x`. Other tools read `sqlite:///x` as
        // relative and `sqlite:////x` as absolute; rather than guess which the operator meant,
        // ask for the one spelling PROTOCOL.md documents.
        if (rest.substr(0, 2) == "//") {
            return refuse(
                "sqlite: write sqlite:PATH (e.g. sqlite:/var/lib/gatehouse/users.db), "
                "not sqlite://...");
        }
        // `sqlite::memory:` leaves ":memory:", SQLite's own name for a private in-memory database.
        return detail::open_sqlite_user_store(rest, detail::sqlite_migrations(), out, log);
    }
    if (scheme == "postgresql" || scheme == "postgres") {
        // libpq takes either scheme, in lower case only.
        const std::string normalised = "postgresql:" + std::string(rest);
        return detail::open_postgres_user_store(normalised, detail::postgres_migrations(), {}, out,
                                                log);
    }
    return refuse("unsupported store scheme '" + scheme + "'; " + std::string(usage));
}

std::error_code user_store::prune_refresh_tokens(std::int64_t /*now_ms*/, std::size_t& removed) {
    removed = 0;
    return {};
}

std::error_code user_store::ping() { return {}; }

int user_store_schema_version() noexcept {
    return static_cast<int>(detail::sqlite_migrations().size());
}

}  // namespace gatehouse
