#pragma once
// A bounded pool of PostgreSQL connections, a lease of one for the length of a call, and a
// transaction on a lease.

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
    lease acquire(std::string* why = nullptr);

    const conninfo& info() const noexcept { return info_; }

private:
    conn_handle connect(std::string* why);
    void give_back(conn_handle c, bool broken);

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
