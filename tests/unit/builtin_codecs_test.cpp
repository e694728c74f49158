#include "gatehouse/builtin_codecs.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gatehouse.pb.h"
#include "gatehouse/codec_error.hpp"
#include "gatehouse/errc.hpp"

using gatehouse::envelope;
using gatehouse::payload_format;
using gatehouse::client::status;
using nlohmann::json;

namespace {

// The payload's meaning, whatever format carries it.
json payload_value(const envelope& e) {
    switch (e.format) {
        case payload_format::json: return json::parse(e.payload);
        case payload_format::msgpack: return json::from_msgpack(e.payload);
        case payload_format::bytes: break;
    }
    FAIL("bytes payload has no JSON meaning");
    return {};
}

envelope sample() {
    envelope e;
    e.type = "player_action";
    e.payload = R"({"move":[1,2],"name":"caf)"
                "\xc3\xa9"
                R"(","ok":true,"n":null,"f":-2.5})";
    e.correlation_id = "c-17";
    return e;
}

}  // namespace

TEST_CASE("codecs: names and frame types", "[codecs]") {
    CHECK(gatehouse::make_json_codec()->name() == "json");
    CHECK(gatehouse::make_json_codec()->frame() == gatehouse::frame_type::text);
    CHECK(gatehouse::make_msgpack_codec()->name() == "msgpack");
    CHECK(gatehouse::make_msgpack_codec()->frame() == gatehouse::frame_type::binary);
    CHECK(gatehouse::make_protobuf_codec()->name() == "protobuf");
    CHECK(gatehouse::make_protobuf_codec()->frame() == gatehouse::frame_type::binary);
}

TEST_CASE("codecs: one logical envelope through all three codecs", "[codecs]") {
    const auto codecs = {gatehouse::make_json_codec(), gatehouse::make_msgpack_codec(),
                         gatehouse::make_protobuf_codec()};
    const envelope original = sample();
    const json meaning = json::parse(original.payload);

    // Every codec to every other: encode with one, decode with the same, re-encode with
    // the next; type, correlation id and the payload's meaning survive every hop.
    for (const auto& first : codecs) {
        for (const auto& second : codecs) {
            INFO(first->name() << " -> " << second->name());
            std::string frame;
            REQUIRE_FALSE(first->encode(original, frame));
            envelope hop;
            REQUIRE_FALSE(first->decode(frame, hop));
            REQUIRE_FALSE(second->encode(hop, frame));
            envelope last;
            REQUIRE_FALSE(second->decode(frame, last));
            CHECK(last.type == original.type);
            CHECK(last.correlation_id == original.correlation_id);
            CHECK(payload_value(last) == meaning);
        }
    }
}

TEST_CASE("codecs: JSON payloads become MessagePack on msgpack connections", "[codecs]") {
    const envelope e = sample();
    std::string frame;
    REQUIRE_FALSE(gatehouse::make_msgpack_codec()->encode(e, frame));
    envelope back;
    REQUIRE_FALSE(gatehouse::make_msgpack_codec()->decode(frame, back));
    CHECK(back.format == payload_format::msgpack);
    const auto expected = json::to_msgpack(json::parse(e.payload));
    CHECK(back.payload == std::string(expected.begin(), expected.end()));
}

TEST_CASE("codecs: MessagePack payloads become JSON on JSON connections", "[codecs]") {
    envelope e;
    e.type = "state";
    const auto mp = json::to_msgpack(json{{"hp", 7}, {"items", {"a", "b"}}});
    e.payload.assign(mp.begin(), mp.end());
    e.format = payload_format::msgpack;
    std::string frame;
    REQUIRE_FALSE(gatehouse::make_json_codec()->encode(e, frame));
    CHECK(frame == R"({"type":"state","payload":{"hp":7,"items":["a","b"]}})");
}

TEST_CASE("codecs: protobuf carries any payload as bytes named by payload_codec", "[codecs]") {
    const auto pb = gatehouse::make_protobuf_codec();
    envelope e = sample();
    std::string frame;
    REQUIRE_FALSE(pb->encode(e, frame));
    gatehouse::v1::Envelope parsed;
    REQUIRE(parsed.ParseFromString(frame));
    CHECK(parsed.type() == e.type);
    CHECK(parsed.payload() == e.payload);
    CHECK(parsed.payload_codec() == "json");
    CHECK(parsed.correlation_id() == e.correlation_id);

    e.payload = std::string("\x08\x96\x01", 3);
    e.format = payload_format::bytes;
    e.payload_codec = "game.Move";
    REQUIRE_FALSE(pb->encode(e, frame));
    envelope back;
    REQUIRE_FALSE(pb->decode(frame, back));
    CHECK(back.format == payload_format::bytes);
    CHECK(back.payload == e.payload);
    CHECK(back.payload_codec == "game.Move");
}

TEST_CASE("codecs: opaque bytes cannot be sent to a JSON client", "[codecs]") {
    envelope e;
    e.type = "blob";
    e.payload = "\x01\x02";
    e.format = payload_format::bytes;
    std::string frame = "stale";
    const auto ec = gatehouse::make_json_codec()->encode(e, frame);
    CHECK(ec == gatehouse::errc::payload_not_representable);

    // ...but travel to a MessagePack client as a bin.
    REQUIRE_FALSE(gatehouse::make_msgpack_codec()->encode(e, frame));
    envelope back;
    REQUIRE_FALSE(gatehouse::make_msgpack_codec()->decode(frame, back));
    CHECK(back.payload == "\xc4\x02\x01\x02");
}

TEST_CASE("codecs: encode refuses an invalid envelope with a codec error", "[codecs]") {
    const auto js = gatehouse::make_json_codec();
    std::string frame;
    envelope e;
    CHECK(js->encode(e, frame) == status::missing_type);
    e.type = "bad type";
    CHECK(js->encode(e, frame) == status::invalid_type);
    e.type = "t";
    e.correlation_id = std::string(129, 'x');
    CHECK(js->encode(e, frame) == status::invalid_correlation_id);
    e.correlation_id.clear();
    e.payload = "{oops";
    CHECK(js->encode(e, frame) == status::invalid_payload);
    e.payload = "\xc1";
    e.format = payload_format::msgpack;
    CHECK(js->encode(e, frame) == gatehouse::errc::payload_not_representable);
}

TEST_CASE("codecs: long correlation ids with escapes encode in full", "[codecs]") {
    envelope e;
    e.type = "t";
    e.correlation_id = std::string(128, '\x01');  // each becomes \u0001: 6x growth
    std::string frame;
    REQUIRE_FALSE(gatehouse::make_json_codec()->encode(e, frame));
    envelope back;
    REQUIRE_FALSE(gatehouse::make_json_codec()->decode(frame, back));
    CHECK(back.correlation_id == e.correlation_id);
}

TEST_CASE("codecs: decode overwrites wire fields and leaves origin alone", "[codecs]") {
    const auto pb = gatehouse::make_protobuf_codec();
    envelope e;
    e.origin.player_id = "p1";
    e.origin.connection_id = "conn-9";
    e.payload_codec = "stale";
    e.correlation_id = "stale";
    REQUIRE_FALSE(gatehouse::make_json_codec()->decode(R"({"type":"t","payload":[1]})", e));
    CHECK(e.type == "t");
    CHECK(e.payload == "[1]");
    CHECK(e.payload_codec.empty());
    CHECK(e.correlation_id.empty());
    CHECK(e.origin.player_id == "p1");
    CHECK(e.origin.connection_id == "conn-9");
}

TEST_CASE("codecs: decode errors map onto the protocol's error codes", "[codecs]") {
    const auto js = gatehouse::make_json_codec();
    envelope e;
    const auto frame_error = js->decode("{\"type\":", e);
    CHECK(frame_error == status::truncated);
    CHECK(gatehouse::protocol_error_code(frame_error) == "invalid_frame");
    CHECK(frame_error.category().name() == std::string("gatehouse.codec"));
    CHECK_FALSE(frame_error.message().empty());

    const auto envelope_error = js->decode(R"({"payload":1})", e);
    CHECK(envelope_error == status::missing_type);
    CHECK(gatehouse::protocol_error_code(envelope_error) == "invalid_envelope");

    CHECK(gatehouse::protocol_error_code({}).empty());
    // A custom codec's own error codes count as undecodable frames.
    CHECK(gatehouse::protocol_error_code(std::make_error_code(std::errc::bad_message)) ==
          "invalid_frame");
    CHECK(gatehouse::make_error_code(gatehouse::errc::unknown_codec).category().name() ==
          std::string("gatehouse"));
}

TEST_CASE("codecs: MessagePack values with no JSON equivalent are refused, not invented",
          "[codecs]") {
    const auto js = gatehouse::make_json_codec();
    const auto mp = gatehouse::make_msgpack_codec();
    std::string frame;
    const std::vector<std::string> payloads = {
        std::string("\xc4\x02\x01\x02", 4),                                // bin
        std::string("\xd4\x01\x2d", 3),                                    // fixext 1
        std::string("\x91\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 10),       // [NaN]
        std::string("\x81\xa1k\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 12),  // {"k": inf}
    };
    for (const auto& p : payloads) {
        envelope e;
        e.type = "t";
        e.payload = p;
        e.format = payload_format::msgpack;
        CHECK(js->encode(e, frame) == gatehouse::errc::payload_not_representable);
        CHECK_FALSE(mp->encode(e, frame));  // still fine for MessagePack clients
    }

    // Found by fuzzing: an ext value at the deepest level a frame allows.
    std::string deep = std::string("\x82\xa4type\xa1x\xa7payload", 16) + std::string(62, '\x91') +
                       std::string("\xd4\x01\x2d", 3);
    envelope e;
    REQUIRE_FALSE(mp->decode(deep, e));
    CHECK(js->encode(e, frame) == gatehouse::errc::payload_not_representable);
}

TEST_CASE("codecs: update_id and traceparent are encoded in every codec", "[codecs]") {
    envelope e = sample();
    e.update_id = "1733529600000-17";
    e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    std::string frame;
    REQUIRE_FALSE(gatehouse::make_json_codec()->encode(e, frame));
    const json j = json::parse(frame);
    CHECK(j.at("update_id") == e.update_id);
    CHECK(j.at("traceparent") == e.traceparent);

    REQUIRE_FALSE(gatehouse::make_msgpack_codec()->encode(e, frame));
    const json m = json::from_msgpack(frame);
    CHECK(m.at("update_id") == e.update_id);
    CHECK(m.at("traceparent") == e.traceparent);

    REQUIRE_FALSE(gatehouse::make_protobuf_codec()->encode(e, frame));
    gatehouse::v1::Envelope pb;
    REQUIRE(pb.ParseFromString(frame));
    CHECK(pb.has_update_id());
    CHECK(pb.update_id() == e.update_id);
    CHECK(pb.traceparent() == e.traceparent);

    // Absent fields stay off the wire.
    e.update_id.clear();
    e.traceparent.clear();
    REQUIRE_FALSE(gatehouse::make_json_codec()->encode(e, frame));
    CHECK_FALSE(json::parse(frame).contains("update_id"));
    CHECK_FALSE(json::parse(frame).contains("traceparent"));
    REQUIRE_FALSE(gatehouse::make_protobuf_codec()->encode(e, frame));
    REQUIRE(pb.ParseFromString(frame));
    CHECK_FALSE(pb.has_update_id());
    CHECK_FALSE(pb.has_traceparent());
}

TEST_CASE("codecs: encode refuses a malformed update_id or traceparent", "[codecs]") {
    for (const auto& c : {gatehouse::make_json_codec(), gatehouse::make_msgpack_codec(),
                          gatehouse::make_protobuf_codec()}) {
        envelope e = sample();
        std::string frame;
        e.update_id = std::string(65, '1');
        CHECK(c->encode(e, frame) == status::invalid_update_id);
        e.update_id = "1-2 3";
        CHECK(c->encode(e, frame) == status::invalid_update_id);
        e.update_id = std::string(64, '9');
        CHECK_FALSE(c->encode(e, frame));
        e.traceparent = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        CHECK(c->encode(e, frame) == status::invalid_traceparent);
        CHECK(gatehouse::protocol_error_code(c->encode(e, frame)) == "invalid_envelope");
    }
}

TEST_CASE("codecs: decode keeps a client's traceparent and never its update_id", "[codecs]") {
    const std::string trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    envelope sent = sample();
    sent.update_id = "99999999999999-1";  // what a client might try to forge
    sent.traceparent = trace;
    for (const auto& c : {gatehouse::make_json_codec(), gatehouse::make_msgpack_codec(),
                          gatehouse::make_protobuf_codec()}) {
        CAPTURE(c->name());
        std::string frame;
        REQUIRE_FALSE(c->encode(sent, frame));
        envelope got;
        got.update_id = "left-over";
        got.traceparent = "left-over";
        REQUIRE_FALSE(c->decode(frame, got));
        CHECK(got.update_id.empty());
        CHECK(got.traceparent == trace);
        CHECK(got.correlation_id == "c-17");

        // Without them, a reused envelope holds neither.
        std::string plain;
        REQUIRE_FALSE(c->encode(sample(), plain));
        REQUIRE_FALSE(c->decode(plain, got));
        CHECK(got.traceparent.empty());
        CHECK(got.update_id.empty());
    }
    // A failed decode leaves nothing of the previous envelope's behind.
    for (const auto& c : {gatehouse::make_json_codec(), gatehouse::make_msgpack_codec(),
                          gatehouse::make_protobuf_codec()}) {
        envelope got;
        got.update_id = "1-1";
        got.traceparent = trace;
        CHECK(c->decode("\xc1", got));
        CHECK(got.update_id.empty());
        CHECK(got.traceparent.empty());
    }
    // A malformed traceparent is dropped; the command itself is fine.
    envelope got;
    REQUIRE_FALSE(gatehouse::make_json_codec()->decode(
        R"({"type":"t","traceparent":"00-zz","update_id":"1-1"})", got));
    CHECK(got.type == "t");
    CHECK(got.traceparent.empty());
    CHECK(got.update_id.empty());
}
