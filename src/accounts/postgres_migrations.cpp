#include "accounts/postgres_migrations.hpp"

#include <cstdint>

#include "common/clock.hpp"

namespace gatehouse::detail {
namespace postgres {
namespace {

// Taken by every migration step, for the length of its transaction: one instance migrates,
// the others wait for it and then find the version it recorded. The value is the ASCII of
// "gatehous"; advisory locks are per database, so other applications sharing the server but
// not the database never see it.
constexpr std::string_view migration_lock_key = "7449354444534473075";

constexpr std::string_view create_migrations_table =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY NOT NULL,"
    " applied_at_ms BIGINT NOT NULL)";

// Version 1: the SQLite schema's tables and columns. docs/protocol.md's case-insensitive
// comparison folds ASCII letters only; lower() under the "C" collation does exactly that
// whatever the database's locale (under a UTF-8 locale lower('É') would be 'é', and "Émile"
// and "émile" are different names). The unique indexes are on that expression and every
// lookup uses the same expression, so it is also what finds accounts.
constexpr std::string_view schema_v1 = R"sql(
CREATE TABLE users (
    player_id     TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    preferences   TEXT NOT NULL DEFAULT '{}',
    created_at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (lower(username COLLATE "C"));
CREATE UNIQUE INDEX users_email ON users (lower(email COLLATE "C"));
CREATE TABLE refresh_tokens (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    family_id     TEXT NOT NULL,
    player_id     TEXT NOT NULL REFERENCES users (player_id) ON DELETE CASCADE,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms    BIGINT,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_player ON refresh_tokens (player_id);
)sql";

}  // namespace

std::string migrate(lease& l, const std::vector<std::string_view>& migrations,
                    const postgres_options& options) {
    const auto known = static_cast<std::int64_t>(migrations.size());
    const auto timeout = options.migration_timeout;
    const auto fail = [&l](std::string what, const outcome& o) {
        std::string why = std::move(what);
        if (o.lost()) {
            why += ": the connection failed or the statement timed out";
        } else if (!o.sqlstate().empty()) {
            why += ": " + o.message() + " (SQLSTATE " + o.sqlstate() + ")";
        }
        (void)l.run("ROLLBACK");
        return why;
    };
    for (std::size_t round = 0; round <= migrations.size(); ++round) {
        if (auto o = l.run("BEGIN"); !o.ok()) return fail("cannot begin a transaction", o);
        // The session's statement_timeout would cut a wait for another instance's migration
        // short, and a long migration step too; this transaction has its own.
        if (auto o = l.run("SET LOCAL statement_timeout = " + std::to_string(timeout.count()));
            !o.ok()) {
            return fail("cannot set the migration timeout", o);
        }
        if (auto o = l.run("SELECT pg_advisory_xact_lock($1)", {migration_lock_key},
                           timeout + std::chrono::seconds(1));
            !o.ok()) {
            return fail("cannot take the migration lock", o);
        }
        if (auto o = l.run(create_migrations_table); !o.ok()) {
            return fail("cannot create schema_migrations", o);
        }
        const auto version = l.run("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
        if (!version.ok() || version.rows() != 1) {
            return fail("cannot read the schema version", version);
        }
        const std::int64_t current = version.int64(0, 0);
        if (current > known) {
            (void)l.run("ROLLBACK");
            return "the database has schema version " + std::to_string(current) +
                   ", newer than this build's " + std::to_string(known) +
                   ": it was written by a newer gatehouse; run that version, or another database";
        }
        if (current == known) {
            if (auto o = l.run("COMMIT"); !o.ok()) return fail("cannot commit", o);
            return {};
        }
        const std::string target = std::to_string(current + 1);
        if (auto o = l.run(migrations[static_cast<std::size_t>(current)], {},
                           timeout + std::chrono::seconds(1));
            !o.ok()) {
            return fail("migration to schema version " + target + " failed", o);
        }
        if (auto o = l.run("INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)",
                           {target, std::to_string(unix_now_ms())});
            !o.ok()) {
            return fail("cannot record schema version " + target, o);
        }
        if (auto o = l.run("COMMIT"); !o.ok()) {
            return fail("cannot commit schema version " + target, o);
        }
    }
    return "the schema version did not settle";
}

}  // namespace postgres

const std::vector<std::string_view>& postgres_migrations() {
    static const std::vector<std::string_view> steps = {postgres::schema_v1};
    return steps;
}

}  // namespace gatehouse::detail
