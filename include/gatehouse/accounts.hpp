#pragma once
/// @file
/// `accounts`: the account routes of docs/protocol.md section 2 (register, login, token refresh,
/// logout, player settings) on a `gateway`, over a `user_store`, an `attempt_limiter` and a
/// `worker_pool`. Each piece can be replaced: another store (PostgreSQL, your own), a shared
/// limiter (Redis), or no local accounts at all with `login_service_url`.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/attempt_limiter.hpp"
#include "gatehouse/credentials.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/log.hpp"
#include "gatehouse/user_store.hpp"
#include "gatehouse/worker_pool.hpp"

namespace gatehouse {

/// Settings of `accounts`.
struct accounts_options {
    /// HS256 key of the access tokens it issues: the gateway's `jwt_secret`, so that they open
    /// WebSockets.
    std::string jwt_secret;
    /// Access token lifetime (`expires_in`).
    std::chrono::seconds access_ttl{900};
    /// Refresh token lifetime; each rotation issues a token with a fresh lifetime.
    std::chrono::seconds refresh_ttl{std::chrono::hours(24 * 30)};
    /// The `roles` claim of issued access tokens.
    std::vector<std::string> roles{"player"};
    /// Login lockout: after this many failures for one login name within `login_lockout`,
    /// the name is locked for `login_lockout`.
    unsigned login_max_failures = 5;
    std::chrono::seconds login_lockout{900};
    /// Requests per minute per client address over `POST /register`, `/login`,
    /// `/token/refresh` and `/logout`; over it: 429 `rate_limited`. 0: no limit.
    unsigned auth_rate_limit = 0;
    /// Argon2id cost of new password hashes.
    password_hash_cost password_cost;
    /// When set (`http://host[:port][/prefix]`), the credential routes (`POST /register`,
    /// `/login`, `/token/refresh`, `/logout`) are forwarded to the same paths under that
    /// service's prefix, and its answer is relayed as it is (status, `Content-Type`,
    /// `Retry-After`, body): that service owns passwords and refresh tokens, and must mint
    /// access tokens with the gateway's `jwt_secret`. The local store then serves only the
    /// settings routes. Plain HTTP: meant for a service on the same host or private network.
    std::string login_service_url;
    /// Longest wait for the login service (connect, send, answer).
    std::chrono::milliseconds login_service_timeout{5000};
    /// Account requests waiting for a worker at a time (over every account route together);
    /// one more answers 503 `busy` with `Retry-After: 1` at once. Keeps a flood of logins from
    /// queueing seconds of Argon2id work ahead of everyone else. 0: four per worker thread.
    std::size_t max_queued_jobs = 0;
    /// A request that waited longer than this for a worker is not run (its client has likely
    /// given up, or will have by the time it is done) and answers 503 `busy`. Positive.
    std::chrono::milliseconds queue_timeout{2000};
    /// Where it reports store failures and refresh-token reuse (never a secret).
    log_sink log;
    /// Login failures, lockouts and refresh-token reuse, for an audit log (`audit_record`:
    /// `login_failed`, `lockout_started`, `login_locked_out`, `refresh_token_reused`; with
    /// `login_service_url`, the service's 401 and 429 answers to `/login` as `login_failed` and
    /// `login_locked_out`). Never a password or a token. Empty: none.
    audit_sink audit;
};

/// True for what `accounts_options::login_service_url` may be: `http://HOST[:PORT][/PATH]`
/// (checked as the constructor checks it, without connecting).
bool valid_login_service_url(std::string_view url);

/// The account routes. Route handlers parse and validate on the gateway's I/O thread, and do
/// everything that blocks or burns CPU (the store, the limiter, Argon2id) on the worker pool;
/// when `max_queued_jobs` are already waiting, or a request waited past `queue_timeout`, it
/// gets 503 `busy` with `Retry-After` rather than wait.
///
/// Thread safety: `add_routes` before the gateway starts; the routes then run concurrently.
/// Lifetime: the routes and every queued or running job share ownership of what they use (the
/// settings, the store, the limiter; the routes the pool too), so this object, the gateway,
/// the worker pool and the store may be destroyed in any order, also with requests in flight.
/// A job still queued when the last owner of the pool lets it go runs as the pool drains; one
/// that finishes after its gateway is gone has no one to answer, and its answer is dropped.
class accounts {
public:
    /// Throws `std::invalid_argument` for a null limiter or pool, a null store without
    /// `login_service_url`, an empty `jwt_secret`, a `queue_timeout` that is not positive, a
    /// `login_service_url` that is not `http://HOST[:PORT][/...]`, or a `password_cost` that
    /// cannot hash (the constructor makes the decoy hash of the login route with it, one
    /// Argon2id hash, when it has a store and no login service).
    accounts(accounts_options options, std::shared_ptr<user_store> store,
             std::shared_ptr<attempt_limiter> limiter, std::shared_ptr<worker_pool> workers);
    ~accounts();
    accounts(const accounts&) = delete;
    accounts& operator=(const accounts&) = delete;

    /// Adds `POST /register`, `POST /login`, `POST /token/refresh`, `POST /logout` and, with a
    /// store, `GET`/`PATCH`/`PUT /player/settings` to `gw` (before `gw.start()`).
    void add_routes(gateway& gw);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace gatehouse
