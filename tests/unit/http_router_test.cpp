#include "gateway/http_router.hpp"

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "memory_transport.hpp"

// The route table: exact paths, 404, 405 with Allow, prefix routes, a throwing handler, and
// the gateway's built-in routes registered in it like an embedder's.

namespace {

using namespace gatehouse_test;

struct answer {
    std::vector<http_response> got;
    http_responder responder() {
        return [this](http_response r) { got.push_back(std::move(r)); };
    }
};

http_request request(std::string method, std::string path) {
    http_request r;
    r.method = std::move(method);
    r.path = std::move(path);
    return r;
}

std::string header(const http_response& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
        if (n == name) return v;
    }
    return {};
}

}  // namespace

TEST_CASE("http router: exact routes, 404, 405 with Allow, prefixes and exceptions",
          "[http_router]") {
    std::vector<std::string> logged;
    http_router router([&logged](log_level, std::string_view m) { logged.emplace_back(m); });
    router.add("GET", "/a", [](const http_request&, const http_responder& respond) {
        respond(http_response::json(200, "{\"a\":1}"));
    });
    router.add("PUT", "/a", [](const http_request&, const http_responder& respond) {
        respond(http_response::json(201, "{}"));
    });
    router.add("GET", "/boom", [](const http_request&, const http_responder&) {
        throw std::runtime_error("route bug");
    });
    router.add_prefix("/p/", [](const http_request&, const http_responder& respond) {
        respond(http_response::json(299, "{}"));
    });
    answer a;
    router.handle(request("GET", "/a"), a.responder());
    router.handle(request("PUT", "/a"), a.responder());
    router.handle(request("DELETE", "/a"), a.responder());
    router.handle(request("GET", "/nope"), a.responder());
    router.handle(request("POST", "/p/anything"), a.responder());
    router.handle(request("GET", "/boom"), a.responder());
    REQUIRE(a.got.size() == 6);
    CHECK(a.got[0].status == 200);
    CHECK(a.got[1].status == 201);
    CHECK(a.got[2].status == 405);
    CHECK(header(a.got[2], "Allow") == "GET, PUT");
    CHECK(a.got[3].status == 404);
    CHECK(a.got[3].content_type == "application/problem+json");
    CHECK(a.got[4].status == 299);
    CHECK(a.got[5].status == 500);
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].find("threw") != std::string::npos);
    // What a CORS preflight lists: exact paths only.
    CHECK(router.methods("/a") == "GET, PUT");
    CHECK(router.methods("/nope").empty());
    CHECK(router.methods("/p/anything").empty());
    // The patterns the access log names: the path of a route (whatever the method), the
    // prefix, or `other`.
    CHECK(router.route_of(request("GET", "/a")) == "/a");
    CHECK(router.route_of(request("DELETE", "/a")) == "/a");
    CHECK(router.route_of(request("POST", "/p/anything")) == "/p/");
    CHECK(router.route_of(request("GET", "/nope")) == "other");
}

TEST_CASE("http router: a built-in route stays in place; other methods may be added",
          "[http_router]") {
    http_router router({});
    router.add_builtin("GET", "/health", [](const http_request&, const http_responder& respond) {
        respond(http_response::json(200, "{\"builtin\":true}"));
    });
    router.add("GET", "/health", [](const http_request&, const http_responder& respond) {
        respond(http_response::json(200, "{\"mine\":true}"));
    });
    router.add("POST", "/health", [](const http_request&, const http_responder& respond) {
        respond(http_response::json(202, "{}"));
    });
    answer a;
    router.handle(request("GET", "/health"), a.responder());
    router.handle(request("POST", "/health"), a.responder());
    router.handle(request("PUT", "/health"), a.responder());
    CHECK(a.got[0].body == "{\"builtin\":true}");
    CHECK(a.got[1].status == 202);
    CHECK(header(a.got[2], "Allow") == "GET, POST");
}

TEST_CASE("http router: a default route gives way to an embedder's", "[http_router]") {
    http_router router({});
    router.add_default("GET", "/doc", [](const http_request&, const http_responder& respond) {
        respond(http_response::json(200, "{\"default\":true}"));
    });
    answer a;
    router.handle(request("GET", "/doc"), a.responder());
    CHECK(a.got.back().body == "{\"default\":true}");
    REQUIRE(router.routes().size() == 1);
    CHECK(router.routes()[0].builtin);
    router.add("GET", "/doc", [](const http_request&, const http_responder& respond) {
        respond(http_response::json(200, "{\"mine\":true}"));
    });
    router.handle(request("GET", "/doc"), a.responder());
    CHECK(a.got.back().body == "{\"mine\":true}");
    REQUIRE(router.routes().size() == 1);
    CHECK_FALSE(router.routes()[0].builtin);
}

TEST_CASE("http router: an embedder's GET /openapi.json replaces the gateway's",
          "[http_router][openapi]") {
    core_on<manual_bus> f;
    f.core->add_route("GET", "/openapi.json", [](const http_request&, const http_responder& r) {
        r(http_response::json(200, "{\"openapi\":\"mine\"}"));
    });
    f.core->routes_complete();
    answer a;
    f.core->handle_http(request("GET", "/openapi.json"), a.responder());
    CHECK(a.got.back().body == "{\"openapi\":\"mine\"}");
    for (const auto& route : f.core->routes()) {
        if (route.path == "/openapi.json") CHECK_FALSE(route.builtin);
    }
}

TEST_CASE("http router: the gateway's built-in routes", "[http_router]") {
    core_on<manual_bus> f;
    answer a;
    const auto get = [&](std::string method, std::string path) {
        f.core->handle_http(request(std::move(method), std::move(path)), a.responder());
        return a.got.back();
    };
    CHECK(get("GET", "/health").body == R"({"status":"ok"})");
    CHECK(get("POST", "/health").status == 405);
    CHECK(get("GET", "/ready").status == 200);
    f.bus->up = false;
    const auto not_ready = get("GET", "/ready");
    CHECK(not_ready.status == 503);
    CHECK(not_ready.body.find("the bus is not connected") != std::string::npos);
    f.bus->up = true;
    CHECK(get("GET", "/metrics").body.find("gatehouse_connections") != std::string::npos);
    const auto ws = get("GET", "/ws/player");
    CHECK(ws.status == 426);
    CHECK(header(ws, "Upgrade") == "websocket");
    const auto commands = get("GET", "/commands");
    CHECK(commands.status == 405);
    CHECK(header(commands, "Allow") == "POST");
    // A HEAD arrives as GET: the stream itself is the transport's.
    CHECK(get("GET", "/sse/player").status == 405);
    f.core->begin_shutdown();
    CHECK(get("GET", "/ready").body.find("shutting down") != std::string::npos);

    auto options = test_options();
    options.http_commands = false;
    options.event_streams = false;
    core_on<manual_bus> plain(options);
    plain.core->handle_http(request("POST", "/commands"), a.responder());
    CHECK(a.got.back().status == 404);
    plain.core->handle_http(request("GET", "/sse/player"), a.responder());
    CHECK(a.got.back().status == 404);
}
