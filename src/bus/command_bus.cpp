#include "gatehouse/command_bus.hpp"

namespace gatehouse {

std::string_view bus_codec_name(payload_format format) noexcept {
    switch (format) {
        case payload_format::json: return "json";
        case payload_format::msgpack: return "msgpack";
        case payload_format::bytes: return "protobuf";
    }
    // An out-of-range enum value can only come from a cast; docs/protocol.md section 3 files
    // every payload that is neither JSON nor MessagePack under "protobuf", so do the same.
    return "protobuf";
}

std::string_view bus_client_name(client_kind client) noexcept {
    switch (client) {
        case client_kind::player: return "player";
        case client_kind::bot: return "bot";
        case client_kind::system: return "system";
    }
    return "player";
}

}  // namespace gatehouse
