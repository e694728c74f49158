#pragma once
// A bounded pool of PostgreSQL connections, a lease of one for the length of a call, and a
// transaction on a lease.

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "accounts/postgres_connection.hpp"
#include "accounts/postgres_url.hpp"

namespace gatehouse::detail::postgres {

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

}  // namespace gatehouse::detail::postgres
