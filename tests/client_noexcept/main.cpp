// A game-client-shaped use of the client codec, built without exceptions or RTTI: encode a
// command in each wire format into a fixed buffer, decode it back, and check every field.
// Plain checks (no test framework: Catch2 needs exceptions).
#include <cstdio>
#include <string_view>

#include "gatehouse/client/codec.hpp"

namespace gc = gatehouse::client;

namespace {

int failures = 0;

void check(bool ok, const char* what, const char* format) {
    if (!ok) {
        std::printf("FAIL [%s] %s\n", format, what);
        ++failures;
    }
}

}  // namespace

int main() {
    static constexpr char json_payload[] = R"({"move":[1,2]})";
    static constexpr char msgpack_payload[] = "\x81\xa4move\x92\x01\x02";  // {"move":[1,2]}

    for (const auto format :
         {gc::wire_format::json, gc::wire_format::msgpack, gc::wire_format::protobuf}) {
        const char* name = gc::name_of(format).data();
        gc::envelope out;
        check(out.set_type("player_action") == gc::status::ok, "set_type", name);
        check(out.set_correlation_id("c-17") == gc::status::ok, "set_correlation_id", name);
        if (format == gc::wire_format::msgpack) {
            out.set_payload(gc::payload_format::msgpack,
                            {msgpack_payload, sizeof msgpack_payload - 1});
        } else {
            out.set_payload(gc::payload_format::json, json_payload);
        }

        // Size query, then the real encode into a buffer the caller owns.
        const gc::encode_result need = gc::encode(format, out, nullptr, 0);
        check(need.code == gc::status::buffer_too_small && need.size > 0, "size query", name);
        char buf[256];
        const gc::encode_result r = gc::encode(format, out, buf, sizeof buf);
        check(r.code == gc::status::ok && r.size == need.size, "encode", name);

        gc::envelope in;
        const gc::status st = gc::decode(format, {buf, r.size}, in);
        check(st == gc::status::ok, "decode", name);
        check(in.type() == "player_action", "type", name);
        check(in.correlation_id() == "c-17", "correlation_id", name);
        check(in.payload() == out.payload(), "payload bytes", name);
        check(in.format() == out.format(), "payload format", name);

        // Errors are values: a truncated frame is reported, not thrown.
        const gc::status bad = gc::decode(format, {buf, r.size - 1}, in);
        check(bad != gc::status::ok && gc::protocol_code(bad) != nullptr, "truncated", name);
    }
    check(gc::encode(gc::wire_format::json, gc::envelope{}, nullptr, 0).code ==
              gc::status::missing_type,
          "missing type", "json");

    std::printf("client codec without exceptions/RTTI: %s\n", failures == 0 ? "ok" : "FAILED");
    return failures == 0 ? 0 : 1;
}
