#pragma once
// The game as its own process on RabbitMQ (gatehouse-server --amqp, docs/amqp.md): consume the
// gateway's command queue, play each command against a session store, publish the update to
// the updates exchange, then ack the command.

#include <csignal>
#include <functional>
#include <string>

#include "memory_session_store.hpp"

namespace gatehouse_demo::game {

/// Settings of a `queue_service` (gatehouse-demo-game's flags with --amqp).
struct queue_service_options {
    std::string amqp_url;  ///< `amqp://[user[:pass]@]host[:port][/vhost]`.
    std::string command_exchange = "gateway.commands";  ///< And the queue of the same name.
    std::string updates_exchange = "gateway.updates";
    unsigned prefetch = 100;
};

/// The consumer loop. Delivery: a command is acked only after its update was published, so a
/// crash in between has the broker deliver it again: at least once. The sessions live in this
/// process (a memory store): one game process, and a restart starts every session afresh.
///
/// Thread safety: none; `run` on one thread. Every wait is bounded (200 ms per consume wait,
/// backoff in short slices), so a stop request is seen within about 0.2 s.
class queue_service {
public:
    /// `log` receives one line per event worth an operator's eye (never the password).
    queue_service(queue_service_options options, std::function<void(const std::string&)> log);

    /// Plays commands until `stop_requested` becomes non-zero. Calls `on_ready` once, when the
    /// command queue is first consumed. Returns false when the URL is not a valid amqp:// URL.
    bool run(const volatile std::sig_atomic_t& stop_requested,
             const std::function<void()>& on_ready);

    /// Commands answered (game.state or game.error published) so far.
    long long answered() const { return answered_; }

private:
    queue_service_options options_;
    std::function<void(const std::string&)> log_;
    memory_session_store store_;
    long long answered_ = 0;
};

}  // namespace gatehouse_demo::game
