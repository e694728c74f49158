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
          "event=forged \\\"x\\\" \\u00c3\\u00a9\" client_address=::1");
    CHECK(line.find('\n') == std::string::npos);
    a.username = "tab\there";
    CHECK(gatehouse::audit_line(a).find("username=\"tab\\there\"") != std::string::npos);
}
