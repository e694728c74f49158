#include "gateway/upgrade_authorizer.hpp"

#include <stdexcept>
#include <utility>

#include "common/constant_time.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/jwt.hpp"
#include "gateway/event_stream_codec.hpp"
#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
    return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

upgrade_authorizer::upgrade_authorizer(std::shared_ptr<const gateway_options> options,
                                       codec_registry codecs)
    : options_(std::move(options)), codecs_(std::move(codecs)) {
    json_ = codecs_.find("json");
    msgpack_ = codecs_.find("msgpack");
    if (!json_) {
        // Text frames are always JSON (docs/protocol.md section 3), so a registry without the JSON
        // codec cannot serve the protocol.
        throw std::invalid_argument("gateway: the codec registry needs a \"json\" codec");
    }
    event_stream_ = std::make_shared<event_stream_codec>(json_);
}

std::error_code upgrade_authorizer::authenticate(std::string_view token, identity& who) const {
    if (options_->verify_token) return options_->verify_token(token, who);
    jwt_claims claims;
    if (auto ec = verify_jwt(token, options_->jwt_secret, unix_now_seconds(), claims)) return ec;
    who.player_id = std::move(claims.sub);
    who.client = client_kind::player;
    who.roles = std::move(claims.roles);
    who.expires_at = claims.exp;
    return {};
}

bool upgrade_authorizer::verify_bot_key(std::string_view key, identity& who) const {
    bool found = false;
    // Every configured key is compared, so the time taken does not say which one matched.
    for (const auto& [name, expected] : options_->bot_keys) {
        if (constant_time_equal(key, expected) && !found) {
            found = true;
            who.player_id = "bot:" + name;
            who.client = client_kind::bot;
        }
    }
    return found;
}

authorization upgrade_authorizer::check(credential kind, std::string_view secret, identity& who,
                                        std::string_view refusal_detail) const {
    std::error_code error;
    if (secret.empty()) {
        error = kind == credential::bot_key ? errc::unknown_bot_key : errc::invalid_token;
    } else if (kind == credential::bot_key) {
        if (!verify_bot_key(secret, who)) error = errc::unknown_bot_key;
    } else {
        error = authenticate(secret, who);
    }
    if (!error) return {};
    if (options_->log) options_->log(log_level::info, "credentials refused: " + error.message());
    return {401, "unauthorized", refusal_detail};
}

authorization upgrade_authorizer::authorize_websocket(const upgrade_request& request,
                                                      session_setup& setup,
                                                      std::string& subprotocol) const {
    constexpr std::string_view detail = "a valid access token or bot key is required";
    authorization verdict;
    bool is_bot = false;
    if (starts_with(request.path, "/ws/player/")) {
        verdict = check(credential::player_token, request.path.substr(11), setup.who, detail);
    } else if (request.path == "/ws/player") {
        verdict = check(credential::player_token, bearer_token_of(request.authorization), setup.who,
                        detail);
    } else if (starts_with(request.path, "/ws/bot/")) {
        is_bot = true;
        verdict = check(credential::bot_key, request.path.substr(8), setup.who, detail);
    } else {
        return {404, "not_found", "WebSocket endpoints are /ws/player and /ws/bot/{key}"};
    }
    if (!verdict) return verdict;
    // docs/protocol.md 6.4 offers resume on /ws/player; a bot's `?resume=` is not read.
    if (!is_bot) setup.resume = find_query_param(request.query, "resume");
    return negotiate_codec(request, is_bot, setup, subprotocol);
}

authorization upgrade_authorizer::negotiate_codec(const upgrade_request& request, bool is_bot,
                                                  session_setup& setup,
                                                  std::string& subprotocol) const {
    setup.wire_codec = nullptr;
    // Sec-WebSocket-Protocol: the first offered value naming a codec we have.
    for (const auto& offered : request.offered_subprotocols) {
        if (auto c = codecs_.find_subprotocol(offered)) {
            setup.wire_codec = std::move(c);
            subprotocol = offered;
            break;
        }
    }
    if (!setup.wire_codec) {
        if (const auto requested = find_query_param(request.query, "codec")) {
            setup.wire_codec = codecs_.find(*requested);
            if (!setup.wire_codec) {
                return {400, "unknown_codec", "?codec= names no codec this gateway offers"};
            }
        } else {
            setup.wire_codec = is_bot && msgpack_ ? msgpack_ : json_;
        }
    }
    const auto& wire = setup.wire_codec;
    setup.text_codec = wire->frame() == frame_type::text ? wire : json_;
    setup.binary_codec = wire->frame() == frame_type::binary ? wire : (msgpack_ ? msgpack_ : wire);
    return {};
}

authorization upgrade_authorizer::authorize_event_stream(const http_request& request,
                                                         session_setup& setup) const {
    const auto bearer = request.bearer_token();
    const std::string token = bearer.empty() ? request.query_param("token") : std::string(bearer);
    if (auto verdict = check(credential::player_token, token, setup.who,
                             "a valid access token is required (Authorization: Bearer or ?token=)");
        !verdict) {
        return verdict;
    }
    setup.wire_codec = event_stream_;
    setup.text_codec = json_;
    setup.binary_codec = json_;
    setup.event_stream = true;
    // The header wins over the query: a fresh EventSource never sends it, and one that
    // reconnects by itself reuses its first URL (`?resume=` an older id) while the header
    // names the last event it got, so the query would replay what the client already has.
    const auto last_event_id = request.header("Last-Event-ID");
    if (!last_event_id.empty()) {
        setup.resume = std::string(last_event_id);
    } else {
        setup.resume = find_query_param(request.query, "resume");
    }
    return {};
}

authorization upgrade_authorizer::authorize_command(const http_request& request,
                                                    identity& who) const {
    return check(credential::player_token, request.bearer_token(), who,
                 "a valid access token is required (Authorization: Bearer)");
}

}  // namespace gatehouse::detail
