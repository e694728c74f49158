#include "gatehouse/log.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

TEST_CASE("redact: the credential in a WebSocket path", "[redact]") {
    using gatehouse::redact_target;
    CHECK(redact_target("/ws/player/abc.def.ghi?codec=json") == "/ws/player/[redacted]?codec=json");
    CHECK(redact_target("/ws/player/abc.def.ghi") == "/ws/player/[redacted]");
    CHECK(redact_target("/ws/bot/s3cret-key") == "/ws/bot/[redacted]");
    CHECK(redact_target("/ws/bot/s3cret-key?codec=msgpack") == "/ws/bot/[redacted]?codec=msgpack");
    // Everything after the prefix goes, not only the first segment.
    CHECK(redact_target("/ws/player/abc/def") == "/ws/player/[redacted]");
    // Matched anywhere and in any case: a 404 for these still carries the secret.
    CHECK(redact_target("/WS/Player/abc") == "/WS/Player/[redacted]");
    CHECK(redact_target("/api/ws/bot/key") == "/api/ws/bot/[redacted]");
    CHECK(redact_target("//ws/player/abc") == "//ws/player/[redacted]");
    // Nothing to hide.
    CHECK(redact_target("/ws/player") == "/ws/player");
    CHECK(redact_target("/ws/player/") == "/ws/player/");
    CHECK(redact_target("/ws/player/?codec=json") == "/ws/player/?codec=json");
    CHECK(redact_target("/ws/players/abc") == "/ws/players/abc");
    CHECK(redact_target("/ws/botany") == "/ws/botany");
}

TEST_CASE("redact: secret query parameters", "[redact]") {
    using gatehouse::redact_target;
    CHECK(redact_target("/sse/player?token=abc.def.ghi") == "/sse/player?token=[redacted]");
    CHECK(redact_target("/sse/player?codec=json&token=abc&x=1") ==
          "/sse/player?codec=json&token=[redacted]&x=1");
    CHECK(redact_target("/x?access_token=abc") == "/x?access_token=[redacted]");
    CHECK(redact_target("/x?key=abc&key=def") == "/x?key=[redacted]&key=[redacted]");
    CHECK(redact_target("/x?TOKEN=abc") == "/x?TOKEN=[redacted]");
    CHECK(redact_target("/x?to%6Ben=abc") == "/x?to%6Ben=[redacted]");
    CHECK(redact_target("/x?token=a=b&c=d") == "/x?token=[redacted]&c=d");
    CHECK(redact_target("/x?a=1&&token=abc&") == "/x?a=1&&token=[redacted]&");
    // Only those names, and only non-empty values.
    CHECK(redact_target("/x?tokens=abc&mytoken=def&keyring=g") ==
          "/x?tokens=abc&mytoken=def&keyring=g");
    CHECK(redact_target("/x?token=&key") == "/x?token=&key");
    CHECK(redact_target("/x?codec=json") == "/x?codec=json");
    // Both at once.
    CHECK(redact_target("/ws/player/abc?token=def&codec=json") ==
          "/ws/player/[redacted]?token=[redacted]&codec=json");
}

TEST_CASE("redact: everything else is kept verbatim", "[redact]") {
    using gatehouse::redact_target;
    for (const char* target : {"", "/", "/login", "/health?", "/metrics?x", "?", "/a%20b?c=d%20e",
                               "/player/settings?x=1&y=2", "*"}) {
        INFO(target);
        CHECK(redact_target(target) == target);
    }
}

TEST_CASE("redact: no secret survives", "[redact]") {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"/ws/player/SECRET", "SECRET"},
        {"/ws/bot/SECRET?codec=json", "SECRET"},
        {"/ws/player/a.b.c?token=SECRET", "SECRET"},
        {"/sse/player?x=1&access_token=SECRET", "SECRET"},
        {"/x?Key=SECRET", "SECRET"},
        {"/x?%74oken=SECRET", "SECRET"},
    };
    for (const auto& c : cases) {
        INFO(c.first);
        const auto out = gatehouse::redact_target(c.first);
        CHECK(out.find(c.second) == std::string::npos);
        CHECK(out.find("[redacted]") != std::string::npos);
    }
}
