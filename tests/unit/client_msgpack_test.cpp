#include "gatehouse/client/codec.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <msgpack.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "codec_test_support.hpp"

// MessagePack envelopes: gatehouse's own codec (src/client/msgpack.cpp) checked against
// hand-built frames and against msgpack-c, an independent implementation.

using gatehouse::client::decode;
using gatehouse::client::encode;
using gatehouse::client::encode_result;
using gatehouse::client::envelope;
using gatehouse::client::max_nesting_depth;
using gatehouse::client::payload_format;
using gatehouse::client::status;
using gatehouse::client::validate_payload;
using gatehouse::client::wire_format;

namespace {

using namespace std::string_literals;

// --- building frames by hand --------------------------------------------------------------

std::string be(std::uint64_t v, int width) {
    std::string s;
    for (int shift = 8 * (width - 1); shift >= 0; shift -= 8) {
        s += static_cast<char>((v >> shift) & 0xff);
    }
    return s;
}

std::string byte(unsigned b) { return std::string(1, static_cast<char>(b)); }

// The smallest str encoding, as the spec (and msgpack-c) chooses it.
std::string str(std::string_view s) {
    const auto n = s.size();
    std::string h;
    if (n < 32) {
        h = byte(0xa0 | static_cast<unsigned>(n));
    } else if (n < 0x100) {
        h = byte(0xd9) + be(n, 1);
    } else if (n < 0x10000) {
        h = byte(0xda) + be(n, 2);
    } else {
        h = byte(0xdb) + be(n, 4);
    }
    return h + std::string(s);
}

std::string map(unsigned n) { return byte(0x80 | n); }
std::string arr(unsigned n) { return byte(0x90 | n); }
const std::string nil = byte(0xc0);

// {"type": T, "payload": P[, "correlation_id": C]} with raw values.
std::string env(const std::string& type_value, const std::string& payload_value,
                const std::string& corr_value = {}) {
    std::string f =
        map(corr_value.empty() ? 2 : 3) + str("type") + type_value + str("payload") + payload_value;
    if (!corr_value.empty()) f += str("correlation_id") + corr_value;
    return f;
}

// `levels` arrays nested in one another around a nil.
std::string nested_arrays(std::size_t levels) {
    return std::string(levels, static_cast<char>(0x91)) + nil;
}

// The decoded payload is a view into the frame, so the frame must outlive the envelope:
// decoding a temporary into an envelope that is looked at afterwards is a test bug.
status dec(std::string&& frame, envelope& e) = delete;
status dec(const std::string& frame, envelope& e) { return decode(wire_format::msgpack, frame, e); }
status dec(const std::string& frame) {
    envelope e;
    return dec(frame, e);
}

std::string enc(const envelope& e) { return test_support::encode_checked(wire_format::msgpack, e); }

using test_support::keep;

envelope make(std::string_view type, std::string_view payload, std::string_view corr = {}) {
    envelope e;
    REQUIRE(e.set_type(type) == status::ok);
    e.set_payload(payload_format::msgpack, keep(payload));
    if (!corr.empty()) REQUIRE(e.set_correlation_id(corr) == status::ok);
    return e;
}

bool points_into(std::string_view view, const std::string& buffer) {
    return view.data() >= buffer.data() &&
           view.data() + view.size() <= buffer.data() + buffer.size();
}

// One value of every MessagePack format, each paired with nothing else: concatenated inside
// an array they make a payload that exercises the whole specification.
std::vector<std::string> every_format() {
    return {
        byte(0x00),
        byte(0x7f),  // positive fixint
        byte(0xe0),
        byte(0xff),  // negative fixint
        nil,
        byte(0xc2),
        byte(0xc3),  // nil, false, true
        byte(0xcc) + be(200, 1),
        byte(0xcd) + be(60000, 2),  // uint 8/16
        byte(0xce) + be(4000000000u, 4),
        byte(0xcf) + be(~0ull, 8),
        byte(0xd0) + be(0x80, 1),
        byte(0xd1) + be(0x8000, 2),  // int 8/16
        byte(0xd2) + be(0x80000000u, 4),
        byte(0xd3) + be(1ull << 63, 8),
        byte(0xca) + be(0x3fc00000u, 4),            // float 32: 1.5
        byte(0xcb) + be(0x3ff8000000000000ull, 8),  // float 64: 1.5
        str(""),
        str("fix"),
        str(std::string(31, 'x')),           // fixstr
        str(std::string(32, 'y')),           // str 8
        str(std::string(300, 'z')),          // str 16
        byte(0xdb) + be(3, 4) + "abc",       // str 32 (not minimal: still valid)
        byte(0xd9) + be(2, 1) + "\xff\xfe",  // payload strings: no UTF-8 check
        byte(0xc4) + be(0, 1),
        byte(0xc4) + be(3, 1) + "\x00\x01\x02"s,  // bin 8
        byte(0xc5) + be(2, 2) + "hi",
        byte(0xc6) + be(1, 4) + "!",  // bin 16/32
        byte(0xd4) + "\x01" + "a",
        byte(0xd5) + "\x02" + "ab",  // fixext 1/2
        byte(0xd6) + "\x03" + "abcd",
        byte(0xd7) + "\xff" + "abcdefgh",            // fixext 4/8
        byte(0xd8) + "\x05" + std::string(16, 'q'),  // fixext 16
        byte(0xc7) + be(0, 1) + "\x07",
        byte(0xc7) + be(2, 1) + "\x07" + "xy",  // ext 8
        byte(0xc8) + be(3, 2) + "\x08" + "xyz",
        byte(0xc9) + be(1, 4) + "\x09" + "w",  // ext 16/32
        arr(0),
        map(0),  // fixarray, fixmap
        arr(2) + byte(0x01) + str("two"),
        map(1) + byte(0x01) + byte(0x02),
        byte(0xdc) + be(1, 2) + nil,
        byte(0xdd) + be(2, 4) + nil + nil,                   // array 16/32
        byte(0xde) + be(1, 2) + nil + nil,                   // map 16
        byte(0xdf) + be(1, 4) + str("k") + arr(1) + map(0),  // map 32
    };
}

std::string array_of(const std::vector<std::string>& items) {
    std::string s = byte(0xdc) + be(items.size(), 2);
    for (const auto& i : items) s += i;
    return s;
}

// --- msgpack-c helpers --------------------------------------------------------------------

using packer = msgpack::packer<msgpack::sbuffer>;

void pack_str(packer& pk, std::string_view s) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

std::string as_string(const msgpack::sbuffer& b) { return std::string(b.data(), b.size()); }

// msgpack-c's parser driven by a visitor that builds nothing (so a declared count of 2^32-1
// allocates nothing), recording how the parse ended and how deep it went.
struct verdict_visitor : msgpack::null_visitor {
    bool error = false;
    bool insufficient = false;
    std::size_t depth = 0;
    std::size_t max_depth = 0;
    bool start_array(std::uint32_t) { return enter(); }
    bool end_array() { return leave(); }
    bool start_map(std::uint32_t) { return enter(); }
    bool end_map() { return leave(); }
    void parse_error(std::size_t, std::size_t) { error = true; }
    void insufficient_bytes(std::size_t, std::size_t) { insufficient = true; }

private:
    bool enter() {
        if (++depth > max_depth) max_depth = depth;
        return true;
    }
    bool leave() {
        --depth;
        return true;
    }
};

struct verdict {
    std::string result;  // "ok", "trailing", "insufficient" or "error"
    std::size_t max_depth;
};

verdict msgpack_c_verdict(const std::string& bytes) {
    verdict_visitor v;
    std::size_t off = 0;
    const bool parsed = msgpack::parse(bytes.data(), bytes.size(), off, v);
    if (parsed) return {off == bytes.size() ? "ok" : "trailing", v.max_depth};
    if (v.insufficient) return {"insufficient", v.max_depth};
    return {"error", v.max_depth};
}

// Looks a str key up in a msgpack-c map object.
const msgpack::object* find_key(const msgpack::object& m, std::string_view key) {
    REQUIRE(m.type == msgpack::type::MAP);
    for (std::uint32_t i = 0; i < m.via.map.size; ++i) {
        const auto& kv = m.via.map.ptr[i];
        if (kv.key.type == msgpack::type::STR &&
            std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) {
            return &kv.val;
        }
    }
    return nullptr;
}

std::string obj_str(const msgpack::object& o) {
    REQUIRE(o.type == msgpack::type::STR);
    return std::string(o.via.str.ptr, o.via.str.size);
}

}  // namespace

// ===========================================================================================

TEST_CASE("msgpack: encode then decode gives the envelope back", "[msgpack][client]") {
    const std::string payload = map(2) + str("move") + arr(2) + byte(0x01) + byte(0x02) + str("f") +
                                byte(0xcb) + be(0x3ff8000000000000ull, 8);
    const envelope in = make("player_action", payload, "c-17");
    const std::string frame = enc(in);
    CHECK(frame == env(str("player_action"), payload, str("c-17")));

    envelope out;
    REQUIRE(dec(frame, out) == status::ok);
    CHECK(out.type() == "player_action");
    CHECK(out.correlation_id() == "c-17");
    CHECK(out.has_correlation_id());
    CHECK(out.format() == payload_format::msgpack);
    CHECK(out.payload_codec() == "msgpack");
    CHECK(out.payload() == payload);
    CHECK(points_into(out.payload(), frame));

    SECTION("without a correlation id the map has two entries") {
        const std::string f2 = enc(make("ping", nil));
        CHECK(f2 == map(2) + str("type") + str("ping") + str("payload") + nil);
        envelope o2;
        o2 = out;  // has a correlation id: decoding must clear it
        REQUIRE(dec(f2, o2) == status::ok);
        CHECK_FALSE(o2.has_correlation_id());
        CHECK(o2.type() == "ping");
        CHECK(o2.payload() == nil);
    }
}

TEST_CASE("msgpack: encode picks the smallest str header", "[msgpack][client]") {
    const std::string t31(31, 'a'), t32(32, 'b'), t64(64, 'c');
    // Correlation ids are at most 128 characters, so str16 takes multi-byte ones.
    std::string c255, c256;
    for (int i = 0; i < 127; ++i) c255 += "\xc3\xa9";
    c255 += "x";
    for (int i = 0; i < 128; ++i) c256 += "\xc3\xa9";
    REQUIRE(c255.size() == 255);
    REQUIRE(c256.size() == 256);
    CHECK(enc(make(t31, nil)) == env(byte(0xbf) + t31, nil));
    CHECK(enc(make(t32, nil)) == env(byte(0xd9) + byte(32) + t32, nil));
    CHECK(enc(make(t64, nil)) == env(byte(0xd9) + byte(64) + t64, nil));
    CHECK(enc(make("t", nil, c255)) == env(str("t"), nil, byte(0xd9) + byte(255) + c255));
    CHECK(enc(make("t", nil, c256)) == env(str("t"), nil, byte(0xda) + be(256, 2) + c256));
    // 128 four-byte characters: 512 bytes, the largest correlation id.
    std::string emoji;
    for (int i = 0; i < 128; ++i) emoji += "\xf0\x9f\x98\x80";
    const std::string f = enc(make("t", nil, emoji));
    CHECK(f == env(str("t"), nil, byte(0xda) + be(512, 2) + emoji));
    envelope out;
    REQUIRE(dec(f, out) == status::ok);
    CHECK(out.correlation_id() == emoji);
}

TEST_CASE("msgpack: encode reports sizes and never writes past capacity", "[msgpack][client]") {
    const envelope in = make("evt", arr(3) + byte(1) + byte(2) + byte(3), "id");
    const std::string full = enc(in);
    for (std::size_t cap = 0; cap < full.size(); ++cap) {
        std::string buf(full.size() + 8, '#');
        const encode_result r = encode(wire_format::msgpack, in, buf.data(), cap);
        CHECK(r.code == status::buffer_too_small);
        CHECK(r.size == full.size());
        CHECK(buf.substr(cap) == std::string(buf.size() - cap, '#'));
    }
    std::string buf(full.size() + 1, '#');
    const encode_result r = encode(wire_format::msgpack, in, buf.data(), buf.size());
    CHECK(r.code == status::ok);
    CHECK(r.size == full.size());
    CHECK(buf.substr(0, full.size()) == full);
    CHECK(buf.back() == '#');
}

TEST_CASE("msgpack: encode refuses what it cannot send", "[msgpack][client]") {
    char buf[64];
    SECTION("no type") {
        envelope e;
        e.set_payload(payload_format::msgpack, nil);
        CHECK(encode(wire_format::msgpack, e, buf, sizeof buf).code == status::missing_type);
    }
    SECTION("a JSON or bytes payload") {
        envelope e;
        REQUIRE(e.set_type("t") == status::ok);
        CHECK(encode(wire_format::msgpack, e, buf, sizeof buf).code ==
              status::payload_format_mismatch);  // default payload: JSON null
        e.set_payload(payload_format::bytes, "\x08\x01", "my.Message");
        CHECK(encode(wire_format::msgpack, e, buf, sizeof buf).code ==
              status::payload_format_mismatch);
    }
    SECTION("a payload that is not exactly one MessagePack value") {
        for (const std::string& bad : {""s, byte(0xc1), arr(2) + byte(1), byte(1) + byte(2),
                                       byte(0xd9) + byte(5) + "ab", nested_arrays(64)}) {
            CAPTURE(bad);
            envelope e = make("t", nil);
            e.set_payload(payload_format::msgpack, bad);
            const encode_result r = encode(wire_format::msgpack, e, buf, sizeof buf);
            CHECK(r.code == status::invalid_payload);
        }
        // 63 levels inside the envelope map is the most there is room for.
        const std::string deepest = nested_arrays(63);
        std::string out(256, '\0');
        CHECK(encode(wire_format::msgpack, make("t", deepest), out.data(), out.size()).code ==
              status::ok);
    }
}

TEST_CASE("msgpack: every format of the specification is accepted", "[msgpack][client]") {
    const std::string payload = array_of(every_format());
    REQUIRE(validate_payload(payload_format::msgpack, payload) == status::ok);
    for (const auto& v : every_format()) {
        CAPTURE(v);
        CHECK(validate_payload(payload_format::msgpack, v) == status::ok);
        CHECK(msgpack_c_verdict(v).result == "ok");  // our fixtures are right
    }
    const std::string frame = env(str("all.formats"), payload, str("x"));
    envelope out;
    REQUIRE(dec(frame, out) == status::ok);
    CHECK(out.payload() == payload);
    CHECK(out.type() == "all.formats");

    SECTION("a frame truncated at any byte is refused as truncated") {
        for (std::size_t n = 0; n < frame.size(); ++n) {
            CAPTURE(n);
            CHECK(dec(frame.substr(0, n)) == status::truncated);
        }
    }
    SECTION("so is a payload truncated at any byte") {
        for (std::size_t n = 0; n < payload.size(); ++n) {
            CAPTURE(n);
            CHECK(validate_payload(payload_format::msgpack, payload.substr(0, n)) ==
                  status::truncated);
        }
    }
}

TEST_CASE("msgpack: fields in any order, unknown keys ignored", "[msgpack][client]") {
    const std::string frame = byte(0x86) + byte(0x01) + str("type") +      // int key
                              byte(0xc4) + be(4, 1) + "type" + str("x") +  // bin key "type"
                              str("correlation_id") + str("c") + str("payload") + arr(0) +
                              str("extra") + map(1) + str("type") + nil +  // nested "type"
                              str("type") + str("a.b:c-d_E9");
    envelope out;
    REQUIRE(dec(frame, out) == status::ok);
    CHECK(out.type() == "a.b:c-d_E9");
    CHECK(out.correlation_id() == "c");
    CHECK(out.payload() == arr(0));
}

TEST_CASE("msgpack: a missing payload reads as nil", "[msgpack][client]") {
    const std::string frame = map(1) + str("type") + str("t");
    envelope out;
    REQUIRE(dec(frame, out) == status::ok);
    CHECK(out.payload() == nil);
    CHECK(out.format() == payload_format::msgpack);
    CHECK_FALSE(points_into(out.payload(), frame));  // a static nil, not frame bytes
}

TEST_CASE("msgpack: correlation_id nil or missing means absent", "[msgpack][client]") {
    envelope out = make("old", nil, "previous");
    const std::string held1 = env(str("t"), nil, nil);
    REQUIRE(dec(held1, out) == status::ok);
    CHECK_FALSE(out.has_correlation_id());
    CHECK(out.correlation_id().empty());
    REQUIRE(out.set_correlation_id("again") == status::ok);
    const std::string held2 = env(str("t"), nil);
    REQUIRE(dec(held2, out) == status::ok);
    CHECK_FALSE(out.has_correlation_id());
}

TEST_CASE("msgpack: malformed frames", "[msgpack][client]") {
    const std::string good = env(str("t"), arr(1) + byte(1), str("c"));
    REQUIRE(dec(good) == status::ok);

    SECTION("truncated") {
        CHECK(dec("") == status::truncated);
        for (std::size_t n = 0; n < good.size(); ++n)
            CHECK(dec(good.substr(0, n)) == status::truncated);
        CHECK(dec(map(3) + str("type") + str("t")) == status::truncated);
        CHECK(dec(byte(0xde)) == status::truncated);            // map 16 without its count
        CHECK(dec(byte(0xde) + byte(0)) == status::truncated);  // half of it
        CHECK(dec(byte(0xcf) + be(1, 7)) == status::truncated);
        CHECK(dec(byte(0xd8) + std::string(16, 'x')) == status::truncated);  // fixext 16
    }
    SECTION("huge declared lengths fail fast, wherever they are") {
        for (const std::string& huge : {byte(0xdb) + be(0xffffffff, 4),  // str 32
                                        byte(0xc6) + be(0xffffffff, 4),  // bin 32
                                        byte(0xc9) + be(0xffffffff, 4),  // ext 32
                                        byte(0xdd) + be(0xffffffff, 4),  // array 32
                                        byte(0xdf) + be(0xffffffff, 4),  // map 32
                                        byte(0xda) + be(0xffff, 2),      // str 16
                                        byte(0xdc) + be(0xffff, 2) + nil}) {
            CAPTURE(huge);
            const std::string padded = huge + "abcdefgh";  // far fewer bytes than declared
            CHECK(dec(padded) == status::truncated);       // top level
            CHECK(dec(env(str("t"), padded)) == status::truncated);  // payload
            CHECK(dec(map(1) + padded) == status::truncated);        // key
            CHECK(dec(env(padded, nil)) == status::truncated);       // type
            CHECK(validate_payload(payload_format::msgpack, padded) == status::truncated);
        }
        // A map32 envelope claiming 2^32-1 entries.
        CHECK(dec(byte(0xdf) + be(0xffffffff, 4) + str("type") + str("t")) == status::truncated);
    }
    SECTION("0xc1 is never valid") {
        CHECK(dec(byte(0xc1)) == status::syntax_error);
        CHECK(dec(env(str("t"), byte(0xc1))) == status::syntax_error);
        CHECK(dec(map(1) + byte(0xc1) + nil) == status::syntax_error);
        CHECK(dec(env(str("t"), nil).replace(0, 1, map(3)) + str("x") + arr(1) + byte(0xc1)) ==
              status::syntax_error);
        CHECK(validate_payload(payload_format::msgpack, byte(0xc1)) == status::syntax_error);
    }
    SECTION("trailing bytes") {
        CHECK(dec(good + nil) == status::trailing_bytes);
        CHECK(dec(good + good) == status::trailing_bytes);
        CHECK(dec(arr(0) + nil) == status::trailing_bytes);
        CHECK(validate_payload(payload_format::msgpack, nil + nil) == status::trailing_bytes);
    }
    SECTION("nesting: the envelope is level 1, 64 levels are allowed") {
        const std::size_t limit = max_nesting_depth;
        REQUIRE(limit == 64);
        CHECK(dec(env(str("t"), nested_arrays(limit - 1))) == status::ok);
        CHECK(dec(env(str("t"), nested_arrays(limit))) == status::too_deep);
        CHECK(dec(env(str("t"), nested_arrays(1000))) == status::too_deep);
        // Ignored values are validated the same way.
        CHECK(dec(map(2) + str("type") + str("t") + str("x") + nested_arrays(limit - 1)) ==
              status::ok);
        CHECK(dec(map(2) + str("type") + str("t") + str("x") + nested_arrays(limit)) ==
              status::too_deep);
        CHECK(dec(map(2) + str("type") + str("t") + nested_arrays(limit) + nil) ==
              status::too_deep);  // as a key
        // Maps count like arrays.
        std::string deep_maps;
        for (std::size_t i = 0; i < limit - 1; ++i) deep_maps += map(1) + nil;
        CHECK(dec(env(str("t"), deep_maps + nil)) == status::ok);
        CHECK(dec(env(str("t"), map(1) + nil + deep_maps + nil)) == status::too_deep);
        // A non-map frame gets the full 64 levels before it is judged.
        CHECK(dec(nested_arrays(limit)) == status::not_a_map);
        CHECK(dec(nested_arrays(limit + 1)) == status::too_deep);
        // validate_payload assumes the envelope's level is used.
        CHECK(validate_payload(payload_format::msgpack, nested_arrays(limit - 1)) == status::ok);
        CHECK(validate_payload(payload_format::msgpack, nested_arrays(limit)) == status::too_deep);
    }
}

TEST_CASE("msgpack: frames that are not envelopes", "[msgpack][client]") {
    const std::string t = str("t");
    SECTION("not a map") {
        for (const std::string& v : {arr(0), arr(1) + map(0), nil, byte(1), str("type"),
                                     byte(0xc4) + byte(0), byte(0xcb) + be(0, 8)}) {
            CAPTURE(v);
            CHECK(dec(v) == status::not_a_map);
        }
    }
    SECTION("missing type") {
        CHECK(dec(map(0)) == status::missing_type);
        CHECK(dec(map(1) + str("payload") + nil) == status::missing_type);
        CHECK(dec(env(str(""), nil)) == status::missing_type);
        CHECK(dec(map(1) + str("Type") + t) == status::missing_type);  // keys are exact
    }
    SECTION("invalid type") {
        for (const std::string& v : {nil, byte(1), byte(0xc3), arr(1) + t, map(0),
                                     byte(0xc4) + byte(1) + "t",  // bin, not str
                                     str(std::string(65, 'a')), str("has space"), str("slash/"),
                                     str("caf\xc3\xa9"), str("\xff"), str("nul\0"s)}) {
            CAPTURE(v);
            CHECK(dec(env(v, nil)) == status::invalid_type);
        }
        CHECK(dec(env(str(std::string(64, 'a')), nil)) == status::ok);
        // Far longer than the envelope's inline buffer: refused, nothing overflows.
        CHECK(dec(env(str(std::string(70000, 'a')), nil)) == status::invalid_type);
    }
    SECTION("invalid correlation_id") {
        std::string c128, c129;
        for (int i = 0; i < 128; ++i) c128 += "\xc3\xa9";
        c129 = c128 + "x";
        for (const std::string& v :
             {str(""), byte(1), byte(0xc2), arr(0), map(0), byte(0xc4) + byte(1) + "c", str(c129),
              str(std::string(129, 'x')), str(std::string(600, 'x')), str(std::string(70000, 'x')),
              str("\xff"), str("\xc0\x80"), str("\xed\xa0\x80"), str("ab\xe2\x82")}) {
            CAPTURE(v);
            CHECK(dec(env(t, nil, v)) == status::invalid_correlation_id);
        }
        envelope out;
        const std::string held3 = env(t, nil, str(c128));
        REQUIRE(dec(held3, out) == status::ok);
        CHECK(out.correlation_id() == c128);
        const std::string held4 = env(t, nil, str(std::string(128, 'x')));
        REQUIRE(dec(held4, out) == status::ok);
    }
    SECTION("a known key twice") {
        CHECK(dec(map(2) + str("type") + t + str("type") + t) == status::duplicate_field);
        CHECK(dec(env(t, nil).replace(0, 1, map(3)) + str("payload") + nil) ==
              status::duplicate_field);
        CHECK(dec(env(t, nil, nil).replace(0, 1, map(4)) + str("correlation_id") + nil) ==
              status::duplicate_field);
        // The same key in a nested map (payload or ignored value) is no duplicate.
        CHECK(dec(env(t, map(1) + str("type") + t)) == status::ok);
    }
}

TEST_CASE("msgpack: error precedence", "[msgpack][client]") {
    SECTION("frame errors win over envelope errors found earlier") {
        const std::string bad_type = map(3) + str("type") + byte(1);
        CHECK(dec(bad_type + str("x") + nil) == status::truncated);
        CHECK(dec(bad_type + str("x") + nil + str("y") + byte(0xc1)) == status::syntax_error);
        CHECK(dec(bad_type + str("x") + nil + str("y") + nested_arrays(64)) == status::too_deep);
        CHECK(dec(bad_type + str("x") + nil + str("y") + nil + nil) == status::trailing_bytes);
        const std::string dup = map(2) + str("type") + str("t") + str("type") + str("t");
        CHECK(dec(dup + nil) == status::trailing_bytes);
        CHECK(dec(byte(1) + nil) == status::trailing_bytes);  // not a map, and trailing
        CHECK(dec(arr(2) + nil) == status::truncated);
    }
    SECTION("the first envelope error is the one reported") {
        CHECK(dec(map(3) + str("type") + byte(1) + str("correlation_id") + str("") + str("type") +
                  str("t")) == status::invalid_type);
        CHECK(dec(map(3) + str("correlation_id") + str("") + str("type") + byte(1) +
                  str("correlation_id") + nil) == status::invalid_correlation_id);
        CHECK(dec(map(3) + str("type") + str("t") + str("type") + byte(1) + str("correlation_id") +
                  byte(1)) == status::duplicate_field);
        CHECK(dec(map(2) + str("correlation_id") + byte(1) + str("payload") + nil) ==
              status::invalid_correlation_id);  // rather than missing_type
    }
}

TEST_CASE("msgpack: an empty frame and a failed decode", "[msgpack][client]") {
    CHECK(dec(std::string()) == status::truncated);
    CHECK(decode(wire_format::msgpack, std::string_view(), *std::make_unique<envelope>()) ==
          status::truncated);
    CHECK(gatehouse::client::is_frame_error(dec(byte(0xc1))));
    CHECK(gatehouse::client::is_envelope_error(dec(arr(0))));
}

// --- interop with msgpack-c ---------------------------------------------------------------

TEST_CASE("msgpack: frames packed by msgpack-c decode", "[msgpack][client][interop]") {
    msgpack::sbuffer buf;
    packer pk(buf);
    SECTION("a full envelope with a nested payload") {
        pk.pack_map(3);
        pack_str(pk, "correlation_id");
        pack_str(pk, "corr-\xe2\x82\xac");
        pack_str(pk, "payload");
        pk.pack_map(4);
        pack_str(pk, "move");
        pk.pack(std::vector<int>{1, -2, 300, -70000});
        pack_str(pk, "speed");
        pk.pack(2.5);
        pack_str(pk, "blob");
        pk.pack_bin(3);
        pk.pack_bin_body("\x00\x01\x02", 3);
        pack_str(pk, "big");
        pk.pack(-std::int64_t{1099511627776});
        pack_str(pk, "type");
        pack_str(pk, "player_action");

        const std::string frame = as_string(buf);
        envelope out;
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.type() == "player_action");
        CHECK(out.correlation_id() == "corr-\xe2\x82\xac");
        // The payload is msgpack-c's own bytes for the nested map.
        msgpack::object_handle oh = msgpack::unpack(out.payload().data(), out.payload().size());
        const msgpack::object& p = oh.get();
        REQUIRE(p.type == msgpack::type::MAP);
        CHECK(p.via.map.size == 4);
        CHECK(find_key(p, "speed")->as<double>() == 2.5);
        CHECK(find_key(p, "move")->as<std::vector<int>>() == std::vector<int>{1, -2, 300, -70000});
    }
    SECTION("long strings use str8/str16/str32 headers") {
        const std::string type(64, 'T'), big(70000, 'b');
        std::string corr;
        for (int i = 0; i < 100; ++i) corr += "\xe2\x82\xac";  // 300 bytes, 100 chars
        pk.pack_map(4);
        pack_str(pk, "type");
        pack_str(pk, type);
        pack_str(pk, "payload");
        pack_str(pk, big);  // str 32
        pack_str(pk, "correlation_id");
        pack_str(pk, corr);  // str 16
        pk.pack(7);          // an int key: ignored
        pk.pack_nil();
        envelope out;
        const std::string frame = as_string(buf);
        REQUIRE(static_cast<unsigned char>(frame[frame.find(big) - 5]) == 0xdb);
        REQUIRE(dec(frame, out) == status::ok);
        CHECK(out.type() == type);
        CHECK(out.correlation_id() == corr);
        CHECK(out.payload().size() == big.size() + 5);
    }
    SECTION("nil correlation_id, missing payload, ext values") {
        pk.pack_map(3);
        pack_str(pk, "type");
        pack_str(pk, "t");
        pack_str(pk, "correlation_id");
        pk.pack_nil();
        pack_str(pk, "ext");
        pk.pack_ext(5, 42);
        pk.pack_ext_body("hello", 5);
        envelope out;
        const std::string held5 = as_string(buf);
        REQUIRE(dec(held5, out) == status::ok);
        CHECK_FALSE(out.has_correlation_id());
        CHECK(out.payload() == nil);
    }
    SECTION("wrong types as msgpack-c packs them") {
        pk.pack_map(2);
        pack_str(pk, "type");
        pk.pack(42);
        pack_str(pk, "payload");
        pk.pack_nil();
        CHECK(dec(as_string(buf)) == status::invalid_type);
        msgpack::sbuffer b2;
        packer p2(b2);
        p2.pack(std::vector<std::string>{"type", "t"});
        CHECK(dec(as_string(b2)) == status::not_a_map);
    }
}

TEST_CASE("msgpack: msgpack-c reads what we encode", "[msgpack][client][interop]") {
    msgpack::sbuffer pb;
    packer pk(pb);
    pk.pack_array(3);
    pk.pack(-1);
    pack_str(pk, std::string(40, 's'));
    pk.pack(1.25f);
    const std::string payload = as_string(pb);

    for (const bool with_corr : {false, true}) {
        const std::string corr = with_corr ? std::string(100, 'k') : std::string();
        const std::string frame = enc(make(std::string(40, 'y'), payload, corr));
        msgpack::object_handle oh = msgpack::unpack(frame.data(), frame.size());
        const msgpack::object& m = oh.get();
        REQUIRE(m.type == msgpack::type::MAP);
        CHECK(m.via.map.size == (with_corr ? 3u : 2u));
        CHECK(obj_str(m.via.map.ptr[0].key) == "type");  // the documented order
        CHECK(obj_str(m.via.map.ptr[1].key) == "payload");
        CHECK(obj_str(*find_key(m, "type")) == std::string(40, 'y'));
        const msgpack::object* p = find_key(m, "payload");
        REQUIRE(p != nullptr);
        REQUIRE(p->type == msgpack::type::ARRAY);
        CHECK(p->via.array.ptr[0].as<int>() == -1);
        CHECK(p->via.array.ptr[2].as<float>() == 1.25f);
        if (with_corr) {
            CHECK(obj_str(m.via.map.ptr[2].key) == "correlation_id");
            CHECK(obj_str(*find_key(m, "correlation_id")) == corr);
        } else {
            CHECK(find_key(m, "correlation_id") == nullptr);
        }
    }
}

TEST_CASE("msgpack: our validator agrees with msgpack-c on mutated input",
          "[msgpack][client][interop]") {
    const std::string seed = array_of(every_format());
    std::mt19937 rng(20240611);
    std::uniform_int_distribution<int> any_byte(0, 255);
    int agreed = 0;
    std::map<std::string, int> seen;
    for (int round = 0; round < 4000; ++round) {
        std::string s = seed;
        const int edits = 1 + round % 4;
        for (int e = 0; e < edits; ++e) {
            const std::size_t at = static_cast<std::size_t>(rng()) % s.size();
            switch (rng() % 4) {
                case 0: s[at] = static_cast<char>(any_byte(rng)); break;
                case 1: s.erase(at, 1 + rng() % 3); break;
                case 2: s[at] = static_cast<char>(0xc1); break;  // the one malformed byte
                default: s.insert(at, 1, static_cast<char>(any_byte(rng))); break;
            }
            if (s.empty()) s = nil;
        }
        const verdict theirs = msgpack_c_verdict(s);
        const status ours = validate_payload(payload_format::msgpack, s);
        CAPTURE(s);
        CAPTURE(theirs.result);
        if (theirs.max_depth >= max_nesting_depth) continue;  // msgpack-c has no depth limit
        ++seen[theirs.result];
        if (theirs.result == "ok") {
            CHECK(ours == status::ok);
        } else if (theirs.result == "insufficient") {
            CHECK(ours == status::truncated);
        } else if (theirs.result == "trailing") {
            CHECK(ours == status::trailing_bytes);
        } else {
            CHECK(ours == status::syntax_error);
        }
        // decode() sees the same frame errors, and judges a well-formed non-map as such.
        const status framed = dec(s);
        if (ours != status::ok) {
            CHECK(framed == ours);
        } else if (static_cast<unsigned char>(s[0]) >> 4 != 0x8 &&
                   static_cast<unsigned char>(s[0]) != 0xde &&
                   static_cast<unsigned char>(s[0]) != 0xdf) {
            CHECK(framed == status::not_a_map);
        }
        ++agreed;
    }
    CHECK(agreed > 3900);
    // The mutations reach every outcome, so each branch above was really compared.
    CHECK(seen["ok"] > 50);
    CHECK(seen["insufficient"] > 50);
    CHECK(seen["trailing"] > 50);
    CHECK(seen["error"] > 50);
}
