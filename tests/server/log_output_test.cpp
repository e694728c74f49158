// The reference server's log output (server/log_output.hpp): JSON strings that always parse,
// UTC timestamps, and the members of access and audit lines.
#include "log_output.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

namespace {

std::string escaped(std::string_view value) {
    std::string out;
    gatehouse_server::append_json_string(out, value);
    return out;
}

// What a JSON parser reads back from the escaped text.
std::string round_trip(std::string_view value) {
    return nlohmann::json::parse(escaped(value)).get<std::string>();
}

}  // namespace

TEST_CASE("log output: JSON strings escape quotes, backslashes and control characters",
          "[log_output]") {
    CHECK(escaped("plain text") == "\"plain text\"");
    CHECK(escaped("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(escaped("line\nnext\r\ttab") == "\"line\\nnext\\r\\ttab\"");
    CHECK(escaped(std::string_view("\0\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\\u007f\"");
    // A forged second line stays inside the one string.
    const std::string forged = "x\"}\n{\"level\":\"error\",\"msg\":\"forged";
    CHECK(round_trip(forged) == forged);
    CHECK(escaped(forged).find('\n') == std::string::npos);
}

TEST_CASE("log output: valid UTF-8 passes, invalid UTF-8 becomes U+FFFD", "[log_output]") {
    const std::string fffd = "\xEF\xBF\xBD";
    // Two, three and four bytes, at the edges of their ranges.
    for (const std::string valid :
         {"\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80", "\xEF\xBF\xBF",
          "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", "caf\xC3\xA9"}) {
        CHECK(escaped(valid) == "\"" + valid + "\"");
    }
    // A stray continuation byte, bytes that never start a sequence, an overlong encoding, a
    // surrogate, past U+10FFFF, a sequence cut off by the end or by another character.
    CHECK(escaped("\x80") == "\"" + fffd + "\"");
    CHECK(escaped("\xC0\xAF") == "\"" + fffd + fffd + "\"");
    CHECK(escaped("\xFF") == "\"" + fffd + "\"");
    CHECK(escaped("\xE0\x80\x80") == "\"" + fffd + fffd + fffd + "\"");
    CHECK(escaped("\xED\xA0\x80") == "\"" + fffd + fffd + fffd + "\"");
    CHECK(escaped("\xF4\x90\x80\x80") == "\"" + fffd + fffd + fffd + fffd + "\"");
    CHECK(escaped("ab\xE2\x82") == "\"ab" + fffd + "\"");
    CHECK(escaped("\xE2\x82x") == "\"" + fffd + "x\"");
    // Whatever the bytes, the result parses as JSON.
    std::string every;
    for (int i = 0; i < 256; ++i) every += static_cast<char>(i);
    CHECK_NOTHROW(round_trip(every));
    CHECK_NOTHROW(round_trip(every + "\xF0\x9F"));
}

TEST_CASE("log output: UTC timestamps with milliseconds and Z", "[log_output]") {
    std::string out;
    // 2026-12-07T04:40:00.123Z
    const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796618400123));
    gatehouse_server::append_utc_timestamp(out, at);
    CHECK(out == "2026-12-07T04:40:00.123Z");
    out.clear();
    gatehouse_server::append_utc_timestamp(out, std::chrono::system_clock::time_point{});
    CHECK(out == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("log output: access and audit members", "[log_output]") {
    gatehouse::access_record r;
    r.what = gatehouse::access_record::kind::websocket;
    r.method = "GET";
    r.target = "/ws/player/[redacted]?codec=json";
    r.route = "/ws/player";
    r.status = 101;
    r.close_code = 1000;
    r.duration = std::chrono::microseconds(1234567);
    r.bytes_received = 10;
    r.bytes_sent = 20;
    r.client_address = "203.0.113.7";
    r.player_id = "p_1";
    const auto access = nlohmann::json::parse("{" + gatehouse_server::access_json_members(r) + "}");
    CHECK(access["kind"] == "access");
    CHECK(access["type"] == "websocket");
    CHECK(access["route"] == "/ws/player");
    CHECK(access["status"] == 101);
    CHECK(access["close_code"] == 1000);
    CHECK(access["duration_ms"].get<double>() == Approx(1234.567));
    CHECK(access["bytes_received"] == 10);
    CHECK(access["bytes_sent"] == 20);
    CHECK(access["client_address"] == "203.0.113.7");
    CHECK(access["player_id"] == "p_1");
    CHECK(access["msg"] == "websocket /ws/player/[redacted]?codec=json closed 1000");

    gatehouse::audit_record a;
    a.event = "login_failed";
    a.username = "al\nice\xFF";
    a.client_address = "127.0.0.1";
    const auto audit = nlohmann::json::parse("{" + gatehouse_server::audit_json_members(a) + "}");
    CHECK(audit["kind"] == "audit");
    CHECK(audit["event"] == "login_failed");
    CHECK(audit["username"] == "al\nice\xEF\xBF\xBD");
    CHECK_FALSE(audit.contains("player_id"));
}
