#pragma once
/// @file
/// `worker_pool`: threads for work that blocks or burns CPU (password hashing, database
/// calls), so that the gateway's I/O threads never do.

#include <cstddef>
#include <functional>
#include <memory>

namespace gatehouse {

/// A fixed set of threads taking jobs from one bounded FIFO queue.
///
/// Thread safety: `post` may be called from any thread, concurrently, including from a job.
/// Lifetime: the destructor stops taking jobs, runs the ones already queued, and joins; jobs
/// posted meanwhile (by running jobs) are refused. It must not run on one of the pool's own
/// threads (a job must not destroy its pool): it would wait for itself.
class worker_pool {
public:
    /// Starts `threads` threads (at least 1); at most `max_queued` jobs (at least 1) wait at a
    /// time. Throws `std::system_error` when a thread cannot be started.
    explicit worker_pool(std::size_t threads, std::size_t max_queued = 10000);
    ~worker_pool();
    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;

    /// Queues `job`; false (and `job` is destroyed unrun, on this thread) when the queue is
    /// full or the pool is stopping: the caller answers "busy" (HTTP 503) rather than wait.
    /// An empty `job` is refused too. A job that throws is caught; the exception is lost, the
    /// thread goes on. Jobs start in the order they were queued.
    bool post(std::function<void()> job);

    /// Stops taking jobs (`post` returns false from now on), runs the ones already queued and
    /// joins the threads. Idempotent; the destructor calls it. Must not be called from a job.
    void stop();

    /// Jobs queued and not yet started.
    std::size_t queued() const;

    /// The number of threads (fixed at construction).
    std::size_t threads() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gatehouse
