#include "gatehouse/client/codec.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "gatehouse/builtin_codecs.hpp"

// docs/protocol.md section 3: an error frame carries `correlation_id` "if known". These tests pin
// down when a failed decode knows it: the frame was read and held exactly one valid id.

namespace gc = gatehouse::client;
using gc::status;
using gc::wire_format;

namespace {

struct failing_frame {
    wire_format format;
    std::string frame;
    status expected;
    std::string correlation_id;  // what the failed decode must report ("" = unknown)
};

std::string mp_str(const std::string& s) {
    return std::string(1, static_cast<char>(0xa0 | s.size())) + s;
}

std::string pb_field(int field, const std::string& bytes) {
    return std::string(1, static_cast<char>(field << 3 | 2)) +
           std::string(1, static_cast<char>(bytes.size())) + bytes;
}

}  // namespace

TEST_CASE("failed decodes name the correlation id exactly when it is known", "[errors]") {
    const std::string type = mp_str("type"), corr = mp_str("correlation_id");
    const std::vector<failing_frame> cases = {
        // JSON
        {wire_format::json, R"({"type":5,"correlation_id":"c1"})", status::invalid_type, "c1"},
        {wire_format::json, R"({"correlation_id":"c1","payload":{}})", status::missing_type, "c1"},
        {wire_format::json, R"({"type":"t","type":"u","correlation_id":"c1"})",
         status::duplicate_field, "c1"},
        {wire_format::json, R"({"type":"t","correlation_id":"a","correlation_id":"b"})",
         status::duplicate_field, ""},
        {wire_format::json, R"({"type":"t","correlation_id":""})", status::invalid_correlation_id,
         ""},
        {wire_format::json, R"({"type":"t","correlation_id":7})", status::invalid_correlation_id,
         ""},
        {wire_format::json, R"([{"correlation_id":"c1"}])", status::not_a_map, ""},
        {wire_format::json, R"({"type":5,"correlation_id":"c1","x":[1,]})", status::syntax_error,
         ""},
        {wire_format::json, R"({"type":"t","correlation_id":"c1"} x)", status::trailing_bytes, ""},
        // MessagePack
        {wire_format::msgpack, "\x82" + type + "\x05" + corr + mp_str("c1"), status::invalid_type,
         "c1"},
        {wire_format::msgpack, "\x81" + corr + mp_str("c1"), status::missing_type, "c1"},
        {wire_format::msgpack,
         "\x83" + type + mp_str("t") + corr + mp_str("a") + corr + mp_str("b"),
         status::duplicate_field, ""},
        {wire_format::msgpack, "\x82" + type + mp_str("t") + corr + "\x07",
         status::invalid_correlation_id, ""},
        {wire_format::msgpack, "\x82" + corr + mp_str("c1") + type, status::truncated, ""},
        // Protobuf
        {wire_format::protobuf, pb_field(1, "bad type") + pb_field(3, "c1"), status::invalid_type,
         "c1"},
        {wire_format::protobuf, pb_field(3, "c1"), status::missing_type, "c1"},
        {wire_format::protobuf,
         pb_field(1, "t") + pb_field(2, "{x") + pb_field(3, "c1") + pb_field(4, "json"),
         status::invalid_payload, "c1"},
        {wire_format::protobuf, pb_field(1, "t") + pb_field(3, ""), status::invalid_correlation_id,
         ""},
        {wire_format::protobuf,
         pb_field(3, "c1") + "\x0a\x05"
                             "ab",
         status::truncated, ""},
    };
    for (const auto& c : cases) {
        INFO(gc::name_of(c.format) << " frame of " << c.frame.size() << " bytes");
        // A reused envelope that held another id must not leak it into the error.
        gc::envelope e;
        REQUIRE(e.set_correlation_id("stale") == status::ok);
        CHECK(gc::decode(c.format, c.frame, e) == c.expected);
        CHECK(e.correlation_id() == c.correlation_id);
    }
}

TEST_CASE("the library codec reports the known correlation id with the error", "[errors]") {
    const auto json = gatehouse::make_json_codec();
    gatehouse::envelope e;
    e.correlation_id = "stale";
    const auto ec = json->decode(R"({"type":"no spaces allowed","correlation_id":"c-9"})", e);
    CHECK(ec == status::invalid_type);
    CHECK(e.correlation_id == "c-9");
    CHECK(json->decode(R"({"type":"t","correlation_id":"c-9")", e) == status::truncated);
    CHECK(e.correlation_id.empty());
}
