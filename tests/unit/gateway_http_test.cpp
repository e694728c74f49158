#include "gatehouse/gateway.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/in_process_bus.hpp"

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

struct test_gateway {
    std::shared_ptr<gatehouse::in_process_bus> bus = std::make_shared<gatehouse::in_process_bus>();
    std::unique_ptr<gatehouse::gateway> gw;
    std::thread worker;

    test_gateway() {
        gatehouse::gateway_options options;
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
