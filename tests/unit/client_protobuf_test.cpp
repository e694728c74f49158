#include "gatehouse/client/codec.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "codec_test_support.hpp"
#include "gatehouse.pb.h"

// Protobuf envelopes: gatehouse's hand-written codec (src/client/protobuf.cpp) checked against
// hand-built frames and against libprotobuf's generated code for proto/gatehouse.proto.

using gatehouse::client::decode;
using gatehouse::client::encode;
using gatehouse::client::encode_result;
using gatehouse::client::envelope;
using gatehouse::client::max_nesting_depth;
using gatehouse::client::payload_format;
using gatehouse::client::status;
using gatehouse::client::wire_format;

namespace {

using namespace std::string_literals;
using pb_envelope = gatehouse::v1::Envelope;

enum wire : unsigned {
    w_varint = 0,
    w_fixed64 = 1,
    w_len = 2,
    w_sgroup = 3,
    w_egroup = 4,
    w_fixed32 = 5
};

std::string varint(std::uint64_t v) {
    std::string s;
    while (v >= 0x80) {
        s += static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    s += static_cast<char>(v);
    return s;
}

std::string tag(std::uint64_t field, unsigned wire_type) { return varint(field << 3 | wire_type); }

// A length-delimited field.
std::string fld(std::uint64_t field, std::string_view bytes) {
    return tag(field, w_len) + varint(bytes.size()) + std::string(bytes);
}

// The decoded payload is a view into the frame, so the frame must outlive the envelope:
// decoding a temporary into an envelope that is looked at afterwards is a test bug.
status dec(std::string&& frame, envelope& e) = delete;
status dec(const std::string& frame, envelope& e) {
    return decode(wire_format::protobuf, frame, e);
}
status dec(const std::string& frame) {
    envelope e;
    return dec(frame, e);
}

std::string enc(const envelope& e) {
    return test_support::encode_checked(wire_format::protobuf, e);
}

using test_support::keep;

envelope make(std::string_view type, payload_format f, std::string_view payload,
              std::string_view corr = {}, std::string_view codec = {}) {
    envelope e;
    REQUIRE(e.set_type(type) == status::ok);
    e.set_payload(f, keep(payload), keep(codec));
    if (!corr.empty()) REQUIRE(e.set_correlation_id(corr) == status::ok);
    return e;
}

// libprotobuf logs an error for every string field that is not UTF-8; the tests feed it
// such fields on purpose, so its log is muted while they run.
class quiet_libprotobuf {
public:
    quiet_libprotobuf() : old_(google::protobuf::SetLogHandler(nullptr)) {}
    ~quiet_libprotobuf() { google::protobuf::SetLogHandler(old_); }
    quiet_libprotobuf(const quiet_libprotobuf&) = delete;
    quiet_libprotobuf& operator=(const quiet_libprotobuf&) = delete;

private:
    google::protobuf::LogHandler* old_;
};

pb_envelope parse_pb(const std::string& frame) {
    const quiet_libprotobuf quiet;
    pb_envelope m;
    REQUIRE(m.ParseFromString(frame));
    return m;
}

bool pb_accepts(const std::string& frame) {
    const quiet_libprotobuf quiet;
    pb_envelope m;
    return m.ParseFromString(frame);
}

bool points_into(std::string_view view, const std::string& buffer) {
    return view.data() >= buffer.data() &&
           view.data() + view.size() <= buffer.data() + buffer.size();
}

// True when `s` holds something gatehouse refuses as a syntax error on purpose but
// libprotobuf lets through: a group (wire type 3; libprotobuf skips it as an unknown field,
// gatehouse.proto has none), a tag over 32 bits (field numbers end at 2^29-1; libprotobuf
// silently drops the high bits) or a 10-byte varint whose last byte carries more than the
// 64th bit (libprotobuf drops those bits too). A deliberately simple test-side scan.
bool libprotobuf_is_laxer(const std::string& s) {
    std::size_t i = 0;
    bool lax = false;
    auto read_varint = [&](std::uint64_t& v) {
        v = 0;
        for (unsigned k = 0; k < 10 && i < s.size(); ++k) {
            const auto b = static_cast<unsigned char>(s[i++]);
            if (k == 9 && b > 1) lax = true;
            v |= static_cast<std::uint64_t>(b & 0x7f) << (7 * k);
            if (b < 0x80) return true;
        }
        return false;
    };
    while (i < s.size() && !lax) {
        std::uint64_t t = 0, n = 0;
        if (!read_varint(t)) return lax;
        if (t > 0xffffffffu) return true;
        switch (t & 7) {
            case 3: return true;
            case 0:
                if (!read_varint(n)) return lax;
                break;
            case 1: i += 8; break;
            case 5: i += 4; break;
            case 2:
                if (!read_varint(n) || n > s.size() - i) return lax;
                i += n;
                break;
            default: return false;
        }
    }
    return lax;
}

// Statuses that say "these bytes are not a well-formed Protobuf message".
bool is_wire_error(status s) {
    return s == status::truncated || s == status::syntax_error || s == status::invalid_utf8;
}

}  // namespace

// ===========================================================================================

TEST_CASE("protobuf: encode then decode, every payload format", "[protobuf][client]") {
    SECTION("JSON payload") {
        const envelope in =
            make("player_action", payload_format::json, R"({"move":[1,2]})", "c-17");
        const std::string frame = enc(in);
        CHECK(frame == fld(1, "player_action") + fld(2, R"({"move":[1,2]})") + fld(3, "c-17") +
                           fld(4, "json"));
        envelope out;
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.type() == "player_action");
        CHECK(out.correlation_id() == "c-17");
        CHECK(out.format() == payload_format::json);
        CHECK(out.payload_codec() == "json");
        CHECK(out.payload() == R"({"move":[1,2]})");
        CHECK(points_into(out.payload(), frame));
    }
    SECTION("MessagePack payload, no correlation id") {
        const std::string mp =
            "\x82\xa1"
            "a\x01\xa1"
            "b\x92\xc3\xc0";
        const std::string frame = enc(make("t", payload_format::msgpack, mp));
        CHECK(frame == fld(1, "t") + fld(2, mp) + fld(4, "msgpack"));
        envelope out = make("old", payload_format::json, "1", "stale");
        REQUIRE(dec(frame, out) == status::ok);
        CHECK_FALSE(out.has_correlation_id());
        CHECK(out.format() == payload_format::msgpack);
        CHECK(out.payload() == mp);
    }
    SECTION("opaque bytes named by a message name") {
        const std::string bytes = "\x08\x96\x01\x12\x00\xff"s;  // not UTF-8: bytes need not be
        const std::string frame =
            enc(make("game.Move", payload_format::bytes, bytes, "x", "game.v1.Move"));
        CHECK(frame == fld(1, "game.Move") + fld(2, bytes) + fld(3, "x") + fld(4, "game.v1.Move"));
        envelope out;
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.format() == payload_format::bytes);
        CHECK(out.payload_codec() == "game.v1.Move");
        CHECK(out.payload() == bytes);
        CHECK(points_into(out.payload_codec(), frame));
    }
    SECTION("empty bytes and no codec name: only the type travels") {
        const std::string frame = enc(make("t", payload_format::bytes, ""));
        CHECK(frame == fld(1, "t"));
        envelope out;
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.format() == payload_format::bytes);
        CHECK(out.payload().empty());
        CHECK(out.payload_codec().empty());
    }
    SECTION("long fields get multi-byte length varints") {
        std::string corr;
        for (int i = 0; i < 128; ++i) corr += "\xf0\x9f\x8e\xae";  // 512 bytes
        const std::string payload = "[" + std::string(20000, ' ') + "0]";
        const std::string type(64, 'T');
        const std::string frame = enc(make(type, payload_format::json, payload, corr));
        CHECK(frame == fld(1, type) + fld(2, payload) + fld(3, corr) + fld(4, "json"));
        envelope out;
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.type() == type);
        CHECK(out.correlation_id() == corr);
        CHECK(out.payload().size() == payload.size());
    }
}

TEST_CASE("protobuf: encode reports sizes and never writes past capacity", "[protobuf][client]") {
    const envelope in = make("evt", payload_format::json, "[1,2,3]", "id");
    const std::string full = enc(in);
    for (std::size_t cap = 0; cap < full.size(); ++cap) {
        std::string buf(full.size() + 8, '#');
        const encode_result r = encode(wire_format::protobuf, in, buf.data(), cap);
        CHECK(r.code == status::buffer_too_small);
        CHECK(r.size == full.size());
        CHECK(buf.substr(cap) == std::string(buf.size() - cap, '#'));
    }
    std::string buf(full.size(), '#');
    const encode_result r = encode(wire_format::protobuf, in, buf.data(), buf.size());
    CHECK(r.code == status::ok);
    CHECK(buf == full);
}

TEST_CASE("protobuf: encode refuses frames that would lie", "[protobuf][client]") {
    char buf[128];
    SECTION("no type") {
        envelope e;
        CHECK(encode(wire_format::protobuf, e, buf, sizeof buf).code == status::missing_type);
    }
    SECTION("payloads that are not what their format says") {
        for (const auto& [f, bytes] : std::vector<std::pair<payload_format, std::string>>{
                 {payload_format::json, ""},
                 {payload_format::json, "{"},
                 {payload_format::json, "[1,]"},
                 {payload_format::json, "1 2"},
                 {payload_format::msgpack, ""},
                 {payload_format::msgpack, "\xc1"},
                 {payload_format::msgpack, "\x92\x01"},
                 {payload_format::msgpack, "\x01\x02"},
                 {payload_format::msgpack, std::string(64, '\x91') + "\xc0"},
                 // bytes labelled "json"/"msgpack" are read as such by the receiver
                 {payload_format::bytes, "{"},
             }) {
            CAPTURE(bytes);
            envelope e = make("t", f, bytes, {}, f == payload_format::bytes ? "json" : "");
            CHECK(encode(wire_format::protobuf, e, buf, sizeof buf).code ==
                  status::invalid_payload);
        }
        envelope e = make("t", payload_format::bytes, "\xc1", {}, "msgpack");
        CHECK(encode(wire_format::protobuf, e, buf, sizeof buf).code == status::invalid_payload);
    }
    SECTION("a codec name that is not UTF-8 (payload_codec is a proto3 string)") {
        envelope e = make("t", payload_format::bytes, "x", {}, "\xff");
        CHECK(encode(wire_format::protobuf, e, buf, sizeof buf).code == status::invalid_argument);
    }
    SECTION("empty bytes named json travel as an absent payload, read back as null") {
        envelope e = make("t", payload_format::bytes, "", {}, "json");
        const std::string frame = enc(e);
        CHECK(frame == fld(1, "t") + fld(4, "json"));
        envelope out;
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.format() == payload_format::json);
        CHECK(out.payload() == "null");
    }
}

TEST_CASE("protobuf: payload_codec decides the payload format", "[protobuf][client]") {
    envelope out;
    SECTION("json without payload bytes is null") {
        const std::string held1 = fld(1, "t") + fld(4, "json");
        REQUIRE(dec(held1, out) == status::ok);
        CHECK(out.format() == payload_format::json);
        CHECK(out.payload() == "null");
    }
    SECTION("msgpack without payload bytes is nil") {
        const std::string held2 = fld(1, "t") + fld(4, "msgpack");
        REQUIRE(dec(held2, out) == status::ok);
        CHECK(out.format() == payload_format::msgpack);
        CHECK(out.payload() == "\xc0");
    }
    SECTION("anything else is opaque bytes under that name") {
        for (const char* codec : {"JSON", "protobuf", "game.v1.Move", "msgpack ", "\xc3\xa9"}) {
            CAPTURE(codec);
            const std::string frame = fld(1, "t") + fld(2, "{") + fld(4, codec);
            REQUIRE(dec(frame, out) == status::ok);  // out's views point into frame
            CHECK(out.format() == payload_format::bytes);
            CHECK(out.payload_codec() == codec);
            CHECK(out.payload() == "{");
        }
    }
    SECTION("no payload_codec at all: bytes with an empty name, payload may be absent") {
        const std::string frame = fld(1, "t") + fld(2, "\x00\x01"s);
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.format() == payload_format::bytes);
        CHECK(out.payload_codec().empty());
        CHECK(out.payload() == "\x00\x01"s);
        const std::string held3 = fld(1, "t");
        REQUIRE(dec(held3, out) == status::ok);
        CHECK(out.payload().empty());
        const std::string held4 = fld(1, "t") + fld(4, "");
        REQUIRE(dec(held4, out) == status::ok);  // explicit empty codec
        CHECK(out.format() == payload_format::bytes);
    }
    SECTION("payload_codec may come before the payload") {
        const std::string frame = fld(4, "json") + fld(1, "t") + fld(2, "[true]");
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.format() == payload_format::json);
        CHECK(out.payload() == "[true]");
    }
}

TEST_CASE("protobuf: malformed frames", "[protobuf][client]") {
    const std::string t = fld(1, "t");
    SECTION("truncated inside any field, fine between fields") {
        const std::vector<std::string> fields = {fld(1, "player_action"),
                                                 fld(2, "[1,2,3]"),
                                                 fld(3, "c-17"),
                                                 fld(4, "json"),
                                                 tag(9, w_varint) + varint(1ull << 40),
                                                 tag(10, w_fixed32) + "abcd",
                                                 tag(11, w_fixed64) + "abcdefgh"};
        std::string frame;
        std::vector<std::size_t> boundaries = {0};
        for (const auto& f : fields) {
            frame += f;
            boundaries.push_back(frame.size());
        }
        REQUIRE(dec(frame) == status::ok);
        for (std::size_t n = 0; n < frame.size(); ++n) {
            CAPTURE(n);
            const std::string prefix = frame.substr(0, n);
            const bool boundary =
                std::find(boundaries.begin(), boundaries.end(), n) != boundaries.end();
            const status s = dec(prefix);
            if (boundary) {
                CHECK(s == (n == 0 ? status::missing_type : status::ok));
            } else {
                CHECK(s == status::truncated);
            }
            CHECK(pb_accepts(prefix) == boundary);  // libprotobuf agrees
        }
    }
    SECTION("huge declared lengths fail fast") {
        for (const std::uint64_t n :
             {~0ull, 1ull << 63, 1ull << 32, 0xffffffffull, 1ull << 31, 100ull}) {
            CAPTURE(n);
            for (const std::uint64_t field : {1u, 2u, 3u, 4u, 99u}) {
                const std::string f = t + tag(field, w_len) + varint(n) + "0123456789";
                CHECK(dec(f) == status::truncated);
                CHECK_FALSE(pb_accepts(f));
            }
        }
        // The longest legal varint (10 bytes, 2^64-1).
        REQUIRE(varint(~0ull) == "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
    }
    SECTION("truncated varints and fixed fields") {
        CHECK(dec("\x80"s) == status::truncated);         // tag
        CHECK(dec(t + "\x12") == status::truncated);      // length missing
        CHECK(dec(t + "\x12\x80") == status::truncated);  // length cut
        CHECK(dec(t + tag(7, w_varint) + "\xff\xff") == status::truncated);
        CHECK(dec(t + tag(7, w_fixed32) + "abc") == status::truncated);
        CHECK(dec(t + tag(7, w_fixed64) + "abcdefg") == status::truncated);
    }
    SECTION("field number 0") {
        for (const unsigned w : {0u, 1u, 2u, 5u}) {
            const std::string f = t + tag(0, w) + "\x00\x00\x00\x00\x00\x00\x00\x00"s;
            CHECK(dec(f) == status::syntax_error);
            CHECK_FALSE(pb_accepts(f));
        }
    }
    SECTION("groups and wire types 6 and 7") {
        for (const unsigned w : {3u, 4u, 6u, 7u}) {
            CAPTURE(w);
            CHECK(dec(t + tag(1, w)) == status::syntax_error);
            CHECK(dec(t + tag(15, w)) == status::syntax_error);
            CHECK(dec(tag(2, w) + t) == status::syntax_error);
        }
        // Even a complete group: gatehouse.proto has none, so none may appear.
        CHECK(dec(t + tag(15, w_sgroup) + tag(15, w_egroup)) == status::syntax_error);
        CHECK_FALSE(pb_accepts(t + tag(15, 6)));
        CHECK_FALSE(pb_accepts(t + tag(15, 7)));
        CHECK_FALSE(pb_accepts(t + tag(15, w_egroup)));
    }
    SECTION("varints longer than 10 bytes, or overflowing 64 bits") {
        const std::string ten_zero = "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"s;  // 0 in 10 bytes
        CHECK(dec(t + tag(7, w_varint) + ten_zero) == status::ok);
        CHECK(dec(t + tag(7, w_varint) + varint(~0ull)) == status::ok);
        const std::string eleven = "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"s;
        CHECK(dec(t + tag(7, w_varint) + eleven) == status::syntax_error);
        CHECK_FALSE(pb_accepts(t + tag(7, w_varint) + eleven));
        CHECK(dec(t + tag(7, w_varint) + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02") ==
              status::syntax_error);
        // As a tag, and as a length.
        CHECK(dec(eleven + t) == status::syntax_error);
        CHECK(dec("\x8a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"s + t) == status::syntax_error);
        CHECK(dec(t + "\x12" + eleven) == status::syntax_error);
        CHECK(dec(t + "\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f") == status::syntax_error);
    }
    SECTION("zero-padded varints: as long as libprotobuf reads them, and no longer") {
        // A tag is at most 5 bytes, a length too; a varint value may take all 10.
        const std::string tag5 = "\x8a\x80\x80\x80\x00"s;  // field 1, wire type 2
        const std::string tag6 = "\x8a\x80\x80\x80\x80\x00"s;
        const std::string len5 = "\x81\x80\x80\x80\x00"s;  // 1
        const std::string len6 = "\x81\x80\x80\x80\x80\x00"s;
        for (const auto& [frame, ok] : std::vector<std::pair<std::string, bool>>{
                 {tag5 + "\x01t", true},
                 {tag6 + "\x01t", false},
                 {"\x0a" + len5 + "t", true},
                 {"\x0a" + len6 + "t", false},
                 {t + tag(7, w_varint) + "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"s, true},
             }) {
            CAPTURE(frame);
            CHECK(dec(frame) == (ok ? status::ok : status::syntax_error));
            CHECK(pb_accepts(frame) == ok);
        }
        CHECK(dec("\x8a\x80\x80"s) == status::truncated);  // a tag cut short
        // A long length that declares more than there is stays `truncated`.
        CHECK(dec(t + "\x12\xff\xff\xff\xff\xff\xff\x7f" + "abc") == status::truncated);
    }
    SECTION("field numbers beyond 2^29-1 (tags over 32 bits)") {
        const std::uint64_t max_field = (1u << 29) - 1;
        CHECK(dec(t + tag(max_field, w_varint) + "\x01") == status::ok);
        CHECK(pb_accepts(t + tag(max_field, w_varint) + "\x01"));
        CHECK(dec(t + tag(max_field + 1, w_varint) + "\x01") == status::syntax_error);
        CHECK_FALSE(pb_accepts(t + tag(max_field + 1, w_varint) + "\x01"));
        CHECK(dec(t + tag(1ull << 40, w_len) + "\x00"s) == status::syntax_error);
    }
    SECTION("strings that are not UTF-8") {
        for (const std::string& bad :
             {"\xff"s, "\xc0\x80"s, "\xed\xa0\x80"s, "ab\xe2\x82"s, "\xf4\x90\x80\x80"s}) {
            CAPTURE(bad);
            for (const unsigned field : {1u, 3u, 4u}) {
                const std::string f = fld(field, bad) + (field == 1 ? "" : t);
                CHECK(dec(f) == status::invalid_utf8);
                CHECK_FALSE(pb_accepts(f));
            }
            // Even when a later occurrence would replace it, as libprotobuf refuses it too.
            CHECK(dec(fld(1, bad) + t) == status::invalid_utf8);
            CHECK_FALSE(pb_accepts(fld(1, bad) + t));
            // Bytes are bytes.
            CHECK(dec(t + fld(2, bad)) == status::ok);
        }
    }
    SECTION("payloads that are not what payload_codec says") {
        for (const std::string& bad : {"{"s, "[1,]"s, "nul"s, "\"\xff\""s, "1 2"s,
                                       std::string(64, '[') + std::string(64, ']')}) {
            CAPTURE(bad);
            CHECK(dec(t + fld(2, bad) + fld(4, "json")) == status::invalid_payload);
        }
        CHECK(dec(t + fld(2, std::string(63, '[') + std::string(63, ']')) + fld(4, "json")) ==
              status::ok);
        for (const std::string& bad : {"\xc1"s, "\x92\x01"s, "\x01\x02"s, "\xdb\xff\xff\xff\xff"s,
                                       std::string(64, '\x91') + "\xc0"}) {
            CAPTURE(bad);
            CHECK(dec(t + fld(2, bad) + fld(4, "msgpack")) == status::invalid_payload);
        }
        CHECK(dec(t + fld(2, std::string(63, '\x91') + "\xc0") + fld(4, "msgpack")) == status::ok);
        // A frame error, so it wins over a missing type.
        CHECK(dec(fld(2, "{") + fld(4, "json")) == status::invalid_payload);
    }
}

TEST_CASE("protobuf: messages that are not valid envelopes", "[protobuf][client]") {
    const std::string t = fld(1, "t");
    SECTION("missing type") {
        CHECK(dec("") == status::missing_type);
        CHECK(dec(fld(1, "")) == status::missing_type);
        CHECK(dec(fld(2, "x") + fld(3, "c")) == status::missing_type);
        CHECK(dec(t + fld(1, "")) == status::missing_type);  // the last occurrence counts
    }
    SECTION("invalid type") {
        for (const std::string& bad : {std::string(65, 'a'), "a b"s, "caf\xc3\xa9"s, "x/y"s,
                                       "nul\0"s, std::string(100000, 'a')}) {
            CHECK(dec(fld(1, bad)) == status::invalid_type);
        }
        CHECK(dec(fld(1, std::string(64, 'a'))) == status::ok);
        CHECK(dec(fld(1, "AZaz09_.:-")) == status::ok);
    }
    SECTION("invalid correlation_id") {
        std::string c128;
        for (int i = 0; i < 128; ++i) c128 += "\xc3\xa9";
        for (const std::string& bad : {""s, c128 + "x", std::string(129, 'x'),
                                       std::string(600, 'x'), std::string(100000, 'x')}) {
            CHECK(dec(t + fld(3, bad)) == status::invalid_correlation_id);
        }
        // Present but empty is not absent, even after a good one.
        CHECK(dec(t + fld(3, "good") + fld(3, "")) == status::invalid_correlation_id);
        envelope out;
        const std::string held5 = t + fld(3, c128);
        REQUIRE(dec(held5, out) == status::ok);
        CHECK(out.correlation_id() == c128);
        const std::string held6 = t + fld(3, "") + fld(3, "ok");
        REQUIRE(dec(held6, out) == status::ok);
        CHECK(out.correlation_id() == "ok");
    }
    SECTION("type errors come before correlation_id errors") {
        CHECK(dec(fld(3, "") + fld(1, "bad type")) == status::invalid_type);
        CHECK(dec(fld(3, "")) == status::missing_type);
    }
}

TEST_CASE("protobuf: unknown fields, wire-type mismatches and repeats", "[protobuf][client]") {
    SECTION("unknown fields of every wire type are skipped") {
        const std::string frame = tag(5, w_varint) + varint(300) + fld(1, "t") + tag(6, w_fixed64) +
                                  "12345678" + fld(7, "whatever\xff") + tag(8, w_fixed32) + "1234" +
                                  tag(1000, w_varint) + "\x00"s + fld(3, "c") + tag(9, w_varint) +
                                  varint(~0ull);
        envelope out;
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.type() == "t");
        CHECK(out.correlation_id() == "c");
        const pb_envelope m = parse_pb(frame);
        CHECK(m.type() == "t");
        CHECK(m.correlation_id() == "c");
    }
    SECTION("a known field number with another wire type is an unknown field") {
        const std::string frame = fld(1, "t") + tag(1, w_varint) + "\x05" + tag(3, w_fixed32) +
                                  "abcd" + tag(2, w_fixed64) + "abcdefgh" + tag(4, w_varint) +
                                  "\x01";
        envelope out;
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.type() == "t");
        CHECK_FALSE(out.has_correlation_id());
        CHECK(out.payload().empty());
        const pb_envelope m = parse_pb(frame);  // libprotobuf does the same
        CHECK(m.type() == "t");
        CHECK_FALSE(m.has_correlation_id());
        CHECK(m.payload().empty());
        CHECK(dec(tag(1, w_varint) + "\x05") == status::missing_type);
    }
    SECTION("the last occurrence of a field wins") {
        const std::string frame = fld(1, "first") + fld(2, "[1]") + fld(3, "c1") +
                                  fld(4, "msgpack") + fld(1, "second") + fld(2, "[2]") +
                                  fld(3, "c2") + fld(4, "json");
        envelope out;
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.type() == "second");
        CHECK(out.payload() == "[2]");
        CHECK(out.correlation_id() == "c2");
        CHECK(out.format() == payload_format::json);
        const pb_envelope m = parse_pb(frame);
        CHECK(m.type() == out.type());
        CHECK(m.payload() == out.payload());
        CHECK(m.correlation_id() == out.correlation_id());
        CHECK(m.payload_codec() == "json");
        // Concatenating two serialised messages merges them the same way.
        pb_envelope a, b;
        a.set_type("a");
        a.set_correlation_id("ca");
        b.set_type("b");
        b.set_payload("{}");
        b.set_payload_codec("json");
        const std::string merged = a.SerializeAsString() + b.SerializeAsString();
        REQUIRE(dec(merged, out) == status::ok);
        CHECK(out.type() == "b");
        CHECK(out.correlation_id() == "ca");
        CHECK(out.payload() == "{}");
    }
}

// --- interop with libprotobuf --------------------------------------------------------------

TEST_CASE("protobuf: libprotobuf reads what we encode", "[protobuf][client][interop]") {
    SECTION("json payload with a correlation id") {
        const pb_envelope m = parse_pb(
            enc(make("player_action", payload_format::json, "{\"a\":1}", "c-\xe2\x82\xac")));
        CHECK(m.type() == "player_action");
        CHECK(m.payload() == "{\"a\":1}");
        CHECK(m.has_correlation_id());
        CHECK(m.correlation_id() == "c-\xe2\x82\xac");
        CHECK(m.payload_codec() == "json");
    }
    SECTION("msgpack payload without a correlation id") {
        const pb_envelope m = parse_pb(enc(make("t", payload_format::msgpack, "\x93\x01\x02\x03")));
        CHECK(m.type() == "t");
        CHECK(m.payload() == "\x93\x01\x02\x03");
        CHECK_FALSE(m.has_correlation_id());
        CHECK(m.payload_codec() == "msgpack");
    }
    SECTION("bytes, long fields") {
        const std::string bytes(70000, '\x07');
        const pb_envelope m = parse_pb(enc(make(std::string(64, 'q'), payload_format::bytes, bytes,
                                                std::string(128, 'c'), "my.Msg")));
        CHECK(m.type() == std::string(64, 'q'));
        CHECK(m.payload() == bytes);
        CHECK(m.correlation_id() == std::string(128, 'c'));
        CHECK(m.payload_codec() == "my.Msg");
    }
    SECTION("empty bytes, no codec: the encoding is byte for byte libprotobuf's") {
        const std::string ours = enc(make("t", payload_format::bytes, ""));
        pb_envelope m;
        m.set_type("t");
        CHECK(ours == m.SerializeAsString());
        const pb_envelope back = parse_pb(ours);
        CHECK(back.payload().empty());
        CHECK(back.payload_codec().empty());
        CHECK_FALSE(back.has_correlation_id());
    }
    SECTION("libprotobuf serialises fields in number order, and so do we") {
        pb_envelope m;
        m.set_type("x.y");
        m.set_payload("[null]");
        m.set_correlation_id("id-1");
        m.set_payload_codec("json");
        CHECK(enc(make("x.y", payload_format::json, "[null]", "id-1")) == m.SerializeAsString());
    }
}

TEST_CASE("protobuf: we read what libprotobuf encodes", "[protobuf][client][interop]") {
    pb_envelope m;
    m.set_type("player_action");
    envelope out;
    SECTION("json payload with a correlation id") {
        m.set_payload("{\"move\":[1,2]}");
        m.set_correlation_id("c-17");
        m.set_payload_codec("json");
        const std::string held7 = m.SerializeAsString();
        REQUIRE(dec(held7, out) == status::ok);
        CHECK(out.type() == "player_action");
        CHECK(out.payload() == "{\"move\":[1,2]}");
        CHECK(out.format() == payload_format::json);
        CHECK(out.correlation_id() == "c-17");
    }
    SECTION("no correlation id") {
        m.set_payload("\x81\xa1k\xc3");
        m.set_payload_codec("msgpack");
        const std::string held8 = m.SerializeAsString();
        REQUIRE(dec(held8, out) == status::ok);
        CHECK_FALSE(out.has_correlation_id());
        CHECK(out.format() == payload_format::msgpack);
        CHECK(out.payload() == "\x81\xa1k\xc3");
    }
    SECTION("has_correlation_id with an empty string is refused") {
        m.set_correlation_id("");
        REQUIRE(m.has_correlation_id());
        const std::string frame = m.SerializeAsString();
        CHECK(frame == fld(1, "player_action") + fld(3, ""));
        CHECK(dec(frame) == status::invalid_correlation_id);
        m.clear_correlation_id();
        CHECK(dec(m.SerializeAsString()) == status::ok);
    }
    SECTION("an empty type is not serialised at all") {
        m.set_type("");
        m.set_correlation_id("c");
        CHECK(dec(m.SerializeAsString()) == status::missing_type);
        m.set_type("bad type");
        CHECK(dec(m.SerializeAsString()) == status::invalid_type);
    }
    SECTION("a message-typed payload") {
        pb_envelope inner;
        inner.set_type("inner");
        m.set_payload(inner.SerializeAsString());
        m.set_payload_codec("gatehouse.v1.Envelope");
        const std::string held9 = m.SerializeAsString();
        REQUIRE(dec(held9, out) == status::ok);
        CHECK(out.format() == payload_format::bytes);
        CHECK(out.payload_codec() == "gatehouse.v1.Envelope");
        pb_envelope back;
        REQUIRE(back.ParseFromArray(out.payload().data(), static_cast<int>(out.payload().size())));
        CHECK(back.type() == "inner");
    }
    SECTION("round trip through both") {
        m.set_payload("[1,{\"a\":null}]");
        m.set_payload_codec("json");
        m.set_correlation_id(std::string(128, 'z'));
        const std::string held10 = m.SerializeAsString();
        REQUIRE(dec(held10, out) == status::ok);
        CHECK(enc(out) == m.SerializeAsString());
    }
}

TEST_CASE("protobuf: our decoder agrees with libprotobuf on mutated input",
          "[protobuf][client][interop]") {
    pb_envelope m;
    m.set_type("player.move");
    m.set_payload("payload bytes \x01\x02\xff");
    m.set_correlation_id("c-\xc3\xa9-1");
    m.set_payload_codec("game.v1.Move");
    m.set_update_id("1733529600000-42");
    m.set_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    const std::string seed = m.SerializeAsString() + tag(20, w_varint) + varint(1ull << 50) +
                             tag(21, w_fixed32) + "abcd" + tag(22, w_fixed64) + "abcdefgh";
    REQUIRE(dec(seed) == status::ok);

    const quiet_libprotobuf quiet;
    std::mt19937 rng(7);
    std::map<std::string, int> seen;
    for (int round = 0; round < 5000; ++round) {
        std::string s = seed;
        const int edits = 1 + round % 3;
        for (int e = 0; e < edits && !s.empty(); ++e) {
            const std::size_t at = static_cast<std::size_t>(rng()) % s.size();
            switch (rng() % 3) {
                case 0: s[at] = static_cast<char>(rng() & 0xff); break;
                case 1: s.erase(at, 1 + rng() % 2); break;
                default: s.insert(at, 1, static_cast<char>(rng() & 0xff)); break;
            }
        }
        pb_envelope theirs;
        const bool accepted = theirs.ParseFromString(s);
        envelope out;
        const status ours = dec(s, out);
        CAPTURE(s);
        CAPTURE(ours);
        if (accepted) {
            // Where we are stricter than libprotobuf, and only there.
            if (ours == status::syntax_error) {
                CHECK(libprotobuf_is_laxer(s));
                ++seen["laxer"];
                continue;
            }
            CHECK_FALSE(is_wire_error(ours));
            if (ours == status::ok) {
                ++seen["ok"];
                CHECK(out.type() == theirs.type());
                CHECK(out.has_correlation_id() == theirs.has_correlation_id());
                CHECK(out.correlation_id() == theirs.correlation_id());
                // Malformed extras are dropped (docs/protocol.md 6), well-formed ones agree.
                CHECK(out.update_id() == (gatehouse::client::is_valid_update_id(theirs.update_id())
                                              ? theirs.update_id()
                                              : ""));
                CHECK(out.traceparent() ==
                      (gatehouse::client::is_valid_traceparent(theirs.traceparent())
                           ? theirs.traceparent()
                           : ""));
                if (out.format() == payload_format::bytes) {
                    CHECK(out.payload() == theirs.payload());
                    CHECK(out.payload_codec() == theirs.payload_codec());
                }
            } else {
                ++seen["envelope"];
            }
        } else {
            CHECK(is_wire_error(ours));
            ++seen["refused"];
        }
    }
    CHECK(seen["ok"] > 100);
    CHECK(seen["envelope"] > 20);
    CHECK(seen["refused"] > 100);
    CHECK(seen["laxer"] < 100);
}
