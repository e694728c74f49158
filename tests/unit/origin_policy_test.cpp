#include "gateway/origin_policy.hpp"

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "gatehouse/gateway.hpp"

// Origins parsed and compared as RFC 6454 serializes them, the list checked at construction,
// and the implicit same-origin rule against the request's Host.

using gatehouse::detail::origin_policy;
using gatehouse::detail::parse_origin;

TEST_CASE("origin policy: origins parse as scheme://host[:port] and nothing else",
          "[origin_policy]") {
    const auto a = parse_origin("HTTPS://Game.Example");
    REQUIRE(a);
    CHECK(a->scheme == "https");
    CHECK(a->host == "game.example");
    CHECK(a->port == 443);
    CHECK(parse_origin("http://localhost")->port == 80);
    CHECK(parse_origin("http://127.0.0.1:8080")->port == 8080);
    CHECK(parse_origin("http://[::1]:3000")->host == "[::1]");
    CHECK(parse_origin("http://[::1]:3000")->port == 3000);
    CHECK(parse_origin("http://[::1]")->port == 80);
    CHECK(parse_origin("capacitor://localhost")->port == 0);  // no default port
    CHECK(parse_origin("http://xn--bcher-kva.example"));

    for (const char* bad : {"",
                            "null",
                            "*",
                            "game.example",
                            "https://",
                            "https://game.example/",
                            "https://game.example/path",
                            "https://user@game.example",
                            "https://game.example:",
                            "https://game.example:0",
                            "https://game.example:65536",
                            "https://game.example:8x",
                            "https://game.example?q",
                            "https://game example",
                            "https://b\u00fccher.example",
                            "1http://a",
                            "https://a https://b",
                            "https://[::1",
                            "https://[]",
                            "https://[::g]",
                            "https//game.example"}) {
        INFO(bad);
        CHECK_FALSE(parse_origin(bad));
    }
}

TEST_CASE("origin policy: entries are compared case-insensitively with default ports",
          "[origin_policy]") {
    const origin_policy policy({"https://Game.Example", "http://localhost:3000"});
    CHECK(policy.enabled());
    CHECK_FALSE(policy.any());
    const std::string host = "gateway.example:8080";
    CHECK(policy.allows("https://game.example", host));
    CHECK(policy.allows("https://GAME.example:443", host));
    CHECK(policy.allows("http://localhost:3000", host));
    CHECK_FALSE(policy.allows("http://game.example", host));        // another scheme
    CHECK_FALSE(policy.allows("https://game.example:8443", host));  // another port
    CHECK_FALSE(policy.allows("https://evil.game.example", host));  // no wildcard subdomains
    CHECK_FALSE(policy.allows("http://localhost", host));
    CHECK_FALSE(policy.allows("null", host));
    CHECK_FALSE(policy.allows("https://game.example https://evil.example", host));
}

TEST_CASE("origin policy: the request's own origin is allowed without an entry",
          "[origin_policy]") {
    const origin_policy policy({"https://game.example"});
    CHECK(policy.allows("http://127.0.0.1:8080", "127.0.0.1:8080"));
    CHECK(policy.allows("https://gw.example", "GW.example"));
    CHECK(policy.allows("https://gw.example", "gw.example:443"));
    CHECK(policy.allows("http://gw.example:80", "gw.example"));
    CHECK(policy.allows("http://[::1]:8080", "[::1]:8080"));
    CHECK_FALSE(policy.allows("http://127.0.0.1:8081", "127.0.0.1:8080"));
    CHECK_FALSE(policy.allows("http://gw.example", "gw.example:8080"));
    CHECK_FALSE(policy.allows("https://gw.example", "gw.example:80"));
    CHECK_FALSE(policy.allows("http://other.example:8080", "127.0.0.1:8080"));
    CHECK_FALSE(policy.allows("http://127.0.0.1:8080", ""));  // HTTP/1.0 without Host
    // Only http and https: another scheme's page is never the gateway's own.
    CHECK_FALSE(policy.allows("capacitor://localhost", "localhost"));
}

TEST_CASE("origin policy: * allows any origin; empty disables", "[origin_policy]") {
    const origin_policy any({"*"});
    CHECK(any.enabled());
    CHECK(any.any());
    CHECK(any.allows("https://anything.example", "gw"));
    CHECK(any.allows("null", "gw"));
    const origin_policy off({});
    CHECK_FALSE(off.enabled());
    CHECK(off.allows("https://anything.example", "gw"));
}

TEST_CASE("origin policy: a bad entry throws invalid_argument naming it", "[origin_policy]") {
    for (const std::string bad :
         {"game.example", "https://game.example/", "null", "", "https://*.game.example"}) {
        INFO(bad);
        try {
            const origin_policy policy({"https://ok.example", bad});
            FAIL("no exception");
        } catch (const std::invalid_argument& e) {
            const std::string what = e.what();
            CHECK(what.find("allowed_origins") != std::string::npos);
            CHECK(what.find("\"" + bad + "\"") != std::string::npos);
        }
        CHECK(gatehouse::check_allowed_origin(bad));  // the start-up check agrees
    }
    CHECK_FALSE(gatehouse::check_allowed_origin("*"));
    CHECK_FALSE(gatehouse::check_allowed_origin("https://game.example:8443"));
}
