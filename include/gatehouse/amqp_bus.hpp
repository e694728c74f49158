#pragma once
/// @file
/// `amqp_bus`: the command bus and update listener of a gateway on RabbitMQ (AMQP 0-9-1), the
/// same contract as `redis_bus` (docs/protocol.md sections 4 and 5) with AMQP's own shapes:
/// commands are persistent messages on a durable topic exchange, updates are messages on a
/// durable fanout exchange. See docs/amqp.md for the delivery guarantees.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "gatehouse/command_bus.hpp"
#include "gatehouse/log.hpp"
#include "gatehouse/pubsub_listener.hpp"

namespace gatehouse {

/// Settings of an `amqp_bus`.
struct amqp_bus_options {
    /// `amqp://[user[:password]@]host[:port][/vhost]` (defaults: guest, guest, 5672, `/`;
    /// the vhost percent-encoded, so `/` is `%2f`). TLS (`amqps://`) is not supported.
    std::string url = "amqp://guest:guest@127.0.0.1:5672/";
    /// The durable topic exchange each accepted command is published to, with the command's
    /// `type` as routing key. The bus also declares a durable queue of the same name bound
    /// to it with `#`, so that no command is unroutable; services consume that queue, or bind
    /// queues of their own by type.
    std::string command_exchange = "gateway.commands";
    /// The durable fanout exchange services publish updates to; each bus consumes it through
    /// an exclusive queue of its own.
    std::string updates_exchange = "gateway.updates";
    /// Written into each command's `gateway_id` header: give the gateway's own id.
    std::string gateway_id = "local";
    /// Longest wait for the connection to be set up, for a declaration's answer and for a
    /// publisher confirm: a command not confirmed within it fails the connection (every
    /// command in flight gets `errc::bus_unavailable`) and the bus reconnects. The AMQP
    /// heartbeat is a third of it (at least a second), so a dead broker is noticed when idle.
    std::chrono::milliseconds timeout{5000};
    /// Reconnect backoff: the first retry after `reconnect_min`, doubling (with jitter) up to
    /// `reconnect_max` while the broker stays away.
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{2000};
    /// Commands handed to the bus and not answered yet (queued for the I/O thread or waiting
    /// for their confirm) at most: beyond it `append` answers `errc::bus_unavailable` at once,
    /// so that a broker slower than the clients cannot grow the gateway's memory.
    std::size_t max_in_flight = 65536;
    /// Where connection losses, recoveries and malformed traffic are reported. Never given
    /// passwords: the URL is logged without its credentials.
    log_sink log;
};

/// Counters of an `amqp_bus`, for metrics and tests.
struct amqp_bus_stats {
    std::uint64_t appended = 0;          ///< Commands the broker confirmed.
    std::uint64_t append_failures = 0;   ///< Commands answered with `bus_unavailable`.
    std::uint64_t updates_received = 0;  ///< Update messages handed to the handler.
    std::uint64_t reconnects = 0;        ///< Times the connection was re-established.
};

/// Checks `amqp_bus_options::url` as the constructor does, without connecting: an
/// `amqp://[user[:password]@]host[:port][/vhost]` URL. @return empty, or
/// `std::errc::invalid_argument`.
std::error_code check_amqp_url(std::string_view url);

/// A `command_bus` and `pubsub_listener` on one RabbitMQ broker.
///
/// One AMQP connection with its own I/O thread (rabbitmq-c is blocking: every call into it is
/// made on that thread, never on a gateway thread): channel 1, in confirm mode, publishes the
/// commands, pipelined (many in flight, the broker's confirms matched by delivery tag);
/// channel 2 consumes the updates. `append` only copies the command and wakes the thread.
///
/// Commands: published `persistent` and `mandatory` to `command_exchange` with the command's
/// `type` as routing key, the body the payload, docs/protocol.md section 4's other fields as
/// headers (`type`, `codec`, `correlation_id`, `player_id`, `connection_id`, `gateway_id`,
/// `client`, `ts_ms` as a 64-bit integer, and `payload_codec`, `traceparent` when present),
/// `correlation_id`, `timestamp` (seconds), `message_id` (`<gateway_id>/<entry id>`), `type`
/// and `content_type` as properties. `done` gets the entry id (`<ms>-<seq>`, increasing per
/// bus) once the broker confirmed the message (for a persistent message on a durable queue:
/// written to disk), or `errc::bus_unavailable` when the link is down, breaks before the
/// confirm, the broker nacks it or returns it unroutable.
///
/// Updates: consumed without acknowledgements (at-most-once, like Redis Pub/Sub) from an
/// exclusive, server-named queue bound to `updates_exchange`, in the broker's order, on the
/// I/O thread. After a reconnect the queue is declared and bound anew and `on_resubscribed`'s
/// handler runs before the first message on it.
///
/// Thread safety: every member may be called from any thread, `close()` and the destructor
/// from a bus callback too.
/// Lifetime: safe to destroy at any time, in any order with the gateway that uses it: closing
/// answers every command still in flight with `errc::bus_unavailable` (each `done` exactly
/// once), and once it returns no callback of the bus runs any more (when called from a
/// callback: once that callback returned).
class amqp_bus final : public command_bus, public pubsub_listener {
public:
    /// Starts the I/O thread and begins connecting; returns without waiting for the broker
    /// (see `wait_connected`). Throws `std::invalid_argument` when `options.url` is not a
    /// valid `amqp://` URL, an exchange name is empty or longer than 255 bytes, a duration is
    /// not positive or `max_in_flight` is 0.
    explicit amqp_bus(amqp_bus_options options);
    ~amqp_bus() override;
    amqp_bus(const amqp_bus&) = delete;
    amqp_bus& operator=(const amqp_bus&) = delete;

    /// command_bus: hands the command to the I/O thread, which publishes it; `done` runs on the
    /// I/O thread with the entry id once confirmed, or with `errc::bus_unavailable` (at once,
    /// on the calling thread, when the link is down or `max_in_flight` commands are
    /// unanswered).
    void append(const envelope& command, append_handler done) override;

    /// True while the connection is up and, once `start()` was called, the updates queue is
    /// consumed (both base classes share this; `GET /ready` wants both).
    bool connected() const noexcept override;

    /// pubsub_listener: consumes the updates exchange (now and after every reconnect) and
    /// hands each message body to `on_message`. Called once; later calls are ignored.
    void start(update_handler on_message) override;
    /// pubsub_listener: the handler runs on the I/O thread after each reconnect of the
    /// consumer, before its first message.
    void on_resubscribed(resubscribed_handler handler) override;
    /// pubsub_listener: stops delivering; when it returns, `on_message` is not running and
    /// will not be called again. Idempotent.
    void stop() override;

    /// Answers every command still in flight with `errc::bus_unavailable`, closes the
    /// connection and ends the I/O thread; from then on `append` fails at once. Idempotent;
    /// the destructor calls it.
    void close();

    /// Blocks until `connected()` or until `limit` passed; returns `connected()`.
    bool wait_connected(std::chrono::milliseconds limit) const;

    /// A snapshot of the counters.
    amqp_bus_stats stats() const noexcept;

    /// The URL without its password (`amqp://user:***@host:port/vhost`), for logs.
    const std::string& redacted_url() const noexcept;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace gatehouse
