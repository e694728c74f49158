#include "accounts/account_core.hpp"

#include <chrono>
#include <stdexcept>
#include <utility>

#include "accounts/account_requests.hpp"
#include "common/clock.hpp"
#include "gatehouse/credentials.hpp"
#include "gatehouse/jwt.hpp"

namespace gatehouse::detail {
namespace {

// How often dead refresh tokens are deleted (docs/accounts.md, "Storage").
constexpr std::int64_t prune_interval_ms = std::int64_t{10} * 60 * 1000;

}  // namespace

account_core::account_core(accounts_options options, std::shared_ptr<user_store> store,
                           std::shared_ptr<attempt_limiter> limiter)
    : options_(std::move(options)), store_(std::move(store)), limiter_(std::move(limiter)) {
    if (!limiter_) throw std::invalid_argument("accounts: a limiter is needed");
    if (!store_ && options_.login_service_url.empty()) {
        throw std::invalid_argument("accounts: a user store or a login service is needed");
    }
    if (options_.jwt_secret.empty()) throw std::invalid_argument("accounts: jwt_secret is empty");
    if (options_.queue_timeout.count() <= 0) {
        throw std::invalid_argument("accounts: queue_timeout must be positive");
    }
    if (!options_.login_service_url.empty()) {
        forwarder_.emplace(options_.login_service_url, options_.login_service_timeout);
        if (!forwarder_->valid()) {
            throw std::invalid_argument(
                "accounts: login_service_url must be http://HOST[:PORT][/PATH]");
        }
    } else if (const auto ec = timed_decoy_hash()) {
        // Every later hash at this cost would fail the same way: refuse the configuration now
        // rather than every registration.
        throw std::invalid_argument("accounts: password_cost: " + ec.message());
    }
}

std::error_code account_core::timed_decoy_hash() {
    const auto start = std::chrono::steady_clock::now();
    const auto ec = make_decoy_password_hash(decoy_hash_, options_.password_cost);
    hash_seconds->observe(std::chrono::steady_clock::now() - start);
    return ec;
}

std::error_code account_core::hash_password(std::string_view password, std::string& out) const {
    const auto start = std::chrono::steady_clock::now();
    const auto ec = gatehouse::hash_password(password, out, options_.password_cost);
    hash_seconds->observe(std::chrono::steady_clock::now() - start);
    return ec;
}

bool account_core::verify_password(std::string_view encoded, std::string_view password) const {
    const auto start = std::chrono::steady_clock::now();
    const bool ok = gatehouse::verify_password(encoded, password);
    verify_seconds->observe(std::chrono::steady_clock::now() - start);
    return ok;
}

void account_core::log(log_level level, const std::string& message) const {
    if (options_.log) options_.log(level, "accounts: " + message);
}

void account_core::audit(std::string_view event, std::string_view username,
                         std::string_view player_id, std::string_view client_address) const {
    if (!options_.audit) return;
    audit_record r;
    r.event = event;
    r.username = username;
    r.player_id = player_id;
    r.client_address = client_address;
    options_.audit(r);
}

std::optional<http_response> account_core::address_limited(const std::string& address) const {
    if (options_.auth_rate_limit == 0) return std::nullopt;
    const auto d =
        limiter_->hit("ip:" + address, options_.auth_rate_limit, std::chrono::seconds(60));
    if (d.allowed) return std::nullopt;
    return too_many("rate_limited", d.retry_after,
                    "too many account requests from this address; retry later");
}

nlohmann::json account_core::token_pair(const std::string& player_id,
                                        const std::string& refresh_token) const {
    jwt_claims claims;
    claims.sub = player_id;
    claims.iat = unix_now_seconds();
    claims.exp = claims.iat + options_.access_ttl.count();
    claims.roles = options_.roles;
    return nlohmann::json{{"access_token", sign_jwt(claims, options_.jwt_secret)},
                          {"refresh_token", refresh_token},
                          {"token_type", "Bearer"},
                          {"expires_in", options_.access_ttl.count()},
                          {"player_id", player_id}};
}

std::int64_t account_core::refresh_expiry() const {
    return unix_now_ms() +
           std::chrono::duration_cast<std::chrono::milliseconds>(options_.refresh_ttl).count();
}

// Every instance on a shared database prunes too: one scan of the token table each per
// interval. A failure is left for the next interval.
void account_core::maybe_prune() {
    const std::int64_t now = unix_now_ms();
    std::int64_t due = next_prune_ms_.load(std::memory_order_relaxed);
    if (now < due || !next_prune_ms_.compare_exchange_strong(due, now + prune_interval_ms,
                                                             std::memory_order_relaxed)) {
        return;
    }
    std::size_t removed = 0;
    if (store_->prune_refresh_tokens(now, removed)) {
        log(log_level::warn, "pruning expired refresh tokens failed; retried later");
    } else if (removed > 0) {
        log(log_level::debug,
            "pruned " + std::to_string(removed) + " expired or revoked refresh tokens");
    }
}

}  // namespace gatehouse::detail
