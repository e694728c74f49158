#include "gateway/openapi_document.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gatehouse/accounts.hpp"
#include "gatehouse/attempt_limiter.hpp"
#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/user_store.hpp"
#include "gatehouse/worker_pool.hpp"

// docs/openapi.json against the route table, route by route: every route of a gateway set up as
// gatehouse-server sets itself up (accounts, a publish key, commands and event streams on) is
// documented with its method, and every documented operation is a route of it. The document's
// validity as OpenAPI 3.1, its examples and live answers are checked by
// tests/server/test_openapi.py.

namespace {

using json = nlohmann::json;
using operation = std::pair<std::string, std::string>;  // METHOD, path

const char* const operation_keys[] = {"get",     "put",  "post",  "delete",
                                      "options", "head", "patch", "trace"};

std::string upper(std::string s) {
    for (auto& c : s) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return s;
}

std::set<operation> operations_of(const json& doc) {
    std::set<operation> out;
    for (const auto& [path, item] : doc.at("paths").items()) {
        for (const char* key : operation_keys) {
            if (item.contains(key)) out.emplace(upper(key), path);
        }
    }
    return out;
}

std::string describe(const gatehouse::http_route& r) {
    return (r.prefix ? "prefix " : r.method + " ") + r.path;
}

// A gateway on the in-process bus (which is its update log too), not started: the route table is
// complete once the routes are added.
struct served_gateway {
    std::shared_ptr<gatehouse::in_process_bus> bus = std::make_shared<gatehouse::in_process_bus>();
    std::unique_ptr<gatehouse::gateway> gw;
    std::shared_ptr<gatehouse::worker_pool> pool;
    std::unique_ptr<gatehouse::accounts> accounts;

    explicit served_gateway(gatehouse::gateway_options options, bool with_accounts) {
        options.listen = "127.0.0.1:0";
        options.jwt_secret = "openapi-test-secret";
        gw = std::make_unique<gatehouse::gateway>(
            options, gatehouse::codec_registry::with_builtin_codecs(), bus, bus, bus);
        if (!with_accounts) return;
        std::unique_ptr<gatehouse::user_store> store;
        REQUIRE_FALSE(gatehouse::open_user_store("sqlite::memory:", store));
        pool = std::make_shared<gatehouse::worker_pool>(1);
        gatehouse::accounts_options account_options;
        account_options.jwt_secret = options.jwt_secret;
        account_options.password_cost = {1, 8192};
        accounts = std::make_unique<gatehouse::accounts>(account_options, std::move(store),
                                                         gatehouse::make_memory_limiter(), pool);
        accounts->add_routes(*gw);
    }
    ~served_gateway() {
        if (pool) pool->stop();
    }
};

gatehouse::gateway_options full_options() {
    gatehouse::gateway_options options;
    options.publish_key = "openapi-test-publish-key";
    return options;
}

}  // namespace

TEST_CASE("openapi: docs/openapi.json is an OpenAPI 3.1 object with paths", "[openapi]") {
    const auto doc = json::parse(gatehouse::detail::openapi_document(), nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    REQUIRE(doc.is_object());
    CHECK(doc.at("openapi").get<std::string>().rfind("3.1.", 0) == 0);
    REQUIRE(doc.at("paths").is_object());
    CHECK(operations_of(doc).size() > 10);
}

TEST_CASE("openapi: every route is documented with its method, and every operation is a route",
          "[openapi]") {
    served_gateway t(full_options(), true);
    const auto routes = t.gw->routes();
    const auto doc = json::parse(gatehouse::detail::openapi_document());
    const auto documented = operations_of(doc);

    for (const auto& route : routes) {
        INFO("route " << describe(route));
        if (route.prefix) {
            // The WebSocket upgrades: their paths carry {parameters} only a prefix matches, and
            // each of them is an upgrade, a GET.
            bool any = false;
            for (const auto& [method, path] : documented) {
                if (path.rfind(route.path, 0) != 0) continue;
                any = true;
                CHECK(method == "GET");
            }
            CHECK(any);
        } else {
            CHECK(documented.count({route.method, route.path}) == 1);
        }
    }
    for (const auto& [method, path] : documented) {
        INFO("documented " << method << " " << path);
        CHECK(gatehouse::detail::serves(routes, method, path));
    }
    // All of it is served, so the served text is the checked-in file, byte for byte.
    CHECK(gatehouse::detail::openapi_for_routes(gatehouse::detail::openapi_document(), routes) ==
          gatehouse::detail::openapi_document());
}

TEST_CASE("openapi: the routes list the built-ins, the accounts routes and /ws/ as a prefix",
          "[openapi]") {
    served_gateway t(full_options(), true);
    std::set<std::string> listed;
    for (const auto& route : t.gw->routes()) listed.insert(describe(route));
    for (const char* expected :
         {"GET /health", "GET /ready", "GET /metrics", "GET /openapi.json", "POST /commands",
          "POST /updates", "GET /sse/player", "prefix /ws/", "POST /register", "POST /login",
          "POST /token/refresh", "POST /logout", "GET /player/settings", "PATCH /player/settings",
          "PUT /player/settings"}) {
        INFO(expected);
        CHECK(listed.count(expected) == 1);
    }
    for (const auto& route : t.gw->routes()) {
        INFO(describe(route));
        const bool account_route = route.path == "/register" || route.path == "/login" ||
                                   route.path == "/token/refresh" || route.path == "/logout" ||
                                   route.path == "/player/settings";
        CHECK(route.builtin == !account_route);
    }
}

TEST_CASE("openapi: a gateway describes only the routes it has", "[openapi]") {
    gatehouse::gateway_options options;  // no publish key: no POST /updates
    options.http_commands = false;
    options.event_streams = false;
    served_gateway t(options, false);
    const auto text = gatehouse::detail::openapi_for_routes(gatehouse::detail::openapi_document(),
                                                            t.gw->routes());
    const auto served = json::parse(text);
    std::set<std::string> paths;
    for (const auto& [path, item] : served.at("paths").items()) paths.insert(path);
    CHECK(paths == std::set<std::string>{"/health", "/ready", "/metrics", "/openapi.json",
                                         "/ws/player/{access_token}", "/ws/player",
                                         "/ws/bot/{bot_key}"});
    // The rest of the document stays: the components the remaining operations refer to.
    CHECK(served.at("components") ==
          json::parse(gatehouse::detail::openapi_document()).at("components"));
    CHECK(served.at("info") == json::parse(gatehouse::detail::openapi_document()).at("info"));
}

TEST_CASE("openapi: one method of a path goes while the others stay", "[openapi]") {
    const std::vector<gatehouse::http_route> routes{{"GET", "/player/settings", false, false},
                                                    {"PUT", "/player/settings", false, false}};
    const auto served = json::parse(
        gatehouse::detail::openapi_for_routes(gatehouse::detail::openapi_document(), routes));
    REQUIRE(served.at("paths").size() == 1);
    const auto& item = served.at("paths").at("/player/settings");
    CHECK(item.contains("get"));
    CHECK(item.contains("put"));
    CHECK_FALSE(item.contains("patch"));
}

TEST_CASE("openapi: without the option there is no /openapi.json route", "[openapi]") {
    gatehouse::gateway_options options;
    options.openapi = false;
    served_gateway t(options, false);
    for (const auto& route : t.gw->routes()) CHECK(route.path != "/openapi.json");
}

TEST_CASE("openapi: a document that is not an OpenAPI object is served as it is", "[openapi]") {
    const std::vector<gatehouse::http_route> none;
    CHECK(gatehouse::detail::openapi_for_routes("not json", none) == "not json");
    CHECK(gatehouse::detail::openapi_for_routes(R"({"paths":[]})", none) == R"({"paths":[]})");
}
