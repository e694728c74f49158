#pragma once
// Admission of account jobs to the worker pool: at most `max_queued` wait at a time, and one
// that waited past `queue_timeout` is not run; both answer 503 `busy` rather than queue
// seconds of Argon2id work ahead of every later login for clients that have likely given up
// (a job cannot see its client go). The bound is ours, not the pool's: the pool may be shared.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include "gatehouse/http.hpp"
#include "gatehouse/worker_pool.hpp"

namespace gatehouse::detail {

class account_jobs {
public:
    // `max_queued` 0: four per worker thread.
    account_jobs(std::shared_ptr<worker_pool> workers, std::size_t max_queued,
                 std::chrono::milliseconds queue_timeout);

    // Runs `job` on the pool and answers `respond` with what it returns (500 when it throws);
    // 503 `busy` at once when it cannot be queued. `job` must own what it uses (capture
    // `shared_ptr`s, never a raw `this`): it may run after every route and the `accounts`
    // object are gone, when the pool drains its queue. Safe from any thread.
    void run(const http_responder& respond, std::function<http_response()> job) const;

private:
    std::shared_ptr<worker_pool> workers_;
    // Jobs queued and not yet started; shared with them, since they may outlive this object.
    std::shared_ptr<std::atomic<std::size_t>> waiting_;
    std::size_t limit_;
    std::chrono::milliseconds queue_timeout_;
};

}  // namespace gatehouse::detail
