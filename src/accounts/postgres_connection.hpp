#pragma once
// One PostgreSQL connection's statements: libpq handles, the outcome of a statement, and
// running one in non-blocking mode under a client-side deadline.

#include <libpq-fe.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace gatehouse::detail::postgres {

using clock = std::chrono::steady_clock;

struct conn_closer {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using conn_handle = std::unique_ptr<PGconn, conn_closer>;

struct result_clearer {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using result_handle = std::unique_ptr<PGresult, result_clearer>;

struct options_freer {
    void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};

// libpq prints NOTICEs (e.g. "relation already exists, skipping") on stderr by default.
inline void ignore_notice(void* /*arg*/, const char* /*message*/) {}

// The outcome of one statement: its rows, or why not.
class outcome {
public:
    outcome() = default;

    // The connection failed or the deadline passed: the connection is no longer usable.
    static outcome connection_lost() {
        outcome o;
        o.lost_ = true;
        return o;
    }
    static outcome of(result_handle r) {
        outcome o;
        const auto status = PQresultStatus(r.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
            const char* constraint = PQresultErrorField(r.get(), PG_DIAG_CONSTRAINT_NAME);
            // An error without a state is the client's own (out of memory and the like).
            o.sqlstate_ = state != nullptr ? state : "XX000";
            o.constraint_ = constraint != nullptr ? constraint : "";
            const char* message = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
            o.message_ = message != nullptr ? message : "";
        }
        o.result_ = std::move(r);
        return o;
    }

    bool ok() const noexcept { return !lost_ && result_ != nullptr && sqlstate_.empty(); }
    bool lost() const noexcept { return lost_; }
    const std::string& sqlstate() const noexcept { return sqlstate_; }
    const std::string& constraint() const noexcept { return constraint_; }
    // The server's one-line message (e.g. "relation \"users\" already exists"); never holds
    // parameter values, which PostgreSQL puts in the DETAIL field.
    const std::string& message() const noexcept { return message_; }

    int rows() const noexcept { return ok() ? PQntuples(result_.get()) : 0; }
    // Rows an INSERT, UPDATE or DELETE touched.
    std::int64_t affected() const noexcept {
        if (!ok()) return 0;
        return parse_int64(PQcmdTuples(result_.get()));
    }
    std::string text(int row, int column) const {
        const char* p = PQgetvalue(result_.get(), row, column);
        return std::string(p, static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
    }
    std::int64_t int64(int row, int column) const noexcept {
        return parse_int64(PQgetvalue(result_.get(), row, column));
    }
    bool boolean(int row, int column) const noexcept {
        return std::string_view(PQgetvalue(result_.get(), row, column)) == "t";
    }

private:
    static std::int64_t parse_int64(const char* p) noexcept {
        std::int64_t v = 0;
        const std::string_view s(p);
        std::from_chars(s.data(), s.data() + s.size(), v);
        return v;
    }

    result_handle result_;
    bool lost_ = false;
    std::string sqlstate_;
    std::string constraint_;
    std::string message_;
};

// Runs one statement (several, separated by ';', when there are no parameters) on a
// connection in non-blocking mode, never waiting past `deadline`. Parameters are sent as
// text, separately from the SQL: no SQL text is ever built from data.
outcome execute(PGconn* c, std::string_view sql, std::initializer_list<std::string_view> params,
                clock::time_point deadline);

// The part of a libpq message an operator may see: the password, should libpq ever repeat
// it, replaced, and no trailing newline.
std::string scrub(std::string message, const std::string& password);

}  // namespace gatehouse::detail::postgres
