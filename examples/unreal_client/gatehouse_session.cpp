#include "gatehouse_session.hpp"

#include <random>
#include <utility>

#include "json_fields.hpp"

namespace gh_client {

namespace gc = gatehouse::client;

namespace {

// 64 random bits as hex: the prefix of this session's correlation ids. The gateway remembers
// a player's correlation ids for --dedupe-window (docs/protocol.md 6.5) and acks a repeated one
// with the first command's stream id without appending it, so ids must not repeat across
// sessions or processes of one player: a counter alone would, after a restart.
std::string random_prefix() {
    std::random_device random;
    std::uint64_t bits = (std::uint64_t{random()} << 32) | random();
    static constexpr char digits[] = "0123456789abcdef";
    std::string out = "u-";
    for (int shift = 60; shift >= 0; shift -= 4) out += digits[(bits >> shift) & 0xF];
    out += '-';
    return out;
}

}  // namespace

gatehouse_session::gatehouse_session(transport& t, delegates d)
    : transport_(t),
      delegates_(std::move(d)),
      id_prefix_(random_prefix()),
      socket_(t, websocket_client::callbacks{
                     nullptr, [this](bool text, std::string_view data) { on_message(text, data); },
                     [this](std::uint16_t code, std::string_view why) {
                         welcomed_ = false;
                         if (delegates_.on_disconnected) delegates_.on_disconnected(code, why);
                     }}) {}

bool gatehouse_session::connect(const std::string& host, std::uint16_t port,
                                std::string_view access_token) {
    if (!transport_.connect(host, port, 5000)) return false;
    // The token in the path: no custom headers needed, which browsers and some engine socket
    // layers cannot set. The gateway never logs it (the path is redacted).
    socket_.open(host + ":" + std::to_string(port), "/ws/player/" + std::string(access_token),
                 "gatehouse.protobuf");
    return true;
}

std::string gatehouse_session::send_command(std::string_view type, std::string_view payload_json,
                                            reply_handler on_reply) {
    if (!ready()) return {};
    std::string id = id_prefix_ + std::to_string(next_command_++);
    gc::envelope command;
    if (command.set_type(type) != gc::status::ok) return {};
    if (command.set_correlation_id(id) != gc::status::ok) return {};
    // On a Protobuf connection the payload travels as bytes; payload_codec "json" says what
    // they are, so the command lands on the bus as JSON for the game service.
    command.set_payload(gc::payload_format::json, payload_json);

    gc::encode_result r =
        gc::encode(gc::wire_format::protobuf, command, frame_.data(), frame_.size());
    if (r.code == gc::status::buffer_too_small) {
        frame_.resize(r.size);
        r = gc::encode(gc::wire_format::protobuf, command, frame_.data(), frame_.size());
    }
    if (r.code != gc::status::ok) return {};
    if (!socket_.send(false, std::string_view(frame_.data(), r.size))) return {};
    pending_.emplace(id, std::move(on_reply));
    return id;
}

void gatehouse_session::on_message(bool text, std::string_view data) {
    gc::envelope message;
    // The server writes Protobuf connections in binary frames only; a text frame would be a
    // broken server, and is ignored rather than trusted.
    if (text || gc::decode(gc::wire_format::protobuf, data, message) != gc::status::ok) return;

    if (message.type() == "welcome" && !welcomed_) {
        welcomed_ = true;
        const auto payload = message.payload();
        if (delegates_.on_welcome) {
            delegates_.on_welcome(json_string(payload, "player_id").value_or(""),
                                  json_string(payload, "connection_id").value_or(""));
        }
        return;
    }
    const auto waiting = pending_.find(message.correlation_id());
    if (waiting == pending_.end()) {
        if (delegates_.on_update) delegates_.on_update(message);
        return;
    }
    // Moved out first: the handler may send commands, which changes pending_.
    reply_handler handler = std::move(waiting->second);
    pending_.erase(waiting);
    const bool finished = handler(message) || message.type() == "error";
    if (!finished) pending_.emplace(std::string(message.correlation_id()), std::move(handler));
}

}  // namespace gh_client
