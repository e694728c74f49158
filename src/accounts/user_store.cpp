#include "gatehouse/user_store.hpp"

#include <cstddef>
#include <stdexcept>
#include <string>

#include "accounts/postgres_url.hpp"
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

// Where a store URL leads, checked: the scheme, lower-cased, and what follows its colon.
// Throws std::invalid_argument for bad configuration (see open_user_store).
struct store_target {
    std::string scheme;
    std::string_view rest;
};

store_target checked_target(std::string_view url) {
    const auto refuse = [](const std::string& why) { throw std::invalid_argument(why); };
    constexpr std::string_view usage =
        "use sqlite:PATH, sqlite::memory: or postgresql://[user[:password]@]host[:port]/dbname";

    const std::size_t colon = url.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        refuse(std::string("not a store URL; ") + std::string(usage));
    }
    store_target t{detail::ascii_lower_copy(url.substr(0, colon)), url.substr(colon + 1)};
    for (const char c : t.scheme) {
        if (!scheme_char(c)) refuse(std::string("not a store URL; ") + std::string(usage));
    }
    if (t.scheme == "sqlite") {
        if (t.rest.empty()) {
            refuse("sqlite: needs a file name, e.g. sqlite:gatehouse.db, or sqlite::memory:");
        }
        // `sqlite://x` would otherwise open the file `//x`. Other tools read `sqlite:///x` as
        // relative and `sqlite:////x` as absolute; rather than guess which the operator meant,
        // ask for the one spelling docs/protocol.md documents.
        if (t.rest.substr(0, 2) == "//") {
            refuse(
                "sqlite: write sqlite:PATH (e.g. sqlite:/var/lib/gatehouse/users.db), "
                "not sqlite://...");
        }
        return t;
    }
    if (t.scheme == "postgresql" || t.scheme == "postgres") return t;
    refuse("unsupported store scheme '" + t.scheme + "'; " + std::string(usage));
    return t;
}

}  // namespace

void check_user_store_url(std::string_view url) {
    const store_target t = checked_target(url);
    if (t.scheme == "sqlite") return;
    detail::postgres_options options;
    detail::postgres::conninfo info;
    if (auto why = detail::postgres::parse_url("postgresql:" + std::string(t.rest), options, info);
        !why.empty()) {
        throw std::invalid_argument("postgresql: " + why);
    }
}

std::error_code open_user_store(std::string_view url, std::unique_ptr<user_store>& out,
                                const log_sink& log) {
    const store_target t = checked_target(url);
    if (t.scheme == "sqlite") {
        // `sqlite::memory:` leaves ":memory:", SQLite's own name for a private in-memory database.
        return detail::open_sqlite_user_store(t.rest, detail::sqlite_migrations(), out, log);
    }
    // libpq takes either scheme, in lower case only.
    const std::string normalised = "postgresql:" + std::string(t.rest);
    return detail::open_postgres_user_store(normalised, detail::postgres_migrations(), {}, out,
                                            log);
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
