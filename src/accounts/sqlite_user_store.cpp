#include "accounts/sqlite_user_store.hpp"

#include <sodium.h>
#include <sqlite3.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "accounts/sqlite_migrations.hpp"
#include "accounts/sqlite_statement.hpp"
#include "accounts/store_rows.hpp"
#include "common/clock.hpp"
#include "gatehouse/errc.hpp"

namespace gatehouse::detail {
namespace {

using sqlite::db_handle;
using sqlite::errmsg;
using sqlite::exec;
using sqlite::is_constraint;
using sqlite::query;
using sqlite::stmt_handle;

// Long enough to ride out another process's write transaction (ours last milliseconds), short
// enough that a wedged database surfaces as store_unavailable instead of a hung worker.
constexpr int busy_timeout_ms = 5000;

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
        if (!tx.begin()) return store_unavailable();
        if (auto ec = taken(user.username, user.email)) return ec;

        std::string id = user.player_id;
        const bool generated = id.empty();
        for (int attempt = 0;; ++attempt) {
            if (generated) id = new_player_id();
            const int rc = query(use(sql::user_by_id)).bind(1, id).step();
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_ROW) return store_unavailable();
            if (!generated) return std::make_error_code(std::errc::invalid_argument);
            if (attempt == 3) return store_unavailable();
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
            return store_unavailable();
        }
        if (rc != SQLITE_DONE || !tx.commit()) return store_unavailable();
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
        if (rc != SQLITE_DONE) return store_unavailable();
        // sqlite3_changes counts matched rows even when the values did not change.
        if (sqlite3_changes(db_.get()) == 0) return make_error_code(errc::user_not_found);
        return {};
    }

    std::error_code update_password(std::string_view player_id,
                                    std::string_view password_hash) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        transaction tx(*this);
        if (!tx.begin()) return store_unavailable();
        const int rc =
            query(use(sql::update_password)).bind(1, player_id).bind(2, password_hash).step();
        if (rc != SQLITE_DONE) return store_unavailable();
        if (sqlite3_changes(db_.get()) == 0) return make_error_code(errc::user_not_found);
        if (query(use(sql::revoke_player)).bind(1, player_id).step() != SQLITE_DONE) {
            return store_unavailable();
        }
        if (!tx.commit()) return store_unavailable();
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
        if (!tx.begin()) return store_unavailable();
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
                return store_unavailable();
            }
            // Named for the caller's security log: which player's session was ended.
            next.family_id = std::move(old.family_id);
            next.player_id = std::move(old.player_id);
            return make_error_code(errc::refresh_token_reused);
        }
        if (now_ms >= old.expires_at_ms) return make_error_code(errc::invalid_refresh_token);

        if (query(use(sql::mark_used)).bind(1, presented_hash).bind(2, now_ms).step() !=
            SQLITE_DONE) {
            return store_unavailable();
        }
        const int rc = query(use(sql::insert_token))
                           .bind(1, next.token_hash)
                           .bind(2, old.family_id)
                           .bind(3, old.player_id)
                           .bind(4, next.expires_at_ms)
                           .bind(5, now_ms)
                           .step();
        if (auto ec = insert_token_result(rc)) return ec;
        if (!tx.commit()) return store_unavailable();
        next.family_id = std::move(old.family_id);
        next.player_id = std::move(old.player_id);
        return {};
    }

    std::error_code revoke_refresh_family(std::string_view presented_hash,
                                          std::int64_t now_ms) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        transaction tx(*this);
        if (!tx.begin()) return store_unavailable();
        token_state t;
        if (auto ec = find_token(presented_hash, t)) return ec;
        if (t.revoked || t.used || now_ms >= t.expires_at_ms) {
            return make_error_code(errc::invalid_refresh_token);
        }
        if (query(use(sql::revoke_family)).bind(1, t.family_id).step() != SQLITE_DONE ||
            !tx.commit()) {
            return store_unavailable();
        }
        return {};
    }

    std::error_code revoke_player_tokens(std::string_view player_id) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (query(use(sql::revoke_player)).bind(1, player_id).step() != SQLITE_DONE) {
            return store_unavailable();
        }
        return {};
    }

    std::error_code prune_refresh_tokens(std::int64_t now_ms, std::size_t& removed) override {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (query(use(sql::prune)).bind(1, now_ms).step() != SQLITE_DONE)
            return store_unavailable();
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
            if (rc != SQLITE_ROW) return store_unavailable();
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
        if (rc != SQLITE_ROW) return store_unavailable();
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
        if (rc != SQLITE_DONE) return store_unavailable();
        rc = query(use(sql::user_by_email)).bind(1, email).step();
        if (rc == SQLITE_ROW) return make_error_code(errc::email_taken);
        if (rc != SQLITE_DONE) return store_unavailable();
        return {};
    }

    std::error_code find_token(std::string_view hash, token_state& out) {
        query q(use(sql::token_by_hash));
        const int rc = q.bind(1, hash).step();
        if (rc == SQLITE_DONE) return make_error_code(errc::invalid_refresh_token);
        if (rc != SQLITE_ROW) return store_unavailable();
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
        return store_unavailable();
    }

    std::mutex mutex_;
    db_handle db_;
    // Declared after db_: finalized before the connection closes.
    std::array<stmt_handle, static_cast<std::size_t>(sql::count)> statements_;
};

}  // namespace

std::error_code open_sqlite_user_store(std::string_view path,
                                       const std::vector<std::string_view>& migrations,
                                       std::unique_ptr<user_store>& out, const log_sink& log) {
    const auto fail = [&log](const std::string& why) {
        if (log) log(log_level::error, "sqlite: " + why);
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
    if (auto why = sqlite::migrate(raw, migrations); !why.empty())
        return fail("'" + file + "': " + why);

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
