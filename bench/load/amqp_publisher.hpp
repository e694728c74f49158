#pragma once
// The generator's RabbitMQ connection for publishing updates (fanout, broadcast with
// --amqp-port): rabbitmq-c, blocking publishes on the generator's one thread. A publish only
// writes to the socket (no confirms: updates are at-most-once on every bus), so it costs the
// loop a send, as a pipelined PUBLISH does.

#include <cstdint>
#include <string>
#include <string_view>

struct amqp_connection_state_t_;

namespace gatehouse_load {

/// Thread safety: none (the loop's thread only).
class amqp_publisher {
public:
    amqp_publisher();
    ~amqp_publisher();
    amqp_publisher(const amqp_publisher&) = delete;
    amqp_publisher& operator=(const amqp_publisher&) = delete;

    /// Connects to 127.0.0.1:port as guest (blocking, bounded by 2 s) and declares the durable
    /// fanout `exchange` (as the gateway does). Returns false with `error()` set.
    bool connect(std::uint16_t port, const std::string& exchange);

    /// Publishes `message` to the exchange.
    void publish(std::string_view message);

    bool broken() const noexcept { return broken_; }
    const std::string& error() const noexcept { return error_; }

private:
    amqp_connection_state_t_* conn_ = nullptr;
    std::string exchange_;
    bool broken_ = false;
    std::string error_;
};

}  // namespace gatehouse_load
