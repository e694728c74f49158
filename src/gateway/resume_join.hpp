#pragma once
// The resume of a session (docs/protocol.md 6.4): after the welcome, the updates the player missed
// from the update log, then `gatehouse.resumed` (or `gatehouse.gap`), then live updates, each
// exactly once and in order. docs/updates.md explains why the join below is race-free.

#include <functional>
#include <memory>

#include "gatehouse/connection_manager.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/update_log.hpp"
#include "gateway/gateway_metrics.hpp"
#include "gateway/session.hpp"

namespace gatehouse::detail {

// Thread safety: const after construction; `start` may be called from any thread, and the
// log's answer finishes the join on whichever thread the log calls back.
// Lifetime: the log's callback holds the connection manager and the metrics by shared_ptr and
// the session not at all (a session that closed before the answer is simply not found).
class resume_join {
public:
    // `log` may be null: every resume then gets `gatehouse.gap`.
    resume_join(std::shared_ptr<const gateway_options> options,
                std::shared_ptr<connection_manager> connections,
                std::shared_ptr<gateway_metrics> metrics, std::shared_ptr<update_log> log);

    // Starts the resume of `s` (its setup asks for one), after its welcome. `add(resuming)`
    // registers it in the connection manager: with `true`, deliveries are held for it until the
    // log answers, and the join is registered BEFORE the log is read.
    void start(const std::shared_ptr<session>& s, const std::function<void(bool resuming)>& add);

private:
    const std::shared_ptr<const gateway_options> options_;
    const std::shared_ptr<connection_manager> connections_;
    const std::shared_ptr<gateway_metrics> metrics_;
    const std::shared_ptr<update_log> log_;
};

}  // namespace gatehouse::detail
