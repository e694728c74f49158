#include "gatehouse/gateway.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/jwt.hpp"
#include "gatehouse/log.hpp"

// The gateway's HTTP router over a real loopback socket: routes an embedding server adds,
// answers given later from another thread, and the errors the router itself gives.

namespace {

// One HTTP/1.1 request on a fresh connection; returns the whole response (the server closes
// the connection after answering). Every socket call is bounded by a 5 s timeout.
std::string http_get(const std::string& address, const std::string& method,
                     const std::string& path) {
    const auto colon = address.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string response;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) {
        const std::string request = method + " " + path +
                                    " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
                                    "Content-Length: 0\r\n\r\n";
        if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
            char buf[4096];
            for (int reads = 0; reads < 64; ++reads) {
                const auto n = ::recv(fd, buf, sizeof buf, 0);
                if (n <= 0) break;
                response.append(buf, static_cast<std::size_t>(n));
            }
        }
    }
    ::close(fd);
    return response;
}

// Sends `text` on a fresh connection and closes it without reading an answer.
void send_and_close(const std::string& address, const std::string& text) {
    const auto colon = address.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) {
        static_cast<void>(::send(fd, text.data(), text.size(), 0));
    }
    ::close(fd);
}

struct test_gateway {
    std::shared_ptr<gatehouse::in_process_bus> bus = std::make_shared<gatehouse::in_process_bus>();
    std::unique_ptr<gatehouse::gateway> gw;
    std::thread worker;

    explicit test_gateway(gatehouse::access_log_sink access_log = {}) {
        gatehouse::gateway_options options;
        options.access_log = std::move(access_log);
        options.listen = "127.0.0.1:0";
        options.threads = 2;
        options.jwt_secret = "unit-test-secret";
        gw = std::make_unique<gatehouse::gateway>(
            options, gatehouse::codec_registry::with_builtin_codecs(), bus, bus);
    }
    ~test_gateway() {
        if (worker.joinable()) worker.join();
        gw->shutdown();
    }
};

}  // namespace

TEST_CASE("gateway: routes, deferred answers, 404, 405 and a throwing route", "[gateway]") {
    test_gateway t;
    t.gw->add_route("GET", "/version",
                    [](const gatehouse::http_request&, const gatehouse::http_responder& respond) {
                        respond(gatehouse::http_response::json(200, R"({"version":"1.2.3"})"));
                    });
    t.gw->add_route("GET", "/later",
                    [&t](const gatehouse::http_request&, gatehouse::http_responder respond) {
                        // Answered from another thread, after the handler returned.
                        t.worker = std::thread([respond = std::move(respond)] {
                            std::this_thread::sleep_for(std::chrono::milliseconds(50));
                            respond(gatehouse::http_response::json(200, R"({"late":true})"));
                        });
                    });
    t.gw->add_route("GET", "/boom",
                    [](const gatehouse::http_request&, const gatehouse::http_responder&) {
                        throw std::runtime_error("route bug");
                    });
    REQUIRE_FALSE(t.gw->start());
    const auto address = t.gw->local_address();

    const auto version = http_get(address, "GET", "/version");
    CHECK(version.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(version.find(R"({"version":"1.2.3"})") != std::string::npos);

    const auto later = http_get(address, "GET", "/later");
    CHECK(later.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(later.find(R"({"late":true})") != std::string::npos);

    const auto boom = http_get(address, "GET", "/boom");
    CHECK(boom.rfind("HTTP/1.1 500", 0) == 0);
    CHECK(boom.find(R"("code":"internal_error")") != std::string::npos);

    const auto missing = http_get(address, "GET", "/nope");
    CHECK(missing.rfind("HTTP/1.1 404", 0) == 0);
    CHECK(missing.find("application/problem+json") != std::string::npos);

    const auto wrong_method = http_get(address, "DELETE", "/version");
    CHECK(wrong_method.rfind("HTTP/1.1 405", 0) == 0);
    CHECK(wrong_method.find("Allow: GET") != std::string::npos);

    const auto health = http_get(address, "GET", "/health");
    CHECK(health.find(R"({"status":"ok"})") != std::string::npos);
    CHECK(t.gw->ready());
}

TEST_CASE("gateway: bad options are refused at construction or start", "[gateway]") {
    auto bus = std::make_shared<gatehouse::in_process_bus>();
    const auto codecs = gatehouse::codec_registry::with_builtin_codecs();
    gatehouse::gateway_options options;
    options.gateway_id = "has space";
    CHECK_THROWS_AS(gatehouse::gateway(options, codecs, bus, bus), std::invalid_argument);
    options.gateway_id.clear();
    options.tls_cert_file = "cert.pem";
    CHECK_THROWS_AS(gatehouse::gateway(options, codecs, bus, bus), std::invalid_argument);
    options.tls_cert_file.clear();
    CHECK_THROWS_AS(gatehouse::gateway(options, gatehouse::codec_registry{}, bus, bus),
                    std::invalid_argument);

    for (const char* listen :
         {"127.0.0.1", "::1:80", "[::1:80", "127.0.0.1:70000", "300.0.0.1:80", "[]:80", ""}) {
        options.listen = listen;
        gatehouse::gateway gw(options, codecs, bus, bus);
        CHECK(gw.start() == gatehouse::errc::invalid_listen_address);
        // The start-up check without a gateway says the same.
        CHECK(gatehouse::check_listen_address(listen) == gatehouse::errc::invalid_listen_address);
    }
    for (const char* good : {"127.0.0.1:0", "[::1]:8080", "localhost:8080", "0.0.0.0:65535",
                             "no-such-host.invalid:80"}) {  // names are not resolved by the check
        INFO(good);
        CHECK_FALSE(gatehouse::check_listen_address(good));
    }
    CHECK(gatehouse::valid_gateway_id("gw-1.eu:a_b"));
    CHECK_FALSE(gatehouse::valid_gateway_id(""));
    CHECK_FALSE(gatehouse::valid_gateway_id("gw 1"));
    CHECK_FALSE(gatehouse::valid_gateway_id(std::string(65, 'g')));
    // A host name is resolved: localhost listens on its IPv4 address.
    options.listen = "localhost:0";
    {
        gatehouse::gateway by_name(options, codecs, bus, bus);
        REQUIRE_FALSE(by_name.start());
        CHECK(by_name.local_address().rfind("127.0.0.1:", 0) == 0);
    }
    options.listen = "127.0.0.1:0";
    options.tls_cert_file = "/nonexistent/cert.pem";
    options.tls_key_file = "/nonexistent/key.pem";
    gatehouse::gateway tls(options, codecs, bus, bus);
    CHECK(tls.start() == gatehouse::errc::tls_setup_failed);
}

namespace {

// An access record with its views copied.
struct access_copy {
    std::string method, target, route, client_address, player_id;
    int status = 0;
    std::uint64_t bytes_sent = 0;
};

struct access_records {
    std::mutex mutex;
    std::vector<access_copy> all;

    gatehouse::access_log_sink sink() {
        return [this](const gatehouse::access_record& r) {
            std::lock_guard<std::mutex> lock(mutex);
            all.push_back({std::string(r.method), std::string(r.target), std::string(r.route),
                           std::string(r.client_address), std::string(r.player_id), r.status,
                           r.bytes_sent});
        };
    }
    std::vector<access_copy> snapshot() {
        std::lock_guard<std::mutex> lock(mutex);
        return all;
    }
};

}  // namespace

TEST_CASE("gateway: one access record per answered request, with its route", "[gateway]") {
    access_records records;
    test_gateway t(records.sink());
    gatehouse::gateway& gw = *t.gw;
    t.gw->add_route("GET", "/twice",
                    [](const gatehouse::http_request&, const gatehouse::http_responder& respond) {
                        respond(gatehouse::http_response::json(200, "{}"));
                        respond(gatehouse::http_response::json(500, "{}"));  // ignored
                    });
    t.gw->add_route(
        "GET", "/me",
        [&gw](const gatehouse::http_request& request, const gatehouse::http_responder& respond) {
            gatehouse::identity who;
            const auto ec = gw.authenticate(request.query_param("t"), who);
            respond(gatehouse::http_response::json(ec ? 401 : 200, "{}"));
        });
    REQUIRE_FALSE(t.gw->start());
    const auto address = t.gw->local_address();
    gatehouse::jwt_claims claims;
    claims.sub = "p_alice";
    claims.iat = gatehouse::unix_now_seconds();
    claims.exp = claims.iat + 60;
    const auto token = gatehouse::sign_jwt(claims, "unit-test-secret");

    CHECK(http_get(address, "GET", "/twice").rfind("HTTP/1.1 200", 0) == 0);
    CHECK(http_get(address, "GET", "/me?t=" + token).rfind("HTTP/1.1 200", 0) == 0);
    CHECK(http_get(address, "GET", "/nope").rfind("HTTP/1.1 404", 0) == 0);
    CHECK(http_get(address, "DELETE", "/health").rfind("HTTP/1.1 405", 0) == 0);
    CHECK(http_get(address, "GET", "/ws/player").rfind("HTTP/1.1 426", 0) == 0);

    const auto all = records.snapshot();
    REQUIRE(all.size() == 5);
    CHECK(all[0].route == "/twice");
    CHECK(all[0].status == 200);
    CHECK(all[0].bytes_sent == 2);
    CHECK(all[0].client_address == "127.0.0.1");
    CHECK(all[1].route == "/me");
    CHECK(all[1].player_id == "p_alice");
    CHECK(all[1].target == "/me?t=[redacted]");
    CHECK(all[2].route == "other");
    CHECK(all[2].status == 404);
    CHECK(all[3].route == "/health");
    CHECK(all[3].method == "DELETE");
    CHECK(all[3].status == 405);
    CHECK(all[4].route == "/ws/");
    CHECK(all[4].status == 426);
    for (const auto& r : all) CHECK(r.player_id.empty() == (r.route != "/me"));
}

TEST_CASE("gateway: a HEAD's access record says HEAD and no body sent", "[gateway][access_log]") {
    access_records records;
    test_gateway t(records.sink());
    std::vector<std::string> methods_seen;
    t.gw->add_route("GET", "/page",
                    [&methods_seen](const gatehouse::http_request& request,
                                    const gatehouse::http_responder& respond) {
                        methods_seen.push_back(request.method);
                        respond(gatehouse::http_response::json(200, "{\"k\":\"some body\"}"));
                    });
    REQUIRE_FALSE(t.gw->start());
    const auto address = t.gw->local_address();

    const auto head = http_get(address, "HEAD", "/page");
    CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(head.find("some body") == std::string::npos);
    CHECK(http_get(address, "GET", "/page").find("some body") != std::string::npos);

    // The route answers HEAD as GET; the record keeps what the client asked.
    CHECK(methods_seen == std::vector<std::string>{"GET", "GET"});
    const auto all = records.snapshot();
    REQUIRE(all.size() == 2);
    CHECK(all[0].method == "HEAD");
    CHECK(all[0].route == "/page");
    CHECK(all[0].status == 200);
    CHECK(all[0].bytes_sent == 0);
    CHECK(all[1].method == "GET");
    CHECK(all[1].bytes_sent > 0);
}

TEST_CASE("gateway: a request never answered has one access record with status 0",
          "[gateway][access_log]") {
    access_records records;
    test_gateway t(records.sink());
    t.gw->add_route("POST", "/drop",
                    [](const gatehouse::http_request&, const gatehouse::http_responder&) {
                        // Lets the responder go without answering.
                    });
    REQUIRE_FALSE(t.gw->start());
    const auto address = t.gw->local_address();
    const auto wait_for = [&records](std::size_t n) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (records.snapshot().size() < n && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return records.snapshot();
    };

    // A body announced as 5 bytes, 2 sent, then the client goes.
    send_and_close(address, "POST /drop HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nab");
    auto all = wait_for(1);
    REQUIRE(all.size() == 1);
    CHECK(all[0].method == "POST");
    CHECK(all[0].target == "/drop");
    CHECK(all[0].status == 0);
    CHECK(all[0].bytes_sent == 0);

    // A whole request whose handler drops its responder.
    send_and_close(address, "POST /drop HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nab");
    all = wait_for(2);
    REQUIRE(all.size() == 2);
    CHECK(all[1].route == "/drop");
    CHECK(all[1].status == 0);

    // Reported once each: a request answered afterwards adds one line only.
    CHECK(http_get(address, "GET", "/health").rfind("HTTP/1.1 200", 0) == 0);
    all = wait_for(3);
    CHECK(all.size() == 3);
}

TEST_CASE("gateway: metrics_listen serves /metrics and /health there only", "[gateway][metrics]") {
    auto bus = std::make_shared<gatehouse::in_process_bus>();
    gatehouse::gateway_options options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "127.0.0.1:0";
    options.threads = 1;
    options.jwt_secret = "unit-test-secret";
    std::vector<std::string> logged;
    std::mutex logged_mutex;
    options.log = [&](gatehouse::log_level, std::string_view m) {
        const std::lock_guard<std::mutex> lock(logged_mutex);
        logged.emplace_back(m);
    };
    gatehouse::gateway gw(options, gatehouse::codec_registry::with_builtin_codecs(), bus, bus);
    CHECK(gw.metrics_address().empty());
    REQUIRE_FALSE(gw.start());
    const auto metrics = gw.metrics_address();
    REQUIRE(metrics.rfind("127.0.0.1:", 0) == 0);
    CHECK(metrics != gw.local_address());
    CHECK(metrics != "127.0.0.1:0");
    {
        const std::lock_guard<std::mutex> lock(logged_mutex);
        CHECK(std::find(logged.begin(), logged.end(), "serving /metrics on " + metrics) !=
              logged.end());
    }

    const auto scraped = http_get(metrics, "GET", "/metrics");
    CHECK(scraped.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(scraped.find("text/plain; version=0.0.4") != std::string::npos);
    CHECK(scraped.find("gatehouse_connections{client=\"player\"} 0") != std::string::npos);
    CHECK(scraped.find("gatehouse_build_info{version=\"") != std::string::npos);
    CHECK(http_get(metrics, "GET", "/health").rfind("HTTP/1.1 200", 0) == 0);
    // Nothing else of the gateway is served there.
    for (const char* path : {"/ready", "/commands", "/sse/player", "/ws/player/x", "/"}) {
        CAPTURE(path);
        CHECK(http_get(metrics, "GET", path).rfind("HTTP/1.1 404", 0) == 0);
    }
    CHECK(http_get(metrics, "POST", "/metrics").rfind("HTTP/1.1 405", 0) == 0);
    // And /metrics is not served on the main listener.
    CHECK(http_get(gw.local_address(), "GET", "/metrics").rfind("HTTP/1.1 404", 0) == 0);
    CHECK(http_get(gw.local_address(), "GET", "/health").rfind("HTTP/1.1 200", 0) == 0);
    gw.shutdown();
}

TEST_CASE("gateway: a metrics_listen that cannot be bound fails start", "[gateway][metrics]") {
    auto bus = std::make_shared<gatehouse::in_process_bus>();
    const auto codecs = gatehouse::codec_registry::with_builtin_codecs();
    gatehouse::gateway_options options;
    options.listen = "127.0.0.1:0";
    options.threads = 1;
    options.jwt_secret = "unit-test-secret";
    options.metrics_listen = "127.0.0.1";
    {
        gatehouse::gateway gw(options, codecs, bus, bus);
        CHECK(gw.start() == gatehouse::errc::invalid_listen_address);
    }
    // A port in use: another gateway's listener.
    options.metrics_listen.clear();
    gatehouse::gateway first(options, codecs, bus, bus);
    REQUIRE_FALSE(first.start());
    options.metrics_listen = first.local_address();
    gatehouse::gateway second(options, codecs, bus, bus);
    CHECK(second.start());
    CHECK(second.local_address().empty());
    first.shutdown();
}

TEST_CASE("gateway: HTTP answers are timed by route and status, with or without an access log",
          "[gateway]") {
    for (const bool with_log : {false, true}) {
        INFO("access log: " << with_log);
        access_records records;
        test_gateway t(with_log ? records.sink() : gatehouse::access_log_sink());
        REQUIRE_FALSE(t.gw->start());
        const auto address = t.gw->local_address();
        CHECK(http_get(address, "GET", "/health").rfind("HTTP/1.1 200", 0) == 0);
        CHECK(http_get(address, "GET", "/health").rfind("HTTP/1.1 200", 0) == 0);
        CHECK(http_get(address, "GET", "/nope").rfind("HTTP/1.1 404", 0) == 0);
        CHECK(http_get(address, "DELETE", "/health").rfind("HTTP/1.1 405", 0) == 0);
        CHECK(http_get(address, "GET", "/ws/player").rfind("HTTP/1.1 426", 0) == 0);
        const auto text = t.gw->metrics().render();
        const std::string family = "gatehouse_http_request_duration_seconds_count";
        CHECK(text.find(family + "{route=\"/health\",status=\"200\"} 2\n") != std::string::npos);
        CHECK(text.find(family + "{route=\"other\",status=\"404\"} 1\n") != std::string::npos);
        CHECK(text.find(family + "{route=\"/health\",status=\"405\"} 1\n") != std::string::npos);
        CHECK(text.find(family + "{route=\"/ws/\",status=\"426\"} 1\n") != std::string::npos);
        CHECK(records.snapshot().size() == (with_log ? 5U : 0U));
    }
}
