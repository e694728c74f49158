#pragma once
// One io_context with one thread of its own, for a Redis component (the command producer, the
// update subscriber, the blocking client): the thread that runs every handler of the
// component, started and finished here so that each component does it the same way.

#include <memory>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

namespace gatehouse::detail::redis {

/// An `io_context` run by one thread.
///
/// Lifetime: it is a member of its owner's shared state, and the thread holds that state
/// (`start()`'s `owner`) until `run()` returns, so no handler can outlive what it touches.
/// `finish()` ends the thread from any thread, its own included.
/// Thread safety: `on_this_thread()` from any thread; `start()` and `finish()` once each.
class io_thread {
public:
    io_thread() = default;
    ~io_thread();
    io_thread(const io_thread&) = delete;
    io_thread& operator=(const io_thread&) = delete;

    /// Starts the thread, which keeps `owner` alive until it ends. With `batch_scheduling`
    /// (Linux) the thread runs under `SCHED_BATCH` (see redis_command_producer_options).
    void start(std::shared_ptr<void> owner, bool batch_scheduling);

    /// Lets `run()` return once nothing is queued or in flight any more; waits for that unless
    /// called on the thread itself (the thread then ends on its own after the running
    /// handler). Call it after the owner closed everything it had started. Idempotent.
    void finish();

    /// True on the thread that runs the handlers.
    bool on_this_thread() const noexcept { return std::this_thread::get_id() == id_; }

    asio::io_context& context() noexcept { return io_; }

private:
    asio::io_context io_{1};
    asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
    std::thread thread_;
    std::thread::id id_;
};

}  // namespace gatehouse::detail::redis
