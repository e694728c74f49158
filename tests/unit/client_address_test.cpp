#include "transport/client_address.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "gatehouse/gateway.hpp"

// docs/protocol.md 6.2: X-Forwarded-For is believed only from trusted peers, and read from the
// right.

using gatehouse::detail::trusted_proxies;

namespace {

trusted_proxies make(const std::vector<std::string>& cidrs) {
    trusted_proxies p;
    std::string bad;
    REQUIRE_FALSE(p.parse(cidrs, bad));
    return p;
}

}  // namespace

TEST_CASE("client address: no trusted proxies means the peer, header ignored", "[client_address]") {
    const auto p = make({});
    CHECK(p.client_address("127.0.0.1", {"203.0.113.9"}) == "127.0.0.1");
}

TEST_CASE("client address: rightmost untrusted entry from a trusted peer", "[client_address]") {
    const auto p = make({"10.0.0.0/8", "192.168.1.1", "fd00::/8"});
    CHECK(p.client_address("10.1.2.3", {"198.51.100.1, 203.0.113.5"}) == "203.0.113.5");
    CHECK(p.client_address("10.1.2.3", {"198.51.100.1, 203.0.113.5, 10.4.4.4"}) == "203.0.113.5");
    // Several header fields form one list, in order.
    CHECK(p.client_address("10.1.2.3", {"198.51.100.1", "203.0.113.6", "192.168.1.1"}) ==
          "203.0.113.6");
    // An untrusted peer's header is never read.
    CHECK(p.client_address("203.0.113.77", {"10.0.0.1"}) == "203.0.113.77");
    // All trusted: the leftmost.
    CHECK(p.client_address("10.1.2.3", {"10.9.9.9, 192.168.1.1"}) == "10.9.9.9");
    // No header at all: the peer.
    CHECK(p.client_address("10.1.2.3", {}) == "10.1.2.3");
    // IPv6, bracketed or not.
    CHECK(p.client_address("fd00::1", {"[2001:db8::5]"}) == "2001:db8::5");
    CHECK(p.client_address("fd00::1", {"2001:db8::6, fd12::1"}) == "2001:db8::6");
    // Garbage where the proxy should have written an address: the last trusted hop.
    CHECK(p.client_address("10.1.2.3", {"not-an-address"}) == "10.1.2.3");
    CHECK(p.client_address("10.1.2.3", {"junk, 10.5.5.5"}) == "10.5.5.5");
}

TEST_CASE("client address: prefixes are matched bit by bit", "[client_address]") {
    const auto p = make({"172.16.0.0/12", "2001:db8:80::/41"});
    CHECK(p.client_address("172.31.255.255", {"1.1.1.1"}) == "1.1.1.1");
    CHECK(p.client_address("172.32.0.0", {"1.1.1.1"}) == "172.32.0.0");
    CHECK(p.client_address("2001:db8:ff::1", {"1.1.1.1"}) == "1.1.1.1");
    CHECK(p.client_address("2001:db8:7f::1", {"1.1.1.1"}) == "2001:db8:7f::1");
}

TEST_CASE("client address: bad entries are refused by name", "[client_address]") {
    for (const std::string bad :
         {"10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/", "x", "1.2.3.4/8a"}) {
        trusted_proxies p;
        std::string named;
        CHECK(p.parse({"127.0.0.1", bad}, named));
        CHECK(named == bad);
        CHECK(gatehouse::check_trusted_proxy(bad));  // the start-up check agrees
    }
    for (const char* good : {"10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"}) {
        CHECK_FALSE(gatehouse::check_trusted_proxy(good));
    }
}
