#include "gateway/session_control.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "common/clock.hpp"
#include "gateway/session.hpp"

namespace gatehouse::detail {
namespace {

constexpr std::string_view refresh_type = "gatehouse.refresh";

// The `access_token` of a refresh payload, in whichever format the client's codec gave it (a
// Protobuf client sends JSON bytes, which its codec reads as JSON); empty when there is none.
std::string access_token_of(const envelope& message) {
    nlohmann::json payload;
    if (message.format == payload_format::json) {
        payload = nlohmann::json::parse(message.payload, nullptr, false);
    } else if (message.format == payload_format::msgpack) {
        payload = nlohmann::json::from_msgpack(message.payload, true, false);
    } else {
        return {};
    }
    if (!payload.is_object()) return {};
    const auto token = payload.find("access_token");
    if (token == payload.end() || !token->is_string()) return {};
    return token->get<std::string>();
}

}  // namespace

session_control::session_control(std::shared_ptr<const gateway_options> options,
                                 token_verifier verify, std::shared_ptr<gateway_metrics> metrics)
    : options_(std::move(options)), verify_(std::move(verify)), metrics_(std::move(metrics)) {}

bool session_control::handles(std::string_view type) noexcept { return type == refresh_type; }

void session_control::handle(const std::shared_ptr<session>& s, const envelope& message) const {
    if (message.type == refresh_type) refresh(s, message);
}

void session_control::refresh(const std::shared_ptr<session>& s, const envelope& message) const {
    const auto& setup = s->setup();
    const auto refuse = [&](std::string_view why) {
        metrics_->refreshes_refused.add();
        if (options_->log) {
            options_->log(log_level::info,
                          "refresh on " + setup.id + " refused: " + std::string(why));
        }
        s->reply_error("invalid_token",
                       "the access token did not verify or names another player; nothing "
                       "changed",
                       message.correlation_id, options_->log);
    };
    // Only a player's session lives on a token; an event stream sends nothing.
    if (setup.who.client != client_kind::player) return refuse("a bot session has no token");
    const std::string token = access_token_of(message);
    if (token.empty()) return refuse("no access_token string in the payload");
    identity who;
    if (const auto ec = verify_(token, who)) return refuse(ec.message());
    if (who.client != client_kind::player || who.player_id != setup.who.player_id) {
        return refuse("the token names another player");
    }
    const auto now = unix_now_ms();
    if (!s->lifetime().extend(who.expires_at, now)) {
        // Too late: the session's token expired before this refresh was read (docs/protocol.md 6.3
        // decided at the deadline, not later). Like anything a closing session sends, it is not
        // answered: the 4001 close, which follows at once, is the answer.
        s->check_lifetime(now);
        return;
    }
    metrics_->refreshes_ok.add();
    s->reply("gatehouse.refreshed", "{\"exp\":" + std::to_string(who.expires_at) + "}",
             message.correlation_id, options_->log);
    // A token with less than a minute left is told so at once.
    s->check_lifetime(now);
}

}  // namespace gatehouse::detail
