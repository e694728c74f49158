#include "gatehouse/accounts.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <utility>

#include "accounts/display_name.hpp"
#include "accounts/login_forwarder.hpp"
#include "codec/json_depth.hpp"
#include "gatehouse/client/limits.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/jwt.hpp"
#include "http/text.hpp"

namespace gatehouse {
namespace {

using json = nlohmann::json;

// PROTOCOL.md section 2's limits.
constexpr std::size_t username_min = 3, username_max = 32;
constexpr std::size_t password_min = 8, password_max = 128;
constexpr std::size_t email_max = 254;
constexpr std::size_t display_name_max = 32;
constexpr std::size_t preferences_max_bytes = std::size_t{16} * 1024;
// How often dead refresh tokens are deleted (docs/accounts.md, "Storage").
constexpr std::int64_t prune_interval_ms = std::int64_t{10} * 60 * 1000;

std::int64_t unix_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Code points of valid UTF-8 (nlohmann validated it): bytes that do not continue a sequence.
std::size_t code_points(std::string_view s) noexcept {
    std::size_t n = 0;
    for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
}

bool valid_username(std::string_view u) noexcept {
    if (u.size() < username_min || u.size() > username_max) return false;
    for (const char c : u) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (!ok) return false;
    }
    return true;
}

// One `@` with something on each side, no whitespace or control characters: deliverability is
// the mail system's business, not the gateway's.
bool valid_email(std::string_view e) noexcept {
    const auto at = e.find('@');
    if (e.empty() || e.size() > email_max || at == 0 || at == std::string_view::npos ||
        at + 1 == e.size() || e.find('@', at + 1) != std::string_view::npos) {
        return false;
    }
    for (const char c : e) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) return false;
    }
    return true;
}

bool valid_password(std::string_view p) noexcept {
    const auto n = code_points(p);
    return n >= password_min && n <= password_max;
}

http_response invalid(std::string_view detail) {
    return http_response::problem(400, "invalid_request", detail);
}

// A login name longer than any username or email can be (an email is anything with an `@`).
bool within_login_name_length(std::string_view name) noexcept {
    return name.size() <= (name.find('@') == std::string_view::npos ? username_max : email_max);
}

// One answer for an unknown name and a wrong password (docs/accounts.md, "Login and lockout").
http_response invalid_credentials() {
    return http_response::problem(401, "invalid_credentials", "unknown username or wrong password");
}

http_response store_failed() {
    return http_response::problem(503, "store_unavailable",
                                  "the account store is unavailable; retry later");
}

http_response too_many(std::string_view code, std::chrono::seconds retry_after,
                       std::string_view detail) {
    auto r = http_response::problem(429, code, detail);
    r.headers.emplace_back("Retry-After",
                           std::to_string(std::max<long long>(1, retry_after.count())));
    return r;
}

// As the codecs do (docs/codecs.md): deeper bodies are refused before nlohmann parses them
// (codec/json_depth.hpp says why).
constexpr std::size_t max_nesting = client::max_nesting_depth;

// The body as a JSON object, or the response to send instead: 415 for another media type,
// 400 `invalid_json` when it does not parse, 400 `invalid_request` when it is not an object.
std::optional<http_response> parse_object(const http_request& request, json& out,
                                          bool merge_patch_allowed = false) {
    if (!request.content_type_is("application/json") &&
        !(merge_patch_allowed && request.content_type_is("application/merge-patch+json"))) {
        return http_response::problem(415, "unsupported_media_type",
                                      merge_patch_allowed ? "the body must be application/json or "
                                                            "application/merge-patch+json"
                                                          : "the body must be application/json");
    }
    if (!detail::json_within_depth(request.body, max_nesting)) {
        return http_response::problem(400, "invalid_json", "the body is nested too deeply");
    }
    out = json::parse(request.body, nullptr, false);
    if (out.is_discarded())
        return http_response::problem(400, "invalid_json", "the body is not JSON");
    if (!out.is_object()) return invalid("the body must be a JSON object");
    return std::nullopt;
}

// A required string member, or nullopt (absent or not a string).
std::optional<std::string> string_member(const json& o, const char* name) {
    const auto it = o.find(name);
    if (it == o.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

}  // namespace

struct accounts::impl {
    accounts_options options;
    std::shared_ptr<user_store> store;
    std::shared_ptr<attempt_limiter> limiter;
    std::shared_ptr<worker_pool> workers;
    std::optional<detail::login_forwarder> forwarder;

    // When the next prune of dead refresh tokens is due (unix ms); 0: at the first login.
    std::atomic<std::int64_t> next_prune_ms{0};

    void log(log_level level, const std::string& message) const {
        if (options.log) options.log(level, "accounts: " + message);
    }

    // Called on a worker after each login and refresh: at most once per prune_interval_ms,
    // one caller (of this instance) deletes the refresh tokens of dead families, on the
    // worker that served the request. Every instance on a shared database does so too: one
    // scan of the token table each per interval. A failure is left for the next interval.
    void maybe_prune() {
        const std::int64_t now = unix_ms();
        std::int64_t due = next_prune_ms.load(std::memory_order_relaxed);
        if (now < due || !next_prune_ms.compare_exchange_strong(due, now + prune_interval_ms,
                                                                std::memory_order_relaxed)) {
            return;
        }
        std::size_t removed = 0;
        if (store->prune_refresh_tokens(now, removed)) {
            log(log_level::warn, "pruning expired refresh tokens failed; retried later");
        } else if (removed > 0) {
            log(log_level::debug,
                "pruned " + std::to_string(removed) + " expired or revoked refresh tokens");
        }
    }

    // Account jobs posted and not yet started, against `queue_limit`.
    std::atomic<std::size_t> waiting{0};
    std::size_t queue_limit = 0;

    static http_response busy() {
        auto r = http_response::problem(503, "busy", "the server is busy; retry later");
        r.headers.emplace_back("Retry-After", "1");
        return r;
    }

    // Runs `job` on the pool; 503 `busy` when `queue_limit` jobs already wait, or when this
    // one waited past `queue_timeout`. `job` returns the response. The bound is ours, not the
    // pool's: a queue of thousands of Argon2id jobs is seconds of work ahead of every later
    // login, most of it for clients that have given up, and a job cannot see its client go.
    void run(const http_responder& respond, std::function<http_response()> job) {
        if (waiting.fetch_add(1, std::memory_order_relaxed) >= queue_limit) {
            waiting.fetch_sub(1, std::memory_order_relaxed);
            return respond(busy());
        }
        const auto deadline = std::chrono::steady_clock::now() + options.queue_timeout;
        const bool queued = workers->post([this, respond, job = std::move(job), deadline] {
            waiting.fetch_sub(1, std::memory_order_relaxed);
            if (std::chrono::steady_clock::now() > deadline) return respond(busy());
            http_response r;
            try {
                r = job();
            } catch (const std::exception&) {
                r = http_response::problem(500, "internal_error");
            }
            respond(std::move(r));
        });
        if (!queued) {
            waiting.fetch_sub(1, std::memory_order_relaxed);
            respond(busy());
        }
    }

    // The per-address limit of the credential routes; nullopt when within it.
    std::optional<http_response> address_limited(const std::string& address) {
        if (options.auth_rate_limit == 0) return std::nullopt;
        const auto d =
            limiter->hit("ip:" + address, options.auth_rate_limit, std::chrono::seconds(60));
        if (d.allowed) return std::nullopt;
        return too_many("rate_limited", d.retry_after,
                        "too many account requests from this address; retry later");
    }

    // An access token and a refresh token of `family` (new at login, kept on rotation).
    json token_pair(const std::string& player_id, const std::string& refresh_token) const {
        jwt_claims claims;
        claims.sub = player_id;
        claims.iat = unix_now_seconds();
        claims.exp = claims.iat + options.access_ttl.count();
        claims.roles = options.roles;
        return json{{"access_token", sign_jwt(claims, options.jwt_secret)},
                    {"refresh_token", refresh_token},
                    {"token_type", "Bearer"},
                    {"expires_in", options.access_ttl.count()},
                    {"player_id", player_id}};
    }

    std::int64_t refresh_expiry() const {
        return unix_ms() +
               std::chrono::duration_cast<std::chrono::milliseconds>(options.refresh_ttl).count();
    }

    static json settings_of(const user_record& u) {
        json prefs = json::parse(u.preferences, nullptr, false);
        if (!prefs.is_object()) prefs = json::object();
        return json{{"display_name", u.display_name.empty() ? u.username : u.display_name},
                    {"preferences", std::move(prefs)}};
    }

    // --- routes ---------------------------------------------------------------------------

    void register_user(const http_request& request, const http_responder& respond) {
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
        run(respond,
            [this, address = request.remote_address, u = *username, e = *email,
             p = *password]() -> http_response {
                if (auto limited = address_limited(address)) return *limited;
                user_record user;
                user.username = u;
                user.email = e;
                if (hash_password(p, user.password_hash, options.password_cost)) {
                    return http_response::problem(500, "internal_error",
                                                  "cannot hash the password");
                }
                const auto ec = store->create_user(user);
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

    void login(const http_request& request, const http_responder& respond) {
        json body;
        if (auto refusal = parse_object(request, body)) return respond(std::move(*refusal));
        const auto username = string_member(body, "username");
        const auto password = string_member(body, "password");
        if (!username || !password || username->empty()) {
            return respond(invalid("username and password are required strings"));
        }
        if (!within_login_name_length(*username)) {
            // No account has such a name, so nothing is checked, counted or kept for it: the
            // lockout table holds only names that could exist.
            return respond(invalid_credentials());
        }
        run(respond,
            [this, address = request.remote_address, login = *username,
             p = *password]() -> http_response {
                if (auto limited = address_limited(address)) return *limited;
                user_record user;
                const auto found = store->find_user_by_login(login, user);
                if (found && found != errc::user_not_found) return store_failed();
                // Keyed on the account the name resolves to, by its username (case-folded), so
                // that its username and its email share one count; a name with no account is
                // keyed on itself, case-folded (PROTOCOL.md section 2: the lockout holds for a
                // login name "existing or not"). The username, not the player id: instances with
                // stores of their own (one registration each) still share one lockout in Redis.
                // No unknown name can be another account's key: it would not be unknown.
                const std::string key =
                    "login:" + detail::ascii_lower_copy(found ? login : user.username);
                // Counted before the (slow) password check, atomically with the lockout check, so
                // attempts in flight together cannot check more than login_max_failures passwords.
                const auto admitted =
                    limiter->begin_attempt(key, options.login_max_failures, options.login_lockout);
                if (!admitted.allowed) {
                    return too_many("too_many_attempts", admitted.retry_after,
                                    "too many failed logins; retry later");
                }
                bool ok = false;
                if (found) {
                    // The same Argon2id work for an unknown name as for a wrong password.
                    static_cast<void>(
                        verify_password(decoy_password_hash(options.password_cost), p));
                } else {
                    ok = verify_password(user.password_hash, p);
                }
                if (!ok) return invalid_credentials();  // already counted by begin_attempt
                limiter->clear_failures(key);
                const auto token = make_refresh_token();
                refresh_token_record record;
                record.token_hash = hash_refresh_token(token);
                record.family_id = make_refresh_token();  // random; never sent to anyone
                record.player_id = user.player_id;
                record.expires_at_ms = refresh_expiry();
                if (store->add_refresh_token(record)) return store_failed();
                maybe_prune();
                return http_response::json(200, token_pair(user.player_id, token).dump());
            });
    }

    // The `refresh_token` of a refresh or logout body, or nullopt once `respond` has had the
    // error.
    static std::optional<std::string> presented_token(const http_request& request,
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

    void refresh(const http_request& request, const http_responder& respond) {
        const auto presented = presented_token(request, respond);
        if (!presented) return;
        run(respond, [this, address = request.remote_address, t = *presented]() -> http_response {
            if (auto limited = address_limited(address)) return *limited;
            const auto token = make_refresh_token();
            refresh_token_record next;
            next.token_hash = hash_refresh_token(token);
            next.expires_at_ms = refresh_expiry();
            const auto ec = store->rotate_refresh_token(hash_refresh_token(t), unix_ms(), next);
            if (ec == errc::refresh_token_reused) {
                log(log_level::warn, "a rotated refresh token was presented again for player " +
                                         next.player_id + ": its whole family is revoked");
            }
            if (ec == errc::refresh_token_reused || ec == errc::invalid_refresh_token) {
                return http_response::problem(401, "invalid_token",
                                              "the refresh token is not valid; log in again");
            }
            if (ec) return store_failed();
            maybe_prune();
            return http_response::json(200, token_pair(next.player_id, token).dump());
        });
    }

    void logout(const http_request& request, const http_responder& respond) {
        const auto presented = presented_token(request, respond);
        if (!presented) return;
        run(respond, [this, address = request.remote_address, t = *presented]() -> http_response {
            if (auto limited = address_limited(address)) return *limited;
            const auto ec = store->revoke_refresh_family(hash_refresh_token(t), unix_ms());
            if (ec == errc::invalid_refresh_token) {
                return http_response::problem(401, "invalid_token",
                                              "the refresh token is not valid");
            }
            if (ec) return store_failed();
            http_response r;
            r.status = 204;
            r.content_type.clear();
            return r;
        });
    }

    // GET, PATCH and PUT /player/settings. `gw` authenticates exactly as WebSocket upgrades do.
    void settings(const gateway& gw, const http_request& request, const http_responder& respond) {
        identity who;
        const auto token = request.bearer_token();
        if (token.empty() || gw.authenticate(token, who)) {
            return respond(
                http_response::problem(401, "unauthorized", "a valid access token is required"));
        }
        if (request.method == "GET") {
            return run(respond, [this, player = who.player_id]() -> http_response {
                user_record user;
                const auto ec = store->find_user(player, user);
                if (ec == errc::user_not_found) return no_account();
                if (ec) return store_failed();
                return http_response::json(200, settings_of(user).dump());
            });
        }
        const bool patch = request.method == "PATCH";
        json body;
        if (auto refusal = parse_object(request, body, patch)) return respond(std::move(*refusal));
        for (const auto& [name, value] : body.items()) {
            if (name != "display_name" && name != "preferences" && name != "current_password" &&
                name != "new_password") {
                return respond(invalid("unknown field " + name.substr(0, 64)));
            }
        }
        const auto display = body.find("display_name");
        if (display != body.end() && !display->is_null() &&
            (!display->is_string() || code_points(display->get_ref<const std::string&>()) == 0 ||
             code_points(display->get_ref<const std::string&>()) > display_name_max)) {
            return respond(invalid("display_name: 1-32 characters, or null"));
        }
        if (display != body.end() && display->is_string() &&
            detail::has_refused_display_name_character(display->get_ref<const std::string&>())) {
            return respond(invalid(
                "display_name: no control, format or line-separator characters (Unicode Cc, Cf, "
                "Zl, Zp)"));
        }
        const auto prefs = body.find("preferences");
        if (prefs != body.end() && !prefs->is_null() && !prefs->is_object()) {
            return respond(invalid("preferences: an object, or null"));
        }
        const bool has_current = body.contains("current_password");
        const bool has_new = body.contains("new_password");
        if (has_current != has_new) {
            return respond(invalid("current_password and new_password go together"));
        }
        std::string current, next;
        if (has_new) {
            if (!body["current_password"].is_string() || !body["new_password"].is_string()) {
                return respond(invalid("passwords are strings"));
            }
            current = body["current_password"].get<std::string>();
            next = body["new_password"].get<std::string>();
            if (!valid_password(next)) return respond(invalid("new_password: 8-128 characters"));
        }
        run(respond,
            [this, player = who.player_id, patch, body = std::move(body),
             current = std::move(current), next = std::move(next)]() -> http_response {
                user_record user;
                const auto found = store->find_user(player, user);
                if (found == errc::user_not_found) return no_account();
                if (found) return store_failed();

                // Display name: "" stands for "the username" in the store.
                std::string display_name = patch ? user.display_name : std::string();
                const auto d = body.find("display_name");
                if (d != body.end())
                    display_name = d->is_null() ? std::string() : d->get<std::string>();
                json preferences = json::parse(user.preferences, nullptr, false);
                if (!patch || !preferences.is_object()) preferences = json::object();
                const auto p = body.find("preferences");
                if (p != body.end()) {
                    if (p->is_null()) {
                        preferences = json::object();
                    } else if (patch) {
                        preferences.merge_patch(*p);  // RFC 7396: nested nulls delete members
                    } else {
                        preferences = *p;
                    }
                }
                std::string stored_preferences = preferences.dump();
                if (stored_preferences.size() > preferences_max_bytes) {
                    return invalid("preferences: at most 16 KiB of JSON");
                }
                if (!next.empty()) {
                    if (!verify_password(user.password_hash, current)) {
                        return http_response::problem(403, "wrong_password",
                                                      "current_password is not the password");
                    }
                    std::string hash;
                    if (hash_password(next, hash, options.password_cost)) {
                        return http_response::problem(500, "internal_error",
                                                      "cannot hash the password");
                    }
                    // Revokes every refresh token of the player in the same transaction.
                    if (store->update_password(player, hash)) return store_failed();
                }
                if (store->update_settings(player, display_name, stored_preferences)) {
                    return store_failed();
                }
                user.display_name = display_name;
                user.preferences = std::move(stored_preferences);
                return http_response::json(200, settings_of(user).dump());
            });
    }

    static http_response no_account() {
        return http_response::problem(404, "not_found", "no account for this player");
    }

    void forward(std::string path, const http_request& request, const http_responder& respond) {
        run(respond,
            [this, path = std::move(path), address = request.remote_address,
             type = std::string(request.header("Content-Type")),
             body = request.body]() -> http_response {
                if (auto limited = address_limited(address)) return *limited;
                return forwarder->forward(path, type, body);
            });
    }
};

accounts::accounts(accounts_options options, std::shared_ptr<user_store> store,
                   std::shared_ptr<attempt_limiter> limiter, std::shared_ptr<worker_pool> workers)
    : impl_(std::make_shared<impl>()) {
    if (!limiter || !workers)
        throw std::invalid_argument("accounts: a limiter and a pool are needed");
    if (!store && options.login_service_url.empty()) {
        throw std::invalid_argument("accounts: a user store or a login service is needed");
    }
    if (options.jwt_secret.empty()) throw std::invalid_argument("accounts: jwt_secret is empty");
    if (options.queue_timeout.count() <= 0) {
        throw std::invalid_argument("accounts: queue_timeout must be positive");
    }
    if (!options.login_service_url.empty()) {
        impl_->forwarder.emplace(options.login_service_url, options.login_service_timeout);
        if (!impl_->forwarder->valid()) {
            throw std::invalid_argument(
                "accounts: login_service_url must be http://HOST[:PORT][/PATH]");
        }
    }
    impl_->options = std::move(options);
    impl_->store = std::move(store);
    impl_->limiter = std::move(limiter);
    impl_->workers = std::move(workers);
    impl_->queue_limit = impl_->options.max_queued_jobs != 0 ? impl_->options.max_queued_jobs
                                                             : 4 * impl_->workers->threads();
}

accounts::~accounts() = default;

void accounts::add_routes(gateway& gw) {
    const auto i = impl_;
    const auto route = [&gw, i](const char* method, const char* path, auto member) {
        gw.add_route(method, path,
                     [i, member](const http_request& r, const http_responder& respond) {
                         ((*i).*member)(r, respond);
                     });
    };
    if (i->forwarder) {
        for (const char* path : {"/register", "/login", "/token/refresh", "/logout"}) {
            gw.add_route("POST", path,
                         [i, path](const http_request& r, const http_responder& respond) {
                             i->forward(path, r, respond);
                         });
        }
    } else {
        route("POST", "/register", &impl::register_user);
        route("POST", "/login", &impl::login);
        route("POST", "/token/refresh", &impl::refresh);
        route("POST", "/logout", &impl::logout);
    }
    if (!i->store) return;
    for (const char* method : {"GET", "PATCH", "PUT"}) {
        gw.add_route(method, "/player/settings",
                     [i, &gw](const http_request& r, const http_responder& respond) {
                         i->settings(gw, r, respond);
                     });
    }
}

}  // namespace gatehouse
