#pragma once
// The handlers of the account routes (docs/protocol.md section 2). Each validates on the calling
// I/O thread and queues the rest on `jobs`; what it queues owns a share of `core`, never a
// pointer to anything the embedder may destroy first.

#include <memory>
#include <string>

#include "accounts/account_core.hpp"
#include "accounts/account_jobs.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/http.hpp"

namespace gatehouse::detail {

using account_core_ptr = std::shared_ptr<account_core>;

// credential_routes.cpp: POST /register, /login, /token/refresh, /logout with a local store.
void register_user(const account_core_ptr& core, const account_jobs& jobs,
                   const http_request& request, const http_responder& respond);
void login(const account_core_ptr& core, const account_jobs& jobs, const http_request& request,
           const http_responder& respond);
void refresh(const account_core_ptr& core, const account_jobs& jobs, const http_request& request,
             const http_responder& respond);
void logout(const account_core_ptr& core, const account_jobs& jobs, const http_request& request,
            const http_responder& respond);

// credential_routes.cpp: one of those four forwarded to the login service at `path`.
void forward_credentials(const account_core_ptr& core, const account_jobs& jobs, std::string path,
                         const http_request& request, const http_responder& respond);

// settings_routes.cpp: GET, PATCH and PUT /player/settings; `gw` authenticates the bearer token
// exactly as WebSocket upgrades do (on the calling I/O thread).
void player_settings(const account_core_ptr& core, const account_jobs& jobs, const gateway& gw,
                     const http_request& request, const http_responder& respond);

}  // namespace gatehouse::detail
