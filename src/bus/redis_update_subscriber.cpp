#include "gatehouse/redis_update_subscriber.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <utility>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "bus/redis_reconnect.hpp"
#include "redis/connection.hpp"
#include "redis/io_thread.hpp"
#include "redis/url.hpp"

namespace gatehouse {
namespace r = detail::redis;

// As in the command producer: what is neither atomic nor under a named mutex belongs to the
// I/O thread, and callbacks hold a weak_ptr to this state.
struct redis_update_subscriber::state : std::enable_shared_from_this<state> {
    state(redis_update_subscriber_options o, r::url u)
        : options(std::move(o)),
          where(std::move(u)),
          redacted(r::redacted(where)),
          retry(io.context()),
          reconnect_backoff(options.reconnect_min, options.reconnect_max) {}

    // First member: destroyed last, after everything that holds its io_context's objects.
    r::io_thread io;
    const redis_update_subscriber_options options;
    const r::url where;
    const std::string redacted;

    std::shared_ptr<r::connection> subscriber;  // I/O thread only
    asio::steady_timer retry;
    r::backoff reconnect_backoff;
    bool ever_up = false;
    std::atomic<bool> subscribed{false};

    // Guards `handler`, `resubscribed`, `started` and `closed`. The handlers are shared_ptrs
    // so that delivery calls a copy: stop() from inside one may drop it while it runs.
    std::mutex handler_mutex;
    std::shared_ptr<update_handler> handler;
    std::shared_ptr<resubscribed_handler> resubscribed;
    bool started = false;
    bool closed = false;
    // Held while the handler runs, so that stop() from another thread returns only once it
    // is not running.
    std::mutex deliver_mutex;

    mutable std::mutex state_mutex;
    mutable std::condition_variable state_changed;

    std::atomic<std::uint64_t> updates_received{0}, reconnects{0};

    void log(log_level level, const std::string& message) const {
        if (options.log) options.log(level, "redis " + redacted + ": " + message);
    }

    void notify_state() {
        { std::lock_guard<std::mutex> lock(state_mutex); }
        state_changed.notify_all();
    }

    bool listening() {
        std::lock_guard<std::mutex> lock(handler_mutex);
        return handler != nullptr;
    }

    void connect() {
        if (!listening()) return;
        auto c = std::make_shared<r::connection>(io.context(), where);
        c->set_timeout(options.timeout);
        subscriber = c;
        std::weak_ptr<state> weak = shared_from_this();
        std::weak_ptr<r::connection> weak_c = c;
        c->on_push([weak](const r::reply& message) {
            if (auto self = weak.lock()) self->deliver(message);
        });
        c->on_failure([weak, weak_c](std::error_code ec) {
            auto self = weak.lock();
            auto failed = weak_c.lock();
            if (!self || !failed) return;
            if (self->subscribed.exchange(false)) {
                self->log(log_level::warn, "subscription lost (" + r::describe(*failed, ec) +
                                               "); updates published meanwhile are not delivered");
                self->notify_state();
            }
            self->schedule_retry();
        });
        c->connect([weak, weak_c](std::error_code ec) {
            auto self = weak.lock();
            auto ready = weak_c.lock();
            if (!self || !ready || ec) return;  // on an error on_failure runs too, and retries
            ready->command({"SUBSCRIBE", self->options.updates_channel},
                           [weak, weak_c](std::error_code sub_ec, const r::reply& confirmation) {
                               auto me = weak.lock();
                               auto on = weak_c.lock();
                               if (me && on && !sub_ec) me->on_subscribed(*on, confirmation);
                           });
        });
    }

    void on_subscribed(r::connection& c, const r::reply& confirmation) {
        if (confirmation.is_error()) {
            log(log_level::error, "SUBSCRIBE refused: " + confirmation.str);
            c.close();
            schedule_retry();
            return;
        }
        reconnect_backoff.reset();
        if (ever_up) reconnects.fetch_add(1, std::memory_order_relaxed);
        log(log_level::info,
            (ever_up ? "resubscribed to " : "subscribed to ") + options.updates_channel);
        const bool again = ever_up;
        ever_up = true;
        subscribed.store(true, std::memory_order_release);
        notify_state();
        // Here, before this connection's first message is read: whatever the listener does
        // about the updates it missed happens before any update of the new subscription.
        if (again) tell_resubscribed();
    }

    void tell_resubscribed() {
        std::lock_guard<std::mutex> delivering(deliver_mutex);
        std::shared_ptr<resubscribed_handler> h;
        {
            std::lock_guard<std::mutex> lock(handler_mutex);
            if (handler) h = resubscribed;  // not after stop()
        }
        if (!h) return;
        try {
            (*h)();
        } catch (...) {
            // As in deliver(): the handler must not throw; this keeps the I/O thread alive.
        }
    }

    void schedule_retry() {
        if (!listening()) return;
        retry.expires_after(reconnect_backoff.next());
        std::weak_ptr<state> weak = shared_from_this();
        retry.async_wait([weak](std::error_code ec) {
            if (auto self = weak.lock(); self && !ec) self->connect();
        });
    }

    void deliver(const r::reply& message) {
        // ["message", channel, payload]; pmessage is never subscribed to here.
        if (message.kind != r::reply_kind::array || message.elements.size() != 3 ||
            !message.elements[0].is_text("message")) {
            return;
        }
        std::lock_guard<std::mutex> delivering(deliver_mutex);
        std::shared_ptr<update_handler> h;
        {
            std::lock_guard<std::mutex> lock(handler_mutex);
            h = handler;
        }
        if (!h) return;
        updates_received.fetch_add(1, std::memory_order_relaxed);
        try {
            (*h)(message.elements[2].str);
        } catch (...) {
            // One bad message must never stop the listener (docs/protocol.md section 5); the
            // handler's contract is not to throw, this only keeps the I/O thread alive.
        }
    }

    // On the I/O thread: ends the subscription (after stop() or close()).
    void unsubscribe() {
        retry.cancel();
        subscribed.store(false, std::memory_order_release);
        if (subscriber) subscriber->close_now();
        subscriber.reset();
        notify_state();
    }
};

redis_update_subscriber::redis_update_subscriber(redis_update_subscriber_options options) {
    r::url where;
    if (r::parse_url(options.url, where)) {
        throw std::invalid_argument(
            "redis_update_subscriber: url is not redis://[user:password@]host[:port][/db]");
    }
    if (options.updates_channel.empty()) {
        throw std::invalid_argument("redis_update_subscriber: updates_channel must not be empty");
    }
    if (options.timeout.count() <= 0 || options.reconnect_min.count() <= 0 ||
        options.reconnect_max < options.reconnect_min) {
        throw std::invalid_argument(
            "redis_update_subscriber: timeout and reconnect_min must be positive, "
            "reconnect_max >= reconnect_min");
    }
    state_ = std::make_shared<state>(std::move(options), std::move(where));
    state_->io.start(state_, state_->options.batch_scheduling);
}

redis_update_subscriber::~redis_update_subscriber() {
    try {
        close();
    } catch (...) {
        // close() throws only when the system cannot lock a mutex or join a thread; a
        // destructor has nobody to tell.
    }
}

void redis_update_subscriber::start(update_handler on_message) {
    auto& s = *state_;
    if (!on_message) return;
    {
        std::lock_guard<std::mutex> lock(s.handler_mutex);
        if (s.started || s.closed) return;
        s.started = true;
        s.handler = std::make_shared<update_handler>(std::move(on_message));
    }
    std::weak_ptr<state> weak = state_;
    asio::post(s.io.context(), [weak] {
        if (auto self = weak.lock()) self->connect();
    });
}

void redis_update_subscriber::on_resubscribed(resubscribed_handler handler) {
    auto& s = *state_;
    std::lock_guard<std::mutex> lock(s.handler_mutex);
    if (s.started || s.closed) return;
    s.resubscribed = handler ? std::make_shared<resubscribed_handler>(std::move(handler)) : nullptr;
}

void redis_update_subscriber::stop() {
    auto& s = *state_;
    std::shared_ptr<update_handler> finished;
    std::shared_ptr<resubscribed_handler> finished_too;
    {
        std::lock_guard<std::mutex> lock(s.handler_mutex);
        finished = std::move(s.handler);
        s.handler = nullptr;
        finished_too = std::move(s.resubscribed);
        s.resubscribed = nullptr;
    }
    if (!finished) return;
    if (s.io.on_this_thread()) {
        // From the handler (or another callback of this thread): nothing else can be
        // delivering, and the running delivery holds its own copy of the handler.
        s.unsubscribe();
        return;
    }
    // Waits out a delivery in progress; later ones find no handler.
    { std::lock_guard<std::mutex> delivering(s.deliver_mutex); }
    asio::post(s.io.context(), [self = state_] { self->unsubscribe(); });
    // `finished` (and `finished_too`) are released here, on this thread, after their last
    // call.
}

bool redis_update_subscriber::connected() const noexcept {
    return state_->subscribed.load(std::memory_order_acquire);
}

void redis_update_subscriber::close() {
    auto& s = *state_;
    {
        std::lock_guard<std::mutex> lock(s.handler_mutex);
        if (s.closed) return;
        s.closed = true;
    }
    stop();
    if (s.io.on_this_thread()) {
        s.unsubscribe();
    } else {
        asio::post(s.io.context(), [self = state_] { self->unsubscribe(); });
    }
    s.io.finish();
}

bool redis_update_subscriber::wait_connected(std::chrono::milliseconds limit) const {
    auto& s = *state_;
    std::unique_lock<std::mutex> lock(s.state_mutex);
    return s.state_changed.wait_for(lock, limit,
                                    [&s] { return s.subscribed.load(std::memory_order_acquire); });
}

redis_update_subscriber_stats redis_update_subscriber::stats() const noexcept {
    const auto& s = *state_;
    redis_update_subscriber_stats out;
    out.updates_received = s.updates_received.load(std::memory_order_relaxed);
    out.reconnects = s.reconnects.load(std::memory_order_relaxed);
    return out;
}

const std::string& redis_update_subscriber::redacted_url() const noexcept {
    return state_->redacted;
}

}  // namespace gatehouse
