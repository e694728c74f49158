#include "gatehouse/worker_pool.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace gatehouse {
namespace {

// The queue, shared by the pool and its threads: a thread that outlives the pool's object
// (see stop_and_join) still has it to drain and exit cleanly.
struct queue_state {
    explicit queue_state(std::size_t limit) : max_queued(limit) {}

    const std::size_t max_queued;
    std::mutex mutex;
    std::condition_variable work_available;
    std::deque<std::function<void()>> jobs;
    bool stopping = false;

    void run() {
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock<std::mutex> lock(mutex);
                work_available.wait(lock, [this] { return stopping || !jobs.empty(); });
                // Stopping still drains the queue: each queued job was promised to a caller
                // who is waiting for its answer.
                if (jobs.empty()) return;
                job = std::move(jobs.front());
                jobs.pop_front();
            }
            try {
                job();
            } catch (...) {
                // A job owns its error reporting; one that throws anyway must not take a
                // thread with it, or the pool would shrink until nothing runs.
            }
            // Destroyed here, outside the lock: a job's captures may post again or be slow
            // to destroy, and neither may hold up the other threads.
            job = nullptr;
        }
    }
};

}  // namespace

struct worker_pool::impl {
    std::shared_ptr<queue_state> state;
    std::vector<std::thread> threads;
    // Serialises joining, so that concurrent stop() calls (or stop() and the destructor) do
    // not join one thread twice.
    std::mutex join_mutex;

    void stop_and_join() {
        {
            std::lock_guard<std::mutex> lock(state->mutex);
            state->stopping = true;
        }
        state->work_available.notify_all();
        std::lock_guard<std::mutex> lock(join_mutex);
        for (auto& t : threads) {
            if (!t.joinable()) continue;
            if (t.get_id() == std::this_thread::get_id()) {
                // Called from a job, which the documentation forbids: joining would wait for
                // ever. This thread drains the queue on its own once the job returns; it owns
                // a share of the queue, so it may outlive the pool object.
                t.detach();
                continue;
            }
            t.join();
        }
    }
};

worker_pool::worker_pool(std::size_t threads, std::size_t max_queued)
    : impl_(std::make_unique<impl>()) {
    impl_->state = std::make_shared<queue_state>(std::max<std::size_t>(1, max_queued));
    const std::size_t count = std::max<std::size_t>(1, threads);
    impl_->threads.reserve(count);
    try {
        for (std::size_t i = 0; i < count; ++i) {
            impl_->threads.emplace_back([state = impl_->state] { state->run(); });
        }
    } catch (...) {
        // std::thread's destructor terminates on a joinable thread: join the started ones.
        impl_->stop_and_join();
        throw;
    }
}

worker_pool::~worker_pool() { impl_->stop_and_join(); }

void worker_pool::stop() { impl_->stop_and_join(); }

bool worker_pool::post(std::function<void()> job) {
    if (!job) return false;
    auto& s = *impl_->state;
    {
        std::lock_guard<std::mutex> lock(s.mutex);
        if (!s.stopping && s.jobs.size() < s.max_queued) {
            s.jobs.push_back(std::move(job));
            s.work_available.notify_one();
            return true;
        }
    }
    // Refused: `job` dies when this frame ends, after the lock is released, so that its
    // captures' destructors may themselves post.
    return false;
}

std::size_t worker_pool::threads() const noexcept { return impl_->threads.size(); }

std::size_t worker_pool::queued() const {
    auto& s = *impl_->state;
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.jobs.size();
}

}  // namespace gatehouse
