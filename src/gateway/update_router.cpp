#include "gateway/update_router.hpp"

#include <string>
#include <utility>

#include "common/clock.hpp"
#include "gateway/gateway_tracing.hpp"

namespace gatehouse::detail {

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
