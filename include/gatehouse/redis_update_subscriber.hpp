#pragma once
/// @file
/// `redis_update_subscriber`: the update listener of a gateway on Redis (docs/protocol.md section
/// 5): one connection SUBSCRIBEd to the updates channel, resubscribed by itself when Redis goes
/// away and comes back, handing every message to the gateway.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "gatehouse/log.hpp"
#include "gatehouse/pubsub_listener.hpp"

namespace gatehouse {

/// Settings of a `redis_update_subscriber`.
struct redis_update_subscriber_options {
    /// `redis://[user:password@]host[:port][/db]`, as for the command producer.
    std::string url = "redis://127.0.0.1:6379";
    /// The channel updates are published on.
    std::string updates_channel = "ws_updates_channel";
    /// Longest wait for the connection to be set up and for the SUBSCRIBE confirmation; the
    /// idle connection is PINGed every timeout/4, so a dead link is found within about this.
    std::chrono::milliseconds timeout{5000};
    /// Resubscribe backoff: the first retry after `reconnect_min`, doubling (with jitter) up
    /// to `reconnect_max` while Redis stays away.
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{2000};
    /// Linux, opt-in: the I/O thread runs under `SCHED_BATCH`; see
    /// `redis_command_producer_options::batch_scheduling`. Off by default.
    bool batch_scheduling = false;
    /// Where subscription losses and recoveries are reported (never the password).
    log_sink log;
};

/// Counters of a `redis_update_subscriber`.
struct redis_update_subscriber_stats {
    std::uint64_t updates_received = 0;  ///< Messages handed to the handler.
    std::uint64_t reconnects = 0;        ///< Times the subscription was re-established.
};

/// A `pubsub_listener` on one Redis channel, with a connection and an I/O thread of its own
/// (a connection in Pub/Sub mode carries nothing else), in the manner of redis-plus-plus's
/// `Subscriber`.
///
/// Updates: every message on the channel goes to the handler, on the subscriber's I/O thread,
/// one at a time, in the order Redis delivered it. Pub/Sub is at-most-once: messages
/// published while the subscription is down are not delivered, ever.
///
/// Faults: a broken connection is reconnected with backoff and resubscribed until `stop()`.
///
/// Thread safety: every member may be called from any thread; `stop()`, `close()` and the
/// destructor from the handler too.
/// Lifetime: safe to destroy at any time, from any thread. Once `stop()`, `close()` or the
/// destructor returns the handler is not running (unless the call came from the handler
/// itself) and is never called again. Internally every callback holds the subscriber's shared
/// state, never the object itself.
class redis_update_subscriber final : public pubsub_listener {
public:
    /// Starts the I/O thread; subscribes at `start()`. Throws `std::invalid_argument` naming
    /// the option when `url` is not a valid `redis://` URL, `updates_channel` is empty, or a
    /// duration is not positive.
    explicit redis_update_subscriber(redis_update_subscriber_options options);
    ~redis_update_subscriber() override;
    redis_update_subscriber(const redis_update_subscriber&) = delete;
    redis_update_subscriber& operator=(const redis_update_subscriber&) = delete;

    /// pubsub_listener: subscribes to the channel (now and after every reconnect) and hands
    /// each message to `on_message`. Once; later calls, and calls after `stop()`, are ignored.
    void start(update_handler on_message) override;
    /// pubsub_listener: `handler` runs on the I/O thread each time the subscription is
    /// re-established after a loss, once the new SUBSCRIBE is confirmed and before any message
    /// it brings is handed to `on_message`. Ignored once `start()` was called.
    void on_resubscribed(resubscribed_handler handler) override;
    /// pubsub_listener: stops delivering and unsubscribes; when it returns, `on_message` is
    /// not running (unless called from it) and will not be called again. Idempotent. It waits
    /// for a delivery in progress, so `on_message` must not wait on a thread that is calling
    /// `stop()`, `close()` or the destructor (the gateway's handler never does).
    void stop() override;
    /// True while the subscription is confirmed.
    bool connected() const noexcept override;

    /// Stops, closes the connection and ends the I/O thread. Idempotent; the destructor calls
    /// it.
    void close();

    /// Blocks until `connected()` or until `limit` passed; returns `connected()`.
    bool wait_connected(std::chrono::milliseconds limit) const;

    /// A snapshot of the counters.
    redis_update_subscriber_stats stats() const noexcept;

    /// The URL without its password, for logs.
    const std::string& redacted_url() const noexcept;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace gatehouse
