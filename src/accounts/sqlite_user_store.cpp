#include "accounts/sqlite_user_store.hpp"

#include <sodium.h>
#include <sqlite3.h>

#include <array>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gatehouse/errc.hpp"

namespace gatehouse::detail {
namespace {

// Long enough to ride out another process's write transaction (ours last milliseconds), short
// enough that a wedged database surfaces as store_unavailable instead of a hung worker.
constexpr int busy_timeout_ms = 5000;

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

// Version 1. NOCASE folds ASCII letters only, which is exactly PROTOCOL.md's case-insensitive
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

// SQLITE_TRANSIENT without its C-style cast (-Wold-style-cast): SQLite copies bound text, so
// a binding can never outlive the caller's string_view. The copies are small (preferences,
// the largest value, are capped at 16 KiB by the HTTP layer).
const sqlite3_destructor_type copy_text =
    // NOLINTNEXTLINE(performance-no-int-to-ptr): SQLite's sentinel is this very cast.
    reinterpret_cast<sqlite3_destructor_type>(static_cast<std::intptr_t>(-1));

std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct db_closer {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using db_handle = std::unique_ptr<sqlite3, db_closer>;

struct stmt_finalizer {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using stmt_handle = std::unique_ptr<sqlite3_stmt, stmt_finalizer>;

// One use of a prepared statement: binds, steps, reads columns, and leaves the statement reset
// and unbound for the next user whatever happened. Every value reaches SQL through a bound
// parameter; no SQL text is ever built from data.
class query {
public:
    explicit query(sqlite3_stmt* s) noexcept : s_(s) {}
    ~query() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    query(const query&) = delete;
    query& operator=(const query&) = delete;

    query& bind(int index, std::string_view v) noexcept {
        if (rc_ != SQLITE_OK) return *this;
        if (v.size() > static_cast<std::size_t>(INT_MAX)) {
            rc_ = SQLITE_TOOBIG;
            return *this;
        }
        // An empty view may have a null data(), which sqlite3_bind_text would bind as NULL,
        // not as ''.
        rc_ = sqlite3_bind_text(s_, index, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                                copy_text);
        return *this;
    }
    query& bind(int index, std::int64_t v) noexcept {
        if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(s_, index, v);
        return *this;
    }

    /// SQLITE_ROW, SQLITE_DONE, or an error code (a failed bind included).
    int step() noexcept { return rc_ == SQLITE_OK ? sqlite3_step(s_) : rc_; }

    std::string text(int column) const {
        const auto* p = sqlite3_column_text(s_, column);
        if (p == nullptr) return {};
        const int n = sqlite3_column_bytes(s_, column);
        return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    }
    std::int64_t int64(int column) const noexcept { return sqlite3_column_int64(s_, column); }

private:
    sqlite3_stmt* s_;
    int rc_ = SQLITE_OK;
};

bool is_constraint(int rc) noexcept { return (rc & 0xFF) == SQLITE_CONSTRAINT; }

std::error_code unavailable() { return make_error_code(errc::store_unavailable); }

// The statements the store runs, prepared once at open.
enum class sql : std::size_t {
    begin,
    commit,
    rollback,
    user_by_username,
    user_by_email,
    user_by_id,
    insert_user,
    update_settings,
    update_password,
    revoke_player,
    insert_token,
    token_by_hash,
    mark_used,
    revoke_family,
    prune,
    history,
    count
};

constexpr std::array<std::string_view, static_cast<std::size_t>(sql::count)> sql_text = {
    // Write transactions take the write lock up front. A deferred transaction that reads and
    // then writes fails with SQLITE_BUSY at its first write when another connection (another
    // process on the same file) wrote in between, and busy_timeout does not retry that; with
    // IMMEDIATE the busy handler waits instead, and every check-then-write sequence below is
    // atomic across processes, not only across our threads.
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SELECT player_id, username, email, password_hash, display_name, preferences, created_at_ms"
    " FROM users WHERE username = ?1",
    "SELECT player_id, username, email, password_hash, display_name, preferences, created_at_ms"
    " FROM users WHERE email = ?1",
    "SELECT player_id, username, email, password_hash, display_name, preferences, created_at_ms"
    " FROM users WHERE player_id = ?1",
    "INSERT INTO users (player_id, username, email, password_hash, display_name, preferences,"
    " created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "UPDATE users SET display_name = ?2, preferences = ?3 WHERE player_id = ?1",
    "UPDATE users SET password_hash = ?2 WHERE player_id = ?1",
    "UPDATE refresh_tokens SET revoked = 1 WHERE player_id = ?1 AND revoked = 0",
    "INSERT INTO refresh_tokens (token_hash, family_id, player_id, expires_at_ms, used_at_ms,"
    " revoked, created_at_ms) VALUES (?1, ?2, ?3, ?4, NULL, 0, ?5)",
    "SELECT family_id, player_id, expires_at_ms, used_at_ms IS NOT NULL, revoked"
    " FROM refresh_tokens WHERE token_hash = ?1",
    "UPDATE refresh_tokens SET used_at_ms = ?2 WHERE token_hash = ?1",
    "UPDATE refresh_tokens SET revoked = 1 WHERE family_id = ?1 AND revoked = 0",
    // The PostgreSQL store's rule (see there); min(revoked) = 1 is "all revoked".
    "DELETE FROM refresh_tokens WHERE family_id IN ("
    " SELECT family_id FROM refresh_tokens GROUP BY family_id"
    " HAVING max(expires_at_ms) <= ?1 OR min(revoked) = 1 LIMIT 10000)",
    "SELECT version, applied_at_ms FROM schema_migrations ORDER BY version",
};

// A token as rotation and logout see it.
struct token_state {
    std::string family_id;
    std::string player_id;
    std::int64_t expires_at_ms = 0;
    bool used = false;
    bool revoked = false;
};

// 96 random bits: unguessable and, at any realistic number of accounts, collision-free (a
// collision is still detected and retried). The prefix makes ids recognisable in logs.
std::string new_player_id() {
    constexpr std::size_t id_bytes = 12;
    std::array<unsigned char, id_bytes> raw{};
    std::array<char, 2 * id_bytes + 1> hex{};
    randombytes_buf(raw.data(), raw.size());
    sodium_bin2hex(hex.data(), hex.size(), raw.data(), raw.size());
    return "p_" + std::string(hex.data(), 2 * id_bytes);
}

// One connection behind one mutex. Each call is a few indexed statements (microseconds; the
// slow part of a login, Argon2id, runs outside the store), and SQLite admits one writer at a
// time anyway, so a connection pool would buy little. One connection keeps the prepared
// statements trivially shareable, and it is the only option for `:memory:`, where every
// connection would see a different database. Other processes on the same file are kept out by
// SQLite's own locks and waited for with busy_timeout.
class sqlite_user_store final : public user_store {
public:
    explicit sqlite_user_store(db_handle db) : db_(std::move(db)) {}

    // Empty on success, otherwise why.
    std::string prepare() {
        for (std::size_t i = 0; i < sql_text.size(); ++i) {
            sqlite3_stmt* s = nullptr;
            const int rc = sqlite3_prepare_v3(db_.get(), sql_text[i].data(),
                                              static_cast<int>(sql_text[i].size()),
                                              SQLITE_PREPARE_PERSISTENT, &s, nullptr);
            statements_[i].reset(s);
            if (rc != SQLITE_OK) return std::string("cannot prepare: ") + sqlite3_errmsg(db_.get());
        }
        return {};
    }

    std::error_code create_user(user_record& user) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        transaction tx(*this);
        if (!tx.begin()) return unavailable();
        if (auto ec = taken(user.username, user.email)) return ec;

        std::string id = user.player_id;
        const bool generated = id.empty();
        for (int attempt = 0;; ++attempt) {
            if (generated) id = new_player_id();
            const int rc = query(use(sql::user_by_id)).bind(1, id).step();
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_ROW) return unavailable();
            if (!generated) return std::make_error_code(std::errc::invalid_argument);
            if (attempt == 3) return unavailable();
        }
        const std::int64_t created = user.created_at_ms != 0 ? user.created_at_ms : unix_now_ms();

        int rc = SQLITE_OK;
        {
            query q(use(sql::insert_user));
            rc = q.bind(1, id)
                     .bind(2, user.username)
                     .bind(3, user.email)
                     .bind(4, user.password_hash)
                     .bind(5, user.display_name)
                     .bind(6, user.preferences)
                     .bind(7, created)
                     .step();
        }
        if (is_constraint(rc)) {
            // Only reachable if the checks above and the unique indexes ever disagree; answer
            // by looking again rather than by parsing SQLite's message. The failed INSERT left
            // the transaction open, so this sees the same state the INSERT did.
            if (auto ec = taken(user.username, user.email)) return ec;
            return unavailable();
        }
        if (rc != SQLITE_DONE || !tx.commit()) return unavailable();
        user.player_id = std::move(id);
        user.created_at_ms = created;
        return {};
    }

    std::error_code find_user_by_login(std::string_view login, user_record& out) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        // A username match wins: the HTTP layer keeps '@' out of usernames, but the store does
        // not rely on it.
        if (auto ec = find_by(sql::user_by_username, login, out);
            ec != make_error_code(errc::user_not_found)) {
            return ec;
        }
        return find_by(sql::user_by_email, login, out);
    }

    std::error_code find_user(std::string_view player_id, user_record& out) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        return find_by(sql::user_by_id, player_id, out);
    }

    std::error_code update_settings(std::string_view player_id, std::string_view display_name,
                                    std::string_view preferences) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        const int rc = query(use(sql::update_settings))
                           .bind(1, player_id)
                           .bind(2, display_name)
                           .bind(3, preferences)
                           .step();
        if (rc != SQLITE_DONE) return unavailable();
        // sqlite3_changes counts matched rows even when the values did not change.
        if (sqlite3_changes(db_.get()) == 0) return make_error_code(errc::user_not_found);
        return {};
    }

    std::error_code update_password(std::string_view player_id,
                                    std::string_view password_hash) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        transaction tx(*this);
        if (!tx.begin()) return unavailable();
        const int rc =
            query(use(sql::update_password)).bind(1, player_id).bind(2, password_hash).step();
        if (rc != SQLITE_DONE) return unavailable();
        if (sqlite3_changes(db_.get()) == 0) return make_error_code(errc::user_not_found);
        if (query(use(sql::revoke_player)).bind(1, player_id).step() != SQLITE_DONE) {
            return unavailable();
        }
        if (!tx.commit()) return unavailable();
        return {};
    }

    std::error_code add_refresh_token(const refresh_token_record& token) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        const int rc = query(use(sql::insert_token))
                           .bind(1, token.token_hash)
                           .bind(2, token.family_id)
                           .bind(3, token.player_id)
                           .bind(4, token.expires_at_ms)
                           .bind(5, unix_now_ms())
                           .step();
        return insert_token_result(rc);
    }

    std::error_code rotate_refresh_token(std::string_view presented_hash, std::int64_t now_ms,
                                         refresh_token_record& next) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        transaction tx(*this);
        if (!tx.begin()) return unavailable();
        token_state old;
        if (auto ec = find_token(presented_hash, old)) return ec;
        // Revoked first: once a family is revoked (logout, password change, or an earlier
        // replay) its tokens are simply dead, and a second replay changes nothing.
        if (old.revoked) return make_error_code(errc::invalid_refresh_token);
        if (old.used) {
            // Checked before expiry: an old rotated token replayed late still means it leaked,
            // and the family's newer tokens may well be live.
            if (query(use(sql::revoke_family)).bind(1, old.family_id).step() != SQLITE_DONE ||
                !tx.commit()) {
                return unavailable();
            }
            // Named for the caller's security log: which player's session was ended.
            next.family_id = std::move(old.family_id);
            next.player_id = std::move(old.player_id);
            return make_error_code(errc::refresh_token_reused);
        }
        if (now_ms >= old.expires_at_ms) return make_error_code(errc::invalid_refresh_token);

        if (query(use(sql::mark_used)).bind(1, presented_hash).bind(2, now_ms).step() !=
            SQLITE_DONE) {
            return unavailable();
        }
        const int rc = query(use(sql::insert_token))
                           .bind(1, next.token_hash)
                           .bind(2, old.family_id)
                           .bind(3, old.player_id)
                           .bind(4, next.expires_at_ms)
                           .bind(5, now_ms)
                           .step();
        if (auto ec = insert_token_result(rc)) return ec;
        if (!tx.commit()) return unavailable();
        next.family_id = std::move(old.family_id);
        next.player_id = std::move(old.player_id);
        return {};
    }

    std::error_code revoke_refresh_family(std::string_view presented_hash,
                                          std::int64_t now_ms) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        transaction tx(*this);
        if (!tx.begin()) return unavailable();
        token_state t;
        if (auto ec = find_token(presented_hash, t)) return ec;
        if (t.revoked || t.used || now_ms >= t.expires_at_ms) {
            return make_error_code(errc::invalid_refresh_token);
        }
        if (query(use(sql::revoke_family)).bind(1, t.family_id).step() != SQLITE_DONE ||
            !tx.commit()) {
            return unavailable();
        }
        return {};
    }

    std::error_code revoke_player_tokens(std::string_view player_id) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (query(use(sql::revoke_player)).bind(1, player_id).step() != SQLITE_DONE) {
            return unavailable();
        }
        return {};
    }

    std::error_code prune_refresh_tokens(std::int64_t now_ms, std::size_t& removed) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (query(use(sql::prune)).bind(1, now_ms).step() != SQLITE_DONE) return unavailable();
        removed = static_cast<std::size_t>(sqlite3_changes64(db_.get()));
        return {};
    }

    std::error_code schema_history(std::vector<sqlite_schema_step>& out) {
        const std::lock_guard<std::mutex> lock(mutex_);
        std::vector<sqlite_schema_step> steps;
        query q(use(sql::history));
        // Bounded by the rows in the table; each step either yields a row or ends.
        for (;;) {
            const int rc = q.step();
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_ROW) return unavailable();
            steps.push_back({static_cast<int>(q.int64(0)), q.int64(1)});
        }
        out = std::move(steps);
        return {};
    }

private:
    // Rolls back unless committed, so that every early return leaves no transaction behind.
    class transaction {
    public:
        explicit transaction(sqlite_user_store& store) noexcept : store_(store) {}
        ~transaction() {
            // A failed statement may already have ended the transaction (SQLite rolls back by
            // itself on I/O errors and the like); ROLLBACK then fails harmlessly.
            if (active_) (void)query(store_.use(sql::rollback)).step();
        }
        transaction(const transaction&) = delete;
        transaction& operator=(const transaction&) = delete;

        bool begin() noexcept {
            active_ = query(store_.use(sql::begin)).step() == SQLITE_DONE;
            return active_;
        }
        bool commit() noexcept {
            if (query(store_.use(sql::commit)).step() != SQLITE_DONE) return false;
            active_ = false;
            return true;
        }

    private:
        sqlite_user_store& store_;
        bool active_ = false;
    };

    sqlite3_stmt* use(sql which) const noexcept {
        return statements_[static_cast<std::size_t>(which)].get();
    }

    std::error_code find_by(sql which, std::string_view key, user_record& out) {
        query q(use(which));
        const int rc = q.bind(1, key).step();
        if (rc == SQLITE_DONE) return make_error_code(errc::user_not_found);
        if (rc != SQLITE_ROW) return unavailable();
        // Read into a local first: on any failure `out` stays as it was.
        user_record u;
        u.player_id = q.text(0);
        u.username = q.text(1);
        u.email = q.text(2);
        u.password_hash = q.text(3);
        u.display_name = q.text(4);
        u.preferences = q.text(5);
        u.created_at_ms = q.int64(6);
        out = std::move(u);
        return {};
    }

    // username_taken / email_taken (username first, as documented), empty when both are free.
    std::error_code taken(std::string_view username, std::string_view email) {
        int rc = query(use(sql::user_by_username)).bind(1, username).step();
        if (rc == SQLITE_ROW) return make_error_code(errc::username_taken);
        if (rc != SQLITE_DONE) return unavailable();
        rc = query(use(sql::user_by_email)).bind(1, email).step();
        if (rc == SQLITE_ROW) return make_error_code(errc::email_taken);
        if (rc != SQLITE_DONE) return unavailable();
        return {};
    }

    std::error_code find_token(std::string_view hash, token_state& out) {
        query q(use(sql::token_by_hash));
        const int rc = q.bind(1, hash).step();
        if (rc == SQLITE_DONE) return make_error_code(errc::invalid_refresh_token);
        if (rc != SQLITE_ROW) return unavailable();
        out.family_id = q.text(0);
        out.player_id = q.text(1);
        out.expires_at_ms = q.int64(2);
        out.used = q.int64(3) != 0;
        out.revoked = q.int64(4) != 0;
        return {};
    }

    static std::error_code insert_token_result(int rc) {
        if (rc == SQLITE_DONE) return {};
        // The foreign key names no account; a duplicate token hash is a caller bug (a token
        // has 256 random bits), reported the same way as other bad arguments.
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return make_error_code(errc::user_not_found);
        if (is_constraint(rc)) return std::make_error_code(std::errc::invalid_argument);
        return unavailable();
    }

    std::mutex mutex_;
    db_handle db_;
    // Declared after db_: finalized before the connection closes.
    std::array<stmt_handle, static_cast<std::size_t>(sql::count)> statements_;
};

// Runs constant SQL (pragmas, migration steps), which may hold several statements.
int exec(sqlite3* db, std::string_view text) {
    const std::string copy(text);  // sqlite3_exec wants NUL-terminated text
    return sqlite3_exec(db, copy.c_str(), nullptr, nullptr, nullptr);
}

std::string errmsg(sqlite3* db) { return sqlite3_errmsg(db); }

// Migrates `db` to `migrations.size()`, one step per transaction. Empty on success.
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

}  // namespace

const std::vector<std::string_view>& sqlite_migrations() {
    static const std::vector<std::string_view> steps = {schema_v1};
    return steps;
}

std::error_code open_sqlite_user_store(std::string_view path,
                                       const std::vector<std::string_view>& migrations,
                                       std::unique_ptr<user_store>& out, std::string& problem) {
    const auto fail = [&problem](std::string why) {
        problem = "sqlite: " + std::move(why);
        return make_error_code(errc::store_unavailable);
    };
    // An empty name would make SQLite open a private temporary file: not what anyone meant.
    if (path.empty()) return fail("the database path is empty");
    if (path.find('\0') != std::string_view::npos) return fail("the database path contains NUL");
    // Player ids come from libsodium's CSPRNG. sodium_init is idempotent and thread-safe.
    if (sodium_init() < 0) return fail("libsodium could not be initialised");

    const std::string file(path);
    const bool in_memory = file == ":memory:";
    sqlite3* raw = nullptr;
    // No SQLITE_OPEN_URI: the name is a plain file name. NOMUTEX: the store serialises all
    // use of the connection itself.
    const int rc =
        sqlite3_open_v2(file.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    db_handle db(raw);  // SQLite may hand out a handle even when opening failed
    if (rc != SQLITE_OK) {
        return fail("cannot open '" + file +
                    "': " + (raw != nullptr ? errmsg(raw) : std::string(sqlite3_errstr(rc))));
    }
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, busy_timeout_ms);
    // Off by default in SQLite, for compatibility; the schema relies on it.
    if (exec(raw, "PRAGMA foreign_keys = ON") != SQLITE_OK) {
        return fail("cannot enable foreign keys: " + errmsg(raw));
    }
    if (!in_memory) {
        // WAL: readers do not block the writer, and a commit is one append. The pragma is also
        // the first read of the file, so "not a database" shows up here.
        sqlite3_stmt* s_raw = nullptr;
        sqlite3_prepare_v2(raw, "PRAGMA journal_mode = WAL", -1, &s_raw, nullptr);
        const stmt_handle s(s_raw);
        if (s == nullptr || sqlite3_step(s.get()) != SQLITE_ROW) {
            return fail("cannot use '" + file + "': " + errmsg(raw));
        }
        const auto* mode = reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0));
        if (mode == nullptr || std::string_view(mode) != "wal") {
            return fail("cannot switch '" + file + "' to WAL journal mode (got '" +
                        (mode != nullptr ? mode : "") + "')");
        }
    }
    if (auto why = migrate(raw, migrations); !why.empty()) return fail("'" + file + "': " + why);

    auto store = std::make_unique<sqlite_user_store>(std::move(db));
    if (auto why = store->prepare(); !why.empty()) return fail(why);
    out = std::move(store);
    return {};
}

std::error_code sqlite_schema_history(user_store& store, std::vector<sqlite_schema_step>& out) {
    auto* sqlite = dynamic_cast<sqlite_user_store*>(&store);
    if (sqlite == nullptr) return std::make_error_code(std::errc::invalid_argument);
    return sqlite->schema_history(out);
}

}  // namespace gatehouse::detail
