#include "accounts/sqlite_migrations.hpp"

#include <cstdint>

#include "accounts/sqlite_statement.hpp"
#include "accounts/sqlite_user_store.hpp"
#include "common/clock.hpp"

namespace gatehouse::detail {
namespace sqlite {
namespace {

// Bootstrapped before any migration, outside the numbered steps, because the steps are
// counted in it.
//
// The version lives in this table rather than in PRAGMA user_version: a table records when
// each step ran (what an operator wants to know after an upgrade), cannot be overwritten by
// another tool that also uses user_version, and is what a PostgreSQL store will do too (it has
// no user_version), so both stores share one mechanism and one way to inspect it.
constexpr std::string_view create_migrations_table =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY NOT NULL,"
    " applied_at_ms INTEGER NOT NULL)";

// Version 1. NOCASE folds ASCII letters only, which is exactly docs/protocol.md's case-insensitive
// comparison of usernames and emails. It is declared on the columns, so plain `username = ?`
// compares (and uses the unique index) case-insensitively, and on the indexes, so the
// uniqueness does not depend on the column declaration alone. Refresh tokens hang off their
// player (a deleted account takes its tokens along) and are found by hash, by family (reuse
// detection and logout revoke a family) and by player (password change revokes them all).
constexpr std::string_view schema_v1 = R"sql(
CREATE TABLE users (
    player_id     TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL COLLATE NOCASE,
    email         TEXT NOT NULL COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    preferences   TEXT NOT NULL DEFAULT '{}',
    created_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (username COLLATE NOCASE);
CREATE UNIQUE INDEX users_email ON users (email COLLATE NOCASE);
CREATE TABLE refresh_tokens (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    family_id     TEXT NOT NULL,
    player_id     TEXT NOT NULL REFERENCES users (player_id) ON DELETE CASCADE,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER,
    revoked       INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_player ON refresh_tokens (player_id);
)sql";

}  // namespace

std::string migrate(sqlite3* db, const std::vector<std::string_view>& migrations) {
    const auto known = static_cast<std::int64_t>(migrations.size());
    // Each round either returns or records one more version, so size() + 1 rounds suffice.
    for (std::size_t round = 0; round <= migrations.size(); ++round) {
        // IMMEDIATE, and the version read inside the transaction: when two processes open a
        // new database at once, the second waits and then sees the first one's work.
        if (exec(db, "BEGIN IMMEDIATE") != SQLITE_OK) {
            return "cannot lock the database: " + errmsg(db);
        }
        std::string why;
        std::int64_t current = 0;
        if (exec(db, create_migrations_table) != SQLITE_OK) {
            why = "cannot create schema_migrations: " + errmsg(db);
        } else {
            sqlite3_stmt* raw = nullptr;
            sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1,
                               &raw, nullptr);
            const stmt_handle s(raw);
            if (s == nullptr || sqlite3_step(s.get()) != SQLITE_ROW) {
                why = "cannot read the schema version: " + errmsg(db);
            } else {
                current = sqlite3_column_int64(s.get(), 0);
            }
        }
        if (why.empty() && current > known) {
            why = "the database has schema version " + std::to_string(current) +
                  ", newer than this build's " + std::to_string(known) +
                  ": it was written by a newer gatehouse; run that version, or another database";
        }
        if (!why.empty()) {
            exec(db, "ROLLBACK");
            return why;
        }
        if (current == known) {
            // Keeps schema_migrations when it was just created (an empty migration list).
            if (exec(db, "COMMIT") != SQLITE_OK) return "cannot commit: " + errmsg(db);
            return {};
        }

        const std::int64_t target = current + 1;
        if (exec(db, migrations[static_cast<std::size_t>(current)]) != SQLITE_OK) {
            why =
                "migration to schema version " + std::to_string(target) + " failed: " + errmsg(db);
        } else {
            sqlite3_stmt* raw = nullptr;
            sqlite3_prepare_v2(db,
                               "INSERT INTO schema_migrations (version, applied_at_ms)"
                               " VALUES (?1, ?2)",
                               -1, &raw, nullptr);
            const stmt_handle s(raw);
            if (s == nullptr || sqlite3_bind_int64(s.get(), 1, target) != SQLITE_OK ||
                sqlite3_bind_int64(s.get(), 2, unix_now_ms()) != SQLITE_OK ||
                sqlite3_step(s.get()) != SQLITE_DONE) {
                why = "cannot record schema version " + std::to_string(target) + ": " + errmsg(db);
            }
        }
        if (why.empty() && exec(db, "COMMIT") != SQLITE_OK) {
            why = "cannot commit schema version " + std::to_string(target) + ": " + errmsg(db);
        }
        if (!why.empty()) {
            exec(db, "ROLLBACK");
            return why;
        }
    }
    return "the schema version did not settle";
}

}  // namespace sqlite

const std::vector<std::string_view>& sqlite_migrations() {
    static const std::vector<std::string_view> steps = {sqlite::schema_v1};
    return steps;
}

}  // namespace gatehouse::detail
