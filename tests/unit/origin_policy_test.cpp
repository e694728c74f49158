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

TEST_CASE(
    "origin policy: the request's own origin is allowed without an entry at an IP "
    "address or localhost",
    "[origin_policy]") {
    const origin_policy policy({"https://game.example"});
    CHECK(policy.allows("http://127.0.0.1:8080", "127.0.0.1:8080"));
    CHECK(policy.allows("http://10.0.0.7", "10.0.0.7:80"));
    CHECK(policy.allows("https://192.168.1.2", "192.168.1.2"));
    CHECK(policy.allows("http://[::1]:8080", "[::1]:8080"));
    CHECK(policy.allows("http://localhost:8080", "LOCALHOST:8080"));
    CHECK_FALSE(policy.allows("http://127.0.0.1:8081", "127.0.0.1:8080"));
    CHECK_FALSE(policy.allows("http://localhost", "localhost:8080"));
    CHECK_FALSE(policy.allows("https://127.0.0.1", "127.0.0.1:80"));
    CHECK_FALSE(policy.allows("http://other.example:8080", "127.0.0.1:8080"));
    CHECK_FALSE(policy.allows("http://127.0.0.1:8080", ""));  // HTTP/1.0 without Host
    // Only http and https: another scheme's page is never the gateway's own.
    CHECK_FALSE(policy.allows("capacitor://localhost", "localhost"));
}

TEST_CASE("origin policy: a named host's own origin must be listed (DNS rebinding)",
          "[origin_policy]") {
    // A page on rebind.evil whose name is made to resolve to the gateway sends its own name as
    // Host and Origin: matching them proves nothing about who served the page.
    const origin_policy policy({"https://game.example"});
    CHECK_FALSE(policy.allows("http://rebind.evil:8080", "rebind.evil:8080"));
    CHECK_FALSE(policy.allows("https://gw.example", "gw.example"));
    CHECK_FALSE(policy.allows("http://1.2.3.4.evil:80", "1.2.3.4.evil"));
    CHECK_FALSE(policy.allows("http://1.2.3:80", "1.2.3"));
    CHECK_FALSE(policy.allows("http://1.2.3.256:80", "1.2.3.256"));
    CHECK_FALSE(policy.allows("http://localhost.evil:80", "localhost.evil"));
    // Listed, it is allowed as any other origin.
    const origin_policy listed({"https://gw.example", "http://gw.example:8080"});
    CHECK(listed.allows("https://gw.example", "gw.example"));
    CHECK(listed.allows("http://gw.example:8080", "gw.example:8080"));
    CHECK_FALSE(listed.allows("http://gw.example:8081", "gw.example:8081"));
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
