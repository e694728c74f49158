#pragma once
// The control messages a client may send on its session (docs/protocol.md 6): the reserved
// `gatehouse.` types the gateway answers itself and never puts on the command bus. Today that is
// `gatehouse.refresh` (6.3): a new access token for the same player moves the session's
// deadline and is answered `gatehouse.refreshed`, anything else `invalid_token`.

#include <memory>
#include <string_view>

#include "gatehouse/envelope.hpp"
#include "gatehouse/gateway.hpp"
#include "gateway/gateway_metrics.hpp"

namespace gatehouse::detail {

class session;

// Thread safety: const after construction; every member may be called from any thread (one
// session's messages come one at a time).
class session_control {
public:
    // `verify`: the upgrade's own check of an access token (upgrade_authorizer::authenticate).
    session_control(std::shared_ptr<const gateway_options> options, token_verifier verify,
                    std::shared_ptr<gateway_metrics> metrics);

    // True when `type` is a control message a session may send (so not `invalid_envelope`).
    static bool handles(std::string_view type) noexcept;

    // Answers `message` (a type handles() accepted) on `s`. Rate limiting is the caller's.
    void handle(const std::shared_ptr<session>& s, const envelope& message) const;

private:
    void refresh(const std::shared_ptr<session>& s, const envelope& message) const;

    const std::shared_ptr<const gateway_options> options_;
    const token_verifier verify_;
    const std::shared_ptr<gateway_metrics> metrics_;
};

}  // namespace gatehouse::detail
