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
    CHECK(redact_target("/ws") == "/ws");
    CHECK(redact_target("/ws/") == "/ws/");
    CHECK(redact_target("/ws/bot") == "/ws/bot");
}

TEST_CASE("redact: every spelling of a WebSocket path loses what follows it", "[redact]") {
    using gatehouse::redact_target;
    // Only `player` or `bot` right after the `ws` segment survive; the rest goes.
    CHECK(redact_target("/ws//player/abc") == "/ws/[redacted]");
    CHECK(redact_target("/ws/players/abc") == "/ws/[redacted]");
    CHECK(redact_target("/ws/botany") == "/ws/[redacted]");
    CHECK(redact_target("/ws/player%2Fabc") == "/ws/[redacted]");
    CHECK(redact_target("/ws/./player/abc") == "/ws/[redacted]");
    CHECK(redact_target("/ws/player//abc") == "/ws/player/[redacted]");
    CHECK(redact_target("/ws/%70layer/abc") == "/ws/%70layer/[redacted]");
    CHECK(redact_target("/ws/abc") == "/ws/[redacted]");
    // The `ws` segment in other spellings.
    CHECK(redact_target("/%77s/player/abc") == "/%77s/player/[redacted]");
    CHECK(redact_target("/%2577s/bot/abc") == "/%2577s/bot/[redacted]");
    CHECK(redact_target("/wss/bot/abc") == "/wss/bot/[redacted]");
    CHECK(redact_target("/ws./bot/abc") == "/ws./bot/[redacted]");
    CHECK(redact_target("/ws-bot/abc") == "/ws-bot/[redacted]");
    // A route inside one segment, through encoded separators (once or twice) or backslashes.
    CHECK(redact_target("/ws%2Fplayer%2Fabc") == "/[redacted]");
    CHECK(redact_target("/ws%252Fbot%252Fabc") == "/[redacted]");
    CHECK(redact_target("/ws\\player\\abc") == "/[redacted]");
    CHECK(redact_target("/%2Fws%2Fbot%2Fabc") == "/[redacted]");
    // Encodings that do not settle within a few rounds are nobody's honest spelling.
    CHECK(redact_target("/x/%2525252525252541/y") == "/x/[redacted]");
}

TEST_CASE("redact: credential-like segments anywhere", "[redact]") {
    using gatehouse::redact_target;
    const std::string jwt =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
    CHECK(redact_target("/sse/player/" + jwt) == "/sse/player/[redacted]");
    CHECK(redact_target("/player/" + jwt + "/settings") == "/player/[redacted]/settings");
    CHECK(redact_target("/x/eyJhb") == "/x/[redacted]");
    CHECK(redact_target("/x/%65yJhb") == "/x/[redacted]");
    // 43 base64url characters: a refresh token's shape, with or without digits.
    CHECK(redact_target("/r/Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYm") == "/r/[redacted]");
    CHECK(redact_target("/r/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ") == "/r/[redacted]");
    CHECK(redact_target("/r/botkey-0123456789abcdef") == "/r/[redacted]");
    // Route words are not credentials.
    CHECK(redact_target("/player/settings") == "/player/settings");
    CHECK(redact_target("/token/refresh") == "/token/refresh");
    CHECK(redact_target("/a/very-long-route-name") == "/a/very-long-route-name");
}

TEST_CASE("redact: secret query parameters", "[redact]") {
    using gatehouse::redact_target;
    CHECK(redact_target("/sse/player?token=abc.def.ghi") == "/sse/player?token=[redacted]");
    CHECK(redact_target("/sse/player?codec=json&token=abc&x=1") ==
          "/sse/player?codec=json&token=[redacted]&x=[redacted]");
    CHECK(redact_target("/x?access_token=abc") == "/x?access_token=[redacted]");
    CHECK(redact_target("/x?key=abc&key=def") == "/x?key=[redacted]&key=[redacted]");
    CHECK(redact_target("/x?TOKEN=abc") == "/x?TOKEN=[redacted]");
    CHECK(redact_target("/x?to%6Ben=abc") == "/x?to%6Ben=[redacted]");
    CHECK(redact_target("/x?token=a=b&c=d") == "/x?token=[redacted]&c=[redacted]");
    CHECK(redact_target("/x?a=1&&token=abc&") == "/x?a=[redacted]&&token=[redacted]&");
    // Every name but the allowed ones, whatever it is called; only non-empty values.
    CHECK(redact_target("/x?tokens=abc&mytoken=def&keyring=g") ==
          "/x?tokens=[redacted]&mytoken=[redacted]&keyring=[redacted]");
    CHECK(redact_target("/x?jwt=abc&refresh_token=def&password=ghi") ==
          "/x?jwt=[redacted]&refresh_token=[redacted]&password=[redacted]");
    CHECK(redact_target("/x?token=&key") == "/x?token=&[redacted]");
    CHECK(redact_target("/x?codec=json") == "/x?codec=json");
    CHECK(redact_target("/x?CODEC=msgpack&resume=1795418988026-0") ==
          "/x?CODEC=msgpack&resume=1795418988026-0");
    CHECK(redact_target("/x?codec&resume") == "/x?codec&resume");
    // Allowed names keep only short plain words.
    CHECK(redact_target("/x?codec=json%26token%3Dabc") == "/x?codec=[redacted]");
    CHECK(redact_target("/x?codec=eyJhbGciOi") == "/x?codec=[redacted]");
    CHECK(redact_target("/x?resume=a+b") == "/x?resume=[redacted]");
    // A bare parameter, and a name that is itself a credential.
    CHECK(redact_target("/x?eyJhbGciOi.eyJzdWIi.c2ln") == "/x?[redacted]");
    CHECK(redact_target("/x?s3cret") == "/x?[redacted]");
    CHECK(redact_target("/x?eyJhbGciOi=1") == "/x?[redacted]=[redacted]");
    // Both at once.
    CHECK(redact_target("/ws/player/abc?token=def&codec=json") ==
          "/ws/player/[redacted]?token=[redacted]&codec=json");
}

TEST_CASE("redact: everything else is kept verbatim", "[redact]") {
    using gatehouse::redact_target;
    for (const char* target : {"", "/", "/login", "/health?", "?", "/a%20b", "/player/settings",
                               "/player/settings?codec=json", "*", "/ws/player?codec=json"}) {
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
        {"/ws//player/SECRET", "SECRET"},
        {"/ws/player%2FSECRET", "SECRET"},
        {"/ws/players/SECRET", "SECRET"},
        {"/WS/BOT/SECRET", "SECRET"},
        {"/x?jwt=SECRET", "SECRET"},
        {"/x?refresh_token=SECRET", "SECRET"},
        {"/x?password=SECRET", "SECRET"},
        {"/x?SECRET", "SECRET"},
        {"/x?codec=SECRET%00", "SECRET"},
    };
    for (const auto& c : cases) {
        INFO(c.first);
        const auto out = gatehouse::redact_target(c.first);
        CHECK(out.find(c.second) == std::string::npos);
        CHECK(out.find("[redacted]") != std::string::npos);
    }
}
