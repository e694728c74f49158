#include "gatehouse/http.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>

namespace {

gatehouse::http_request with_headers(std::vector<std::pair<std::string, std::string>> headers) {
    gatehouse::http_request r;
    r.method = "GET";
    r.path = "/";
    r.headers = std::move(headers);
    return r;
}

gatehouse::http_request with_query(std::string query) {
    gatehouse::http_request r;
    r.method = "GET";
    r.path = "/sse/player";
    r.query = std::move(query);
    return r;
}

gatehouse::http_request with_authorization(std::string value) {
    return with_headers({{"Authorization", std::move(value)}});
}

}  // namespace

TEST_CASE("http: header lookup is case-insensitive and takes the first", "[http]") {
    const auto r = with_headers({{"Content-Type", "application/json"},
                                 {"X-Thing", "first"},
                                 {"x-thing", "second"},
                                 {"Empty", ""}});
    CHECK(r.header("content-type") == "application/json");
    CHECK(r.header("CONTENT-TYPE") == "application/json");
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(r.header("X-THING") == "first");
    CHECK(r.header("Empty").empty());
    CHECK(r.header("Missing").empty());
    CHECK(r.header("").empty());
    CHECK(r.header("Content-Typ").empty());
    CHECK(r.header("Content-Type2").empty());
    CHECK(gatehouse::http_request{}.header("Host").empty());
}

TEST_CASE("http: query parameters are form-decoded, first match", "[http]") {
    const auto r = with_query(
        "a=1&b=hello+world&c=%41%42%2b%2F&d=%zz&e=%4&f&g=&a=2&token=x.y.z&t%6Fken2=k&sp%20ace=s"
        "&eq=a=b&utf=%C3%A9&nul=%00&&end=%");
    CHECK(r.query_param("a") == "1");
    CHECK(r.query_param("b") == "hello world");
    CHECK(r.query_param("c") == "AB+/");
    CHECK(r.query_param("d") == "%zz");  // Not an escape: kept.
    CHECK(r.query_param("e") == "%4");
    CHECK(r.query_param("f").empty());
    CHECK(r.query_param("g").empty());
    CHECK(r.query_param("token") == "x.y.z");
    CHECK(r.query_param("token2") == "k");  // Names are decoded too.
    CHECK(r.query_param("sp ace") == "s");
    CHECK(r.query_param("eq") == "a=b");
    CHECK(r.query_param("utf") == "\xC3\xA9");
    CHECK(r.query_param("nul") == std::string(1, '\0'));
    CHECK(r.query_param("end") == "%");
    CHECK(r.query_param("A").empty());  // Case-sensitive.
    CHECK(r.query_param("missing").empty());
    CHECK(r.query_param("").empty());
    CHECK(with_query("").query_param("a").empty());
    CHECK(with_query("a").query_param("a").empty());
    CHECK(with_query("=v").query_param("") == "v");
    CHECK(with_query("codec=msgpack").query_param("codec") == "msgpack");
}

TEST_CASE("http: bearer token", "[http]") {
    CHECK(with_authorization("Bearer abc.def.ghi").bearer_token() == "abc.def.ghi");
    CHECK(with_authorization("bearer abc").bearer_token() == "abc");
    CHECK(with_authorization("BEARER abc").bearer_token() == "abc");
    CHECK(with_authorization("  Bearer    abc  ").bearer_token() == "abc");
    CHECK(with_authorization("\tBearer\tabc\t").bearer_token() == "abc");
    CHECK(with_headers({{"authorization", "Bearer lower"}}).bearer_token() == "lower");
    CHECK(with_headers({{"Authorization", "Bearer one"}, {"Authorization", "Bearer two"}})
              .bearer_token() == "one");

    CHECK(with_authorization("Basic dXNlcjpwYXNz").bearer_token().empty());
    CHECK(with_authorization("Bearer").bearer_token().empty());
    CHECK(with_authorization("Bearer ").bearer_token().empty());
    CHECK(with_authorization("Bearer    ").bearer_token().empty());
    CHECK(with_authorization("Bearerabc").bearer_token().empty());
    CHECK(with_authorization("Bearer a b").bearer_token().empty());
    CHECK(with_authorization("").bearer_token().empty());
    CHECK(with_headers({}).bearer_token().empty());
    CHECK(with_headers({{"X-Authorization", "Bearer abc"}}).bearer_token().empty());
}

TEST_CASE("http: bearer token matching a key", "[http]") {
    CHECK(with_authorization("Bearer s3cret").bearer_token_matches("s3cret"));
    CHECK(with_authorization("bearer  s3cret ").bearer_token_matches("s3cret"));
    CHECK_FALSE(with_authorization("Bearer s3cre").bearer_token_matches("s3cret"));
    CHECK_FALSE(with_authorization("Bearer s3cretX").bearer_token_matches("s3cret"));
    CHECK_FALSE(with_authorization("Bearer S3CRET").bearer_token_matches("s3cret"));
    CHECK_FALSE(with_authorization("Basic s3cret").bearer_token_matches("s3cret"));
    CHECK_FALSE(with_headers({}).bearer_token_matches("s3cret"));
    // An empty key is no key: neither a missing header nor "Bearer " matches it.
    CHECK_FALSE(with_headers({}).bearer_token_matches(""));
    CHECK_FALSE(with_authorization("Bearer ").bearer_token_matches(""));
}

TEST_CASE("http: content type", "[http]") {
    const auto typed = [](std::string value) {
        return with_headers({{"Content-Type", std::move(value)}});
    };
    CHECK(typed("application/json").content_type_is("application/json"));
    CHECK(typed("Application/JSON").content_type_is("application/json"));
    CHECK(typed("application/json; charset=utf-8").content_type_is("application/json"));
    CHECK(typed("  application/json ;charset=utf-8").content_type_is("application/json"));
    CHECK(typed("application/merge-patch+json").content_type_is("application/merge-patch+json"));
    CHECK_FALSE(typed("application/jsonx").content_type_is("application/json"));
    CHECK_FALSE(typed("text/plain").content_type_is("application/json"));
    CHECK_FALSE(typed("").content_type_is("application/json"));
    CHECK_FALSE(with_headers({}).content_type_is("application/json"));
}

TEST_CASE("http: problem responses", "[http]") {
    const auto r = gatehouse::http_response::problem(409, "username_taken");
    CHECK(r.status == 409);
    CHECK(r.content_type == "application/problem+json");
    CHECK(r.body == R"({"status":409,"title":"Conflict","code":"username_taken"})");
    CHECK(r.headers.empty());

    const auto with_detail =
        gatehouse::http_response::problem(400, "invalid_request", "username: 3-32 characters");
    CHECK(with_detail.body == R"({"status":400,"title":"Bad Request","code":"invalid_request",)"
                              R"("detail":"username: 3-32 characters"})");

    SECTION("text that needs escaping round-trips") {
        const std::string nasty = "quote \" backslash \\ newline \n tab \t ctrl \x01 </script>";
        const auto p = gatehouse::http_response::problem(400, "invalid_json", nasty);
        const auto j = nlohmann::json::parse(p.body);
        CHECK(j.at("detail") == nasty);
        CHECK(j.at("status") == 400);
        CHECK(j.at("title") == "Bad Request");
        CHECK(j.at("code") == "invalid_json");
        CHECK(p.body.find('\n') == std::string::npos);
    }
    SECTION("invalid UTF-8 does not throw") {
        gatehouse::http_response p;
        REQUIRE_NOTHROW(p = gatehouse::http_response::problem(400, "bad\xff", "x\xc3("));
        const auto j = nlohmann::json::parse(p.body);
        CHECK(j.at("code") == "bad\xEF\xBF\xBD");
        CHECK(j.at("detail").get<std::string>().find("\xEF\xBF\xBD") != std::string::npos);
    }
    SECTION("unknown status") {
        const auto p = gatehouse::http_response::problem(599, "weird");
        CHECK(p.status == 599);
        CHECK(p.body == R"({"status":599,"title":"Unknown","code":"weird"})");
    }
}

TEST_CASE("http: json responses", "[http]") {
    const auto r = gatehouse::http_response::json(201, R"({"player_id":"p-1"})");
    CHECK(r.status == 201);
    CHECK(r.content_type == "application/json");
    CHECK(r.body == R"({"player_id":"p-1"})");
    CHECK(r.headers.empty());
}

TEST_CASE("http: status titles", "[http]") {
    CHECK(gatehouse::http_status_title(101) == "Switching Protocols");
    CHECK(gatehouse::http_status_title(200) == "OK");
    CHECK(gatehouse::http_status_title(201) == "Created");
    CHECK(gatehouse::http_status_title(202) == "Accepted");
    CHECK(gatehouse::http_status_title(204) == "No Content");
    CHECK(gatehouse::http_status_title(400) == "Bad Request");
    CHECK(gatehouse::http_status_title(401) == "Unauthorized");
    CHECK(gatehouse::http_status_title(403) == "Forbidden");
    CHECK(gatehouse::http_status_title(404) == "Not Found");
    CHECK(gatehouse::http_status_title(405) == "Method Not Allowed");
    CHECK(gatehouse::http_status_title(409) == "Conflict");
    CHECK(gatehouse::http_status_title(413) == "Content Too Large");
    CHECK(gatehouse::http_status_title(415) == "Unsupported Media Type");
    CHECK(gatehouse::http_status_title(426) == "Upgrade Required");
    CHECK(gatehouse::http_status_title(429) == "Too Many Requests");
    CHECK(gatehouse::http_status_title(500) == "Internal Server Error");
    CHECK(gatehouse::http_status_title(503) == "Service Unavailable");
    CHECK(gatehouse::http_status_title(0) == "Unknown");
    CHECK(gatehouse::http_status_title(-404) == "Unknown");
    CHECK(gatehouse::http_status_title(299) == "Unknown");
    CHECK(gatehouse::http_status_title(1000) == "Unknown");
}
