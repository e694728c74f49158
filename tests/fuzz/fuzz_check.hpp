#pragma once
// Invariants every decoder fuzzer checks on each input, beyond "does not crash":
// - the library codec and the client codec agree on the outcome;
// - a failure has a protocol error code;
// - an accepted envelope obeys the envelope rules, re-encodes in its own format, and decodes
//   back to the same fields;
// - update_id and traceparent are either valid or absent (a malformed one is dropped), never
//   reported with a failure, and the library codec never takes a client's update_id;
// - the library can re-encode it into every built-in format (or says why not).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/client/codec.hpp"
#include "gatehouse/codec_error.hpp"
#include "gatehouse/errc.hpp"

namespace fuzz {

namespace gc = gatehouse::client;

inline void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
        std::abort();
    }
}

inline const gatehouse::codec& library_codec(gc::wire_format f) {
    static const auto json = gatehouse::make_json_codec();
    static const auto msgpack = gatehouse::make_msgpack_codec();
    static const auto protobuf = gatehouse::make_protobuf_codec();
    switch (f) {
        case gc::wire_format::json: return *json;
        case gc::wire_format::msgpack: return *msgpack;
        case gc::wire_format::protobuf: break;
    }
    return *protobuf;
}

// Returns the client codec's status so a fuzzer can add format-specific oracles.
inline gc::status check_decoder(gc::wire_format format, std::string_view frame, gc::envelope& e) {
    const gc::status st = gc::decode(format, frame, e);
    gatehouse::envelope lib;
    const std::error_code ec = library_codec(format).decode(frame, lib);
    require((st == gc::status::ok) == !ec, "library and client codecs disagree");
    if (st != gc::status::ok) {
        require(ec == st, "library reports a different status");
        require(gc::protocol_code(st) != nullptr, "decode failure without a protocol code");
        // A failure names a correlation id only when the frame was read, and only a valid one.
        require(!e.has_correlation_id() ||
                    ((!gc::is_frame_error(st) || st == gc::status::invalid_payload) &&
                     gc::is_valid_correlation_id(e.correlation_id())),
                "failure names an unknown or invalid correlation id");
        require(lib.correlation_id == e.correlation_id(),
                "library reports a different correlation id on failure");
        require(!e.has_update_id() && !e.has_traceparent(), "failure reports trace fields");
        return st;
    }
    require(gc::is_valid_type(e.type()), "accepted an invalid type");
    require(!e.has_correlation_id() || gc::is_valid_correlation_id(e.correlation_id()),
            "accepted an invalid correlation id");
    require(gc::validate_payload(e.format(), e.payload()) == gc::status::ok,
            "accepted an invalid payload");
    require(!e.has_update_id() || gc::is_valid_update_id(e.update_id()),
            "accepted an invalid update id");
    require(!e.has_traceparent() || gc::is_valid_traceparent(e.traceparent()),
            "accepted an invalid traceparent");
    require(lib.update_id.empty(), "library took a client's update id");
    require(lib.traceparent == e.traceparent(), "library decoded a different traceparent");
    require(lib.type == e.type() && lib.correlation_id == e.correlation_id() &&
                lib.payload == e.payload() && lib.format == e.format(),
            "library decoded different fields");

    // Same format round trip: encode, decode, compare.
    const gc::encode_result need = gc::encode(format, e, nullptr, 0);
    require(need.code == gc::status::buffer_too_small, "size query failed");
    std::string out(need.size, '\0');
    const gc::encode_result r = gc::encode(format, e, out.data(), out.size());
    require(r.code == gc::status::ok && r.size == need.size, "re-encode failed");
    gc::envelope again;
    require(gc::decode(format, out, again) == gc::status::ok, "re-encoded frame does not decode");
    require(again.type() == e.type() && again.correlation_id() == e.correlation_id() &&
                again.format() == e.format() && again.payload() == e.payload() &&
                again.payload_codec() == e.payload_codec() && again.update_id() == e.update_id() &&
                again.traceparent() == e.traceparent(),
            "round trip changed the envelope");

    // Every built-in format can carry it, except opaque bytes to JSON and payloads with no
    // equivalent in the other format (a JSON number beyond double range, say).
    // The update id goes along as the gateway's own would, so its encode path is covered too.
    gatehouse::envelope outgoing = lib;
    outgoing.update_id.assign(e.update_id());
    for (const auto to :
         {gc::wire_format::json, gc::wire_format::msgpack, gc::wire_format::protobuf}) {
        std::string frame_out;
        const std::error_code enc = library_codec(to).encode(outgoing, frame_out);
        if (enc) {
            require(enc == gatehouse::errc::payload_not_representable, "unexpected encode error");
            continue;
        }
        gatehouse::envelope back;
        require(!library_codec(to).decode(frame_out, back), "library output does not decode");
        require(back.type == lib.type && back.correlation_id == lib.correlation_id &&
                    back.traceparent == lib.traceparent && back.update_id.empty(),
                "cross-format round trip changed type, correlation id or traceparent");
        gc::envelope client_view;
        require(gc::decode(to, frame_out, client_view) == gc::status::ok &&
                    client_view.update_id() == e.update_id(),
                "cross-format round trip changed the update id");
    }
    return st;
}

}  // namespace fuzz
