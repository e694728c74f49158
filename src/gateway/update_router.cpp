#include "gateway/update_router.hpp"

#include <charconv>
#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>

#include "common/clock.hpp"
#include "gateway/gateway_tracing.hpp"

namespace gatehouse::detail {
namespace {

// docs/protocol.md 6.4: a logged update's id is `<ms>-<seq>`, the ms its publish time on the log's
// clock (Redis's TIME, or this process's in-process log). parse_update() checked the form.
void observe_delivery(const update& u, metric_histogram& delivery) {
    const std::string_view id = u.update_ids.front().second;
    std::uint64_t published_ms = 0;
    if (std::from_chars(id.data(), id.data() + id.size(), published_ms).ec != std::errc()) return;
    const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    // The id's time is whole milliseconds, and another host's clock: a clock behind the
    // publisher's shows as 0, not as a negative latency.
    const double seconds =
        (static_cast<double>(now_us) - static_cast<double>(published_ms) * 1000.0) / 1e6;
    delivery.observe(seconds > 0 ? seconds : 0.0);
}

}  // namespace

update_router::update_router(std::shared_ptr<const gateway_options> options,
                             std::shared_ptr<connection_manager> connections,
                             std::shared_ptr<gateway_metrics> metrics)
    : options_(std::move(options)),
      connections_(std::move(connections)),
      metrics_(std::move(metrics)) {}

void update_router::route(std::string_view message) {
    metrics_->updates_received.add();
    tracer* const t = options_->tracing.get();
    const std::int64_t started_ns = t != nullptr ? unix_now_ns() : 0;
    if (auto ec = parse_update(message, parsed_)) {
        metrics_->updates_malformed.add();
        if (t != nullptr) trace_update(*t, started_ns, message.size(), nullptr, ec.message(), {});
        if (options_->log) {
            options_->log(log_level::warn, "dropped a malformed update message of " +
                                               std::to_string(message.size()) +
                                               " bytes: " + ec.message());
        }
        return;
    }
    const auto result = connections_->deliver(parsed_);
    if (t != nullptr) trace_update(*t, started_ns, message.size(), &parsed_, {}, result);
    if (!parsed_.update_ids.empty() && result.queued > 0) {
        observe_delivery(parsed_, metrics_->update_delivery);
    }
    if (result.oversized > 0 && options_->log) {
        options_->log(log_level::warn,
                      "dropped an update of " + std::to_string(message.size()) + " bytes for " +
                          std::to_string(result.oversized) + " connection(s): its frame of " +
                          std::to_string(result.oversized_frame_bytes) +
                          " bytes is larger than the send buffer (" +
                          std::to_string(options_->connections.max_buffered_bytes) + " bytes)");
    }
}

}  // namespace gatehouse::detail
