#include "accounts/postgres_pool.hpp"

#include <algorithm>
#include <cstdint>

namespace gatehouse::detail::postgres {

connection_pool::lease connection_pool::acquire(std::string* why) {
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

conn_handle connection_pool::connect(std::string* why) {
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

void connection_pool::give_back(conn_handle c, bool broken) {
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

}  // namespace gatehouse::detail::postgres
