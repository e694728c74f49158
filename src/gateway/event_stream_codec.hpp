#pragma once
// The "codec" of `GET /sse/player` streams: an update becomes one server-sent event,
// `event: TYPE\ndata: {"type","payload","correlation_id"}\n\n` (docs/protocol.md section 2), with
// an `id: UPDATE_ID` line between them for a logged update (6.4). Being a codec lets the connection
// manager route and encode for event streams exactly as for WebSockets: once per update for every
// stream it reaches. It is never in the registry, so no client can negotiate it for a WebSocket.

#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "gatehouse/codec.hpp"
#include "gatehouse/envelope.hpp"

namespace gatehouse::detail {

class event_stream_codec final : public codec {
public:
    explicit event_stream_codec(std::shared_ptr<const codec> json) : json_(std::move(json)) {}

    std::string_view name() const noexcept override { return "sse"; }
    frame_type frame() const noexcept override { return frame_type::text; }

    std::error_code decode(std::string_view, envelope&) const override {
        // Event streams carry nothing from the client.
        return std::make_error_code(std::errc::operation_not_supported);
    }

    std::error_code encode(const envelope& in, std::string& out) const override {
        std::string data;
        if (auto ec = json_->encode(in, data)) return ec;
        out.clear();
        out.reserve(data.size() + in.type.size() + 16);
        out += "event: ";
        out += in.type;  // [A-Za-z0-9_.:-]: nothing that could end the field
        if (!in.update_id.empty()) {
            // A logged update's id (docs/protocol.md 6.4): the browser sends it back as
            // Last-Event-ID when it reconnects. Ids are `<ms>-<seq>`: no line break possible.
            out += "\nid: ";
            out += in.update_id;
        }
        out += "\ndata: ";
        // A line break ends an SSE field. In valid JSON one can only be insignificant
        // whitespace (inside strings it is escaped), so a space stands in for it.
        for (const char c : data) out += (c == '\n' || c == '\r') ? ' ' : c;
        out += "\n\n";
        return {};
    }

private:
    std::shared_ptr<const codec> json_;
};

}  // namespace gatehouse::detail
