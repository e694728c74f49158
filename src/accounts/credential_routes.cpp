// The credential routes: register, login, token refresh and logout over the local store, or
// forwarded to a login service (accounts_options::login_service_url).

#include <utility>

#include "accounts/account_requests.hpp"
#include "accounts/account_routes.hpp"
#include "common/clock.hpp"
#include "gatehouse/credentials.hpp"
#include "gatehouse/errc.hpp"
#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

using json = nlohmann::json;

// The `refresh_token` of a refresh or logout body, or nullopt once `respond` has had the
// error.
std::optional<std::string> presented_token(const http_request& request,
                                           const http_responder& respond) {
    json body;
    if (auto refusal = parse_object(request, body)) {
        respond(std::move(*refusal));
        return std::nullopt;
    }
    // Present but empty is a token that is not valid (401 from the store), not a missing one.
    auto presented = string_member(body, "refresh_token");
    if (!presented) {
        respond(invalid("refresh_token is required"));
        return std::nullopt;
    }
    return presented;
}

// The login service's answers that the audit log records: a refused login (401) and a login
// refused for too many attempts (429), by the login name of the forwarded body. The service
// keeps its own lockout and refresh-token families, so whether a lockout started or a refresh
// token was reused is for its own audit log.
void audit_forwarded(const account_core& core, std::string_view path, const std::string& body,
                     std::string_view address, const http_response& answer) {
    if (path != "/login" || (answer.status != 401 && answer.status != 429)) return;
    const auto parsed = json::parse(body, nullptr, false);
    std::string login;
    if (parsed.is_object()) {
        if (const auto name = string_member(parsed, "username")) login = *name;
    }
    if (!within_login_name_length(login)) login.clear();
    core.audit(answer.status == 401 ? "login_failed" : "login_locked_out", login, {}, address);
}

}  // namespace

void register_user(const account_core_ptr& core, const account_jobs& jobs,
                   const http_request& request, const http_responder& respond) {
    json body;
    if (auto refusal = parse_object(request, body)) return respond(std::move(*refusal));
    const auto username = string_member(body, "username");
    const auto email = string_member(body, "email");
    const auto password = string_member(body, "password");
    if (!username || !valid_username(*username)) {
        return respond(invalid("username: 3-32 characters of A-Z a-z 0-9 _ . -"));
    }
    if (!email || !valid_email(*email)) {
        return respond(invalid("email: one @ with text on both sides, at most 254 characters"));
    }
    if (!password || !valid_password(*password)) {
        return respond(invalid("password: 8-128 characters"));
    }
    jobs.run(respond,
             [core, address = request.remote_address, u = *username, e = *email,
              p = *password]() -> http_response {
                 if (auto limited = core->address_limited(address)) return *limited;
                 user_record user;
                 user.username = u;
                 user.email = e;
                 if (core->hash_password(p, user.password_hash)) {
                     return http_response::problem(500, "internal_error",
                                                   "cannot hash the password");
                 }
                 const auto ec = core->store()->create_user(user);
                 if (ec == errc::username_taken) {
                     return http_response::problem(409, "username_taken", "that username is taken");
                 }
                 if (ec == errc::email_taken) {
                     return http_response::problem(409, "email_taken", "that email is registered");
                 }
                 if (ec) return store_failed();
                 return http_response::json(
                     201, json{{"player_id", user.player_id}, {"username", user.username}}.dump());
             });
}

void login(const account_core_ptr& core, const account_jobs& jobs, const http_request& request,
           const http_responder& respond) {
    json body;
    if (auto refusal = parse_object(request, body)) return respond(std::move(*refusal));
    const auto username = string_member(body, "username");
    const auto password = string_member(body, "password");
    if (!username || !password || username->empty()) {
        return respond(invalid("username and password are required strings"));
    }
    if (!within_login_name_length(*username)) {
        // No account has such a name, so nothing is checked, counted or kept for it: the
        // lockout table holds only names that could exist. Audited as any failed login, by
        // address only (the name may be kilobytes).
        core->audit("login_failed", {}, {}, request.remote_address);
        return respond(invalid_credentials());
    }
    jobs.run(respond,
             [core, address = request.remote_address, login = *username,
              p = *password]() -> http_response {
                 if (auto limited = core->address_limited(address)) return *limited;
                 const auto& options = core->options();
                 user_record user;
                 const auto found = core->store()->find_user_by_login(login, user);
                 if (found && found != errc::user_not_found) return store_failed();
                 // Keyed on the account the name resolves to, by its username (case-folded), so
                 // that its username and its email share one count; a name with no account is keyed
                 // on itself, case-folded (docs/protocol.md section 2: the lockout holds for a
                 // login name "existing or not"). The username, not the player id: instances with
                 // stores of their own (one registration each) still share one lockout in Redis. No
                 // unknown name can be another account's key: it would not be unknown.
                 const std::string key = "login:" + ascii_lower_copy(found ? login : user.username);
                 // Counted before the (slow) password check, atomically with the lockout check, so
                 // attempts in flight together cannot check more than login_max_failures passwords.
                 const auto admitted = core->limiter().begin_attempt(
                     key, options.login_max_failures, options.login_lockout);
                 if (!admitted.allowed) {
                     core->audit(admitted.lockout_started ? "lockout_started" : "login_locked_out",
                                 login, {}, address);
                     return too_many("too_many_attempts", admitted.retry_after,
                                     "too many failed logins; retry later");
                 }
                 bool ok = false;
                 if (found) {
                     // The same Argon2id work for an unknown name as for a wrong password.
                     static_cast<void>(core->verify_password(core->decoy_hash(), p));
                 } else {
                     ok = core->verify_password(user.password_hash, p);
                 }
                 if (!ok) {
                     // One event for an unknown name and a wrong password, as the answer is
                     // one: the audit log does not tell which names exist either.
                     core->audit("login_failed", login, {}, address);
                     return invalid_credentials();  // already counted by begin_attempt
                 }
                 core->limiter().clear_failures(key);
                 const auto token = make_refresh_token();
                 refresh_token_record record;
                 record.token_hash = hash_refresh_token(token);
                 record.family_id = make_refresh_token();  // random; never sent to anyone
                 record.player_id = user.player_id;
                 record.expires_at_ms = core->refresh_expiry();
                 if (core->store()->add_refresh_token(record)) return store_failed();
                 core->maybe_prune();
                 return http_response::json(200, core->token_pair(user.player_id, token).dump());
             });
}

void refresh(const account_core_ptr& core, const account_jobs& jobs, const http_request& request,
             const http_responder& respond) {
    const auto presented = presented_token(request, respond);
    if (!presented) return;
    jobs.run(respond, [core, address = request.remote_address, t = *presented]() -> http_response {
        if (auto limited = core->address_limited(address)) return *limited;
        const auto token = make_refresh_token();
        refresh_token_record next;
        next.token_hash = hash_refresh_token(token);
        next.expires_at_ms = core->refresh_expiry();
        const auto ec =
            core->store()->rotate_refresh_token(hash_refresh_token(t), unix_now_ms(), next);
        if (ec == errc::refresh_token_reused) {
            core->log(log_level::warn, "a rotated refresh token was presented again for player " +
                                           next.player_id + ": its whole family is revoked");
            core->audit("refresh_token_reused", {}, next.player_id, address);
        }
        if (ec == errc::refresh_token_reused || ec == errc::invalid_refresh_token) {
            return http_response::problem(401, "invalid_token",
                                          "the refresh token is not valid; log in again");
        }
        if (ec) return store_failed();
        core->maybe_prune();
        return http_response::json(200, core->token_pair(next.player_id, token).dump());
    });
}

void logout(const account_core_ptr& core, const account_jobs& jobs, const http_request& request,
            const http_responder& respond) {
    const auto presented = presented_token(request, respond);
    if (!presented) return;
    jobs.run(respond, [core, address = request.remote_address, t = *presented]() -> http_response {
        if (auto limited = core->address_limited(address)) return *limited;
        const auto ec = core->store()->revoke_refresh_family(hash_refresh_token(t), unix_now_ms());
        if (ec == errc::invalid_refresh_token) {
            return http_response::problem(401, "invalid_token", "the refresh token is not valid");
        }
        if (ec) return store_failed();
        http_response r;
        r.status = 204;
        r.content_type.clear();
        return r;
    });
}

void forward_credentials(const account_core_ptr& core, const account_jobs& jobs, std::string path,
                         const http_request& request, const http_responder& respond) {
    jobs.run(respond,
             [core, path = std::move(path), address = request.remote_address,
              type = std::string(request.header("Content-Type")),
              body = request.body]() -> http_response {
                 if (auto limited = core->address_limited(address)) return *limited;
                 auto answer = core->forwarder()->forward(path, type, body);
                 audit_forwarded(*core, path, body, address, answer);
                 return answer;
             });
}

}  // namespace gatehouse::detail
