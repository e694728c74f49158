#include "redis/io_thread.hpp"

#include <pthread.h>
#include <sched.h>

#include <utility>

namespace gatehouse::detail::redis {
namespace {

// SCHED_BATCH gives up only the wake-up preemption of the default policy: a thread woken by a
// hand-off no longer takes the core from the thread running there, so on a shared core the
// hand-off waits until that thread blocks and then carries a whole batch (fewer context
// switches, more throughput), at the price of the waiting time in each round trip's tail. A
// policy is a decision about the host's threads, so it is the embedder's to make: off unless
// asked for (Linux; elsewhere, or if refused, the thread keeps the default policy).
void prefer_batches_on_this_thread() noexcept {
#if defined(__linux__) && defined(SCHED_BATCH)
    sched_param param{};
    param.sched_priority = 0;
    static_cast<void>(pthread_setschedparam(pthread_self(), SCHED_BATCH, &param));
#endif
}

}  // namespace

io_thread::~io_thread() {
    // Only reached once the thread has ended or was detached (it holds the owner); a joinable
    // thread here would mean finish() was never called, and joining is the safe answer.
    if (thread_.joinable() && !on_this_thread()) thread_.join();
    if (thread_.joinable()) thread_.detach();
}

void io_thread::start(std::shared_ptr<void> owner, bool batch_scheduling) {
    thread_ = std::thread([this, owner = std::move(owner), batch_scheduling]() mutable {
        if (batch_scheduling) prefer_batches_on_this_thread();
        io_.run();
        // Released here, on this thread, after the last handler: when it is the last owner
        // (finish() was called from a handler), the owner and this object go now.
        owner.reset();
    });
    id_ = thread_.get_id();
}

void io_thread::finish() {
    work_.reset();
    if (!thread_.joinable()) return;
    if (on_this_thread()) {
        thread_.detach();
        return;
    }
    thread_.join();
}

}  // namespace gatehouse::detail::redis
