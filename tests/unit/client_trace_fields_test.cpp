#include "gatehouse/client/envelope.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "codec_test_support.hpp"
#include "gatehouse.pb.h"
#include "gatehouse/client/codec.hpp"

// The optional envelope fields of docs/protocol.md section 6, `update_id` and `traceparent`, in
// every wire format: setters, copies, round trips (absent, present, longest) and what the
// decoders do with malformed ones (drop them; never an envelope error).

using gatehouse::client::decode;
using gatehouse::client::envelope;
using gatehouse::client::is_valid_traceparent;
using gatehouse::client::is_valid_update_id;
using gatehouse::client::max_update_id_length;
using gatehouse::client::payload_format;
using gatehouse::client::status;
using gatehouse::client::traceparent_length;
using gatehouse::client::wire_format;
using test_support::keep;

namespace {

using namespace std::string_literals;

constexpr std::string_view good_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// The longest update id, with the characters a JSON encoder must escape.
const std::string longest_update_id = "\"\\" + std::string(max_update_id_length - 5, '7') + "-~!";

envelope make(wire_format f) {
    envelope e;
    REQUIRE(e.set_type("update") == status::ok);
    REQUIRE(e.set_correlation_id("c-1") == status::ok);
    if (f == wire_format::msgpack) {
        e.set_payload(payload_format::msgpack, keep("\x81\xa1k\x01"));
    } else {
        e.set_payload(payload_format::json, keep(R"({"k":1})"));
    }
    return e;
}

// --- building frames with extra keys, per wire format ---------------------------------------

std::string pb_field(unsigned field, std::string_view bytes) {
    std::string s(1, static_cast<char>((field << 3) | 2));
    std::size_t n = bytes.size();
    while (n >= 0x80) {
        s += static_cast<char>((n & 0x7f) | 0x80);
        n >>= 7;
    }
    s += static_cast<char>(n);
    return s + std::string(bytes);
}

std::string mp_str(std::string_view s) {
    REQUIRE(s.size() < 256);
    std::string h = s.size() < 32 ? std::string(1, static_cast<char>(0xa0 | s.size()))
                                  : "\xd9"s + static_cast<char>(s.size());
    return h + std::string(s);
}

// A raw value of a key, in the wire format's own spelling (JSON text, MessagePack bytes).
struct raw_value {
    std::string json, msgpack;
};

raw_value str_value(std::string_view s) {
    std::string json = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') json += '\\';
        json += c;
    }
    return {json + "\"", mp_str(s)};
}

// A frame `{"type":"t","payload":null, key: value...}` in JSON or MessagePack.
std::string frame_with(wire_format f,
                       std::initializer_list<std::pair<std::string_view, raw_value>> extras) {
    if (f == wire_format::json) {
        std::string s = R"({"type":"t","payload":null)";
        for (const auto& [k, v] : extras) s += ",\"" + std::string(k) + "\":" + v.json;
        return s + "}";
    }
    std::string s(1, static_cast<char>(0x82 + extras.size()));
    s += mp_str("type") + mp_str("t") + mp_str("payload") + "\xc0";
    for (const auto& [k, v] : extras) s += mp_str(k) + v.msgpack;
    return s;
}

}  // namespace

TEST_CASE("trace fields: which update ids and traceparents are valid", "[client][trace_fields]") {
    CHECK(is_valid_update_id("1733529600000-0"));
    CHECK(is_valid_update_id("x"));
    CHECK(is_valid_update_id(longest_update_id));
    CHECK(is_valid_update_id(std::string(max_update_id_length, '~')));
    CHECK_FALSE(is_valid_update_id(""));
    CHECK_FALSE(is_valid_update_id(std::string(max_update_id_length + 1, '1')));
    CHECK_FALSE(is_valid_update_id("1-2 3"));        // space is not visible
    CHECK_FALSE(is_valid_update_id("1-2\x7f"));      // DEL
    CHECK_FALSE(is_valid_update_id("1-2\t"));        // control
    CHECK_FALSE(is_valid_update_id("caf\xc3\xa9"));  // not ASCII

    CHECK(is_valid_traceparent(good_trace));
    CHECK(is_valid_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    CHECK(good_trace.size() == traceparent_length);
    const std::string g(good_trace);
    auto with = [&g](std::size_t at, std::string_view s) {
        return g.substr(0, at) + std::string(s) + g.substr(at + s.size());
    };
    CHECK_FALSE(is_valid_traceparent(""));
    CHECK_FALSE(is_valid_traceparent(g + "-"));          // longer (a future version)
    CHECK_FALSE(is_valid_traceparent(g.substr(0, 54)));  // shorter
    CHECK_FALSE(is_valid_traceparent(with(0, "ff")));    // the forbidden version
    CHECK_FALSE(is_valid_traceparent(with(3, "4BF9")));  // upper-case hex
    CHECK_FALSE(is_valid_traceparent(with(2, "_")));     // separators
    CHECK_FALSE(is_valid_traceparent(with(35, "x")));
    CHECK_FALSE(is_valid_traceparent(with(52, ".")));
    CHECK_FALSE(is_valid_traceparent(with(53, "0g")));                  // flags not hex
    CHECK_FALSE(is_valid_traceparent(with(3, std::string(32, '0'))));   // all-zero trace id
    CHECK_FALSE(is_valid_traceparent(with(36, std::string(16, '0'))));  // all-zero parent id
}

TEST_CASE("trace fields: setters validate, leave the envelope unchanged on failure, and copy",
          "[client][trace_fields]") {
    envelope e;
    CHECK_FALSE(e.has_update_id());
    CHECK_FALSE(e.has_traceparent());
    CHECK(e.update_id().empty());
    CHECK(e.traceparent().empty());

    REQUIRE(e.set_update_id("17-3") == status::ok);
    REQUIRE(e.set_traceparent(good_trace) == status::ok);
    CHECK(e.set_update_id("") == status::invalid_update_id);
    CHECK(e.set_update_id(std::string(65, '1')) == status::invalid_update_id);
    CHECK(e.set_traceparent("00-abc") == status::invalid_traceparent);
    CHECK(e.update_id() == "17-3");
    CHECK(e.traceparent() == good_trace);
    CHECK(gatehouse::client::is_envelope_error(status::invalid_update_id));
    CHECK(gatehouse::client::is_envelope_error(status::invalid_traceparent));
    CHECK(
        std::string(gatehouse::client::describe(status::invalid_traceparent)).find("traceparent") !=
        std::string::npos);

    const envelope copy = e;
    CHECK(copy.update_id() == "17-3");
    CHECK(copy.traceparent() == good_trace);
    envelope assigned;
    assigned = e;
    e.clear_update_id();
    e.clear_traceparent();
    CHECK_FALSE(e.has_update_id());
    CHECK_FALSE(e.has_traceparent());
    CHECK(assigned.update_id() == "17-3");
    CHECK(assigned.traceparent() == good_trace);
}

TEST_CASE("trace fields: round trips in every wire format", "[client][trace_fields]") {
    for (const auto f : {wire_format::json, wire_format::msgpack, wire_format::protobuf}) {
        CAPTURE(gatehouse::client::name_of(f));
        envelope out;
        {
            INFO("absent");
            const envelope e = make(f);
            const std::string frame = test_support::encode_checked(f, e);
            CHECK(frame.find("update_id") == std::string::npos);
            CHECK(frame.find("traceparent") == std::string::npos);
            REQUIRE(decode(f, frame, out) == status::ok);
            CHECK_FALSE(out.has_update_id());
            CHECK_FALSE(out.has_traceparent());
        }
        {
            INFO("present");
            envelope e = make(f);
            REQUIRE(e.set_update_id("1733529600000-17") == status::ok);
            REQUIRE(e.set_traceparent(good_trace) == status::ok);
            const std::string frame = test_support::encode_checked(f, e);
            REQUIRE(decode(f, frame, out) == status::ok);
            CHECK(out.update_id() == "1733529600000-17");
            CHECK(out.traceparent() == good_trace);
            CHECK(out.correlation_id() == "c-1");
            CHECK(out.type() == "update");
            CHECK(out.payload() == e.payload());
            // Re-encoding what was decoded gives the same bytes.
            CHECK(test_support::encode_checked(f, out) == frame);
        }
        {
            INFO("longest update id, with characters JSON escapes; only one of the two");
            envelope e = make(f);
            REQUIRE(e.set_update_id(longest_update_id) == status::ok);
            const std::string frame = test_support::encode_checked(f, e);
            REQUIRE(decode(f, frame, out) == status::ok);
            CHECK(out.update_id() == longest_update_id);
            CHECK_FALSE(out.has_traceparent());
            e.clear_update_id();
            REQUIRE(e.set_traceparent(good_trace) == status::ok);
            const std::string frame2 = test_support::encode_checked(f, e);
            REQUIRE(decode(f, frame2, out) == status::ok);
            CHECK_FALSE(out.has_update_id());
            CHECK(out.traceparent() == good_trace);
        }
        {
            INFO("a reused envelope forgets the previous frame's fields");
            envelope e = make(f);
            REQUIRE(e.set_update_id("1-1") == status::ok);
            REQUIRE(e.set_traceparent(good_trace) == status::ok);
            const std::string with = test_support::encode_checked(f, e);
            e.clear_update_id();
            e.clear_traceparent();
            const std::string without = test_support::encode_checked(f, e);
            REQUIRE(decode(f, with, out) == status::ok);
            REQUIRE(decode(f, without, out) == status::ok);
            CHECK_FALSE(out.has_update_id());
            CHECK_FALSE(out.has_traceparent());
            // A failed decode reports neither.
            REQUIRE(decode(f, with, out) == status::ok);
            CHECK(decode(f, with.substr(0, with.size() - 1), out) != status::ok);
            CHECK_FALSE(out.has_update_id());
            CHECK_FALSE(out.has_traceparent());
        }
    }
}

TEST_CASE("trace fields: malformed ones are dropped, never an envelope error (JSON, msgpack)",
          "[client][trace_fields]") {
    const std::string g(good_trace);
    const raw_value good_id = str_value("5-5");
    const raw_value good_tp = str_value(g);
    const raw_value bad_values[] = {
        {"null", "\xc0"},
        {"17", "\x11"},
        {"true", "\xc3"},
        {R"(["1-1"])",
         "\x91\xa3"
         "1-1"},
        {R"({"a":1})",
         "\x81\xa1"
         "a\x01"},
        str_value(""),
        str_value(std::string(65, '1')),
        str_value("1 2"),
        str_value("caf\xc3\xa9"),
        {"\"\\u0000\"", "\xa1\x00"s},
    };
    // Valid update ids, but no traceparents.
    const raw_value bad_traceparents[] = {
        str_value(g.substr(0, 54)),
        str_value(g + "-01"),
        str_value("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
    };
    for (const auto f : {wire_format::json, wire_format::msgpack}) {
        CAPTURE(gatehouse::client::name_of(f));
        for (const auto& bad : bad_values) {
            CAPTURE(bad.json);
            envelope out;
            const std::string a = frame_with(f, {{"update_id", bad}, {"traceparent", good_tp}});
            REQUIRE(decode(f, a, out) == status::ok);
            CHECK_FALSE(out.has_update_id());
            CHECK(out.traceparent() == good_trace);
            CHECK(out.type() == "t");
            const std::string b = frame_with(f, {{"traceparent", bad}, {"update_id", good_id}});
            REQUIRE(decode(f, b, out) == status::ok);
            CHECK_FALSE(out.has_traceparent());
            CHECK(out.update_id() == "5-5");
        }
        for (const auto& bad : bad_traceparents) {
            CAPTURE(bad.json);
            envelope out;
            const std::string b = frame_with(f, {{"traceparent", bad}, {"update_id", good_id}});
            REQUIRE(decode(f, b, out) == status::ok);
            CHECK_FALSE(out.has_traceparent());
            CHECK(out.update_id() == "5-5");
        }
        {
            INFO("given twice, the field is dropped; the other one stays");
            envelope out;
            const std::string twice_id = frame_with(
                f, {{"update_id", good_id}, {"traceparent", good_tp}, {"update_id", good_id}});
            REQUIRE(decode(f, twice_id, out) == status::ok);
            CHECK_FALSE(out.has_update_id());
            CHECK(out.traceparent() == good_trace);
            const std::string twice_tp = frame_with(f, {{"traceparent", good_tp},
                                                        {"update_id", good_id},
                                                        {"traceparent", str_value("bad")}});
            REQUIRE(decode(f, twice_tp, out) == status::ok);
            CHECK_FALSE(out.has_traceparent());
            CHECK(out.update_id() == "5-5");
        }
    }
    SECTION("JSON escapes are read as the characters they stand for") {
        envelope out;
        const std::string frame =
            R"({"type":"t","update_id":"\u0031-\u0032\/","traceparent":"\u0030)" + g.substr(1) +
            "\"}";
        REQUIRE(decode(wire_format::json, frame, out) == status::ok);
        CHECK(out.update_id() == "1-2/");
        CHECK(out.traceparent() == good_trace);
    }
    SECTION("a frame error still wins") {
        envelope out;
        CHECK(decode(wire_format::json, R"({"type":"t","update_id":"1-1)", out) ==
              status::truncated);
        CHECK(decode(wire_format::json, R"({"type":"t","traceparent":"\ud800"})", out) ==
              status::invalid_utf8);
        CHECK(decode(wire_format::msgpack, frame_with(wire_format::msgpack, {}) + "\xc0", out) ==
              status::trailing_bytes);
    }
}

TEST_CASE("trace fields: protobuf fields 5 and 6 against libprotobuf",
          "[client][trace_fields][protobuf][interop]") {
    const std::string g(good_trace);
    const std::string head = pb_field(1, "t");
    envelope out;

    SECTION("libprotobuf reads what we encode, and we read what it encodes") {
        envelope e = make(wire_format::protobuf);
        REQUIRE(e.set_update_id(longest_update_id) == status::ok);
        REQUIRE(e.set_traceparent(good_trace) == status::ok);
        const std::string ours = test_support::encode_checked(wire_format::protobuf, e);
        gatehouse::v1::Envelope m;
        REQUIRE(m.ParseFromString(ours));
        CHECK(m.has_update_id());
        CHECK(m.update_id() == longest_update_id);
        CHECK(m.has_traceparent());
        CHECK(m.traceparent() == g);
        CHECK(m.SerializeAsString() == ours);  // field order and encoding are libprotobuf's

        m.set_update_id("9-9");
        m.clear_traceparent();
        const std::string theirs = m.SerializeAsString();
        REQUIRE(decode(wire_format::protobuf, theirs, out) == status::ok);
        CHECK(out.update_id() == "9-9");
        CHECK_FALSE(out.has_traceparent());
    }
    SECTION("malformed values are dropped; the last occurrence is the one judged") {
        for (const std::string& bad : {""s, std::string(65, '1'), "1 2"s, "caf\xc3\xa9"s}) {
            CAPTURE(bad);
            REQUIRE(decode(wire_format::protobuf, head + pb_field(5, bad) + pb_field(6, g), out) ==
                    status::ok);
            CHECK_FALSE(out.has_update_id());
            CHECK(out.traceparent() == good_trace);
        }
        for (const std::string& bad :
             {""s, "1-1"s, g.substr(1), g + "-00"s,
              "00-00000000000000000000000000000000-00f067aa0ba902b7-01"s}) {
            CAPTURE(bad);
            REQUIRE(decode(wire_format::protobuf, head + pb_field(5, "1-1") + pb_field(6, bad),
                           out) == status::ok);
            CHECK(out.update_id() == "1-1");
            CHECK_FALSE(out.has_traceparent());
        }
        const std::string repeated =
            head + pb_field(5, "bad id") + pb_field(6, g) + pb_field(5, "2-2") + pb_field(6, "x");
        REQUIRE(decode(wire_format::protobuf, repeated, out) == status::ok);
        CHECK(out.update_id() == "2-2");
        CHECK_FALSE(out.has_traceparent());
    }
    SECTION("like every proto3 string they must be UTF-8, as libprotobuf insists") {
        for (const unsigned field : {5u, 6u}) {
            const std::string frame = head + pb_field(field, "1-\xff");
            CHECK(decode(wire_format::protobuf, frame, out) == status::invalid_utf8);
        }
        // Valid UTF-8 that is no valid update id is merely dropped.
        REQUIRE(decode(wire_format::protobuf, head + pb_field(5, "caf\xc3\xa9"), out) ==
                status::ok);
        CHECK_FALSE(out.has_update_id());
    }
    SECTION("other wire types on fields 5 and 6 are unknown fields, as for libprotobuf") {
        const std::string frame = head + "\x28\x07"s + "\x31" + "12345678";  // 5:varint, 6:fixed64
        REQUIRE(decode(wire_format::protobuf, frame, out) == status::ok);
        CHECK_FALSE(out.has_update_id());
        CHECK_FALSE(out.has_traceparent());
    }
}
