#pragma once
/// @file
/// `redis_bus`: the command bus and update listener of a gateway on Redis (PROTOCOL.md
/// sections 4 and 5): commands are `XADD`ed to a stream, updates are heard on a Pub/Sub
/// channel, and both heal by themselves when Redis goes away and comes back.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gatehouse/command_bus.hpp"
#include "gatehouse/log.hpp"
#include "gatehouse/pubsub_listener.hpp"

namespace gatehouse {

/// Settings of a `redis_bus`.
struct redis_bus_options {
    /// `redis://[user:password@]host[:port][/db]` (AUTH with an ACL user when a user is given;
    /// SELECT when db is not 0). IPv6 hosts in brackets.
    std::string url = "redis://127.0.0.1:6379";
    /// The stream each accepted command is appended to (`--command-stream`).
    std::string command_stream = "gateway:commands";
    /// The channel updates are published on (`--updates-channel`).
    std::string updates_channel = "ws_updates_channel";
    /// Written into each entry's `gateway_id`: give the gateway's own id.
    std::string gateway_id = "local";
    /// When not 0, every XADD trims the stream to about this many entries (`MAXLEN ~ N`:
    /// Redis trims whole nodes, so the stream may hold somewhat more).
    std::size_t stream_maxlen = 0;
    /// Longest wait for a connection to be set up and for any reply. A link that stays silent
    /// longer is treated as broken: its commands in flight fail with `errc::bus_unavailable`
    /// and it is reconnected. Also the interval of the health-check PING on each connection
    /// (every timeout/4), so a dead link is found within about this long even when idle.
    std::chrono::milliseconds timeout{5000};
    /// Reconnect backoff: the first retry after `reconnect_min`, doubling (with jitter) up to
    /// `reconnect_max` while Redis stays away.
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{2000};
    /// Linux: the bus's I/O thread runs under `SCHED_BATCH` (unprivileged), so that waking it
    /// (a gateway thread handing over commands, Redis answering) does not preempt whatever
    /// runs on that core: the hand-off happens when the running thread waits, with a whole
    /// batch. With a gateway thread and the bus sharing one core this cut context switches
    /// 6x and raised command throughput 1.3x (docs/benchmarks.md). On an idle core the bus
    /// thread still runs at once; where other busy processes share its cores, it may wait for
    /// their time slice instead of cutting in. `false` keeps the default policy.
    bool batch_scheduling = true;
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
};

/// A `command_bus` and `pubsub_listener` on one Redis server.
///
/// Two connections: one carries every `XADD`, pipelined (many commands in flight, replies
/// matched in order, everything queued leaving in one write); the other is SUBSCRIBEd to the
/// updates channel. Both run on the bus's own I/O thread (one `asio::io_context`), so the
/// gateway's threads only format a command and hand it over.
///
/// Commands: `append` sends `XADD <stream> [MAXLEN ~ N] * type .. payload .. codec ..
/// correlation_id .. player_id .. connection_id .. gateway_id .. client .. ts_ms ..`
/// (plus `payload_codec` when the envelope names one) and reports the entry id Redis
/// answered. While the command connection is down it fails at once with
/// `errc::bus_unavailable`; commands in flight when the link breaks fail with it too (Redis
/// may or may not have appended them: an error never means "certainly not on the stream",
/// only an ack means "certainly on it").
///
/// Updates: every message on the channel goes to the handler, on the bus's I/O thread, in the
/// order Redis delivered it. Pub/Sub is at-most-once: messages published while the
/// subscription is down are not delivered, ever.
///
/// Faults: a broken connection is reconnected with backoff (and resubscribed) until the bus
/// is destroyed; nothing needs restarting when Redis returns on the same address.
///
/// Thread safety: every member may be called from any thread.
/// Lifetime: `close()` (or the destructor) stops the listener, fails every command still in
/// flight with `errc::bus_unavailable` (each `done` runs exactly once) and joins the I/O thread.
class redis_bus final : public command_bus, public pubsub_listener {
public:
    /// Starts the I/O thread and begins connecting; returns without waiting for Redis (see
    /// `wait_connected`). Throws `std::invalid_argument` when `options.url` is not a valid
    /// `redis://` URL, the stream or channel name is empty, or a duration is not positive.
    explicit redis_bus(redis_bus_options options);
    ~redis_bus() override;
    redis_bus(const redis_bus&) = delete;
    redis_bus& operator=(const redis_bus&) = delete;

    /// command_bus: formats the XADD on the calling thread and pipelines it; `done` runs on
    /// the bus's I/O thread with the entry id, or with `errc::bus_unavailable`.
    void append(const envelope& command, append_handler done) override;

    /// True while the command connection is up and, once `start()` was called, the
    /// subscription is confirmed (both base classes share this; `GET /ready` wants both).
    bool connected() const noexcept override;

    /// pubsub_listener: subscribes to the updates channel (now and after every reconnect)
    /// and hands each message to `on_message`. Called once; later calls are ignored.
    void start(update_handler on_message) override;
    /// pubsub_listener: stops delivering and unsubscribes; when it returns, `on_message` is
    /// not running and will not be called again. Idempotent.
    void stop() override;

    /// Fails every command still in flight with `errc::bus_unavailable` (each `done` runs now,
    /// on the bus's thread), stops the listener, closes both connections and joins the I/O
    /// thread; from then on `append` fails at once. Idempotent; the destructor calls it. Call
    /// it after `gateway::shutdown()` and before the gateway is destroyed: the gateway shares
    /// ownership of the bus, and a command still waiting for a hung Redis when the drain timed
    /// out must be answered while the gateway that handles the answer still exists. Not from a
    /// bus callback.
    void close();

    /// Blocks until `connected()` or until `limit` passed; returns `connected()`.
    bool wait_connected(std::chrono::milliseconds limit) const;

    /// A snapshot of the counters.
    redis_bus_stats stats() const noexcept;

    /// The URL without its password (`redis://user:***@host:port/db`), for logs.
    const std::string& redacted_url() const noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace gatehouse
