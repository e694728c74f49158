#pragma once
// Published updates to connections: each message the listener hears is parsed (docs/protocol.md
// section 5) and delivered through the connection manager, malformed and oversized ones
// counted and logged by size only (services may put anything in a payload).

#include <memory>
#include <string_view>

#include "gatehouse/connection_manager.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/update.hpp"
#include "gateway/gateway_metrics.hpp"

namespace gatehouse::detail {

// Thread safety: `route` is called by the listener one message at a time (pubsub_listener's
// promise), which is what lets it reuse one parsed update without a lock.
class update_router {
public:
    update_router(std::shared_ptr<const gateway_options> options,
                  std::shared_ptr<connection_manager> connections,
                  std::shared_ptr<gateway_metrics> metrics);

    void route(std::string_view message);

private:
    const std::shared_ptr<const gateway_options> options_;
    const std::shared_ptr<connection_manager> connections_;
    const std::shared_ptr<gateway_metrics> metrics_;
    // Reused for every message: its strings and vectors keep their capacity.
    update parsed_;
};

}  // namespace gatehouse::detail
