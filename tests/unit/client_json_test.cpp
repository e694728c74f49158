#include "gatehouse/client/codec.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "codec_test_support.hpp"

namespace gc = gatehouse::client;
using gc::status;

namespace {

status decode(std::string_view frame, gc::envelope& e) {
    return gc::decode(gc::wire_format::json, frame, e);
}

status decode(std::string_view frame) {
    gc::envelope e;
    return decode(frame, e);
}

std::string encode(const gc::envelope& e) {
    return test_support::encode_checked(gc::wire_format::json, e);
}

std::string nested(std::size_t levels, std::string_view inner = "1") {
    return std::string(levels, '[') + std::string(inner) + std::string(levels, ']');
}

std::string repeat(std::string_view s, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

}  // namespace

TEST_CASE("json: decodes the protocol's example envelope", "[json]") {
    gc::envelope e;
    REQUIRE(decode(R"({"type":"player_action","payload":{"move":[1,2]},"correlation_id":"c-17"})",
                   e) == status::ok);
    CHECK(e.type() == "player_action");
    CHECK(e.payload() == R"({"move":[1,2]})");
    CHECK(e.format() == gc::payload_format::json);
    CHECK(e.payload_codec() == "json");
    CHECK(e.correlation_id() == "c-17");
}

TEST_CASE("json: the payload is the frame's own bytes, whitespace and all", "[json]") {
    gc::envelope e;
    const std::string frame =
        " {\n \"payload\" :  { \"b\" : [1, 2.5e3, \"x\\n\"] } ,\"type\":\"t\"}\t";
    REQUIRE(decode(frame, e) == status::ok);
    CHECK(e.payload() == R"({ "b" : [1, 2.5e3, "x\n"] })");
    CHECK(e.payload().data() >= frame.data());
    CHECK(e.payload().data() < frame.data() + frame.size());
}

TEST_CASE("json: missing payload is null, null correlation id is absent", "[json]") {
    gc::envelope e;
    REQUIRE(decode(R"({"type":"t"})", e) == status::ok);
    CHECK(e.payload() == "null");
    CHECK_FALSE(e.has_correlation_id());
    REQUIRE(decode(R"({"type":"t","correlation_id":null,"payload":null})", e) == status::ok);
    CHECK(e.payload() == "null");
    CHECK_FALSE(e.has_correlation_id());
}

TEST_CASE("json: decoding into a used envelope leaves nothing stale", "[json]") {
    gc::envelope e;
    REQUIRE(decode(R"({"type":"first","payload":[1],"correlation_id":"c1"})", e) == status::ok);
    REQUIRE(decode(R"({"type":"second"})", e) == status::ok);
    CHECK(e.type() == "second");
    CHECK(e.payload() == "null");
    CHECK_FALSE(e.has_correlation_id());
}

TEST_CASE("json: escapes in keys and strings are decoded", "[json]") {
    gc::envelope e;
    REQUIRE(decode(R"({"\u0074ype":"a\u002Db","correlation_id":"\"q\"\\\/\u00e9\ud83d\ude00"})",
                   e) == status::ok);
    CHECK(e.type() == "a-b");
    CHECK(e.correlation_id() == "\"q\"\\/\xc3\xa9\xf0\x9f\x98\x80");
}

TEST_CASE("json: unknown fields are ignored but must be well-formed", "[json]") {
    CHECK(decode(R"({"type":"t","extra":{"deep":[true,false,null]},"v":2})") == status::ok);
    CHECK(decode(R"({"type":"t","extra":{"deep":[tru]}})") == status::syntax_error);
}

TEST_CASE("json: every proper prefix of a frame is truncated", "[json]") {
    const std::string frame =
        R"({"type":"t","payload":{"a":[1,-2.5e+3,true,false,null,"s\u00e9\n"]},"correlation_id":"c"})";
    REQUIRE(decode(frame) == status::ok);
    for (std::size_t n = 0; n < frame.size(); ++n) {
        INFO("prefix length " << n);
        CHECK(decode(std::string_view(frame).substr(0, n)) == status::truncated);
    }
}

TEST_CASE("json: malformed frames are invalid_frame", "[json]") {
    struct bad_case {
        std::string frame;
        status expected;
    };
    const std::vector<bad_case> cases = {
        {"", status::truncated},
        {"   ", status::truncated},
        {R"({"type":"t",})", status::syntax_error},             // trailing comma
        {R"({"type":"t" "payload":1})", status::syntax_error},  // missing comma
        {R"({"type" "t"})", status::syntax_error},              // missing colon
        {R"({type:"t"})", status::syntax_error},                // unquoted key
        {R"({'type':'t'})", status::syntax_error},              // single quotes
        {R"({"type":"t","payload":[1,]})", status::syntax_error},
        {R"({"type":"t","payload":01})", status::syntax_error},
        {R"({"type":"t","payload":1.})", status::syntax_error},
        {R"({"type":"t","payload":.5})", status::syntax_error},
        {R"({"type":"t","payload":+1})", status::syntax_error},
        {R"({"type":"t","payload":1e})", status::syntax_error},
        {R"({"type":"t","payload":-})", status::syntax_error},
        {R"({"type":"t","payload":NaN})", status::syntax_error},
        {R"({"type":"t","payload":Infinity})", status::syntax_error},
        {R"({"type":"t","payload":nul})", status::syntax_error},
        {R"({"type":"t","payload":True})", status::syntax_error},
        {R"({"type":"t","payload":"\x"})", status::syntax_error},         // bad escape
        {R"({"type":"t","payload":"\u12G4"})", status::syntax_error},     // bad hex
        {"{\"type\":\"t\",\"payload\":\"a\tb\"}", status::syntax_error},  // raw control char
        {"{\"type\":\"t\",\"payload\":\"a\x01\"}", status::syntax_error},
        {R"({"type":"t"} x)", status::trailing_bytes},
        {R"({"type":"t"}{})", status::trailing_bytes},
        {R"({"type":"t"}])", status::trailing_bytes},
        {"{\"type\":\"t\"}\xff", status::trailing_bytes},
        {"\xef\xbb\xbf{\"type\":\"t\"}", status::syntax_error},  // a BOM is not JSON
        {"[1", status::truncated},  // frame errors win over "not a map"
        {std::string("{\"type\":\"t\"}\0", 13), status::trailing_bytes},
    };
    for (const auto& c : cases) {
        INFO(c.frame);
        const status st = decode(c.frame);
        CHECK(st == c.expected);
        CHECK(gc::is_frame_error(st));
        CHECK(std::string(gc::protocol_code(st)) == "invalid_frame");
    }
}

TEST_CASE("json: invalid UTF-8 anywhere in a string is refused", "[json]") {
    const std::vector<std::string> bad = {
        "\x80",              // lone continuation byte
        "\xc0\x80",          // overlong NUL
        "\xc1\xbf",          // overlong
        "\xe0\x80\xaf",      // overlong '/'
        "\xed\xa0\x80",      // UTF-16 surrogate encoded in UTF-8
        "\xf4\x90\x80\x80",  // above U+10FFFF
        "\xf5\x80\x80\x80",  // invalid lead byte
        "\xfe",              //
        "\xc3\x28",          // bad continuation
        "\xe2\x82\x28",      //
    };
    for (const auto& b : bad) {
        INFO("bytes " << b.size());
        CHECK(decode("{\"type\":\"t\",\"payload\":\"a" + b + "z\"}") == status::invalid_utf8);
        CHECK(decode("{\"type\":\"t\",\"correlation_id\":\"" + b + "\"}") == status::invalid_utf8);
        CHECK(decode("{\"type\":\"t\",\"x" + b + "\":1}") == status::invalid_utf8);
    }
    // Escapes that name lone surrogates cannot become UTF-8 either.
    CHECK(decode(R"({"type":"t","payload":"\ud800"})") == status::invalid_utf8);
    CHECK(decode(R"({"type":"t","payload":"\ud800x"})") == status::invalid_utf8);
    CHECK(decode(R"({"type":"t","payload":"\udc00"})") == status::invalid_utf8);
    CHECK(decode(R"({"type":"t","payload":"\ud800\u0041"})") == status::invalid_utf8);
    // A sequence cut by the end of the frame is truncation.
    CHECK(decode("{\"type\":\"t\",\"payload\":\"\xe2\x82") == status::truncated);
    // Valid multi-byte text of every length passes.
    CHECK(decode("{\"type\":\"t\",\"payload\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}") ==
          status::ok);
}

TEST_CASE("json: nesting is limited to max_nesting_depth, iteratively", "[json]") {
    // The envelope object is level 1, so a payload may nest max_nesting_depth - 1 deep.
    const std::size_t limit = gc::max_nesting_depth - 1;
    CHECK(decode(R"({"type":"t","payload":)" + nested(limit) + "}") == status::ok);
    CHECK(decode(R"({"type":"t","payload":)" + nested(limit + 1) + "}") == status::too_deep);
    CHECK(decode(R"({"type":"t","x":)" + nested(limit + 1) + "}") == status::too_deep);
    // Far deeper input fails fast without recursion.
    CHECK(decode(R"({"type":"t","payload":)" + std::string(1'000'000, '[')) == status::too_deep);
    CHECK(decode(std::string(1'000'000, '[')) == status::too_deep);
    std::string objects;
    for (std::size_t i = 0; i < limit; ++i) objects += R"({"k":)";
    objects += "1" + std::string(limit, '}');
    CHECK(decode(R"({"type":"t","payload":)" + objects + "}") == status::ok);
}

TEST_CASE("json: envelope rules give invalid_envelope", "[json]") {
    struct bad_case {
        std::string frame;
        status expected;
    };
    const std::vector<bad_case> cases = {
        {"[1,2]", status::not_a_map},
        {R"("type")", status::not_a_map},
        {"42", status::not_a_map},
        {"null", status::not_a_map},
        {"{}", status::missing_type},
        {R"({"payload":{"type":"x"}})", status::missing_type},
        {R"({"type":""})", status::missing_type},
        {R"({"type":5})", status::invalid_type},
        {R"({"type":null})", status::invalid_type},
        {R"({"type":["t"]})", status::invalid_type},
        {R"({"type":"a b"})", status::invalid_type},
        {R"({"type":"a/b"})", status::invalid_type},
        {"{\"type\":\"caf\xc3\xa9\"}", status::invalid_type},
        {R"({"type":"a\u0000"})", status::invalid_type},
        {R"({"type":")" + std::string(65, 'a') + R"("})", status::invalid_type},
        {R"({"type":")" + std::string(5000, 'a') + R"("})", status::invalid_type},
        {R"({"type":"t","correlation_id":""})", status::invalid_correlation_id},
        {R"({"type":"t","correlation_id":17})", status::invalid_correlation_id},
        {R"({"type":"t","correlation_id":{"id":1}})", status::invalid_correlation_id},
        {R"({"type":"t","correlation_id":")" + std::string(129, 'c') + R"("})",
         status::invalid_correlation_id},
        {R"({"type":"t","correlation_id":")" + std::string(4000, 'c') + R"("})",
         status::invalid_correlation_id},
        {R"({"type":"t","type":"u"})", status::duplicate_field},
        {R"({"type":"t","payload":1,"payload":2})", status::duplicate_field},
        {R"({"type":"t","correlation_id":"a","correlation_id":"a"})", status::duplicate_field},
    };
    for (const auto& c : cases) {
        INFO(c.frame.substr(0, 120));
        const status st = decode(c.frame);
        CHECK(st == c.expected);
        CHECK(gc::is_envelope_error(st));
        CHECK(std::string(gc::protocol_code(st)) == "invalid_envelope");
    }
}

TEST_CASE("json: frame errors take precedence over envelope errors", "[json]") {
    CHECK(decode(R"({"type":5,"payload":[1,]})") == status::syntax_error);
    CHECK(decode(R"({"type":"t","type":"u","x":)") == status::truncated);
    CHECK(decode("{\"type\":\"\",\"x\":\"\xff\"}") == status::invalid_utf8);
}

TEST_CASE("json: type and correlation_id limits are exact", "[json]") {
    gc::envelope e;
    const std::string type64(64, 'T');
    REQUIRE(decode(R"({"type":")" + type64 + R"("})", e) == status::ok);
    CHECK(e.type() == type64);
    CHECK(decode(R"({"type":"Az09_.:-"})") == status::ok);

    // 128 characters are accepted however many bytes they take; 129 are not.
    for (const std::string ch : {"c", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}) {
        INFO("char bytes " << ch.size());
        REQUIRE(decode(R"({"type":"t","correlation_id":")" + repeat(ch, 128) + R"("})", e) ==
                status::ok);
        CHECK(e.correlation_id() == repeat(ch, 128));
        CHECK(decode(R"({"type":"t","correlation_id":")" + repeat(ch, 129) + R"("})") ==
              status::invalid_correlation_id);
    }
    // Escaped characters count once each.
    REQUIRE(decode(R"({"type":"t","correlation_id":")" + repeat("\\u00e9", 128) + R"("})", e) ==
            status::ok);
    CHECK(e.correlation_id() == repeat("\xc3\xa9", 128));
}

TEST_CASE("json: encode round-trips and escapes the correlation id", "[json]") {
    gc::envelope e;
    REQUIRE(e.set_type("chat.say") == status::ok);
    REQUIRE(e.set_correlation_id("q\"\\\n\t\x01\xc3\xa9") == status::ok);
    e.set_payload(gc::payload_format::json, R"({"text":"hi"})");
    const std::string frame = encode(e);
    CHECK(frame == R"({"type":"chat.say","payload":{"text":"hi"},"correlation_id":"q\"\\\n\t\u0001)"
                   "\xc3\xa9\"}");
    CHECK(nlohmann::json::accept(frame));

    gc::envelope back;
    REQUIRE(decode(frame, back) == status::ok);
    CHECK(back.type() == e.type());
    CHECK(back.correlation_id() == e.correlation_id());
    CHECK(back.payload() == e.payload());

    gc::envelope no_corr;
    REQUIRE(no_corr.set_type("t") == status::ok);
    CHECK(encode(no_corr) == R"({"type":"t","payload":null})");
}

TEST_CASE("json: encode reports size and never writes past the buffer", "[json]") {
    gc::envelope e;
    REQUIRE(e.set_type("t") == status::ok);
    e.set_payload(gc::payload_format::json, "[1,2,3]");
    const std::string expected = R"({"type":"t","payload":[1,2,3]})";
    for (std::size_t cap = 0; cap < expected.size(); ++cap) {
        std::string buf(expected.size() + 8, '#');
        const auto r = gc::encode(gc::wire_format::json, e, buf.data(), cap);
        CHECK(r.code == status::buffer_too_small);
        CHECK(r.size == expected.size());
        CHECK(buf.find_first_not_of('#', cap) == std::string::npos);  // nothing past cap
    }
}

TEST_CASE("json: encode refuses what it cannot carry", "[json]") {
    gc::envelope e;
    CHECK(gc::encode(gc::wire_format::json, e, nullptr, 0).code == status::missing_type);
    REQUIRE(e.set_type("t") == status::ok);
    e.set_payload(gc::payload_format::msgpack, "\xc0");
    CHECK(gc::encode(gc::wire_format::json, e, nullptr, 0).code == status::payload_format_mismatch);
    e.set_payload(gc::payload_format::bytes, "raw", "my.Message");
    CHECK(gc::encode(gc::wire_format::json, e, nullptr, 0).code == status::payload_format_mismatch);
    e.set_payload(gc::payload_format::json, "{\"a\":");
    CHECK(gc::encode(gc::wire_format::json, e, nullptr, 0).code == status::invalid_payload);
}

TEST_CASE("json: setters refuse invalid values and leave the envelope unchanged", "[json]") {
    gc::envelope e;
    REQUIRE(e.set_type("good") == status::ok);
    CHECK(e.set_type("") == status::missing_type);
    CHECK(e.set_type("no spaces") == status::invalid_type);
    CHECK(e.set_type(std::string(65, 'a')) == status::invalid_type);
    CHECK(e.type() == "good");
    REQUIRE(e.set_correlation_id("c1") == status::ok);
    CHECK(e.set_correlation_id("") == status::invalid_correlation_id);
    CHECK(e.set_correlation_id("\xff") == status::invalid_correlation_id);
    CHECK(e.set_correlation_id(std::string(129, 'x')) == status::invalid_correlation_id);
    CHECK(e.correlation_id() == "c1");
}

// Differential test: our validator and nlohmann's parser are independent implementations
// of RFC 8259, so on any input (below our depth limit) they must agree on validity.
TEST_CASE("json: validation agrees with nlohmann on mutated documents", "[json]") {
    const std::vector<std::string> seeds = {
        R"({"a":[1,-2.5e+3,true,false,null],"b":{"c":"d\u00e9\n"},"e":0})",
        R"([{"x":"\ud83d\ude00"},[],{},"",-0,1E9,0.5])",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
        " { \"k\" : [ 1 , 2 ] } ",
    };
    const std::string alphabet = "{}[]\":,.-+eE0159tfnulrsa\\/u \t\n\x01\x7f\xc3\xa9\xed\xa0\xff";
    std::mt19937 rng(20261123);
    int agreed_valid = 0, agreed_invalid = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string doc = seeds[static_cast<std::size_t>(i) % seeds.size()];
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int k = 0; k < edits && !doc.empty(); ++k) {
            const std::size_t at = rng() % doc.size();
            const char ch = alphabet[rng() % alphabet.size()];
            switch (rng() % 3) {
                case 0: doc[at] = ch; break;
                case 1: doc.insert(doc.begin() + static_cast<std::ptrdiff_t>(at), ch); break;
                default: doc.erase(at, 1); break;
            }
        }
        const bool ours = gc::validate_payload(gc::payload_format::json, doc) == status::ok;
        const bool theirs = nlohmann::json::accept(doc);
        INFO("document: " << doc);
        REQUIRE(ours == theirs);
        (ours ? agreed_valid : agreed_invalid)++;
    }
    // The mutations must exercise both outcomes for the comparison to mean anything.
    CHECK(agreed_valid > 100);
    CHECK(agreed_invalid > 100);
}

TEST_CASE("envelope: copies carry every field, whatever the storage held before", "[json]") {
    gc::envelope a;
    REQUIRE(decode(R"({"type":"first.type","payload":[1,2],"correlation_id":"c-1"})", a) ==
            status::ok);
    gc::envelope copy(a);
    CHECK(copy.type() == "first.type");
    CHECK(copy.correlation_id() == "c-1");
    CHECK(copy.payload() == "[1,2]");

    gc::envelope b;
    REQUIRE(b.set_type("a-much-longer-type-name-than-before") == status::ok);
    REQUIRE(b.set_correlation_id(std::string(128, 'z')) == status::ok);
    b = a;  // shorter values over longer ones: only the lengths in use count
    CHECK(b.type() == "first.type");
    CHECK(b.correlation_id() == "c-1");
    CHECK(b.format() == gc::payload_format::json);
    b = b;  // self-assignment is harmless
    CHECK(b.type() == "first.type");

    const gc::envelope fresh;
    CHECK(fresh.type().empty());
    CHECK_FALSE(fresh.has_correlation_id());
    CHECK(fresh.payload() == "null");
}
