// `accounts`: checks its settings and puts the account routes on a gateway. Every route and
// every job it queues owns a share of what it uses (account_core, account_jobs), so the
// gateway, this object, the pool and the store may be destroyed in any order.

#include "gatehouse/accounts.hpp"

#include <string_view>
#include <utility>

#include "accounts/account_routes.hpp"

namespace gatehouse {

struct accounts::impl {
    impl(accounts_options options, std::shared_ptr<user_store> store,
         std::shared_ptr<attempt_limiter> limiter, std::shared_ptr<worker_pool> workers)
        : jobs(std::move(workers), options.max_queued_jobs, options.queue_timeout),
          core(std::make_shared<detail::account_core>(std::move(options), std::move(store),
                                                      std::move(limiter))) {}

    detail::account_jobs jobs;
    std::shared_ptr<detail::account_core> core;
};

accounts::accounts(accounts_options options, std::shared_ptr<user_store> store,
                   std::shared_ptr<attempt_limiter> limiter, std::shared_ptr<worker_pool> workers)
    : impl_(std::make_shared<impl>(std::move(options), std::move(store), std::move(limiter),
                                   std::move(workers))) {}

accounts::~accounts() = default;

void accounts::add_routes(gateway& gw) {
    using handler = void (*)(const detail::account_core_ptr&, const detail::account_jobs&,
                             const http_request&, const http_responder&);
    const auto i = impl_;
    // Shared: jobs still running after the gateway is gone keep observing into them.
    constexpr std::string_view hash_help =
        "Argon2id work on the account workers: hashing a new password, checking one at login "
        "or a password change (the decoy check of an unknown name included).";
    gw.metrics().add_histogram("gatehouse_password_hash_seconds", hash_help, i->core->hash_seconds,
                               "operation=\"hash\"");
    gw.metrics().add_histogram("gatehouse_password_hash_seconds", hash_help,
                               i->core->verify_seconds, "operation=\"verify\"");
    const auto route = [&gw, i](const char* path, handler h) {
        gw.add_route("POST", path, [i, h](const http_request& r, const http_responder& respond) {
            h(i->core, i->jobs, r, respond);
        });
    };
    if (i->core->forwarder()) {
        for (const char* path : {"/register", "/login", "/token/refresh", "/logout"}) {
            gw.add_route("POST", path,
                         [i, path](const http_request& r, const http_responder& respond) {
                             detail::forward_credentials(i->core, i->jobs, path, r, respond);
                         });
        }
    } else {
        route("/register", &detail::register_user);
        route("/login", &detail::login);
        route("/token/refresh", &detail::refresh);
        route("/logout", &detail::logout);
    }
    if (!i->core->store()) return;
    for (const char* method : {"GET", "PATCH", "PUT"}) {
        // The route lives in `gw`, so `gw` outlives it.
        gw.add_route(method, "/player/settings",
                     [i, &gw](const http_request& r, const http_responder& respond) {
                         detail::player_settings(i->core, i->jobs, gw, r, respond);
                     });
    }
}

}  // namespace gatehouse
