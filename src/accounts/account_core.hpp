#pragma once
// The state every account job shares: the settings, the store, the limiter, the login
// forwarder and the decoy hash, with the steps several routes take (the per-address limit,
// a token pair, pruning). The routes and every queued or running job hold it by `shared_ptr`,
// so it lives until the last of them ends, whichever the embedder destroys first (the
// `accounts` object, the gateway, the worker pool, its own handle on the store).

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "accounts/login_forwarder.hpp"
#include "gatehouse/accounts.hpp"
#include "gatehouse/metrics.hpp"

namespace gatehouse::detail {

class account_core {
public:
    // Checks `options` as `accounts`'s constructor documents (std::invalid_argument) and makes
    // the decoy hash, one Argon2id hash at `options.password_cost` (with a store only: the
    // login route is the only user).
    account_core(accounts_options options, std::shared_ptr<user_store> store,
                 std::shared_ptr<attempt_limiter> limiter);

    const accounts_options& options() const noexcept { return options_; }
    // Null when a login service owns the credentials and no store serves settings.
    user_store* store() const noexcept { return store_.get(); }
    attempt_limiter& limiter() const noexcept { return *limiter_; }
    // Set with `login_service_url`.
    const login_forwarder* forwarder() const noexcept {
        return forwarder_ ? &*forwarder_ : nullptr;
    }
    // A hash of a password nobody knows: verifying a login for an unknown name against it
    // costs what a wrong password costs, so timing does not tell whether a name exists.
    const std::string& decoy_hash() const noexcept { return decoy_hash_; }

    void log(log_level level, const std::string& message) const;

    // One audit record (accounts_options::audit); nothing when no sink is set. Never pass a
    // password, a token, a hash or a key.
    void audit(std::string_view event, std::string_view username, std::string_view player_id,
               std::string_view client_address) const;

    // Argon2id at `options().password_cost`, and its check: `hash_password` and
    // `verify_password` of credentials.hpp, each timed in its histogram below. CPU-bound: on a
    // worker only.
    std::error_code hash_password(std::string_view password, std::string& out) const;
    bool verify_password(std::string_view encoded, std::string_view password) const;
    // gatehouse_password_hash_seconds{operation="hash"|"verify"}: shared with the gateway's
    // registry (accounts::add_routes), which may go first or last.
    const std::shared_ptr<metric_histogram> hash_seconds = std::make_shared<metric_histogram>();
    const std::shared_ptr<metric_histogram> verify_seconds = std::make_shared<metric_histogram>();

    // The per-address limit of the credential routes; nullopt when within it. Blocks (the
    // limiter may be Redis): on a worker only.
    std::optional<http_response> address_limited(const std::string& address) const;

    // An access token for `player_id` and the refresh token beside it.
    nlohmann::json token_pair(const std::string& player_id, const std::string& refresh_token) const;

    // When a refresh token issued now expires (unix ms).
    std::int64_t refresh_expiry() const;

    // Called on a worker after each login and refresh: at most once per prune interval, one
    // caller deletes the refresh tokens of dead families (docs/accounts.md, "Storage").
    void maybe_prune();

private:
    // The decoy hash, timed like any other.
    std::error_code timed_decoy_hash();

    accounts_options options_;
    std::shared_ptr<user_store> store_;
    std::shared_ptr<attempt_limiter> limiter_;
    std::optional<login_forwarder> forwarder_;
    std::string decoy_hash_;
    // When the next prune of dead refresh tokens is due (unix ms); 0: at the first login.
    std::atomic<std::int64_t> next_prune_ms_{0};
};

}  // namespace gatehouse::detail
