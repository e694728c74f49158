#include "gatehouse/redis_bus.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <utility>

namespace gatehouse {
namespace {

redis_command_producer_options producer_options(const redis_bus_options& o) {
    redis_command_producer_options p;
    p.url = o.url;
    p.command_stream = o.command_stream;
    p.gateway_id = o.gateway_id;
    p.stream_maxlen = o.stream_maxlen;
    p.updates_channel = o.updates_channel;
    p.update_log_size = o.update_log_size;
    p.update_log_ttl = o.update_log_ttl;
    p.dedupe_window = o.dedupe_window;
    p.timeout = o.timeout;
    p.reconnect_min = o.reconnect_min;
    p.reconnect_max = o.reconnect_max;
    p.batch_scheduling = o.batch_scheduling;
    p.log = o.log;
    return p;
}

redis_update_subscriber_options subscriber_options(redis_bus_options o) {
    redis_update_subscriber_options s;
    s.url = std::move(o.url);
    s.updates_channel = std::move(o.updates_channel);
    s.timeout = o.timeout;
    s.reconnect_min = o.reconnect_min;
    s.reconnect_max = o.reconnect_max;
    s.batch_scheduling = o.batch_scheduling;
    s.log = std::move(o.log);
    return s;
}

}  // namespace

// The two parts hold their own shared state and answer for their own lifetimes; the bus only
// remembers whether the listener was started, for connected().
struct redis_bus::impl {
    explicit impl(redis_bus_options o)
        : producer(producer_options(o)), subscriber(subscriber_options(std::move(o))) {}

    redis_command_producer producer;
    redis_update_subscriber subscriber;
    std::atomic<bool> started{false};
    std::atomic<bool> listening{false};
};

redis_bus::redis_bus(redis_bus_options options) {
    if (options.updates_channel.empty()) {
        // Checked before either part starts a thread (the producer checks the rest).
        throw std::invalid_argument("redis_bus: updates_channel must not be empty");
    }
    impl_ = std::make_unique<impl>(std::move(options));
}

redis_bus::~redis_bus() { close(); }

void redis_bus::close() {
    impl_->listening.store(false, std::memory_order_release);
    impl_->subscriber.close();
    impl_->producer.close();
}

void redis_bus::append(const envelope& command, append_handler done) {
    impl_->producer.append(command, std::move(done));
}

void redis_bus::publish_logged(std::string message, logged_publish_handler done) {
    impl_->producer.publish_logged(std::move(message), std::move(done));
}

void redis_bus::read_after(std::string player_id, std::string after_id, std::size_t max_bytes,
                           log_read_handler done) {
    impl_->producer.read_after(std::move(player_id), std::move(after_id), max_bytes,
                               std::move(done));
}

bool redis_bus::connected() const noexcept {
    return impl_->producer.connected() &&
           (!impl_->listening.load(std::memory_order_acquire) || impl_->subscriber.connected());
}

void redis_bus::start(update_handler on_message) {
    if (!on_message) return;
    if (impl_->started.exchange(true)) return;
    // Set first, so that connected() waits for the subscription from now on.
    impl_->listening.store(true, std::memory_order_release);
    impl_->subscriber.start(std::move(on_message));
}

void redis_bus::on_resubscribed(resubscribed_handler handler) {
    impl_->subscriber.on_resubscribed(std::move(handler));
}

void redis_bus::stop() {
    impl_->listening.store(false, std::memory_order_release);
    impl_->subscriber.stop();
}

bool redis_bus::wait_connected(std::chrono::milliseconds limit) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    if (!impl_->producer.wait_connected(limit)) return false;
    if (!impl_->listening.load(std::memory_order_acquire)) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    impl_->subscriber.wait_connected(std::max(left, std::chrono::milliseconds::zero()));
    return connected();
}

redis_bus_stats redis_bus::stats() const noexcept {
    const auto p = impl_->producer.stats();
    const auto s = impl_->subscriber.stats();
    redis_bus_stats out;
    out.appended = p.appended;
    out.append_failures = p.append_failures;
    out.duplicates = p.duplicates;
    out.updates_received = s.updates_received;
    out.command_reconnects = p.reconnects;
    out.listener_reconnects = s.reconnects;
    return out;
}

const std::string& redis_bus::redacted_url() const noexcept {
    return impl_->producer.redacted_url();
}

redis_command_producer& redis_bus::producer() noexcept { return impl_->producer; }

redis_update_subscriber& redis_bus::subscriber() noexcept { return impl_->subscriber; }

}  // namespace gatehouse
