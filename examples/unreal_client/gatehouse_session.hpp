#pragma once
// gatehouse_session: a player's connection to a gatehouse gateway, as a game plugin would hold
// it (Unreal: a UGameInstanceSubsystem owning it, ticked from FTickableGameObject::Tick, with
// the callbacks bound to dynamic multicast delegates). Envelopes travel in the Protobuf wire
// format with JSON payload bytes, encoded and decoded by gatehouse::client_codec alone.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/client/codec.hpp"
#include "transport.hpp"
#include "websocket_client.hpp"

namespace gh_client {

/// Thread safety: none; the game thread calls every member and the callbacks run inside
/// tick(). Lifetime: the transport must outlive the session.
class gatehouse_session {
public:
    struct delegates {
        /// The gateway's welcome: the session is ready for commands.
        std::function<void(std::string_view player_id, std::string_view connection_id)> on_welcome;
        /// A message no pending command claimed (an update for the player, a room message...).
        std::function<void(const gatehouse::client::envelope& message)> on_update;
        /// The connection ended (see websocket_client::callbacks::on_closed for codes).
        std::function<void(std::uint16_t code, std::string_view why)> on_disconnected;
    };

    /// Called with every message carrying the command's correlation_id: the gateway's `ack` or
    /// `error`, and any update a service sends for it, in arrival order (which is not fixed:
    /// a service may answer before the ack arrives). Return true once the command needs
    /// nothing more; an `error` ends it anyway (the command was not accepted).
    using reply_handler = std::function<bool(const gatehouse::client::envelope& reply)>;

    gatehouse_session(transport& t, delegates d);

    /// Connects and starts the upgrade at /ws/player/{token}; false when the TCP connection
    /// failed. Progress and failure arrive through tick() and the delegates.
    bool connect(const std::string& host, std::uint16_t port, std::string_view access_token);

    /// Pumps the socket; call once per frame.
    void tick() { socket_.tick(); }

    /// Sends a command with a fresh correlation_id and returns that id, or "" when the session
    /// is not ready or the envelope cannot be encoded. `payload_json` must be JSON text.
    std::string send_command(std::string_view type, std::string_view payload_json,
                             reply_handler on_reply);

    /// Starts a normal close (1000).
    void disconnect() { socket_.close(1000, "bye"); }

    bool ready() const noexcept {
        return welcomed_ && socket_.current() == websocket_client::state::open;
    }
    const websocket_client& socket() const noexcept { return socket_; }
    std::size_t pending_commands() const noexcept { return pending_.size(); }

private:
    void on_message(bool text, std::string_view data);

    transport& transport_;
    delegates delegates_;
    std::string id_prefix_;  // random per session: correlation ids never repeat (6.5)
    websocket_client socket_;
    std::string host_header_;
    bool welcomed_ = false;
    std::uint64_t next_command_ = 1;
    std::map<std::string, reply_handler, std::less<>> pending_;
    std::vector<char> frame_;  // reused encode buffer
};

}  // namespace gh_client
