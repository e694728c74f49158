#include "gatehouse/redis_bus.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>

#include <pthread.h>
#include <sched.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "gatehouse/errc.hpp"
#include "redis/connection.hpp"
#include "redis/url.hpp"

namespace gatehouse {
namespace r = detail::redis;

namespace {

// Exponential backoff with jitter, so that many gateways losing one Redis do not all knock
// on it in the same millisecond when it returns.
class backoff {
public:
    backoff(std::chrono::milliseconds min, std::chrono::milliseconds max) : min_(min), max_(max) {}

    std::chrono::milliseconds next() {
        const auto base = std::min(max_, min_ * (std::int64_t{1} << std::min(attempt_, 20)));
        ++attempt_;
        // 75-125% of the base, capped at the maximum.
        std::uniform_int_distribution<std::int64_t> spread(base.count() * 3 / 4,
                                                           base.count() * 5 / 4);
        return std::min(max_, std::chrono::milliseconds{std::max<std::int64_t>(1, spread(rng_))});
    }
    void reset() noexcept { attempt_ = 0; }
    int attempts() const noexcept { return attempt_; }

private:
    std::chrono::milliseconds min_, max_;
    int attempt_ = 0;
    std::minstd_rand rng_{std::random_device{}()};
};

// Lets the bus's I/O thread run as SCHED_BATCH (Linux; elsewhere, or if refused, the thread
// keeps the default policy). Under the default policy a thread that is woken preempts the one
// running on its core: each command a gateway thread hands over woke the bus thread, which
// took it away from the gateway thread after a few commands, and each batch of replies did the
// same the other way. SCHED_BATCH only gives up that wake-up preemption, so on a shared core
// the hand-off waits until the running thread blocks and then carries a whole batch; on an
// idle core the bus thread still runs at once. One gateway thread and the bus on one core:
// context switches down 6x, ingress up 1.3x (docs/benchmarks.md).
void prefer_batches_on_this_thread() noexcept {
#if defined(__linux__) && defined(SCHED_BATCH)
    sched_param param{};
    param.sched_priority = 0;
    static_cast<void>(pthread_setschedparam(pthread_self(), SCHED_BATCH, &param));
#endif
}

}  // namespace

// Everything below `io` is touched only on the bus's one I/O thread, except what is atomic
// or guarded by a named mutex: that thread runs every handler, so they need no strand.
struct redis_bus::impl {
    impl(redis_bus_options o, r::url u)
        : options(std::move(o)),
          where(std::move(u)),
          redacted(r::redacted(where)),
          command_retry(io),
          command_backoff(options.reconnect_min, options.reconnect_max),
          listener_retry(io),
          listener_backoff(options.reconnect_min, options.reconnect_max) {
        // The constant head of every XADD: `XADD <stream> [MAXLEN ~ N] *`, and the constant
        // gateway_id field, formatted once.
        head_args = 3;
        r::format_bulk(xadd_head, "XADD");
        r::format_bulk(xadd_head, options.command_stream);
        if (options.stream_maxlen != 0) {
            r::format_bulk(xadd_head, "MAXLEN");
            r::format_bulk(xadd_head, "~");
            r::format_bulk(xadd_head, std::to_string(options.stream_maxlen));
            head_args += 3;
        }
        r::format_bulk(xadd_head, "*");
        r::format_bulk(gateway_field, "gateway_id");
        r::format_bulk(gateway_field, options.gateway_id);
    }

    const redis_bus_options options;
    const r::url where;
    const std::string redacted;
    std::string xadd_head;
    std::size_t head_args = 0;
    std::string gateway_field;

    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread;
    std::atomic<bool> closed{false};  // close() ran (or is running)
    bool closing = false;

    // Command side. `command` is replaced on reconnect while appending threads read it.
    std::mutex command_mutex;
    std::shared_ptr<r::connection> command;
    std::atomic<bool> command_up{false};
    asio::steady_timer command_retry;
    backoff command_backoff;
    bool command_ever_up = false;

    // Listener side.
    std::shared_ptr<r::connection> subscriber;
    std::atomic<bool> listening{false};  // between start() and stop()
    std::atomic<bool> subscribed{false};
    asio::steady_timer listener_retry;
    backoff listener_backoff;
    bool listener_ever_up = false;
    // Held while the handler runs, so that stop() returns only once it is not running.
    std::mutex deliver_mutex;
    update_handler on_message;

    // wait_connected().
    mutable std::mutex state_mutex;
    mutable std::condition_variable state_changed;

    std::atomic<std::uint64_t> appended{0}, append_failures{0}, updates_received{0},
        command_reconnects{0}, listener_reconnects{0}, reply_errors{0};

    void log(log_level level, const std::string& message) const {
        if (options.log) options.log(level, "redis " + redacted + ": " + message);
    }

    void notify_state() {
        { std::lock_guard<std::mutex> lock(state_mutex); }
        state_changed.notify_all();
    }

    bool connected() const noexcept {
        return command_up.load(std::memory_order_acquire) &&
               (!listening.load(std::memory_order_acquire) ||
                subscribed.load(std::memory_order_acquire));
    }

    std::shared_ptr<r::connection> make_connection() {
        auto c = std::make_shared<r::connection>(io, where);
        c->set_timeout(options.timeout);
        return c;
    }

    // --- command connection ------------------------------------------------------------------

    void connect_command() {
        if (closing) return;
        auto c = make_connection();
        {
            std::lock_guard<std::mutex> lock(command_mutex);
            command = c;
        }
        c->on_failure([this, c](std::error_code ec) {
            const int failed_attempts = command_backoff.attempts();
            if (command_up.exchange(false)) {
                log(log_level::warn, "command connection lost (" + describe(*c, ec) +
                                         "); commands get bus_unavailable until it is back");
                notify_state();
            } else if (failed_attempts == 0 || failed_attempts % 50 == 0) {
                // The first failure of an outage, then a reminder now and then: a Redis down
                // for an hour must not write a line per retry.
                log(log_level::warn, "cannot connect (" + describe(*c, ec) + "); retrying, " +
                                         std::to_string(failed_attempts + 1) + " attempt(s)");
            }
            retry_command();
        });
        c->connect([this, c](std::error_code ec) {
            if (ec) return;  // on_failure runs too, and retries
            command_backoff.reset();
            if (command_ever_up) command_reconnects.fetch_add(1, std::memory_order_relaxed);
            log(log_level::info,
                command_ever_up ? "command connection re-established" : "command connection up");
            command_ever_up = true;
            command_up.store(true, std::memory_order_release);
            notify_state();
        });
    }

    void retry_command() {
        if (closing) return;
        command_retry.expires_after(command_backoff.next());
        command_retry.async_wait([this](std::error_code ec) {
            if (!ec) connect_command();
        });
    }

    // --- subscriber connection ---------------------------------------------------------------

    void connect_subscriber() {
        if (closing || !listening.load(std::memory_order_acquire)) return;
        auto c = make_connection();
        subscriber = c;
        c->on_push([this](const r::reply& message) { deliver(message); });
        c->on_failure([this, c](std::error_code ec) {
            if (subscribed.exchange(false)) {
                log(log_level::warn, "subscription lost (" + describe(*c, ec) +
                                         "); updates published meanwhile are not delivered");
                notify_state();
            }
            retry_subscriber();
        });
        c->connect([this, c](std::error_code ec) {
            if (ec) return;
            c->command({"SUBSCRIBE", options.updates_channel},
                       [this, c](std::error_code sub_ec, const r::reply& confirmation) {
                           if (sub_ec) return;  // on_failure retries
                           if (confirmation.is_error()) {
                               log(log_level::error, "SUBSCRIBE refused: " + confirmation.str);
                               c->close();
                               retry_subscriber();
                               return;
                           }
                           listener_backoff.reset();
                           if (listener_ever_up) {
                               listener_reconnects.fetch_add(1, std::memory_order_relaxed);
                           }
                           log(log_level::info,
                               (listener_ever_up ? "resubscribed to " : "subscribed to ") +
                                   options.updates_channel);
                           listener_ever_up = true;
                           subscribed.store(true, std::memory_order_release);
                           notify_state();
                       });
        });
    }

    void retry_subscriber() {
        if (closing || !listening.load(std::memory_order_acquire)) return;
        listener_retry.expires_after(listener_backoff.next());
        listener_retry.async_wait([this](std::error_code ec) {
            if (!ec) connect_subscriber();
        });
    }

    void deliver(const r::reply& message) {
        // ["message", channel, payload]; pmessage is never subscribed to here.
        if (message.kind != r::reply_kind::array || message.elements.size() != 3 ||
            !message.elements[0].is_text("message")) {
            return;
        }
        std::lock_guard<std::mutex> lock(deliver_mutex);
        if (!on_message) return;
        updates_received.fetch_add(1, std::memory_order_relaxed);
        try {
            on_message(message.elements[2].str);
        } catch (...) {
            // One bad message must never stop the listener (PROTOCOL.md section 5); the
            // handler's contract is not to throw, this only keeps the I/O thread alive.
        }
    }

    static std::string describe(const r::connection& c, std::error_code ec) {
        const auto& detail = c.last_error();
        return detail.empty() ? ec.message() : ec.message() + ": " + detail;
    }
};

redis_bus::redis_bus(redis_bus_options options) {
    r::url where;
    if (r::parse_url(options.url, where)) {
        throw std::invalid_argument("redis_bus: not a redis:// URL");
    }
    if (options.command_stream.empty() || options.updates_channel.empty()) {
        throw std::invalid_argument("redis_bus: the stream and channel names must not be empty");
    }
    if (options.timeout.count() <= 0 || options.reconnect_min.count() <= 0 ||
        options.reconnect_max < options.reconnect_min) {
        throw std::invalid_argument(
            "redis_bus: timeout and reconnect_min must be positive, reconnect_max >= "
            "reconnect_min");
    }
    impl_ = std::make_shared<impl>(std::move(options), std::move(where));
    auto* i = impl_.get();
    asio::post(i->io, [i] { i->connect_command(); });
    const bool batch = i->options.batch_scheduling;
    i->thread = std::thread([i, batch] {
        if (batch) prefer_batches_on_this_thread();
        i->io.run();
    });
}

redis_bus::~redis_bus() { close(); }

void redis_bus::close() {
    auto* i = impl_.get();
    if (i->closed.exchange(true)) return;
    stop();
    asio::post(i->io, [i] {
        i->closing = true;
        i->command_retry.cancel();
        i->listener_retry.cancel();
        std::shared_ptr<r::connection> command;
        {
            std::lock_guard<std::mutex> lock(i->command_mutex);
            command = std::move(i->command);
        }
        i->command_up.store(false);
        i->notify_state();
        // Pending XADDs fail with operation_aborted: each done() runs once, as promised.
        if (command) command->close();
    });
    // run() returns once the closes have completed and nothing else is queued.
    i->work.reset();
    i->thread.join();
}

void redis_bus::append(const envelope& command, append_handler done) {
    auto* i = impl_.get();
    if (!i->command_up.load(std::memory_order_acquire)) {
        i->append_failures.fetch_add(1, std::memory_order_relaxed);
        done(make_error_code(errc::bus_unavailable), {});
        return;
    }
    std::shared_ptr<r::connection> connection;
    {
        std::lock_guard<std::mutex> lock(i->command_mutex);
        connection = i->command;
    }
    if (!connection) {  // closed meanwhile
        i->append_failures.fetch_add(1, std::memory_order_relaxed);
        done(make_error_code(errc::bus_unavailable), {});
        return;
    }
    // Formatted here, on the caller's thread, straight into the connection's batch: the Redis
    // thread takes a whole batch per wake-up and only appends it to its output. Nine fields,
    // plus payload_codec when the envelope names one.
    const auto& o = command.origin;
    const bool named = !command.payload_codec.empty();
    const std::string ts = std::to_string(o.accepted_at_ms);
    const auto format = [&](std::string& out) {
        r::format_array_header(out, i->head_args + 18 + (named ? 2 : 0));
        out += i->xadd_head;
        r::format_bulk(out, "type");
        r::format_bulk(out, command.type);
        r::format_bulk(out, "payload");
        r::format_bulk(out, command.payload);
        r::format_bulk(out, "codec");
        r::format_bulk(out, bus_codec_name(command.format));
        r::format_bulk(out, "correlation_id");
        r::format_bulk(out, command.correlation_id);
        r::format_bulk(out, "player_id");
        r::format_bulk(out, o.player_id);
        r::format_bulk(out, "connection_id");
        r::format_bulk(out, o.connection_id);
        out += i->gateway_field;
        r::format_bulk(out, "client");
        r::format_bulk(out, o.client == client_kind::bot ? "bot" : "player");
        r::format_bulk(out, "ts_ms");
        r::format_bulk(out, ts);
        if (named) {
            r::format_bulk(out, "payload_codec");
            r::format_bulk(out, command.payload_codec);
        }
    };
    connection->send_with(
        format, [i, done = std::move(done)](std::error_code ec, const r::reply& reply) {
            if (!ec && reply.kind == r::reply_kind::string) {
                i->appended.fetch_add(1, std::memory_order_relaxed);
                done({}, reply.str);
                return;
            }
            i->append_failures.fetch_add(1, std::memory_order_relaxed);
            if (!ec) {
                // Redis refused the XADD itself (the key holds another type, OOM, ...): the
                // command is not on the stream. Logged sparingly: a misconfiguration would
                // otherwise log once per command.
                const auto n = i->reply_errors.fetch_add(1, std::memory_order_relaxed);
                if (n % 1000 == 0) {
                    i->log(log_level::error, "XADD refused: " + reply.str + " (" +
                                                 std::to_string(n + 1) + " so far)");
                }
            }
            done(make_error_code(errc::bus_unavailable), {});
        });
}

bool redis_bus::connected() const noexcept { return impl_->connected(); }

void redis_bus::start(update_handler on_message) {
    auto* i = impl_.get();
    {
        std::lock_guard<std::mutex> lock(i->deliver_mutex);
        if (i->on_message || !on_message) return;
        i->on_message = std::move(on_message);
    }
    i->listening.store(true, std::memory_order_release);
    asio::post(i->io, [i] { i->connect_subscriber(); });
}

void redis_bus::stop() {
    auto* i = impl_.get();
    update_handler finished;
    {
        std::lock_guard<std::mutex> lock(i->deliver_mutex);
        if (!i->listening.exchange(false)) return;
        // Released outside the lock, on this thread, after its last call.
        finished = std::move(i->on_message);
        i->on_message = nullptr;
    }
    asio::post(i->io, [i] {
        i->listener_retry.cancel();
        i->subscribed.store(false);
        if (i->subscriber) i->subscriber->close();
        i->subscriber.reset();
        i->notify_state();
    });
}

bool redis_bus::wait_connected(std::chrono::milliseconds limit) const {
    std::unique_lock<std::mutex> lock(impl_->state_mutex);
    return impl_->state_changed.wait_for(lock, limit, [this] { return impl_->connected(); });
}

redis_bus_stats redis_bus::stats() const noexcept {
    const auto& i = *impl_;
    redis_bus_stats s;
    s.appended = i.appended.load(std::memory_order_relaxed);
    s.append_failures = i.append_failures.load(std::memory_order_relaxed);
    s.updates_received = i.updates_received.load(std::memory_order_relaxed);
    s.command_reconnects = i.command_reconnects.load(std::memory_order_relaxed);
    s.listener_reconnects = i.listener_reconnects.load(std::memory_order_relaxed);
    return s;
}

const std::string& redis_bus::redacted_url() const noexcept { return impl_->redacted; }

}  // namespace gatehouse
