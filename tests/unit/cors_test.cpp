#include "gateway/cors.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "gateway/gateway_core.hpp"
#include "memory_transport.hpp"

// CORS and the Origin check through the gateway core on the in-memory transport: preflights on
// built-in and added routes, the headers of actual answers, upgrades and event streams with a
// good, bad or no Origin, and an empty list behaving as v1.

namespace {

using namespace gatehouse_test;

constexpr const char* page = "https://game.example";
constexpr const char* host = "127.0.0.1:8080";

std::string header(const http_response& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
        if (n == name) return v;
    }
    return {};
}

http_request request(std::string method, std::string path, const char* origin = nullptr) {
    http_request r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.headers.emplace_back("Host", host);
    if (origin) r.headers.emplace_back("Origin", origin);
    return r;
}

http_request preflight(std::string path, const char* origin, const char* method = "POST") {
    auto r = request("OPTIONS", std::move(path), origin);
    r.headers.emplace_back("Access-Control-Request-Method", method);
    return r;
}

struct cors_core {
    core_on<> f;
    explicit cors_core(std::vector<std::string> origins) : f(options(std::move(origins))) {
        f.core->add_route("POST", "/login", [](const http_request&, const http_responder& r) {
            r(http_response::json(200, "{}"));
        });
        f.core->add_route("GET", "/player/settings",
                          [](const http_request&, const http_responder& r) {
                              r(http_response::json(200, "{}"));
                          });
        f.core->add_route("PATCH", "/player/settings",
                          [](const http_request&, const http_responder& r) {
                              r(http_response::json(200, "{}"));
                          });
    }
    static gateway_options options(std::vector<std::string> origins) {
        auto o = test_options();
        o.allowed_origins = std::move(origins);
        return o;
    }
    http_response http(const http_request& r) {
        std::vector<http_response> got;
        f.core->handle_http(r, [&got](http_response answer) { got.push_back(std::move(answer)); });
        REQUIRE(got.size() == 1);
        return got[0];
    }
    upgrade_decision upgrade(std::string_view origin) {
        const std::string path = "/ws/player/" + test_token("alice");
        upgrade_request r;
        r.path = path;
        r.origin = origin;
        r.host = host;
        return f.core->authorize_upgrade(r);
    }
    upgrade_decision stream(const char* origin, bool with_token = true) {
        auto r = request("GET", "/sse/player", origin);
        if (with_token) r.headers.emplace_back("Authorization", "Bearer " + test_token("bob"));
        return f.core->authorize_event_stream(r);
    }
};

}  // namespace

TEST_CASE("cors: a preflight from an allowed origin answers 204 with the path's methods",
          "[cors]") {
    cors_core c({page});
    auto login = preflight("/login", page);
    login.headers.emplace_back("Access-Control-Request-Headers", "content-type, X-Client-Build");
    auto r = c.http(login);
    CHECK(r.status == 204);
    CHECK(r.body.empty());
    CHECK(header(r, "Access-Control-Allow-Origin") == page);
    CHECK(header(r, "Vary") == "Origin");
    CHECK(header(r, "Access-Control-Allow-Methods") == "POST");
    const auto allowed = header(r, "Access-Control-Allow-Headers");
    CHECK(allowed.find("Authorization") != std::string::npos);
    CHECK(allowed.find("Content-Type") != std::string::npos);
    CHECK(allowed.find("traceparent") != std::string::npos);
    CHECK(allowed.find("X-Client-Build") != std::string::npos);
    CHECK(header(r, "Access-Control-Max-Age") == "7200");
    CHECK(header(r, "Access-Control-Allow-Credentials").empty());

    CHECK(header(c.http(preflight("/player/settings", page, "PATCH")),
                 "Access-Control-Allow-Methods") == "GET, PATCH");
    CHECK(header(c.http(preflight("/commands", page)), "Access-Control-Allow-Methods") == "POST");
    CHECK(header(c.http(preflight("/sse/player", page, "GET")), "Access-Control-Allow-Methods") ==
          "GET");
    // A requested header list that is not a list of tokens is not echoed.
    auto odd = preflight("/login", page);
    odd.headers.emplace_back("Access-Control-Request-Headers", "x-a, b@d");
    CHECK(header(c.http(odd), "Access-Control-Allow-Headers").find("b@d") == std::string::npos);

    // A path the gateway does not serve, and WebSocket paths (never preflighted): 404.
    CHECK(c.http(preflight("/nope", page)).status == 404);
    CHECK(c.http(preflight("/ws/player", page, "GET")).status == 404);
}

TEST_CASE("cors: a preflight from another origin answers 403 without CORS headers", "[cors]") {
    cors_core c({page});
    const auto r = c.http(preflight("/login", "https://evil.example"));
    CHECK(r.status == 403);
    CHECK(r.body.find("\"origin_not_allowed\"") != std::string::npos);
    CHECK(header(r, "Access-Control-Allow-Origin").empty());
    CHECK(header(r, "Access-Control-Allow-Methods").empty());
    // OPTIONS that is not a preflight is routed as any other method: 405 with Allow.
    const auto plain = c.http(request("OPTIONS", "/login", page));
    CHECK(plain.status == 405);
    CHECK(header(plain, "Allow") == "POST");
}

TEST_CASE("cors: answers to an allowed origin carry Allow-Origin, Vary and Expose-Headers",
          "[cors]") {
    cors_core c({page});
    auto ok = c.http(request("POST", "/login", page));
    CHECK(ok.status == 200);
    CHECK(header(ok, "Access-Control-Allow-Origin") == page);
    CHECK(header(ok, "Vary") == "Origin");
    CHECK(header(ok, "Access-Control-Expose-Headers") == "Retry-After");
    // Errors too, so that a page can read why.
    auto missing = c.http(request("GET", "/nope", page));
    CHECK(missing.status == 404);
    CHECK(header(missing, "Access-Control-Allow-Origin") == page);
    // The gateway's own page (same IP address and port): allowed without an entry.
    auto own = c.http(request("GET", "/health", "http://127.0.0.1:8080"));
    CHECK(header(own, "Access-Control-Allow-Origin") == "http://127.0.0.1:8080");
    // Another origin and no origin: served (the browser withholds the answer), only Vary.
    for (const char* origin : {"https://evil.example", static_cast<const char*>(nullptr)}) {
        auto r = c.http(request("GET", "/health", origin));
        CHECK(r.status == 200);
        CHECK(header(r, "Access-Control-Allow-Origin").empty());
        CHECK(header(r, "Vary") == "Origin");
    }

    cors_core any({"*"});
    auto star = any.http(request("POST", "/login", "https://anyone.example"));
    CHECK(header(star, "Access-Control-Allow-Origin") == "*");
    CHECK(header(star, "Vary").empty());
    // The same headers without `Origin`: a cache may hand this answer to any page.
    const auto no_origin = any.http(request("GET", "/health"));
    CHECK(header(no_origin, "Access-Control-Allow-Origin") == "*");
    CHECK(header(no_origin, "Vary").empty());
    CHECK(any.http(preflight("/login", "https://anyone.example")).status == 204);
}

TEST_CASE("cors: upgrades and event streams check Origin when it is sent", "[cors]") {
    cors_core c({page});
    auto bad = c.upgrade("https://evil.example");
    CHECK_FALSE(bad.accepted);
    CHECK(bad.refusal.status == 403);
    CHECK(bad.refusal.content_type == "application/problem+json");
    CHECK(bad.refusal.body.find("\"origin_not_allowed\"") != std::string::npos);
    CHECK(c.f.core->metrics().render().find(
              "gatehouse_upgrades_refused_total{reason=\"origin_not_allowed\"} 1") !=
          std::string::npos);
    for (std::string_view origin :
         {std::string_view(page), std::string_view(), std::string_view("http://127.0.0.1:8080")}) {
        auto good = c.upgrade(origin);
        CHECK(good.accepted);
        if (good.handler) good.handler->on_close(1006);
    }
    CHECK(c.upgrade("http://127.0.0.1").refusal.status == 403);  // not the same port

    auto stream_bad = c.stream("https://evil.example");
    CHECK(stream_bad.refusal.status == 403);
    CHECK(header(stream_bad.refusal, "Access-Control-Allow-Origin").empty());
    auto stream_good = c.stream(page);
    REQUIRE(stream_good.accepted);
    CHECK(header(stream_good.refusal, "Access-Control-Allow-Origin").empty());
    std::string allow_origin;
    for (const auto& [n, v] : stream_good.headers) {
        if (n == "Access-Control-Allow-Origin") allow_origin = v;
    }
    CHECK(allow_origin == page);
    stream_good.handler->on_close(0);
    auto stream_none = c.stream(nullptr);
    REQUIRE(stream_none.accepted);
    stream_none.handler->on_close(0);
    // A refusal to an allowed page carries the headers, so that the page can read it.
    auto unauthorized = c.stream(page, false);
    CHECK(unauthorized.refusal.status == 401);
    CHECK(header(unauthorized.refusal, "Access-Control-Allow-Origin") == page);
}

TEST_CASE("cors: no allowed origins is v1: no headers, no preflight, no Origin check", "[cors]") {
    cors_core c({});
    const auto options = c.http(preflight("/login", "https://evil.example"));
    CHECK(options.status == 405);
    CHECK(header(options, "Allow") == "POST");
    CHECK(header(options, "Access-Control-Allow-Origin").empty());
    const auto login = c.http(request("POST", "/login", "https://evil.example"));
    CHECK(login.headers.empty());
    auto upgrade = c.upgrade("https://evil.example");
    CHECK(upgrade.accepted);
    if (upgrade.handler) upgrade.handler->on_close(1006);
    auto stream = c.stream("https://evil.example");
    REQUIRE(stream.accepted);
    CHECK(stream.headers.empty());
    stream.handler->on_close(0);
}

TEST_CASE("cors: the gateway refuses a bad allowed_origins entry at construction", "[cors]") {
    CHECK_THROWS_AS(core_on<>(cors_core::options({"https://ok.example", "ok.example"})),
                    std::invalid_argument);
}

TEST_CASE("cors: more than one Origin is never allowed", "[cors]") {
    for (const char* listed : {page, "*"}) {
        INFO(listed);
        cors_core c({listed});
        auto twice = [](http_request r) {
            r.headers.emplace_back("origin", page);
            return r;
        };
        auto pre = c.http(twice(preflight("/login", page)));
        CHECK(pre.status == 403);
        CHECK(pre.body.find("\"origin_not_allowed\"") != std::string::npos);
        auto stream = c.f.core->authorize_event_stream([&] {
            auto r = twice(request("GET", "/sse/player", page));
            r.headers.emplace_back("Authorization", "Bearer " + test_token("bob"));
            return r;
        }());
        CHECK_FALSE(stream.accepted);
        CHECK(stream.refusal.status == 403);
        const std::string path = "/ws/player/" + test_token("alice");
        upgrade_request up;
        up.path = path;
        up.origin = page;
        up.several_origins = true;
        up.host = host;
        auto upgrade = c.f.core->authorize_upgrade(up);
        CHECK_FALSE(upgrade.accepted);
        CHECK(upgrade.refusal.status == 403);
    }
    // An ordinary answer is served, without the origin echoed.
    cors_core c({page});
    auto r = c.http([] {
        auto req = request("GET", "/health", page);
        req.headers.emplace_back("Origin", page);
        return req;
    }());
    CHECK(r.status == 200);
    CHECK(header(r, "Access-Control-Allow-Origin").empty());
    CHECK(header(r, "Vary") == "Origin");
}

TEST_CASE(
    "cors: a route that answers CORS itself keeps its own headers; preflights never reach "
    "routes",
    "[cors]") {
    cors_core c({page});
    c.f.core->add_route("GET", "/own", [](const http_request&, const http_responder& r) {
        auto answer = http_response::json(200, "{}");
        answer.headers.emplace_back("access-control-allow-origin", "https://mine.example");
        r(std::move(answer));
    });
    bool options_route_called = false;
    c.f.core->add_route("OPTIONS", "/own",
                        [&options_route_called](const http_request&, const http_responder& r) {
                            options_route_called = true;
                            r(http_response::json(200, "{}"));
                        });
    const auto own = c.http(request("GET", "/own", page));
    CHECK(header(own, "access-control-allow-origin") == "https://mine.example");
    CHECK(header(own, "Access-Control-Allow-Origin").empty());
    CHECK(header(own, "Vary").empty());
    CHECK(c.http(preflight("/own", page, "GET")).status == 204);
    CHECK_FALSE(options_route_called);
    CHECK(c.http(request("OPTIONS", "/own", page)).status == 200);
    CHECK(options_route_called);
}
