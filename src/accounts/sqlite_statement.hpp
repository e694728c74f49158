#pragma once
// SQLite statements as the SQLite store uses them: handles that close and finalize, one use of
// a prepared statement (bind, step, read, reset), and running constant SQL.

#include <sqlite3.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace gatehouse::detail::sqlite {

// SQLITE_TRANSIENT without its C-style cast (-Wold-style-cast): SQLite copies bound text, so
// a binding can never outlive the caller's string_view. The copies are small (preferences,
// the largest value, are capped at 16 KiB by the HTTP layer).
inline const sqlite3_destructor_type copy_text =
    // NOLINTNEXTLINE(performance-no-int-to-ptr): SQLite's sentinel is this very cast.
    reinterpret_cast<sqlite3_destructor_type>(static_cast<std::intptr_t>(-1));

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

inline bool is_constraint(int rc) noexcept { return (rc & 0xFF) == SQLITE_CONSTRAINT; }

// Runs constant SQL (pragmas, migration steps), which may hold several statements.
inline int exec(sqlite3* db, std::string_view text) {
    const std::string copy(text);  // sqlite3_exec wants NUL-terminated text
    return sqlite3_exec(db, copy.c_str(), nullptr, nullptr, nullptr);
}

inline std::string errmsg(sqlite3* db) { return sqlite3_errmsg(db); }

}  // namespace gatehouse::detail::sqlite
