#include "gatehouse/log.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

// Access and audit records as text lines: key=value pairs in which a value a client chose
// cannot start a line or a field of its own.

TEST_CASE("log lines: an access record as key=value pairs", "[log]") {
    gatehouse::access_record r;
    r.method = "GET";
    r.target = "/health";
    r.route = "/health";
    r.status = 200;
    r.duration = std::chrono::microseconds(1042);
    r.bytes_sent = 15;
    r.client_address = "127.0.0.1";
    CHECK(gatehouse::access_line(r) ==
          "access type=http method=GET target=/health route=/health status=200 duration_ms=1.042 "
          "bytes_received=0 bytes_sent=15 client_address=127.0.0.1");

    r.what = gatehouse::access_record::kind::websocket;
    r.target = "/ws/player/[redacted]?codec=json";
    r.route = "/ws/player";
    r.status = 101;
    r.close_code = 1000;
    r.duration = std::chrono::microseconds(2000000);
    r.player_id = "p_1";
    CHECK(gatehouse::access_line(r) ==
          "access type=websocket method=GET target=\"/ws/player/[redacted]?codec=json\" "
          "route=/ws/player status=101 close_code=1000 duration_ms=2000.000 bytes_received=0 "
          "bytes_sent=15 client_address=127.0.0.1 player_id=p_1");
    CHECK(gatehouse::to_string(gatehouse::access_record::kind::event_stream) == "event_stream");
}

TEST_CASE("log lines: client-chosen values are quoted and escaped", "[log]") {
    gatehouse::audit_record a;
    a.event = "login_failed";
    a.username = "eve\n2026-01-01T00:00:00.000Z warning audit event=forged \"x\" \xC3\xA9";
    a.client_address = "::1";
    const auto line = gatehouse::audit_line(a);
    CHECK(line ==
          "audit event=login_failed username=\"eve\\n2026-01-01T00:00:00.000Z warning audit "
          "event=forged \\\"x\\\" \\u00e9\" client_address=::1");
    CHECK(line.find('\n') == std::string::npos);
    a.username = "tab\there";
    CHECK(gatehouse::audit_line(a).find("username=\"tab\\there\"") != std::string::npos);
}

TEST_CASE("log lines: one JSON escaper, per code point, never per byte", "[log]") {
    const auto escaped = [](std::string_view value, gatehouse::json_escape mode) {
        std::string out;
        gatehouse::append_json_string(out, value, mode);
        return out;
    };
    using gatehouse::json_escape;
    // é, €, 😀 (past U+FFFF), then a stray continuation byte and a cut-off sequence.
    const std::string_view value = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80|\x80|\xE2\x82";
    CHECK(escaped(value, json_escape::utf8) ==
          "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80|\xEF\xBF\xBD|\xEF\xBF\xBD\"");
    CHECK(escaped(value, json_escape::ascii) == "\"\\u00e9\\u20ac\\ud83d\\ude00|\\ufffd|\\ufffd\"");
    CHECK(escaped("a\"b\\c\x01\x7F", json_escape::ascii) == "\"a\\\"b\\\\c\\u0001\\u007f\"");
}
