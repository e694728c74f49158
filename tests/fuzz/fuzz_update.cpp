// Fuzzes parse_update(), the parser of every message a service publishes (docs/protocol.md
// section 5). Beyond "does not crash": an accepted update obeys the section 5 rules, writes
// back with to_json() into a message that parses to the same update, and its message
// encodes in every built-in codec (or says it cannot be represented).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "gatehouse/client/envelope.hpp"
#include "gatehouse/update.hpp"

namespace {

bool same(const gatehouse::update& a, const gatehouse::update& b) {
    return a.target == b.target && a.player_id == b.player_id &&
           a.connection_id == b.connection_id && a.player_ids == b.player_ids && a.room == b.room &&
           a.message.type == b.message.type && a.message.payload == b.message.payload &&
           a.message.correlation_id == b.message.correlation_id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using gatehouse::update_target;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    gatehouse::update parsed;
    if (gatehouse::parse_update(input, parsed)) return 0;

    const bool room_op =
        parsed.target == update_target::join || parsed.target == update_target::leave;
    if (room_op) {
        fuzz::require(!parsed.player_id.empty() && !parsed.room.empty(), "join/leave targets");
    } else {
        fuzz::require(gatehouse::client::is_valid_type(parsed.message.type), "valid type");
        fuzz::require(parsed.message.correlation_id.empty() ||
                          gatehouse::client::is_valid_correlation_id(parsed.message.correlation_id),
                      "valid correlation_id");
        for (auto f : {fuzz::gc::wire_format::json, fuzz::gc::wire_format::msgpack,
                       fuzz::gc::wire_format::protobuf}) {
            std::string out;
            const auto ec = fuzz::library_codec(f).encode(parsed.message, out);
            fuzz::require(!ec || ec == gatehouse::errc::payload_not_representable,
                          "an accepted update encodes or is not representable");
        }
    }
    switch (parsed.target) {
        case update_target::player: fuzz::require(!parsed.player_id.empty(), "player"); break;
        case update_target::connection:
            fuzz::require(!parsed.player_id.empty() && !parsed.connection_id.empty(), "connection");
            break;
        case update_target::players: fuzz::require(!parsed.player_ids.empty(), "players"); break;
        case update_target::room: fuzz::require(!parsed.room.empty(), "room"); break;
        default: break;
    }

    const std::string written = gatehouse::to_json(parsed);
    gatehouse::update again;
    fuzz::require(!gatehouse::parse_update(written, again), "to_json output parses");
    fuzz::require(same(parsed, again), "to_json round trip keeps every field");
    return 0;
}
