#include "accounts/account_jobs.hpp"

#include <exception>
#include <stdexcept>
#include <utility>

#include "accounts/account_requests.hpp"

namespace gatehouse::detail {

account_jobs::account_jobs(std::shared_ptr<worker_pool> workers, std::size_t max_queued,
                           std::chrono::milliseconds queue_timeout)
    : workers_(std::move(workers)),
      waiting_(std::make_shared<std::atomic<std::size_t>>(0)),
      limit_(0),
      queue_timeout_(queue_timeout) {
    if (!workers_) throw std::invalid_argument("accounts: a worker pool is needed");
    limit_ = max_queued != 0 ? max_queued : 4 * workers_->threads();
}

void account_jobs::run(const http_responder& respond, std::function<http_response()> job) const {
    if (waiting_->fetch_add(1, std::memory_order_relaxed) >= limit_) {
        waiting_->fetch_sub(1, std::memory_order_relaxed);
        return respond(busy());
    }
    const auto deadline = std::chrono::steady_clock::now() + queue_timeout_;
    const bool queued =
        workers_->post([waiting = waiting_, respond, job = std::move(job), deadline] {
            waiting->fetch_sub(1, std::memory_order_relaxed);
            if (std::chrono::steady_clock::now() > deadline) return respond(busy());
            http_response r;
            try {
                r = job();
            } catch (const std::exception&) {
                r = http_response::problem(500, "internal_error");
            }
            respond(std::move(r));
        });
    if (!queued) {
        waiting_->fetch_sub(1, std::memory_order_relaxed);
        respond(busy());
    }
}

}  // namespace gatehouse::detail
