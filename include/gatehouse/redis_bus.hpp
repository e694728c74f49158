#pragma once
/// @file
/// `redis_bus`: the command bus and update listener of a gateway on Redis (docs/protocol.md
/// sections 4 and 5), one object made of a `redis_command_producer` (commands `XADD`ed to a
/// stream) and a `redis_update_subscriber` (updates heard on a Pub/Sub channel); both heal by
/// themselves when Redis goes away and comes back. It is also the gateway's `update_log`
/// (section 6.4), kept in Redis by the `gatehouse` function library.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gatehouse/command_bus.hpp"
#include "gatehouse/log.hpp"
#include "gatehouse/pubsub_listener.hpp"
#include "gatehouse/redis_command_producer.hpp"
#include "gatehouse/redis_update_subscriber.hpp"
#include "gatehouse/update_log.hpp"

namespace gatehouse {

/// Settings of a `redis_bus`.
struct redis_bus_options {
    /// `redis://[user:password@]host[:port][/db]` (AUTH with an ACL user when a user is given;
    /// SELECT when db is not 0). IPv6 hosts in brackets.
    std::string url = "redis://127.0.0.1:6379";
    /// The stream each accepted command is appended to.
    std::string command_stream = "gateway:commands";
    /// The channel updates are published on.
    std::string updates_channel = "ws_updates_channel";
    /// Written into each entry's `gateway_id`: give the gateway's own id.
    std::string gateway_id = "local";
    /// When not 0, every XADD trims the stream to about this many entries (`MAXLEN ~ N`:
    /// Redis trims whole nodes, so the stream may hold somewhat more).
    std::size_t stream_maxlen = 0;
    /// Each player's update log keeps the newest this many updates (at least 1;
    /// `--update-log-size`).
    std::size_t update_log_size = 1000;
    /// A logged update is replayed for at most this long (positive; `--update-log-ttl`).
    std::chrono::seconds update_log_ttl{3600};
    /// Idempotent commands (docs/protocol.md 6.5): a command whose `(player_id, correlation_id)`
    /// was accepted within this window is not appended again; `done` gets the original
    /// entry id. Only client-chosen correlation ids count
    /// (`command_origin::correlation_assigned` is false). 0: off.
    std::chrono::seconds dedupe_window{120};
    /// Longest wait for a connection to be set up and for any reply. A link that stays silent
    /// longer is treated as broken: its commands in flight fail with `errc::bus_unavailable`
    /// and it is reconnected. Also the interval of the health-check PING on each connection
    /// (every timeout/4), so a dead link is found within about this long even when idle.
    std::chrono::milliseconds timeout{5000};
    /// Reconnect backoff: the first retry after `reconnect_min`, doubling (with jitter) up to
    /// `reconnect_max` while Redis stays away.
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{2000};
    /// Linux, opt-in: both I/O threads run under `SCHED_BATCH`; see
    /// `redis_command_producer_options::batch_scheduling` for what it gains and costs. Off by
    /// default: a scheduling policy is the host process's decision.
    bool batch_scheduling = false;
    /// Where connection losses, recoveries and malformed Pub/Sub traffic are reported.
    /// Never given passwords: the URL is logged without its credentials.
    log_sink log;
};

/// Counters of a `redis_bus`, for metrics and tests.
struct redis_bus_stats {
    std::uint64_t appended = 0;             ///< Commands Redis answered with an entry id.
    std::uint64_t append_failures = 0;      ///< Commands answered with `bus_unavailable`.
    std::uint64_t updates_received = 0;     ///< Pub/Sub messages handed to the handler.
    std::uint64_t command_reconnects = 0;   ///< Times the command connection was re-established.
    std::uint64_t listener_reconnects = 0;  ///< Times the subscription was re-established.
    /// Retried commands answered with their first entry id, not appended (docs/protocol.md 6.5).
    std::uint64_t duplicates = 0;
};

/// A `command_bus` and `pubsub_listener` on one Redis server: a `redis_command_producer`
/// and a `redis_update_subscriber` built from one set of options, for a gateway that wants
/// both from one Redis (use the two parts on their own to split them).
///
/// Two connections, each with its own I/O thread: one carries every `XADD`, pipelined (many
/// commands in flight, replies matched in order, everything queued leaving in one write); the
/// other is SUBSCRIBEd to the updates channel. The gateway's threads only format a command and
/// hand it over.
///
/// Commands: see `redis_command_producer` (the entry's fields, `errc::bus_unavailable` while
/// the link is down or when it breaks with commands in flight). Updates: see
/// `redis_update_subscriber` (in Redis's order, on its I/O thread, at-most-once). Update
/// log: see `redis_command_producer` (the `gatehouse` library, loaded at every connect, and
/// the FCALLs on the command connection).
///
/// Thread safety: every member may be called from any thread, `close()` and the destructor
/// from a bus callback too.
/// Lifetime: safe to destroy at any time, in any order with the gateway that uses it: the
/// destructor closes, closing answers every command still in flight with
/// `errc::bus_unavailable` (each `done` exactly once), and once it returns no callback of the
/// bus runs any more.
class redis_bus final : public command_bus, public pubsub_listener, public update_log {
public:
    /// Starts both I/O threads and begins connecting; returns without waiting for Redis (see
    /// `wait_connected`). Throws `std::invalid_argument` when `options.url` is not a valid
    /// `redis://` URL, the stream or channel name is empty, a duration is not positive, or
    /// `update_log_size` is 0 (`update_log_ttl` must be positive, up to a year).
    explicit redis_bus(redis_bus_options options);
    ~redis_bus() override;
    redis_bus(const redis_bus&) = delete;
    redis_bus& operator=(const redis_bus&) = delete;

    /// command_bus: formats the XADD on the calling thread and pipelines it; `done` runs with
    /// the entry id, or with `errc::bus_unavailable` (see `redis_command_producer::append`).
    void append(const envelope& command, append_handler done) override;

    /// update_log: `FCALL gatehouse_publish` on the command connection (see
    /// `redis_command_producer::publish_logged`).
    void publish_logged(std::string message, logged_publish_handler done) override;
    /// update_log: `FCALL_RO gatehouse_read` on the command connection (see
    /// `redis_command_producer::read_after`).
    void read_after(std::string player_id, std::string after_id, std::size_t max_bytes,
                    log_read_handler done) override;

    /// True while the command connection is up and, once `start()` was called, the
    /// subscription is confirmed (both base classes share this; `GET /ready` wants both).
    bool connected() const noexcept override;

    /// pubsub_listener: subscribes to the updates channel (now and after every reconnect)
    /// and hands each message to `on_message`. Called once; later calls are ignored.
    void start(update_handler on_message) override;
    /// pubsub_listener: see `redis_update_subscriber::on_resubscribed`.
    void on_resubscribed(resubscribed_handler handler) override;
    /// pubsub_listener: stops delivering and unsubscribes; when it returns, `on_message` is
    /// not running and will not be called again. Idempotent.
    void stop() override;

    /// Closes both parts: answers every command still in flight with
    /// `errc::bus_unavailable` (each `done` runs before `close()` returns), stops the listener,
    /// closes both connections and ends both I/O threads; from then on `append` fails at once.
    /// Idempotent; the destructor calls it.
    void close();

    /// Blocks until `connected()` or until `limit` passed; returns `connected()`.
    bool wait_connected(std::chrono::milliseconds limit) const;

    /// A snapshot of the counters.
    redis_bus_stats stats() const noexcept;

    /// The URL without its password (`redis://user:***@host:port/db`), for logs.
    const std::string& redacted_url() const noexcept;

    /// The command side (for its own counters and `wait_connected`).
    redis_command_producer& producer() noexcept;
    /// The update side.
    redis_update_subscriber& subscriber() noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gatehouse
