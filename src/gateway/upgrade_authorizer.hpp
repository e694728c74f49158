#pragma once
// Who may connect, and in which codec: the one authorization path of the WebSocket upgrade
// (`/ws/player/{token}`, `/ws/player` with Bearer, `/ws/bot/{key}`), `GET /sse/player`
// (Bearer or `?token=`) and `POST /commands` (Bearer), and the codec negotiation of an
// upgrade (Sec-WebSocket-Protocol, then `?codec=`, then the client kind's default).

#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "gatehouse/codec_registry.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/http.hpp"
#include "gateway/session.hpp"
#include "transport/transport_events.hpp"

namespace gatehouse::detail {

// A refusal, or nothing (`status == 0`) when authorized. `code` and `detail` are constants.
struct authorization {
    int status = 0;
    std::string_view code;
    std::string_view detail;
    explicit operator bool() const noexcept { return status == 0; }
};

// Thread safety: const after construction; every member may be called from any thread.
class upgrade_authorizer {
public:
    // Throws std::invalid_argument when the registry has no `json` codec.
    upgrade_authorizer(std::shared_ptr<const gateway_options> options, codec_registry codecs);

    // A player's access token: the configured `verify_token`, or an HS256 JWT.
    std::error_code authenticate(std::string_view token, identity& who) const;

    // A WebSocket upgrade: fills `setup.who` and the codecs, and `subprotocol` (the offered
    // value to echo, or empty). Refusals: 404 `not_found`, 401 `unauthorized`, 400
    // `unknown_codec`.
    authorization authorize_websocket(const upgrade_request& request, session_setup& setup,
                                      std::string& subprotocol) const;
    // `GET /sse/player`: Bearer or `?token=`; fills `setup` as an event stream. 401 otherwise.
    authorization authorize_event_stream(const http_request& request, session_setup& setup) const;
    // `POST /commands`: Bearer only. 401 otherwise.
    authorization authorize_command(const http_request& request, identity& who) const;

    const std::shared_ptr<const codec>& json_codec() const noexcept { return json_; }

private:
    enum class credential { player_token, bot_key };
    // The one check every path ends in; a refusal is logged (never the credential itself).
    authorization check(credential kind, std::string_view secret, identity& who,
                        std::string_view refusal_detail) const;
    bool verify_bot_key(std::string_view key, identity& who) const;
    authorization negotiate_codec(const upgrade_request& request, bool is_bot, session_setup& setup,
                                  std::string& subprotocol) const;

    const std::shared_ptr<const gateway_options> options_;
    const codec_registry codecs_;
    std::shared_ptr<const codec> json_;
    std::shared_ptr<const codec> msgpack_;
    std::shared_ptr<const codec> event_stream_;
};

}  // namespace gatehouse::detail
