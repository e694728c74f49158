#include "transport/ws_protocol.hpp"

#include <zlib.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using gatehouse::detail::close_payload;
using gatehouse::detail::encode_client_frame;
using gatehouse::detail::encode_frame_header;
using gatehouse::detail::ws_event;
using gatehouse::detail::ws_opcode;
using gatehouse::detail::ws_reader;
using gatehouse::detail::ws_reader_options;
using kind = ws_event::kind;

constexpr std::uint32_t key = 0x37FA213D;  // RFC 6455 5.7's masking key

// An event with its views copied, so it outlives the reader's next call.
struct seen {
    kind type = kind::none;
    bool text = false;
    std::string payload;
    std::uint16_t code = 0;
    std::string reason;
    bool operator==(const seen& o) const {
        return type == o.type && text == o.text && payload == o.payload && code == o.code &&
               reason == o.reason;
    }
};

std::ostream& operator<<(std::ostream& os, const seen& s) {
    return os << "{type " << static_cast<int>(s.type) << ", text " << s.text << ", payload "
              << s.payload.size() << " bytes, code " << s.code << ", reason '" << s.reason << "'}";
}

seen copy(const ws_event& ev) {
    return {ev.type, ev.text, std::string(ev.payload), ev.close_code, std::string(ev.reason)};
}

enum class mode { copy, in_place };

// Feeds `bytes` in one call's worth of data, calling next() until it returns none, as the
// connection does. `bytes` is modified in place in mode::in_place.
void feed_piece(ws_reader& r, std::string& bytes, mode m, std::vector<seen>& out) {
    std::size_t off = 0;
    for (int guard = 0; guard < 100000; ++guard) {
        std::size_t used = 0;
        const ws_event ev = m == mode::in_place
                                ? r.next(bytes.data() + off, bytes.size() - off, used)
                                : r.next(std::string_view(bytes).substr(off), used);
        REQUIRE(used <= bytes.size() - off);
        off += used;
        if (ev.type == kind::none) {
            REQUIRE(off == bytes.size());
            return;
        }
        out.push_back(copy(ev));
    }
    FAIL("reader does not make progress");
}

// Feeds a stream cut at the given offsets (ascending).
std::vector<seen> feed(ws_reader& r, std::string_view stream, mode m = mode::copy,
                       const std::vector<std::size_t>& cuts = {}) {
    std::vector<seen> events;
    std::size_t from = 0;
    for (std::size_t cut : cuts) {
        std::string piece(stream.substr(from, cut - from));
        feed_piece(r, piece, m, events);
        from = cut;
    }
    std::string rest(stream.substr(from));
    feed_piece(r, rest, m, events);
    return events;
}

std::vector<seen> feed(std::string_view stream, ws_reader_options o = {}, mode m = mode::copy) {
    ws_reader r(o);
    return feed(r, stream, m);
}

seen message(std::string payload, bool text = true) {
    return {kind::message, text, std::move(payload), 0, ""};
}
seen control(kind k, std::string payload) { return {k, false, std::move(payload), 0, ""}; }

// The single event a stream produces, which must be a failure with this code.
void require_fail(std::string_view stream, std::uint16_t code, ws_reader_options o = {}) {
    for (const mode m : {mode::copy, mode::in_place}) {
        const std::vector<seen> ev = feed(stream, o, m);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].type == kind::fail);
        CHECK(ev[0].code == code);
        CHECK_FALSE(ev[0].reason.empty());
    }
}

// A frame with a raw first byte (any flags and opcode) and a masked payload.
std::string raw_frame(unsigned char b0, std::string_view payload, bool masked = true) {
    std::string f = encode_client_frame(ws_opcode::binary, payload, key);
    f[0] = static_cast<char>(b0);
    if (!masked) {
        // Strip the mask bit and the key; the payload goes unmasked.
        const std::size_t header = f.size() - payload.size() - 4;
        f[1] = static_cast<char>(static_cast<unsigned char>(f[1]) & 0x7F);
        f = f.substr(0, header) + std::string(payload);
    }
    return f;
}

std::string frame(ws_opcode op, std::string_view payload, bool fin = true) {
    return encode_client_frame(op, payload, key, fin);
}

}  // namespace

// --- handshake ---

TEST_CASE("ws handshake: the RFC 6455 1.3 example", "[ws_protocol]") {
    using gatehouse::detail::websocket_accept;
    CHECK(gatehouse::detail::is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK(websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(websocket_accept("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST_CASE("ws handshake: the key must be base64 of 16 bytes", "[ws_protocol]") {
    using gatehouse::detail::is_valid_websocket_key;
    CHECK(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAA=="));
    CHECK(is_valid_websocket_key("+/+/+/+/+/+/+/+/+/+/+w=="));
    CHECK_FALSE(is_valid_websocket_key(""));
    CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ="));    // 23 characters
    CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==="));  // 25
    CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQAA"));   // 18 bytes
    CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZ==="));   // padding too early
    CHECK_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25j-Q=="));   // base64url
    CHECK_FALSE(is_valid_websocket_key(" dGhlIHNhbXBsZSBub25jZQ="));
    CHECK_FALSE(is_valid_websocket_key(std::string_view("dGhlIHNhbXBsZSBub25j\0Q==", 24)));
}

TEST_CASE("ws handshake: header lists split into tokens", "[ws_protocol]") {
    using gatehouse::detail::split_header_tokens;
    std::vector<std::string> out;
    split_header_tokens("gatehouse.json, gatehouse.msgpack", out);
    split_header_tokens(" ,\tgatehouse.protobuf ,,", out);
    split_header_tokens("", out);
    split_header_tokens("single", out);
    CHECK(out == std::vector<std::string>{"gatehouse.json", "gatehouse.msgpack",
                                          "gatehouse.protobuf", "single"});
}

// --- frames ---

TEST_CASE("ws frames: server headers use the shortest length form", "[ws_protocol]") {
    unsigned char h[14];
    REQUIRE(encode_frame_header(h, ws_opcode::text, 0) == 2);
    CHECK((h[0] == 0x81 && h[1] == 0x00));
    REQUIRE(encode_frame_header(h, ws_opcode::binary, 125, false, true) == 2);
    CHECK((h[0] == 0x42 && h[1] == 125));
    REQUIRE(encode_frame_header(h, ws_opcode::text, 126) == 4);
    CHECK((h[1] == 126 && h[2] == 0 && h[3] == 126));
    REQUIRE(encode_frame_header(h, ws_opcode::text, 65535) == 4);
    CHECK((h[2] == 0xFF && h[3] == 0xFF));
    REQUIRE(encode_frame_header(h, ws_opcode::close, 65536) == 10);
    CHECK((h[0] == 0x88 && h[1] == 127));
    CHECK((h[2] == 0 && h[3] == 0 && h[4] == 0 && h[5] == 0 && h[6] == 0 && h[7] == 1 &&
           h[8] == 0 && h[9] == 0));
    REQUIRE(encode_frame_header(h, ws_opcode::ping, 0x0102030405060708ULL) == 10);
    CHECK((h[0] == 0x89 && h[2] == 1 && h[9] == 8));
}

TEST_CASE("ws frames: a client frame is the RFC 6455 5.7 example", "[ws_protocol]") {
    // "A single-frame masked text message": 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58
    CHECK(encode_client_frame(ws_opcode::text, "Hello", key) ==
          "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
    CHECK(feed("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58") ==
          std::vector<seen>{message("Hello")});
}

TEST_CASE("ws frames: close payloads keep within 125 bytes at a character boundary",
          "[ws_protocol]") {
    CHECK(close_payload(1000, "") == std::string("\x03\xe8", 2));
    CHECK(close_payload(4008, "slow consumer") == "\x0f\xa8slow consumer");
    const std::string ascii(200, 'a');
    CHECK(close_payload(1001, ascii).size() == 125);
    // 122 ASCII bytes and a 3-byte character that would end at byte 125 of the reason.
    const std::string split = std::string(122, 'a') + "\xe2\x82\xac" + "tail";
    const std::string p = close_payload(1001, split);
    CHECK(p.size() == 2 + 122);
    CHECK(p.substr(2) == std::string(122, 'a'));
    // The same character ending exactly at 123 fits.
    const std::string fits = std::string(120, 'a') + "\xe2\x82\xac" + "tail";
    CHECK(close_payload(1001, fits).substr(2) == std::string(120, 'a') + "\xe2\x82\xac");
}

// --- reader: messages ---

TEST_CASE("ws reader: whole messages, text and binary, in both modes", "[ws_protocol]") {
    const std::string stream = frame(ws_opcode::text, "hello") +
                               frame(ws_opcode::binary, std::string("\0\xff\x01", 3)) +
                               frame(ws_opcode::text, "") + frame(ws_opcode::binary, "");
    const std::vector<seen> want{message("hello"), message(std::string("\0\xff\x01", 3), false),
                                 message(""), message("", false)};
    CHECK(feed(stream) == want);
    CHECK(feed(stream, {}, mode::in_place) == want);
}

TEST_CASE("ws reader: in place, a whole frame is unmasked in the caller's buffer",
          "[ws_protocol]") {
    ws_reader r({});
    std::string bytes = frame(ws_opcode::text, "hello, world") + frame(ws_opcode::ping, "p");
    std::size_t used = 0;
    ws_event ev = r.next(bytes.data(), bytes.size(), used);
    REQUIRE(ev.type == kind::message);
    CHECK(ev.payload == "hello, world");
    CHECK(ev.payload.data() == bytes.data() + 6);  // no copy
    CHECK(r.memory_bytes() == 0);
    const std::size_t off = used;
    ev = r.next(bytes.data() + off, bytes.size() - off, used);
    REQUIRE(ev.type == kind::ping);
    CHECK(ev.payload.data() == bytes.data() + off + 6);
    CHECK(off + used == bytes.size());
    ev = r.next(bytes.data() + bytes.size(), 0, used);
    CHECK(ev.type == kind::none);
    CHECK(r.idle());
}

TEST_CASE("ws reader: lengths in 7, 16 and 64 bits; longer forms than needed are accepted",
          "[ws_protocol]") {
    ws_reader_options o;
    o.max_message_bytes = 1 << 20;
    for (const std::size_t n : {125U, 126U, 127U, 65535U, 65536U, 70000U}) {
        const std::string payload(n, 'x');
        CHECK(feed(frame(ws_opcode::binary, payload), o) ==
              std::vector<seen>{message(payload, false)});
    }
    // 5 bytes announced in the 16-bit and the 64-bit form.
    std::string f16 = "\x82\xFE";
    f16 += std::string("\x00\x05", 2) + "\x01\x02\x03\x04";
    std::string f64 = "\x82\xFF";
    f64 += std::string("\x00\x00\x00\x00\x00\x00\x00\x05", 8) + "\x01\x02\x03\x04";
    for (std::string f : {f16, f64}) {
        std::string payload = "abcde";
        for (std::size_t i = 0; i < payload.size(); ++i) {
            payload[i] = static_cast<char>(payload[i] ^ "\x01\x02\x03\x04"[i % 4]);
        }
        CHECK(feed(f + payload, o) == std::vector<seen>{message("abcde", false)});
    }
}

TEST_CASE("ws reader: fragmented messages with interleaved control frames", "[ws_protocol]") {
    const std::string stream =
        frame(ws_opcode::text, "Hel", false) + frame(ws_opcode::ping, "p1") +
        frame(ws_opcode::continuation, "lo, ", false) + frame(ws_opcode::pong, "") +
        frame(ws_opcode::ping, "") + frame(ws_opcode::continuation, "", false) +
        frame(ws_opcode::continuation, "world") + frame(ws_opcode::binary, "b1", false) +
        frame(ws_opcode::continuation, "b2") + frame(ws_opcode::ping, "after");
    const std::vector<seen> want{control(kind::ping, "p1"), control(kind::pong, ""),
                                 control(kind::ping, ""),   message("Hello, world"),
                                 message("b1b2", false),    control(kind::ping, "after")};
    CHECK(feed(stream) == want);
    CHECK(feed(stream, {}, mode::in_place) == want);
}

// A stream with every kind of event, text split inside characters, and zero-length frames;
// cut anywhere it gives the same events as whole.
std::string mixed_stream() {
    const std::string euro = "\xe2\x82\xac";  // 3 bytes
    return frame(ws_opcode::text, "a" + euro.substr(0, 1), false) +
           frame(ws_opcode::ping, "ping!") +
           frame(ws_opcode::continuation, euro.substr(1) + "\xf0\x9f", false) +
           frame(ws_opcode::continuation, "", false) +
           frame(ws_opcode::continuation, "\x98\x80 done") +
           frame(ws_opcode::binary, std::string(300, '\x7f')) + frame(ws_opcode::pong, "x") +
           frame(ws_opcode::text, std::string(70000, 'y')) + frame(ws_opcode::text, "last") +
           encode_client_frame(ws_opcode::close, close_payload(1000, "bye"), key);
}

TEST_CASE("ws reader: split feeding at every offset gives the same events", "[ws_protocol]") {
    ws_reader_options o;
    o.max_message_bytes = 100000;
    const std::string stream = mixed_stream();
    const std::vector<seen> whole = feed(stream, o);
    REQUIRE(whole.size() == 7);
    CHECK(whole[1] == message("a\xe2\x82\xac\xf0\x9f\x98\x80 done"));
    CHECK(whole.back() == seen{kind::close, false, "bye", 1000, "bye"});
    for (const mode m : {mode::copy, mode::in_place}) {
        for (std::size_t cut = 0; cut <= stream.size(); cut += cut < 600 ? 1 : 97) {
            ws_reader r(o);
            INFO("cut at " << cut);
            REQUIRE(feed(r, stream, m, {cut}) == whole);
            CHECK(r.idle());
        }
        // Two cuts, near the start and around the large frame.
        for (std::size_t a = 0; a < 40; ++a) {
            for (std::size_t b = a; b < stream.size(); b += 1013) {
                ws_reader r(o);
                REQUIRE(feed(r, stream, m, {a, b}) == whole);
            }
        }
    }
}

TEST_CASE("ws reader: byte by byte", "[ws_protocol]") {
    ws_reader_options o;
    o.max_message_bytes = 100000;
    const std::string stream = mixed_stream();
    const std::vector<seen> whole = feed(stream, o);
    for (const mode m : {mode::copy, mode::in_place}) {
        ws_reader r(o);
        std::vector<seen> events;
        for (const char c : stream) {
            std::string one(1, c);
            feed_piece(r, one, m, events);
        }
        CHECK(events == whole);
        CHECK(r.idle());
    }
}

TEST_CASE("ws reader: a large message byte by byte takes linear time", "[ws_protocol]") {
    // Quadratic work (rescanning or recopying the message per byte) would take minutes here.
    ws_reader_options o;
    o.max_message_bytes = 1 << 20;
    const std::string text(1 << 20, 'a');
    const std::string stream = frame(ws_opcode::text, text.substr(0, 1000), false) +
                               frame(ws_opcode::continuation, text.substr(1000));
    for (const mode m : {mode::copy, mode::in_place}) {
        ws_reader r(o);
        std::size_t n = 0;
        for (std::size_t i = 0; i < stream.size(); ++i) {
            char c = stream[i];
            std::size_t used = 0;
            const ws_event ev =
                m == mode::in_place ? r.next(&c, 1, used) : r.next(std::string_view(&c, 1), used);
            REQUIRE(used == 1);
            if (ev.type != kind::none) {
                REQUIRE(i == stream.size() - 1);
                CHECK(ev.type == kind::message);
                CHECK(ev.payload == text);
                ++n;
            }
        }
        CHECK(n == 1);
    }
}

TEST_CASE("ws reader: buffers are held while a message is in progress and released after",
          "[ws_protocol]") {
    ws_reader r({});
    CHECK(r.idle());
    CHECK(r.memory_bytes() == 0);
    const std::string big(1000, 'z');
    const std::string first = frame(ws_opcode::binary, big, false);
    std::size_t used = 0;
    CHECK(r.next(first, used).type == kind::none);
    CHECK_FALSE(r.idle());
    CHECK(r.memory_bytes() >= 1000);
    // Half a header, then the rest with the frame's payload.
    const std::string last = frame(ws_opcode::continuation, big);
    CHECK(r.next(std::string_view(last).substr(0, 1), used).type == kind::none);
    CHECK_FALSE(r.idle());
    const ws_event ev = r.next(std::string_view(last).substr(1), used);
    REQUIRE(ev.type == kind::message);
    CHECK(ev.payload == big + big);
    CHECK_FALSE(r.idle());  // the payload is still held for the caller
    CHECK(r.next(std::string_view(), used).type == kind::none);
    CHECK(r.idle());
    CHECK(r.memory_bytes() == 0);

    // A ping read in copy mode is held until the next call too.
    CHECK(r.next(frame(ws_opcode::ping, "ping"), used).type == kind::ping);
    CHECK(r.next(std::string_view(), used).type == kind::none);
    CHECK(r.idle());
    CHECK(r.memory_bytes() == 0);
}

// --- reader: rules ---

TEST_CASE("ws reader: client frames must be masked", "[ws_protocol]") {
    require_fail(raw_frame(0x81, "hi", false), 1002);
    require_fail(raw_frame(0x89, "", false), 1002);
}

TEST_CASE("ws reader: reserved bits", "[ws_protocol]") {
    for (const unsigned rsv : {0x40U, 0x20U, 0x10U, 0x70U}) {
        require_fail(raw_frame(static_cast<unsigned char>(0x81U | rsv), "hi"), 1002);
    }
    ws_reader_options deflate;
    deflate.deflate = true;
    // With permessage-deflate only RSV1, and only on a data message's first frame.
    require_fail(raw_frame(0xA1, "hi"), 1002, deflate);  // RSV2
    require_fail(raw_frame(0x91, "hi"), 1002, deflate);  // RSV3
    require_fail(raw_frame(0xC9, ""), 1002, deflate);    // ping
    require_fail(raw_frame(0xC8, ""), 1002, deflate);    // close
    require_fail(raw_frame(0xCA, ""), 1002, deflate);    // pong
    const std::string first = raw_frame(0x41, "");       // compressed, empty, not FIN
    for (const mode m : {mode::copy, mode::in_place}) {
        const std::vector<seen> ev = feed(first + raw_frame(0xC0, "x"), deflate, m);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].type == kind::fail);
        CHECK(ev[0].code == 1002);
    }
}

TEST_CASE("ws reader: reserved opcodes", "[ws_protocol]") {
    for (unsigned op : {3U, 4U, 5U, 6U, 7U, 0xBU, 0xCU, 0xDU, 0xEU, 0xFU}) {
        INFO("opcode " << op);
        require_fail(raw_frame(static_cast<unsigned char>(0x80 | op), ""), 1002);
    }
}

TEST_CASE("ws reader: control frames are final and at most 125 bytes", "[ws_protocol]") {
    require_fail(raw_frame(0x09, "p"), 1002);  // ping without FIN
    require_fail(raw_frame(0x08, ""), 1002);   // close without FIN
    require_fail(frame(ws_opcode::ping, std::string(126, 'p')), 1002);
    require_fail(frame(ws_opcode::pong, std::string(126, 'p')), 1002);
    require_fail(frame(ws_opcode::close, "\x03\xe8" + std::string(124, 'r')), 1002);
    CHECK(feed(frame(ws_opcode::ping, std::string(125, 'p'))) ==
          std::vector<seen>{control(kind::ping, std::string(125, 'p'))});
    // Too long is detected from the first two bytes, before the extended length arrives.
    ws_reader r({});
    std::size_t used = 0;
    const ws_event ev = r.next(std::string_view("\x89\xFE", 2), used);
    CHECK(ev.type == kind::fail);
    CHECK(ev.close_code == 1002);
}

TEST_CASE("ws reader: continuations continue and messages do not interleave", "[ws_protocol]") {
    require_fail(frame(ws_opcode::continuation, "x"), 1002);
    require_fail(frame(ws_opcode::continuation, "x", false), 1002);
    for (const ws_opcode op : {ws_opcode::text, ws_opcode::binary}) {
        require_fail(frame(ws_opcode::text, "a", false) + frame(op, "b"), 1002);
        require_fail(frame(ws_opcode::binary, "a", false) + frame(op, "b", false), 1002);
    }
    // After a message ended, a continuation has nothing to continue.
    std::vector<seen> ev = feed(frame(ws_opcode::text, "a") + frame(ws_opcode::continuation, "b"));
    REQUIRE(ev.size() == 2);
    CHECK(ev[1].type == kind::fail);
    CHECK(ev[1].code == 1002);
}

TEST_CASE("ws reader: a 64-bit length with its top bit set", "[ws_protocol]") {
    ws_reader_options o;
    o.max_message_bytes = SIZE_MAX;
    std::string f = "\x82\xFF";
    f += std::string("\x80\x00\x00\x00\x00\x00\x00\x01", 8) + "abcd";
    require_fail(f, 1002, o);
}

TEST_CASE("ws reader: message size, N accepted and N+1 refused at the header", "[ws_protocol]") {
    ws_reader_options o;
    o.max_message_bytes = 1000;
    CHECK(feed(frame(ws_opcode::binary, std::string(1000, 'a')), o).at(0).type == kind::message);
    require_fail(frame(ws_opcode::binary, std::string(1001, 'a')), 1009, o);
    // The header alone is enough: nothing of the payload is buffered.
    for (const std::uint64_t n : {std::uint64_t{1001}, std::uint64_t{1} << 40}) {
        unsigned char h[14];
        std::size_t len = encode_frame_header(h, ws_opcode::text, n);
        h[1] |= 0x80;
        std::string header(reinterpret_cast<const char*>(h), len);
        header += "\x01\x02\x03\x04";
        ws_reader r(o);
        std::size_t used = 0;
        const ws_event ev = r.next(header, used);
        CHECK(ev.type == kind::fail);
        CHECK(ev.close_code == 1009);
        CHECK(r.memory_bytes() == 0);
    }
    // Fragments count together: 600 + 400 fit, one more byte does not, at its header.
    const std::string a = frame(ws_opcode::text, std::string(600, 'a'), false);
    CHECK(feed(a + frame(ws_opcode::continuation, std::string(400, 'b')), o).at(0) ==
          message(std::string(600, 'a') + std::string(400, 'b')));
    std::vector<seen> ev =
        feed(a + frame(ws_opcode::continuation, "", false) + frame(ws_opcode::ping, "p") +
                 frame(ws_opcode::continuation, std::string(401, 'b')),
             o);
    REQUIRE(ev.size() == 2);
    CHECK(ev[0].type == kind::ping);
    CHECK(ev[1].type == kind::fail);
    CHECK(ev[1].code == 1009);
    // Control frames do not count.
    o.max_message_bytes = 0;
    CHECK(feed(frame(ws_opcode::ping, "ping") + frame(ws_opcode::text, ""), o) ==
          std::vector<seen>{control(kind::ping, "ping"), message("")});
}

TEST_CASE("ws reader: text must be UTF-8, checked across fragments", "[ws_protocol]") {
    require_fail(frame(ws_opcode::text, "\xff"), 1007);
    require_fail(frame(ws_opcode::text, "abc\xc0\xaf"), 1007);       // overlong
    require_fail(frame(ws_opcode::text, "\xed\xa0\x80"), 1007);      // surrogate
    require_fail(frame(ws_opcode::text, "\xf4\x90\x80\x80"), 1007);  // beyond U+10FFFF
    require_fail(frame(ws_opcode::text, "ok\xe2\x82"), 1007);        // ends inside a character
    CHECK(feed(frame(ws_opcode::binary, "\xff")).at(0) == message("\xff", false));
    // Valid across fragment boundaries, every split of a 4-byte character.
    const std::string smile = "\xf0\x9f\x98\x80";
    for (std::size_t i = 0; i <= 4; ++i) {
        const std::string s = frame(ws_opcode::text, smile.substr(0, i), false) +
                              frame(ws_opcode::continuation, smile.substr(i));
        CHECK(feed(s).at(0) == message(smile));
        CHECK(feed(s, {}, mode::in_place).at(0) == message(smile));
    }
    // A message ending inside a character fails at its last frame.
    std::vector<seen> ev =
        feed(frame(ws_opcode::text, "\xf0\x9f", false) + frame(ws_opcode::ping, "") +
             frame(ws_opcode::continuation, "\x98"));
    REQUIRE(ev.size() == 2);
    CHECK(ev[1].type == kind::fail);
    CHECK(ev[1].code == 1007);
}

TEST_CASE("ws reader: invalid UTF-8 fails fast, before the message ends", "[ws_protocol]") {
    for (const mode m : {mode::copy, mode::in_place}) {
        // The first fragment is bad; the message never ends.
        ws_reader r({});
        std::vector<seen> ev = feed(r, frame(ws_opcode::text, "ab\xc3(", false), m);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].code == 1007);
        // Within one frame, before the frame's payload has all arrived.
        ws_reader r2({});
        const std::string f = frame(ws_opcode::text, "abc\xff" + std::string(500, 'x'));
        ev = feed(r2, std::string_view(f).substr(0, 20), m);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].code == 1007);
    }
}

TEST_CASE("ws reader: close frames", "[ws_protocol]") {
    CHECK(feed(frame(ws_opcode::close, "")) ==
          std::vector<seen>{{kind::close, false, "", 1005, ""}});
    CHECK(feed(frame(ws_opcode::close, close_payload(1001, "going"))) ==
          std::vector<seen>{{kind::close, false, "going", 1001, "going"}});
    require_fail(frame(ws_opcode::close, "\x03"), 1002);
    for (const std::uint16_t code : std::initializer_list<std::uint16_t>{
             1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
        INFO("code " << code);
        CHECK(feed(frame(ws_opcode::close, close_payload(code, ""))).at(0).code == code);
    }
    for (const std::uint16_t code :
         std::initializer_list<std::uint16_t>{0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015,
                                              1016, 1100, 2000, 2999, 5000, 65535}) {
        INFO("code " << code);
        require_fail(frame(ws_opcode::close, close_payload(code, "")), 1002);
    }
    require_fail(frame(ws_opcode::close, close_payload(1000, "bad \xff")), 1007);
    require_fail(frame(ws_opcode::close, close_payload(1000, "cut \xe2\x82")), 1007);
    // Between fragments, and nothing after it is read.
    ws_reader r({});
    std::vector<seen> ev =
        feed(r, frame(ws_opcode::text, std::string(300, 'a'), false) +
                    frame(ws_opcode::close, close_payload(1000, "")) + "garbage \xff\xff");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].type == kind::close);
    CHECK(ev[0].code == 1000);
    CHECK(r.idle());
    CHECK(r.memory_bytes() == 0);
    CHECK(feed(r, frame(ws_opcode::text, "more")).empty());
}

TEST_CASE("ws reader: after a failure everything is ignored", "[ws_protocol]") {
    ws_reader r({});
    std::vector<seen> ev = feed(r, frame(ws_opcode::text, std::string(300, 'a'), false) +
                                       raw_frame(0x83, "") + frame(ws_opcode::text, "x"));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].type == kind::fail);
    CHECK(r.idle());
    CHECK(feed(r, frame(ws_opcode::text, "x")).empty());
}

// --- reader: permessage-deflate ---

namespace {

// What a client sends for a compressed message (RFC 7692 7.2.1): raw deflate, flushed with
// Z_SYNC_FLUSH, the trailing 0x00 0x00 0xff 0xff removed.
std::string compress(std::string_view in) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) ==
            Z_OK);
    std::string out(deflateBound(&z, static_cast<uLong>(in.size())) + 16, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&z, Z_SYNC_FLUSH) == Z_OK);
    REQUIRE(z.avail_in == 0);
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    REQUIRE(out.size() >= 4);
    REQUIRE(out.substr(out.size() - 4) == std::string("\x00\x00\xff\xff", 4));
    out.resize(out.size() - 4);
    return out;
}

std::string compressed_frame(ws_opcode op, std::string_view data, bool fin = true) {
    return encode_client_frame(op, data, key, fin, true);
}

}  // namespace

TEST_CASE("ws reader: compressed messages are inflated", "[ws_protocol]") {
    ws_reader_options o;
    o.deflate = true;
    const std::string text =
        "{\"type\":\"player_action\",\"payload\":{\"move\":[1,2]}} \xe2\x82\xac";
    const std::string z = compress(text);
    const std::string zbig = compress(std::string(5000, 'q'));
    const std::string stream =
        compressed_frame(ws_opcode::text, z) + frame(ws_opcode::text, "plain") +
        compressed_frame(ws_opcode::binary, z.substr(0, 5), false) + frame(ws_opcode::ping, "") +
        frame(ws_opcode::continuation, z.substr(5, 7), false) +
        frame(ws_opcode::continuation, z.substr(12)) + compressed_frame(ws_opcode::text, "") +
        compressed_frame(ws_opcode::binary, zbig);
    const std::vector<seen> want{
        message(text),        message("plain"), control(kind::ping, ""),
        message(text, false), message(""),      message(std::string(5000, 'q'), false)};
    CHECK(feed(stream, o) == want);
    CHECK(feed(stream, o, mode::in_place) == want);
    for (const mode m : {mode::copy, mode::in_place}) {
        for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
            ws_reader r(o);
            INFO("cut at " << cut);
            REQUIRE(feed(r, stream, m, {cut}) == want);
            CHECK(r.idle());
        }
    }
}

TEST_CASE("ws reader: compressed messages are measured after inflation", "[ws_protocol]") {
    ws_reader_options o;
    o.deflate = true;
    o.max_message_bytes = 4096;
    const std::string n = compress(std::string(4096, 'a'));
    const std::string n1 = compress(std::string(4097, 'a'));
    CHECK(n.size() < 100);
    CHECK(feed(compressed_frame(ws_opcode::binary, n), o).at(0) ==
          message(std::string(4096, 'a'), false));
    require_fail(compressed_frame(ws_opcode::binary, n1), 1009, o);
    // A bomb: 2 MiB of zeros in about 2 KiB.
    std::string zeros(1 << 20, '\0');
    std::string bomb;
    {
        z_stream z{};
        REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
        char buf[65536];
        for (int i = 0; i < 2; ++i) {
            z.next_in = reinterpret_cast<Bytef*>(zeros.data());
            z.avail_in = static_cast<uInt>(zeros.size());
            do {
                z.next_out = reinterpret_cast<Bytef*>(buf);
                z.avail_out = sizeof buf;
                deflate(&z, i == 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH);
                bomb.append(buf, sizeof buf - z.avail_out);
            } while (z.avail_out == 0);
        }
        deflateEnd(&z);
        bomb.resize(bomb.size() - 4);
    }
    CHECK(bomb.size() < 4096);
    require_fail(compressed_frame(ws_opcode::binary, bomb), 1009, o);
    // The compressed size is bounded too, before inflation.
    require_fail(compressed_frame(ws_opcode::binary, std::string(4096 + 1024 + 1025, 'x')), 1009,
                 o);
}

TEST_CASE("ws reader: corrupt compressed data and bad inflated text", "[ws_protocol]") {
    ws_reader_options o;
    o.deflate = true;
    require_fail(compressed_frame(ws_opcode::binary, "\xff\xff\xff\xff"), 1007, o);
    const std::string z = compress("truncated message, truncated message");
    require_fail(compressed_frame(ws_opcode::binary, z.substr(0, z.size() - 3)), 1007, o);
    require_fail(compressed_frame(ws_opcode::text, compress("bad \xff text")), 1007, o);
    require_fail(compressed_frame(ws_opcode::text, compress("cut \xe2\x82")), 1007, o);
    CHECK(feed(compressed_frame(ws_opcode::binary, compress("bad \xff binary")), o).at(0) ==
          message("bad \xff binary", false));
}
