#pragma once
/// @file
/// `redis_command_producer`: the command bus of a gateway on Redis (docs/protocol.md section 4):
/// each accepted command is `XADD`ed to a stream over one pipelined connection that heals by
/// itself when Redis goes away and comes back. The same connection carries the update log
/// (section 6.4): the `gatehouse` Redis function library, loaded at every connect, and the
/// FCALLs that publish through it and read it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gatehouse/command_bus.hpp"
#include "gatehouse/log.hpp"
#include "gatehouse/metrics.hpp"
#include "gatehouse/update_log.hpp"

namespace gatehouse {

/// Settings of a `redis_command_producer`.
struct redis_command_producer_options {
    /// `redis://[user:password@]host[:port][/db]` (AUTH with an ACL user when a user is given;
    /// SELECT when db is not 0). IPv6 hosts in brackets.
    std::string url = "redis://127.0.0.1:6379";
    /// The stream each accepted command is appended to.
    std::string command_stream = "gateway:commands";
    /// Written into each entry's `gateway_id`: give the gateway's own id.
    std::string gateway_id = "local";
    /// When not 0, every XADD trims the stream to about this many entries (`MAXLEN ~ N`:
    /// Redis trims whole nodes, so the stream may hold somewhat more).
    std::size_t stream_maxlen = 0;
    /// The update log's channel: logged updates are published on it, and each player's log
    /// is the stream `<updates_channel>:log:<player_id>`.
    std::string updates_channel = "ws_updates_channel";
    /// Each player's log keeps the newest this many updates (at least 1).
    std::size_t update_log_size = 1000;
    /// A logged update is replayed for at most this long (positive; the key expires this
    /// long after its last update).
    std::chrono::seconds update_log_ttl{3600};
    /// Idempotent commands (docs/protocol.md 6.5): a command whose `(player_id, correlation_id)`
    /// was accepted within this window is not appended again; `done` gets the original
    /// entry id. Only client-chosen correlation ids count
    /// (`command_origin::correlation_assigned` is false). 0: off.
    std::chrono::seconds dedupe_window{120};
    /// Longest wait for the connection to be set up and for any reply. A link that stays
    /// silent longer is treated as broken: its commands in flight fail with
    /// `errc::bus_unavailable` and it is reconnected. Also the interval of the health-check
    /// PING (every timeout/4), so a dead link is found within about this long even when idle.
    std::chrono::milliseconds timeout{5000};
    /// Reconnect backoff: the first retry after `reconnect_min`, doubling (with jitter) up to
    /// `reconnect_max` while Redis stays away.
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{2000};
    /// Linux, opt-in: run the I/O thread under `SCHED_BATCH` (unprivileged). Waking it (a
    /// gateway thread handing over commands, Redis answering) then no longer preempts what
    /// runs on that core; the hand-off waits until that thread blocks and carries a whole
    /// batch. With a gateway thread and the I/O thread on one core this cut context switches
    /// 6x and raised command throughput 1.3x (docs/benchmarks.md), but it lengthened the round
    /// trip's tail (p99 at 5000 commands/s 1.6-2.3 ms against 0.70-0.86 ms without), and a
    /// scheduling policy is the host process's decision: off by default.
    bool batch_scheduling = false;
    /// Where connection losses and recoveries are reported. Never given passwords: the URL is
    /// logged without its credentials.
    log_sink log;
};

/// Counters of a `redis_command_producer`, for metrics and tests.
struct redis_command_producer_stats {
    std::uint64_t appended = 0;         ///< Commands Redis answered with an entry id.
    std::uint64_t append_failures = 0;  ///< Commands answered with `bus_unavailable`.
    std::uint64_t reconnects = 0;       ///< Times the connection was re-established.
    /// Retried commands answered with their first entry id, not appended (docs/protocol.md 6.5).
    std::uint64_t duplicates = 0;
    /// True while connected and commands are appended by `GATEHOUSE.APPEND`, the gatehouse
    /// Redis module's command (found at the last connect and not found missing since); false
    /// while disconnected, while by the function, by plain XADD, or with `dedupe_window` 0.
    bool append_module = false;
    /// Times a batch waited for older calls still to be resent another way (the module or the
    /// library found missing with calls of it unanswered), so as not to overtake them.
    std::uint64_t batches_deferred = 0;
};

/// A `command_bus` on one Redis server: one connection carries every `XADD`, pipelined (many
/// commands in flight, replies matched in order, everything queued leaving in one write), on
/// the producer's own I/O thread, so the gateway's threads only format a command and hand it
/// over.
///
/// Commands: `append` sends `XADD <stream> [MAXLEN ~ N] * type .. payload .. codec ..
/// correlation_id .. player_id .. connection_id .. gateway_id .. client .. ts_ms ..`
/// (plus `payload_codec` and `traceparent` when the envelope has them) and reports the entry id
/// Redis answered. While `dedupe_window` is above 0, every command (those with a gateway-assigned
/// correlation id too, so that a connection's commands stay in order) is queued instead and sent in
/// batches, up to 256 commands per call, as `GATEHOUSE.APPEND <stream> <dedupe_window> <maxlen>
/// <gateway_id>` when Redis has the gatehouse Redis module (asked with `COMMAND INFO` at every
/// connect; a call it answers as an unknown command is resent through the function, used from then
/// on until a reconnect finds the module again), else as `FCALL gatehouse_append 1 <stream>
/// <dedupe_window> <maxlen> <gateway_id>`; either followed by, per command, its pair
/// (`<len>:<player_id>:<correlation_id>`, empty for a gateway-assigned id, which is never looked
/// up), the count of its extra arguments, the values of the fields above and its extra fields
/// (docs/protocol.md 6.5, docs/redis.md): Redis appends each command and remembers its pair for
/// `dedupe_window` seconds, or answers the entry id of the first append when the pair is
/// remembered, in the same round trip; `done` gets that id either way. With `dedupe_window` 0 every
/// command is a plain XADD; while neither the module nor the library is there, the batches are sent
/// as plain XADDs (not de-duplicated). A batch never overtakes an older call that is still being
/// resent another way, so a connection's commands keep their order on the stream. While the
/// connection is down it fails at once with `errc::bus_unavailable`; commands in flight when the
/// link breaks fail with it too (Redis may or may not have appended them: an error never means
/// "certainly not on the stream", only an ack means "certainly on it").
///
/// Update log: at every connect, before `connected()` turns true, the connection runs
/// `FUNCTION LOAD REPLACE` with the `gatehouse` library (docs/redis.md), its log size and TTL
/// taken from the options, so a Redis restarted empty has it again before the first
/// `publish_logged`; and again, once, when a call finds it missing (`FUNCTION FLUSH`, another
/// version's library), the commands of that call being resent as plain XADDs. A Redis that refuses
/// it (older than 7.0, an ACL without FUNCTION) is logged as an error; commands still work, and the
/// update log answers `bus_unavailable` / `unavailable`. `publish_logged` sends `FCALL
/// gatehouse_publish 0 <channel> <message>`, `read_after` sends `FCALL_RO gatehouse_read 1 <log
/// key> <after_id> <max_bytes> <count>` (read in pages of `count` entries; a malformed `after_id`
/// is `gap` without asking Redis); both fail like `append` while Redis is away.
///
/// Faults: a broken connection is reconnected with backoff until the producer is closed;
/// nothing needs restarting when Redis returns on the same address.
///
/// Callbacks: every `done` (of `append`, `publish_logged` and `read_after`) runs exactly once: on
/// the producer's I/O thread, or at once on the calling thread when the command is refused before
/// it is sent, or inside `close()`.
///
/// Thread safety: every member may be called from any thread, `close()` and the destructor
/// from a `done` callback too.
/// Lifetime: safe to destroy at any time, from any thread. Destruction closes; closing
/// answers every command still in flight with `errc::bus_unavailable`; once `close()` (or the
/// destructor) returns no callback of this producer runs any more. Internally every callback
/// holds the producer's shared state, never the object itself.
class redis_command_producer final : public command_bus, public update_log {
public:
    /// Starts the I/O thread and begins connecting; returns without waiting for Redis (see
    /// `wait_connected`). Throws `std::invalid_argument` naming the option when `url` is not
    /// a valid `redis://` URL, `command_stream` or `updates_channel` is empty, a duration is
    /// not positive, `update_log_size` is 0, or `dedupe_window` is negative or over a year.
    explicit redis_command_producer(redis_command_producer_options options);
    ~redis_command_producer() override;
    redis_command_producer(const redis_command_producer&) = delete;
    redis_command_producer& operator=(const redis_command_producer&) = delete;

    /// command_bus: formats the XADD (or `FCALL gatehouse_append`) on the calling thread and
    /// pipelines it; `done` runs with the entry id (a duplicate's: the first one's), or with
    /// `errc::bus_unavailable`.
    void append(const envelope& command, append_handler done) override;

    /// True while the connection is up.
    bool connected() const noexcept override;

    /// update_log: `FCALL gatehouse_publish`, pipelined with the commands; `done` gets the
    /// ids, `errc::invalid_update` when the function refused the message (not a JSON object,
    /// it already has `update_ids`, or a logged shape `parse_update` would refuse: docs/redis.md),
    /// `errc::bus_unavailable` when Redis is away, a log key holds another type, the link
    /// broke with it in flight (it may or may not have been published), or the library is
    /// not loaded.
    void publish_logged(std::string message, logged_publish_handler done) override;
    /// update_log: `FCALL_RO gatehouse_read`; `unavailable` when Redis is away or answered
    /// an error.
    void read_after(std::string player_id, std::string after_id, std::size_t max_bytes,
                    log_read_handler done) override;

    /// Answers every command still in flight with `errc::bus_unavailable` (each `done` runs
    /// before `close()` returns), closes the connection and ends the I/O thread; from then on
    /// `append` fails at once. Idempotent; the destructor calls it. From a `done` callback it
    /// answers the others at once, on that thread.
    void close();

    /// Blocks until `connected()` or until `limit` passed; returns `connected()`.
    bool wait_connected(std::chrono::milliseconds limit) const;

    /// A snapshot of the counters.
    redis_command_producer_stats stats() const noexcept;

    /// Round trips on the command connection: per reply, the time from its command being
    /// queued on the I/O thread (the moment it joins the next write) to the reply being read,
    /// in seconds, with `metric_histogram`'s default bounds; the connection setup's commands and
    /// the idle PINGs count too. Shared, so that a `metrics_registry` can render it
    /// (`add_histogram`, e.g. as `gatehouse_redis_roundtrip_seconds`) whichever of the two
    /// is destroyed first.
    std::shared_ptr<const metric_histogram> roundtrip_histogram() const noexcept;

    /// The URL without its password (`redis://user:***@host:port/db`), for logs.
    const std::string& redacted_url() const noexcept;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace gatehouse
