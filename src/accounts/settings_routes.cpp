// GET, PATCH and PUT /player/settings: the display name, the preferences and the password of
// the player an access token names.

#include <utility>

#include "accounts/account_requests.hpp"
#include "accounts/account_routes.hpp"
#include "accounts/display_name.hpp"
#include "gatehouse/credentials.hpp"
#include "gatehouse/errc.hpp"

namespace gatehouse::detail {
namespace {

using json = nlohmann::json;

json settings_of(const user_record& u) {
    json prefs = json::parse(u.preferences, nullptr, false);
    if (!prefs.is_object()) prefs = json::object();
    return json{{"display_name", u.display_name.empty() ? u.username : u.display_name},
                {"preferences", std::move(prefs)}};
}

// The checks of a PATCH or PUT body that need no store; nullopt when it passes.
std::optional<http_response> refused_settings(const json& body) {
    for (const auto& [name, value] : body.items()) {
        if (name != "display_name" && name != "preferences" && name != "current_password" &&
            name != "new_password") {
            return invalid("unknown field " + name.substr(0, 64));
        }
    }
    const auto display = body.find("display_name");
    if (display != body.end() && !display->is_null() &&
        (!display->is_string() || code_points(display->get_ref<const std::string&>()) == 0 ||
         code_points(display->get_ref<const std::string&>()) > display_name_max)) {
        return invalid("display_name: 1-32 characters, or null");
    }
    if (display != body.end() && display->is_string() &&
        has_refused_display_name_character(display->get_ref<const std::string&>())) {
        return invalid(
            "display_name: no control, format or line-separator characters (Unicode Cc, Cf, "
            "Zl, Zp)");
    }
    const auto prefs = body.find("preferences");
    if (prefs != body.end() && !prefs->is_null() && !prefs->is_object()) {
        return invalid("preferences: an object, or null");
    }
    if (body.contains("current_password") != body.contains("new_password")) {
        return invalid("current_password and new_password go together");
    }
    return std::nullopt;
}

}  // namespace

void player_settings(const account_core_ptr& core, const account_jobs& jobs, const gateway& gw,
                     const http_request& request, const http_responder& respond) {
    identity who;
    const auto token = request.bearer_token();
    if (token.empty() || gw.authenticate(token, who)) {
        return respond(
            http_response::problem(401, "unauthorized", "a valid access token is required"));
    }
    if (request.method == "GET") {
        return jobs.run(respond, [core, player = who.player_id]() -> http_response {
            user_record user;
            const auto ec = core->store()->find_user(player, user);
            if (ec == errc::user_not_found) return no_account();
            if (ec) return store_failed();
            return http_response::json(200, settings_of(user).dump());
        });
    }
    const bool patch = request.method == "PATCH";
    json body;
    if (auto refusal = parse_object(request, body, patch)) return respond(std::move(*refusal));
    if (auto refusal = refused_settings(body)) return respond(std::move(*refusal));
    std::string current, next;
    if (body.contains("new_password")) {
        if (!body["current_password"].is_string() || !body["new_password"].is_string()) {
            return respond(invalid("passwords are strings"));
        }
        current = body["current_password"].get<std::string>();
        next = body["new_password"].get<std::string>();
        if (!valid_password(next)) return respond(invalid("new_password: 8-128 characters"));
    }
    jobs.run(respond,
             [core, player = who.player_id, patch, body = std::move(body),
              current = std::move(current), next = std::move(next)]() -> http_response {
                 auto& store = *core->store();
                 user_record user;
                 const auto found = store.find_user(player, user);
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
                     if (!core->verify_password(user.password_hash, current)) {
                         return http_response::problem(403, "wrong_password",
                                                       "current_password is not the password");
                     }
                     std::string hash;
                     if (core->hash_password(next, hash)) {
                         return http_response::problem(500, "internal_error",
                                                       "cannot hash the password");
                     }
                     // Revokes every refresh token of the player in the same transaction.
                     if (store.update_password(player, hash)) return store_failed();
                 }
                 if (store.update_settings(player, display_name, stored_preferences)) {
                     return store_failed();
                 }
                 user.display_name = display_name;
                 user.preferences = std::move(stored_preferences);
                 return http_response::json(200, settings_of(user).dump());
             });
}

}  // namespace gatehouse::detail
