#include "accounts/postgres_user_store.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/internal.hpp"  // is_valid_utf8
#include "gatehouse/errc.hpp"

namespace gatehouse::detail {
namespace {

using clock = std::chrono::steady_clock;

// Taken by every migration step, for the length of its transaction: one instance migrates,
// the others wait for it and then find the version it recorded. The value is the ASCII of
// "gatehous"; advisory locks are per database, so other applications sharing the server but
// not the database never see it.
constexpr std::string_view migration_lock_key = "7449354444534473075";

constexpr std::string_view create_migrations_table =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY NOT NULL,"
    " applied_at_ms BIGINT NOT NULL)";

// Version 1: the SQLite schema's tables and columns. PROTOCOL.md's case-insensitive
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

constexpr std::string_view user_columns =
    "player_id, username, email, password_hash, display_name, preferences, created_at_ms";

// The SQLSTATEs the store tells apart; everything else is store_unavailable.
constexpr std::string_view unique_violation = "23505";
constexpr std::string_view foreign_key_violation = "23503";

std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::error_code unavailable() { return make_error_code(errc::store_unavailable); }

// PostgreSQL text holds neither NUL nor invalid UTF-8 (the connection's client_encoding is
// UTF8). Such a value cannot name anything stored, and is refused as an argument when written,
// instead of turning into a server error and a 503.
bool storable(std::string_view s) noexcept {
    return s.find('\0') == std::string_view::npos && client::detail::is_valid_utf8(s);
}

// 96 random bits, as the SQLite store makes them (see there).
std::string new_player_id() {
    constexpr std::size_t id_bytes = 12;
    std::array<unsigned char, id_bytes> raw{};
    std::array<char, 2 * id_bytes + 1> hex{};
    randombytes_buf(raw.data(), raw.size());
    sodium_bin2hex(hex.data(), hex.size(), raw.data(), raw.size());
    return "p_" + std::string(hex.data(), 2 * id_bytes);
}

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
void ignore_notice(void* /*arg*/, const char* /*message*/) {}

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

// Waits until `c`'s socket is ready for `events` or the deadline passes (false).
bool wait_socket(PGconn* c, short events, clock::time_point deadline) {
    pollfd p{};
    p.fd = PQsocket(c);
    p.events = events;
    if (p.fd < 0) return false;
    for (;;) {
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) return false;
        const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return false;
    }
}

// Runs one statement (several, separated by ';', when there are no parameters) on a
// connection in non-blocking mode, never waiting past `deadline`. Parameters are sent as
// text, separately from the SQL: no SQL text is ever built from data.
outcome execute(PGconn* c, std::string_view sql, std::initializer_list<std::string_view> params,
                clock::time_point deadline) {
    const std::string statement(sql);
    std::vector<std::string> copies;  // libpq wants NUL-terminated text parameters
    copies.reserve(params.size());
    for (const auto p : params) copies.emplace_back(p);
    std::vector<const char*> values;
    values.reserve(copies.size());
    for (const auto& p : copies) values.push_back(p.c_str());

    const int sent = values.empty()
                         ? PQsendQuery(c, statement.c_str())
                         : PQsendQueryParams(c, statement.c_str(), static_cast<int>(values.size()),
                                             nullptr, values.data(), nullptr, nullptr, 0);
    if (sent == 0) return outcome::connection_lost();
    for (;;) {
        const int flushed = PQflush(c);
        if (flushed == 0) break;
        if (flushed < 0 || !wait_socket(c, POLLIN | POLLOUT, deadline) || PQconsumeInput(c) == 0) {
            return outcome::connection_lost();
        }
    }
    // Every result is read (libpq needs that before the next statement); the first error wins,
    // else the last result is the answer.
    outcome answer;
    bool have = false;
    for (;;) {
        while (PQisBusy(c) != 0) {
            if (!wait_socket(c, POLLIN, deadline) || PQconsumeInput(c) == 0) {
                return outcome::connection_lost();
            }
        }
        result_handle r(PQgetResult(c));
        if (r == nullptr) break;
        if (!have || answer.ok()) {
            answer = outcome::of(std::move(r));
            have = true;
        }
    }
    if (!have || PQstatus(c) != CONNECTION_OK) return outcome::connection_lost();
    return answer;
}

// The part of a libpq message an operator may see: the password, should libpq ever repeat
// it, replaced, and no trailing newline.
std::string scrub(std::string message, const std::string& password) {
    if (!password.empty()) {
        for (std::size_t at = message.find(password); at != std::string::npos;
             at = message.find(password, at + 3)) {
            message.replace(at, password.size(), "***");
        }
    }
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
    }
    return message;
}

// What connecting needs, parsed once from the URL.
struct conninfo {
    std::vector<std::string> keys;
    std::vector<std::string> values;
    std::string password;  // for scrubbing messages; empty when none was given
    std::string shown;     // the redacted URL
};

// A quoted part of a libpq URI message may be the whole URI, password included.
std::string without_quoted(std::string_view message) {
    std::string out;
    bool quoted = false;
    for (const char c : message) {
        if (c == '"') {
            if (!quoted) out += "\"...\"";
            quoted = !quoted;
        } else if (!quoted && c != '\n') {
            out += c;
        }
    }
    return out;
}

// Splits gatehouse's own `pool_size` off the query; the rest goes to libpq. Empty `why` on
// success.
std::string take_pool_size(std::string& url, std::size_t& pool_size) {
    const std::size_t q = url.find('?');
    if (q == std::string::npos) return {};
    std::string kept;
    std::string_view rest = std::string_view(url).substr(q + 1);
    while (!rest.empty()) {
        const std::size_t amp = rest.find('&');
        const std::string_view param = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        constexpr std::string_view key = "pool_size=";
        if (param.substr(0, key.size()) == key) {
            const std::string_view value = param.substr(key.size());
            std::size_t n = 0;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > 64) {
                return "pool_size must be a whole number from 1 to 64";
            }
            pool_size = n;
            continue;
        }
        if (!kept.empty()) kept += '&';
        kept += param;
    }
    url.resize(q);
    if (!kept.empty()) url += "?" + kept;
    return {};
}

std::string shown_url(const PQconninfoOption* parsed) {
    std::string user;
    std::string host;
    std::string port;
    std::string dbname;
    for (const auto* o = parsed; o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        const std::string_view k = o->keyword;
        if (k == "user") user = o->val;
        if (k == "host") host = o->val;
        if (k == "port") port = o->val;
        if (k == "dbname") dbname = o->val;
    }
    std::string out = "postgresql://";
    if (!user.empty()) out += user + "@";
    out += host;
    if (!port.empty()) out += ":" + port;
    if (!dbname.empty()) out += "/" + dbname;
    return out;
}

// Parses `url` for libpq. Empty on success, else why (without secrets).
std::string parse_url(std::string_view url, postgres_options& options, conninfo& out) {
    std::string text(url);
    if (text.find('\0') != std::string::npos) return "the URL contains NUL";
    if (auto why = take_pool_size(text, options.pool_size); !why.empty()) return why;
    char* error = nullptr;
    const std::unique_ptr<PQconninfoOption, options_freer> parsed(
        PQconninfoParse(text.c_str(), &error));
    if (parsed == nullptr) {
        std::string why = "cannot parse the URL";
        if (error != nullptr) {
            why += ": " + without_quoted(error);
            PQfreemem(error);
        }
        return why + " (postgresql://[user[:password]@][host][:port][/dbname][?param=value...])";
    }
    bool has_timeout = false;
    bool has_name = false;
    for (const auto* o = parsed.get(); o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        const std::string_view k = o->keyword;
        // Text parameters and results are UTF-8 whatever the URL says; the store validates
        // what it sends as such.
        if (k == "client_encoding") continue;
        if (k == "password") out.password = o->val;
        has_timeout = has_timeout || k == "connect_timeout";
        has_name = has_name || k == "application_name";
        out.keys.emplace_back(k);
        out.values.emplace_back(o->val);
    }
    if (!has_timeout) {
        out.keys.emplace_back("connect_timeout");
        out.values.push_back(std::to_string(options.connect_timeout_s));
    }
    if (!has_name) {
        out.keys.emplace_back("application_name");
        out.values.emplace_back("gatehouse");
    }
    out.keys.emplace_back("client_encoding");
    out.values.emplace_back("UTF8");
    out.shown = shown_url(parsed.get());
    return {};
}

// A bounded set of connections, opened on demand, each used by one call at a time. A
// connection that failed (or outlived a deadline) is closed instead of being given back, and
// the next call that needs one opens a new one: an outage costs errors while it lasts and
// nothing after.
class connection_pool {
public:
    connection_pool(conninfo info, const postgres_options& options)
        : info_(std::move(info)), options_(options) {}

    // One connection for the length of one call.
    class lease {
    public:
        lease() = default;
        lease(connection_pool* pool, conn_handle c) : pool_(pool), c_(std::move(c)) {}
        ~lease() {
            if (pool_ != nullptr) pool_->give_back(std::move(c_), broken_);
        }
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        lease(lease&& other) noexcept
            : pool_(std::exchange(other.pool_, nullptr)),
              c_(std::move(other.c_)),
              broken_(other.broken_) {}
        lease& operator=(lease&&) = delete;

        explicit operator bool() const noexcept { return c_ != nullptr; }

        // One statement with the store's query deadline (or `timeout`).
        outcome run(std::string_view sql, std::initializer_list<std::string_view> params = {},
                    std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) {
            if (broken_) return outcome::connection_lost();
            if (timeout == std::chrono::milliseconds::zero())
                timeout = pool_->options_.query_timeout;
            auto o = execute(c_.get(), sql, params, clock::now() + timeout);
            if (o.lost()) broken_ = true;
            return o;
        }

    private:
        connection_pool* pool_ = nullptr;
        conn_handle c_;
        bool broken_ = false;
    };

    // A connection, waiting at most acquire_timeout for one to be free, or an empty lease
    // (with `why`, when asked for).
    lease acquire(std::string* why = nullptr) {
        std::unique_lock<std::mutex> lock(mutex_);
        const bool free = free_.wait_for(lock, options_.acquire_timeout, [this] {
            return !idle_.empty() || open_ < options_.pool_size;
        });
        if (!free) {
            if (why != nullptr) *why = "every connection of the pool stayed busy";
            return {};
        }
        while (!idle_.empty()) {
            conn_handle c = std::move(idle_.back());
            idle_.pop_back();
            // A server that restarted (or ended the session) said so on the socket: reading
            // what is there, without waiting, spares this call a failure on a dead connection.
            if (PQconsumeInput(c.get()) != 0 && PQstatus(c.get()) == CONNECTION_OK) {
                return {this, std::move(c)};
            }
            --open_;
        }
        ++open_;
        lock.unlock();
        conn_handle c = connect(why);
        if (c == nullptr) {
            lock.lock();
            --open_;
            free_.notify_one();
            return {};
        }
        return {this, std::move(c)};
    }

    const conninfo& info() const noexcept { return info_; }

private:
    conn_handle connect(std::string* why) {
        std::vector<const char*> keys;
        std::vector<const char*> values;
        keys.reserve(info_.keys.size() + 1);
        values.reserve(info_.keys.size() + 1);
        for (std::size_t i = 0; i < info_.keys.size(); ++i) {
            keys.push_back(info_.keys[i].c_str());
            values.push_back(info_.values[i].c_str());
        }
        keys.push_back(nullptr);
        values.push_back(nullptr);
        // Blocking, bounded by connect_timeout (libpq applies it to each address it tries).
        conn_handle c(PQconnectdbParams(keys.data(), values.data(), 0));
        if (c == nullptr || PQstatus(c.get()) != CONNECTION_OK) {
            if (why != nullptr) {
                *why = "cannot connect to " + info_.shown + ": " +
                       (c != nullptr ? scrub(PQerrorMessage(c.get()), info_.password)
                                     : std::string("out of memory"));
            }
            return nullptr;
        }
        PQsetNoticeProcessor(c.get(), ignore_notice, nullptr);
        if (PQsetnonblocking(c.get(), 1) != 0) {
            if (why != nullptr) *why = "cannot switch the connection to non-blocking mode";
            return nullptr;
        }
        // The server-side half of the query deadline; an idle transaction (a client that
        // vanished mid-way) is ended by the server rather than holding its locks.
        const auto ms = std::to_string(options_.query_timeout.count());
        const auto set = execute(
            c.get(),
            "SET statement_timeout = " + ms + "; SET idle_in_transaction_session_timeout = " +
                std::to_string(std::max<std::int64_t>(60'000, 2 * options_.query_timeout.count())),
            {}, clock::now() + options_.query_timeout);
        if (!set.ok()) {
            if (why != nullptr) {
                *why = "cannot set up a connection to " + info_.shown + ": " +
                       scrub(PQerrorMessage(c.get()), info_.password);
            }
            return nullptr;
        }
        return c;
    }

    void give_back(conn_handle c, bool broken) {
        // A connection left inside a transaction (a ROLLBACK that failed) is not reused.
        if (c != nullptr && (broken || PQstatus(c.get()) != CONNECTION_OK ||
                             PQtransactionStatus(c.get()) != PQTRANS_IDLE)) {
            c.reset();
        }
        const std::lock_guard<std::mutex> lock(mutex_);
        if (c != nullptr) {
            idle_.push_back(std::move(c));
        } else {
            --open_;
        }
        free_.notify_one();
    }

    const conninfo info_;
    const postgres_options options_;
    std::mutex mutex_;
    std::condition_variable free_;
    std::vector<conn_handle> idle_;
    std::size_t open_ = 0;  // idle ones plus leased ones
};

using lease = connection_pool::lease;

// BEGIN now; ROLLBACK at scope exit unless committed.
class transaction {
public:
    explicit transaction(lease& l) : l_(l) { active_ = l_.run("BEGIN").ok(); }
    ~transaction() {
        // A failed ROLLBACK breaks the lease, so the connection is not reused.
        if (active_) (void)l_.run("ROLLBACK");
    }
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;

    bool active() const noexcept { return active_; }
    bool commit() {
        const bool ok = l_.run("COMMIT").ok();
        active_ = false;
        return ok;
    }

private:
    lease& l_;
    bool active_ = false;
};

// A token as rotation and logout see it.
struct token_state {
    std::string family_id;
    std::string player_id;
    std::int64_t expires_at_ms = 0;
    bool used = false;
    bool revoked = false;
};

// Calls are short statement sequences on a pooled connection. Every check-then-write
// sequence on refresh tokens runs in a transaction that first locks the player's row (SELECT
// ... FOR UPDATE): rotation, logout, password change and revoking a player are then serialised
// per player across every instance, so a token rotated while its family is being revoked is
// revoked too, and exactly one of several concurrent rotations of one token wins. Accounts are
// created without a transaction: the unique indexes decide races, and a conflict is looked up
// again to say which name was taken.
class postgres_user_store final : public user_store {
public:
    postgres_user_store(conninfo info, const postgres_options& options)
        : pool_(std::move(info), options) {}

    connection_pool& pool() noexcept { return pool_; }

    std::error_code create_user(user_record& user) override {
        if (!storable(user.username) || !storable(user.email) || !storable(user.password_hash) ||
            !storable(user.display_name) || !storable(user.preferences) ||
            !storable(user.player_id)) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        lease l = pool_.acquire();
        if (!l) return unavailable();
        const bool generated = user.player_id.empty();
        const std::int64_t created = user.created_at_ms != 0 ? user.created_at_ms : unix_now_ms();
        const std::string created_text = std::to_string(created);
        // Each round either returns or found a conflict that vanished (the other insert rolled
        // back) or a generated id that collided: both need only another try.
        for (int attempt = 0; attempt < 4; ++attempt) {
            if (auto ec = taken(l, user.username, user.email)) return ec;
            const std::string id = generated ? new_player_id() : user.player_id;
            if (!generated) {
                const auto o = l.run("SELECT 1 FROM users WHERE player_id = $1", {id});
                if (!o.ok()) return unavailable();
                if (o.rows() > 0) return std::make_error_code(std::errc::invalid_argument);
            }
            const auto o = l.run(
                "INSERT INTO users (player_id, username, email, password_hash, display_name,"
                " preferences, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                {id, user.username, user.email, user.password_hash, user.display_name,
                 user.preferences, created_text});
            if (o.ok()) {
                user.player_id = id;
                user.created_at_ms = created;
                return {};
            }
            if (o.sqlstate() != unique_violation) return unavailable();
            if (o.constraint() == "users_pkey") {
                if (!generated) {
                    if (auto ec = taken(l, user.username, user.email)) return ec;
                    return std::make_error_code(std::errc::invalid_argument);
                }
                continue;
            }
            // A concurrent registration of the same name won: the next round's check says
            // which name (username first).
        }
        return unavailable();
    }

    std::error_code find_user_by_login(std::string_view login, user_record& out) override {
        if (!storable(login)) return make_error_code(errc::user_not_found);
        lease l = pool_.acquire();
        if (!l) return unavailable();
        // One round trip; a username match sorts first (true > false).
        return read_user(l.run(std::string("SELECT ") + std::string(user_columns) +
                                   " FROM users"
                                   " WHERE lower(username COLLATE \"C\") = lower($1 COLLATE \"C\")"
                                   " OR lower(email COLLATE \"C\") = lower($1 COLLATE \"C\")"
                                   " ORDER BY lower(username COLLATE \"C\") ="
                                   " lower($1 COLLATE \"C\") DESC LIMIT 1",
                               {login}),
                         out);
    }

    std::error_code find_user(std::string_view player_id, user_record& out) override {
        if (!storable(player_id)) return make_error_code(errc::user_not_found);
        lease l = pool_.acquire();
        if (!l) return unavailable();
        return read_user(l.run(std::string("SELECT ") + std::string(user_columns) +
                                   " FROM users WHERE player_id = $1",
                               {player_id}),
                         out);
    }

    std::error_code update_settings(std::string_view player_id, std::string_view display_name,
                                    std::string_view preferences) override {
        if (!storable(player_id)) return make_error_code(errc::user_not_found);
        if (!storable(display_name) || !storable(preferences)) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        lease l = pool_.acquire();
        if (!l) return unavailable();
        const auto o =
            l.run("UPDATE users SET display_name = $2, preferences = $3 WHERE player_id = $1",
                  {player_id, display_name, preferences});
        if (!o.ok()) return unavailable();
        if (o.affected() == 0) return make_error_code(errc::user_not_found);
        return {};
    }

    std::error_code update_password(std::string_view player_id,
                                    std::string_view password_hash) override {
        if (!storable(player_id)) return make_error_code(errc::user_not_found);
        if (!storable(password_hash)) return std::make_error_code(std::errc::invalid_argument);
        lease l = pool_.acquire();
        if (!l) return unavailable();
        transaction tx(l);
        if (!tx.active()) return unavailable();
        // The UPDATE locks the player's row, which serialises this with rotations.
        const auto o = l.run("UPDATE users SET password_hash = $2 WHERE player_id = $1",
                             {player_id, password_hash});
        if (!o.ok()) return unavailable();
        if (o.affected() == 0) return make_error_code(errc::user_not_found);
        if (!l.run("UPDATE refresh_tokens SET revoked = TRUE WHERE player_id = $1 AND NOT revoked",
                   {player_id})
                 .ok() ||
            !tx.commit()) {
            return unavailable();
        }
        return {};
    }

    std::error_code add_refresh_token(const refresh_token_record& token) override {
        if (!storable(token.player_id)) return make_error_code(errc::user_not_found);
        if (!storable(token.token_hash) || !storable(token.family_id)) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        lease l = pool_.acquire();
        if (!l) return unavailable();
        return insert_token(l, token.token_hash, token.family_id, token.player_id,
                            token.expires_at_ms, unix_now_ms());
    }

    std::error_code rotate_refresh_token(std::string_view presented_hash, std::int64_t now_ms,
                                         refresh_token_record& next) override {
        if (!storable(presented_hash)) return make_error_code(errc::invalid_refresh_token);
        if (!storable(next.token_hash)) return std::make_error_code(std::errc::invalid_argument);
        lease l = pool_.acquire();
        if (!l) return unavailable();
        transaction tx(l);
        if (!tx.active()) return unavailable();
        token_state old;
        if (auto ec = lock_and_find_token(l, presented_hash, old)) return ec;
        // The same decisions, in the same order, as the SQLite store (see there).
        if (old.revoked) return make_error_code(errc::invalid_refresh_token);
        if (old.used) {
            if (!l.run("UPDATE refresh_tokens SET revoked = TRUE"
                       " WHERE family_id = $1 AND NOT revoked",
                       {old.family_id})
                     .ok() ||
                !tx.commit()) {
                return unavailable();
            }
            next.family_id = std::move(old.family_id);
            next.player_id = std::move(old.player_id);
            return make_error_code(errc::refresh_token_reused);
        }
        if (now_ms >= old.expires_at_ms) return make_error_code(errc::invalid_refresh_token);
        if (!l.run("UPDATE refresh_tokens SET used_at_ms = $2 WHERE token_hash = $1",
                   {presented_hash, std::to_string(now_ms)})
                 .ok()) {
            return unavailable();
        }
        if (auto ec = insert_token(l, next.token_hash, old.family_id, old.player_id,
                                   next.expires_at_ms, now_ms)) {
            return ec;
        }
        if (!tx.commit()) return unavailable();
        next.family_id = std::move(old.family_id);
        next.player_id = std::move(old.player_id);
        return {};
    }

    std::error_code revoke_refresh_family(std::string_view presented_hash,
                                          std::int64_t now_ms) override {
        if (!storable(presented_hash)) return make_error_code(errc::invalid_refresh_token);
        lease l = pool_.acquire();
        if (!l) return unavailable();
        transaction tx(l);
        if (!tx.active()) return unavailable();
        token_state t;
        if (auto ec = lock_and_find_token(l, presented_hash, t)) return ec;
        if (t.revoked || t.used || now_ms >= t.expires_at_ms) {
            return make_error_code(errc::invalid_refresh_token);
        }
        if (!l.run("UPDATE refresh_tokens SET revoked = TRUE WHERE family_id = $1 AND NOT revoked",
                   {t.family_id})
                 .ok() ||
            !tx.commit()) {
            return unavailable();
        }
        return {};
    }

    std::error_code revoke_player_tokens(std::string_view player_id) override {
        if (!storable(player_id)) return {};
        lease l = pool_.acquire();
        if (!l) return unavailable();
        transaction tx(l);
        if (!tx.active() ||
            !l.run("SELECT 1 FROM users WHERE player_id = $1 FOR UPDATE", {player_id}).ok() ||
            !l.run("UPDATE refresh_tokens SET revoked = TRUE WHERE player_id = $1 AND NOT revoked",
                   {player_id})
                 .ok() ||
            !tx.commit()) {
            return unavailable();
        }
        return {};
    }

    std::error_code prune_refresh_tokens(std::int64_t now_ms, std::size_t& removed) override {
        lease l = pool_.acquire();
        if (!l) return unavailable();
        // A family is dead when none of its tokens can ever be accepted again: all expired,
        // or all revoked. Its used tokens go with it: replaying one could only revoke tokens
        // that are dead already. Bounded per call, so a large backlog costs several calls
        // rather than one long one.
        const auto o = l.run(
            "DELETE FROM refresh_tokens WHERE family_id IN ("
            " SELECT family_id FROM refresh_tokens GROUP BY family_id"
            " HAVING max(expires_at_ms) <= $1 OR bool_and(revoked) LIMIT 10000)",
            {std::to_string(now_ms)});
        if (!o.ok()) return unavailable();
        removed = static_cast<std::size_t>(o.affected());
        return {};
    }

    std::error_code ping() override {
        lease l = pool_.acquire();
        if (!l) return unavailable();
        return l.run("SELECT 1").ok() ? std::error_code{} : unavailable();
    }

    std::error_code schema_history(std::vector<sqlite_schema_step>& out) {
        lease l = pool_.acquire();
        if (!l) return unavailable();
        const auto o =
            l.run("SELECT version, applied_at_ms FROM schema_migrations ORDER BY version");
        if (!o.ok()) return unavailable();
        std::vector<sqlite_schema_step> steps;
        steps.reserve(static_cast<std::size_t>(o.rows()));
        for (int row = 0; row < o.rows(); ++row) {
            steps.push_back({static_cast<int>(o.int64(row, 0)), o.int64(row, 1)});
        }
        out = std::move(steps);
        return {};
    }

private:
    static std::error_code read_user(const outcome& o, user_record& out) {
        if (!o.ok()) return unavailable();
        if (o.rows() == 0) return make_error_code(errc::user_not_found);
        user_record u;
        u.player_id = o.text(0, 0);
        u.username = o.text(0, 1);
        u.email = o.text(0, 2);
        u.password_hash = o.text(0, 3);
        u.display_name = o.text(0, 4);
        u.preferences = o.text(0, 5);
        u.created_at_ms = o.int64(0, 6);
        out = std::move(u);
        return {};
    }

    // username_taken / email_taken (username first), empty when both are free.
    static std::error_code taken(lease& l, std::string_view username, std::string_view email) {
        auto o = l.run(
            "SELECT 1 FROM users WHERE lower(username COLLATE \"C\") = lower($1 COLLATE \"C\")",
            {username});
        if (!o.ok()) return unavailable();
        if (o.rows() > 0) return make_error_code(errc::username_taken);
        o = l.run("SELECT 1 FROM users WHERE lower(email COLLATE \"C\") = lower($1 COLLATE \"C\")",
                  {email});
        if (!o.ok()) return unavailable();
        if (o.rows() > 0) return make_error_code(errc::email_taken);
        return {};
    }

    // Inside a transaction: locks the row of the token's player, then reads the token as it
    // is once every earlier transaction on that player has committed (READ COMMITTED takes a
    // new snapshot per statement).
    static std::error_code lock_and_find_token(lease& l, std::string_view hash, token_state& out) {
        auto o = l.run(
            "SELECT u.player_id FROM refresh_tokens t JOIN users u ON u.player_id = t.player_id"
            " WHERE t.token_hash = $1 FOR UPDATE OF u",
            {hash});
        if (!o.ok()) return unavailable();
        if (o.rows() == 0) return make_error_code(errc::invalid_refresh_token);
        o = l.run(
            "SELECT family_id, player_id, expires_at_ms, used_at_ms IS NOT NULL, revoked"
            " FROM refresh_tokens WHERE token_hash = $1",
            {hash});
        if (!o.ok()) return unavailable();
        // Pruned in between.
        if (o.rows() == 0) return make_error_code(errc::invalid_refresh_token);
        out.family_id = o.text(0, 0);
        out.player_id = o.text(0, 1);
        out.expires_at_ms = o.int64(0, 2);
        out.used = o.boolean(0, 3);
        out.revoked = o.boolean(0, 4);
        return {};
    }

    static std::error_code insert_token(lease& l, std::string_view hash, std::string_view family,
                                        std::string_view player, std::int64_t expires_at_ms,
                                        std::int64_t created_at_ms) {
        const auto o = l.run(
            "INSERT INTO refresh_tokens (token_hash, family_id, player_id, expires_at_ms,"
            " used_at_ms, revoked, created_at_ms) VALUES ($1, $2, $3, $4, NULL, FALSE, $5)",
            {hash, family, player, std::to_string(expires_at_ms), std::to_string(created_at_ms)});
        if (o.ok()) return {};
        // As in the SQLite store: no such account, or a duplicate hash (a caller bug).
        if (o.sqlstate() == foreign_key_violation) return make_error_code(errc::user_not_found);
        if (o.sqlstate() == unique_violation) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        return unavailable();
    }

    connection_pool pool_;
};

// Migrates to `migrations.size()`, one step per transaction, each under the advisory lock.
// Empty on success.
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

}  // namespace

const std::vector<std::string_view>& postgres_migrations() {
    static const std::vector<std::string_view> steps = {schema_v1};
    return steps;
}

std::error_code open_postgres_user_store(std::string_view url,
                                         const std::vector<std::string_view>& migrations,
                                         const postgres_options& options,
                                         std::unique_ptr<user_store>& out, std::string& problem) {
    postgres_options effective = options;
    conninfo info;
    if (auto why = parse_url(url, effective, info); !why.empty()) {
        problem = "postgresql: " + why;
        return make_error_code(errc::unsupported_store);
    }
    const auto fail = [&problem](std::string why) {
        problem = "postgresql: " + std::move(why);
        return make_error_code(errc::store_unavailable);
    };
    if (sodium_init() < 0) return fail("libsodium could not be initialised");
    const std::string shown = info.shown;
    auto store = std::make_unique<postgres_user_store>(std::move(info), effective);
    {
        std::string why;
        lease l = store->pool().acquire(&why);
        if (!l) return fail(why);
        if (auto step = migrate(l, migrations, effective); !step.empty()) {
            return fail(shown + ": " + step);
        }
    }
    out = std::move(store);
    return {};
}

std::error_code postgres_schema_history(user_store& store, std::vector<sqlite_schema_step>& out) {
    auto* postgres = dynamic_cast<postgres_user_store*>(&store);
    if (postgres == nullptr) return std::make_error_code(std::errc::invalid_argument);
    return postgres->schema_history(out);
}

std::string redacted_postgres_url(std::string_view url) {
    postgres_options ignored;
    conninfo info;
    if (!parse_url(url, ignored, info).empty()) return "postgresql://(unparsable URL)";
    return info.shown;
}

}  // namespace gatehouse::detail
