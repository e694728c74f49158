#include "gatehouse/redis_client.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <utility>

#include <asio/error.hpp>
#include <asio/post.hpp>

#include "redis/connection.hpp"
#include "redis/io_thread.hpp"

namespace gatehouse {
namespace r = detail::redis;
using clock = std::chrono::steady_clock;

namespace {

// The end of a link in the words a caller can compare: the server closing it is a reset.
std::error_code normalised(std::error_code ec) {
    if (ec == asio::error::eof) return std::make_error_code(std::errc::connection_reset);
    return ec;
}

// Why a connect failed, naming the step Redis refused (never quoting the password: Redis's
// own AUTH errors do not repeat it).
std::string connect_failure(const r::connection& c, std::error_code ec) {
    const std::string& said = c.last_error();
    std::string what = ec.message();
    if (ec == std::errc::permission_denied) what = "AUTH refused";
    if (ec == std::errc::invalid_argument) what = "SELECT refused";
    if (ec == std::errc::connection_refused && !said.empty()) what = "PING refused";
    return said.empty() ? "cannot connect: " + what : "cannot connect: " + what + ": " + said;
}

}  // namespace

// Guarded by `mutex` unless atomic; the connection's callbacks run on the I/O thread and hold
// a weak_ptr to this state.
struct redis_client::state : std::enable_shared_from_this<state> {
    state(redis_client_options o, r::url u)
        : options(std::move(o)), where(std::move(u)), redacted(r::redacted(where)) {}

    // First member: destroyed last, after everything that holds its io_context's objects.
    r::io_thread io;
    const redis_client_options options;
    const r::url where;
    const std::string redacted;

    mutable std::mutex mutex;
    std::condition_variable changed;
    std::shared_ptr<r::connection> link;  // up, or being connected
    std::uint64_t attempts_started = 0;
    std::uint64_t attempts_finished = 0;
    std::error_code last_connect;  // the result of the latest finished attempt
    std::string last_error;
    std::atomic<bool> up{false};

    // Under `mutex`: drops `which` if it is still the current link.
    void drop_locked(const r::connection* which, const std::string& why) {
        if (!why.empty()) last_error = why;
        if (which == nullptr || link.get() != which) return;
        const auto c = std::move(link);
        link = nullptr;
        up.store(false, std::memory_order_release);
        c->close();
    }

    void start_attempt_locked() {
        auto c = std::make_shared<r::connection>(io.context(), where);
        c->set_timeout(options.timeout);
        link = c;
        const std::uint64_t attempt = ++attempts_started;
        std::weak_ptr<state> weak = shared_from_this();
        std::weak_ptr<r::connection> weak_c = c;
        c->on_failure([weak, weak_c](std::error_code ec) {
            auto self = weak.lock();
            auto failed = weak_c.lock();
            if (!self || !failed) return;
            const std::string why =
                "connection lost: " + normalised(ec).message() +
                (failed->last_error().empty() ? "" : ": " + failed->last_error());
            std::lock_guard<std::mutex> lock(self->mutex);
            if (self->link == failed) self->drop_locked(failed.get(), why);
        });
        c->connect([weak, weak_c, attempt](std::error_code ec) {
            auto self = weak.lock();
            auto ready = weak_c.lock();
            if (!self || !ready) return;
            {
                std::lock_guard<std::mutex> lock(self->mutex);
                self->attempts_finished = attempt;
                if (!ec && self->link == ready) {
                    self->up.store(true, std::memory_order_release);
                    self->last_connect = {};
                } else if (ec) {
                    // Redis wants credentials the URL lacks: a refusal, like a wrong password.
                    const bool no_auth = ec == std::errc::connection_refused &&
                                         ready->last_error().rfind("NOAUTH", 0) == 0;
                    self->last_connect = no_auth
                                             ? std::make_error_code(std::errc::permission_denied)
                                             : normalised(ec);
                    self->last_error = connect_failure(*ready, ec);
                    if (self->link == ready) self->link.reset();
                } else {
                    self->last_connect = asio::error::operation_aborted;  // dropped meanwhile
                }
            }
            self->changed.notify_all();
        });
    }

    std::error_code connect_until(clock::time_point until) {
        std::unique_lock<std::mutex> lock(mutex);
        if (link && up.load(std::memory_order_acquire)) return {};
        // One attempt at a time: a caller arriving during one waits for it.
        if (!link) start_attempt_locked();
        const std::uint64_t awaited = attempts_started;
        if (!changed.wait_until(lock, until, [&] { return attempts_finished >= awaited; })) {
            last_error = "cannot connect: timed out";
            return std::make_error_code(std::errc::timed_out);
        }
        if (link && up.load(std::memory_order_acquire)) return {};
        return last_connect ? last_connect : std::make_error_code(std::errc::not_connected);
    }

    std::error_code command(const std::vector<std::string>& argv, redis_reply& out,
                            std::chrono::milliseconds deadline) {
        out = redis_reply{};
        const auto until = clock::now() + deadline;
        if (auto ec = connect_until(until)) return ec;
        std::shared_ptr<r::connection> c;
        {
            std::lock_guard<std::mutex> lock(mutex);
            c = link;
        }
        if (!c) return std::make_error_code(std::errc::not_connected);

        // The answer may come after this call gave up: it then lands here, harmlessly.
        struct waiter {
            std::mutex m;
            std::condition_variable cv;
            bool done = false;
            std::error_code ec;
            redis_reply reply;
        };
        auto w = std::make_shared<waiter>();
        c->command(argv, [w](std::error_code ec, r::reply reply) {
            {
                std::lock_guard<std::mutex> lock(w->m);
                w->done = true;
                w->ec = normalised(ec);
                w->reply = std::move(reply);
            }
            w->cv.notify_all();
        });
        std::unique_lock<std::mutex> wait(w->m);
        if (!w->cv.wait_until(wait, until, [&] { return w->done; })) {
            wait.unlock();
            std::lock_guard<std::mutex> lock(mutex);
            // A hung server is not waited on twice: the next call connects anew.
            drop_locked(c.get(), "reply timed out");
            return std::make_error_code(std::errc::timed_out);
        }
        if (w->ec) {
            const auto ec = w->ec;
            wait.unlock();
            std::lock_guard<std::mutex> lock(mutex);
            drop_locked(c.get(), "connection lost: " + ec.message());
            return ec;
        }
        out = std::move(w->reply);
        return {};
    }
};

redis_client::redis_client(redis_client_options options) {
    r::url where;
    if (r::parse_url(options.url, where)) {
        throw std::invalid_argument(
            "redis_client: url is not redis://[user:password@]host[:port][/db]");
    }
    if (options.timeout.count() <= 0) {
        throw std::invalid_argument("redis_client: timeout must be positive");
    }
    state_ = std::make_shared<state>(std::move(options), std::move(where));
    state_->io.start(state_, false);
}

redis_client::~redis_client() {
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        state_->drop_locked(state_->link.get(), {});
    }
    state_->io.finish();
}

std::error_code redis_client::connect() {
    return state_->connect_until(clock::now() + state_->options.timeout);
}

std::error_code redis_client::command(const std::vector<std::string>& argv, redis_reply& out) {
    return state_->command(argv, out, state_->options.timeout);
}

std::error_code redis_client::command(const std::vector<std::string>& argv, redis_reply& out,
                                      std::chrono::milliseconds deadline) {
    return state_->command(argv, out, deadline);
}

bool redis_client::connected() const noexcept { return state_->up.load(std::memory_order_acquire); }

void redis_client::disconnect() {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->drop_locked(state_->link.get(), {});
}

std::string redis_client::last_error() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->last_error;
}

const std::string& redis_client::redacted_url() const noexcept { return state_->redacted; }

}  // namespace gatehouse
