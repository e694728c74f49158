#include "gateway/session.hpp"

#include <utility>

#include "common/clock.hpp"
#include "gateway/command_ingress.hpp"
#include "gateway/json_text.hpp"
#include "gateway/session_registry.hpp"

namespace gatehouse::detail {

void session::on_open(const std::shared_ptr<stream_link>& link) {
    link_ = link;
    registry_->open(shared_from_this());
    // After the welcome (docs/protocol.md 6.8); event streams are no WebSockets and have none.
    if (!setup_.event_stream && ingress_->append_presence(setup_, true)) {
        presence_reported_.store(true);
    }
}

void session::on_message(bool text, std::string_view bytes) {
    if (setup_.access) setup_.access->received(bytes.size());
    ingress_->on_message(shared_from_this(), text, bytes);
}

void session::on_activity() { touch(steady_now_ms()); }

void session::on_close(std::uint16_t code) {
    // Before the registry lets go: shutdown waits for the sessions, then for the appends, so
    // an entry counted here is one it drains.
    if (presence_reported_.exchange(false)) ingress_->append_presence(setup_, false);
    registry_->close(shared_from_this(), code);
    if (setup_.access) {
        setup_.access->finished(code, setup_.who.player_id, setup_.wire_codec->name(),
                                setup_.resume ? &*setup_.resume : nullptr);
    }
}

bool session::check_lifetime(std::int64_t unix_ms) {
    return registry_->check_lifetime(shared_from_this(), unix_ms);
}

void session::reply(std::string_view type, std::string payload_json,
                    std::string_view correlation_id, const log_sink& log) {
    std::string bytes;
    if (encode_reply(type, std::move(payload_json), correlation_id, log, bytes)) {
        send_reply(make_frame(std::move(bytes), setup_.wire_codec->frame()));
    }
}

bool session::encode_reply(std::string_view type, std::string payload_json,
                           std::string_view correlation_id, const log_sink& log,
                           std::string& bytes) const {
    envelope out;
    out.type = type;
    out.payload = std::move(payload_json);
    out.format = payload_format::json;
    out.correlation_id = correlation_id;
    const auto& wire = *setup_.wire_codec;
    if (auto ec = wire.encode(out, bytes)) {
        // Our own JSON payloads are representable in every built-in codec; a custom codec
        // that cannot carry them leaves the client without this reply, which is logged.
        if (log) {
            log(log_level::error, "cannot encode a " + std::string(type) + " reply with codec " +
                                      std::string(wire.name()) + ": " + ec.message());
        }
        return false;
    }
    return true;
}

bool session::send_reconnect(std::int64_t after_ms, const log_sink& log) {
    if (reconnect_sent_.exchange(true)) return false;
    const std::string after = std::to_string(after_ms);
    std::string bytes;
    if (!encode_reply("gatehouse.reconnect", "{\"after_ms\":" + after + "}", {}, log, bytes)) {
        return true;
    }
    // An event stream has no message channel the client reads control messages from, but
    // EventSource has its own reconnection delay: a `retry:` field in the same event sets it.
    if (setup_.event_stream) bytes.insert(0, "retry: " + after + "\n");
    send_reply(make_frame(std::move(bytes), setup_.wire_codec->frame()));
    return true;
}

void session::reply_error(std::string_view code, std::string_view message,
                          std::string_view correlation_id, const log_sink& log) {
    std::string payload = "{\"code\":";
    append_json_string(payload, code);
    payload += ",\"message\":";
    append_json_string(payload, message);
    payload += '}';
    reply("error", std::move(payload), correlation_id, log);
}

}  // namespace gatehouse::detail
