// How a game client (an Unreal plugin, say) uses the client codec: no exceptions, no RTTI,
// no allocation. The socket is left out; the frames are what it would send and receive.
#include <cstdio>

#include "gatehouse/client/codec.hpp"
#include "gatehouse/version.hpp"

namespace gc = gatehouse::client;

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "example_client_codec")) return 0;
    // Sending: build the command, encode it into a buffer the game owns.
    gc::envelope command;
    if (command.set_type("player_action") != gc::status::ok) return 1;
    if (command.set_correlation_id("c-17") != gc::status::ok) return 1;
    command.set_payload(gc::payload_format::json, R"({"move":[1,2]})");

    char frame[512];
    const gc::encode_result sent =
        gc::encode(gc::wire_format::protobuf, command, frame, sizeof frame);
    if (sent.code != gc::status::ok) {
        std::printf("encode failed: %s\n", gc::describe(sent.code));
        return 1;
    }
    std::printf("sending a %zu-byte protobuf frame\n", sent.size);

    // Receiving: the server's ack for it, as a Protobuf connection gets it.
    static constexpr char ack_frame[] =
        "\x0a\x03"
        "ack"
        "\x12\x19"
        R"({"stream_id":"1700000-0"})"
        "\x1a\x04"
        "c-17"
        "\x22\x04"
        "json";
    gc::envelope reply;
    const gc::status st =
        gc::decode(gc::wire_format::protobuf, {ack_frame, sizeof ack_frame - 1}, reply);
    if (st != gc::status::ok) {
        std::printf("decode failed: %s (%s)\n", gc::describe(st), gc::protocol_code(st));
        return 1;
    }
    std::printf("received %.*s for %.*s: %.*s (%.*s)\n", static_cast<int>(reply.type().size()),
                reply.type().data(), static_cast<int>(reply.correlation_id().size()),
                reply.correlation_id().data(), static_cast<int>(reply.payload().size()),
                reply.payload().data(), static_cast<int>(reply.payload_codec().size()),
                reply.payload_codec().data());
    return reply.type() == "ack" && reply.correlation_id() == command.correlation_id() ? 0 : 1;
}
