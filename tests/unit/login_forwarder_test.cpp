#include "accounts/login_forwarder.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "gatehouse/accounts.hpp"

// The login forwarder against a real HTTP server on 127.0.0.1 started by each test: one that
// answers, one that answers slowly or never, one that is not listening, one that answers with
// something that is not HTTP. Every failure is 502 `login_service_unavailable`, within the
// forwarder's deadline.

namespace {

using gatehouse::detail::login_forwarder;
using namespace std::chrono_literals;

// A one-connection-at-a-time HTTP server on a thread of its own: it reads each request (head
// and Content-Length body) and hands it with the socket to `behave`, which answers (or not).
class test_server {
public:
    using behaviour = std::function<void(int fd, const std::string& request)>;

    explicit test_server(behaviour behave) : behave_(std::move(behave)) {
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = 0;
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        REQUIRE(::bind(listener_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::listen(listener_, 8) == 0);
        socklen_t len = sizeof sa;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&sa), &len);
        port_ = ntohs(sa.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~test_server() {
        ::shutdown(listener_, SHUT_RDWR);  // ends the accept loop
        thread_.join();
        ::close(listener_);
    }
    test_server(const test_server&) = delete;
    test_server& operator=(const test_server&) = delete;

    std::string url(const std::string& prefix = "") const {
        return "http://127.0.0.1:" + std::to_string(port_) + prefix;
    }
    std::string last_request() {
        const std::lock_guard<std::mutex> lock(mutex_);
        return last_request_;
    }

private:
    void serve() {
        for (;;) {
            const int fd = ::accept(listener_, nullptr, nullptr);
            if (fd < 0) return;
            timeval timeout{10, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
            std::string request;
            char buf[4096];
            for (;;) {
                const auto head_end = request.find("\r\n\r\n");
                if (head_end != std::string::npos) {
                    const auto at = request.find("Content-Length: ");
                    const std::size_t length =
                        at == std::string::npos ? 0 : std::stoul(request.substr(at + 16));
                    if (request.size() >= head_end + 4 + length) break;
                }
                const auto n = ::recv(fd, buf, sizeof buf, 0);
                if (n <= 0) break;
                request.append(buf, static_cast<std::size_t>(n));
            }
            {
                const std::lock_guard<std::mutex> lock(mutex_);
                last_request_ = request;
            }
            behave_(fd, request);
            ::close(fd);
        }
    }

    behaviour behave_;
    int listener_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
    std::mutex mutex_;
    std::string last_request_;
};

void send_all(int fd, const std::string& bytes) {
    static_cast<void>(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL));
}

// Waits until the peer closes (or 10 s pass): the forwarder gave up.
void wait_for_close(int fd) {
    char buf[256];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
}

bool unavailable(const gatehouse::http_response& r, const std::string& detail) {
    return r.status == 502 && r.content_type == "application/problem+json" &&
           r.body.find(R"("code":"login_service_unavailable")") != std::string::npos &&
           r.body.find(detail) != std::string::npos;
}

}  // namespace

TEST_CASE("login_forwarder: relays status, Content-Type, Retry-After and body", "[accounts]") {
    const std::string problem = R"({"status":429,"code":"too_many_attempts"})";
    test_server server([&](int fd, const std::string&) {
        send_all(fd,
                 "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/problem+json\r\n"
                 "Retry-After: 17\r\nX-Other: dropped\r\nContent-Length: " +
                     std::to_string(problem.size()) + "\r\n\r\n" + problem);
        wait_for_close(fd);  // the forwarder stops at Content-Length, not at the close
    });
    login_forwarder forwarder(server.url("/auth/"), 5000ms);
    REQUIRE(forwarder.valid());
    const auto r = forwarder.forward("/login", "application/json; charset=utf-8",
                                     R"({"username":"zoe","password":"pw"})");
    CHECK(r.status == 429);
    CHECK(r.content_type == "application/problem+json");
    CHECK(r.body == problem);
    REQUIRE(r.headers.size() == 1);
    CHECK(r.headers[0] == std::pair<std::string, std::string>("Retry-After", "17"));

    const auto seen = server.last_request();
    CHECK(seen.rfind("POST /auth/login HTTP/1.1\r\n", 0) == 0);
    CHECK(seen.find("\r\nHost: 127.0.0.1:") != std::string::npos);
    CHECK(seen.find("\r\nContent-Type: application/json; charset=utf-8\r\n") != std::string::npos);
    CHECK(seen.find("\r\nConnection: close\r\n") != std::string::npos);
    CHECK(seen.substr(seen.find("\r\n\r\n") + 4) == R"({"username":"zoe","password":"pw"})");
}

TEST_CASE("login_forwarder: an answer without Content-Length ends with the connection",
          "[accounts]") {
    test_server server([](int fd, const std::string&) {
        send_all(fd, "HTTP/1.0 200 OK\r\n\r\n{\"player_id\":\"ext-1\"}");
    });
    login_forwarder forwarder(server.url(), 5000ms);
    const auto r = forwarder.forward("/register", "", "{}");
    CHECK(r.status == 200);
    CHECK(r.content_type == "application/json");  // the default when the service names none
    CHECK(r.body == R"({"player_id":"ext-1"})");
    CHECK(server.last_request().find("\r\nContent-Type: application/json\r\n") !=
          std::string::npos);
}

TEST_CASE("login_forwarder: a slow answer within the deadline is relayed", "[accounts]") {
    test_server server([](int fd, const std::string&) {
        // The head, a pause, then the body in two pieces: reads are reassembled.
        send_all(fd, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n");
        std::this_thread::sleep_for(150ms);
        send_all(fd, "Content-Length: 17\r\n\r\n{\"player_id\":");
        std::this_thread::sleep_for(150ms);
        send_all(fd, "\"p\"}");
        wait_for_close(fd);
    });
    login_forwarder forwarder(server.url(), 3000ms);
    const auto r = forwarder.forward("/register", "application/json", "{}");
    CHECK(r.status == 201);
    CHECK(r.body == R"({"player_id":"p"})");
}

TEST_CASE("login_forwarder: a service that never answers is 502 at the deadline", "[accounts]") {
    test_server server([](int fd, const std::string&) { wait_for_close(fd); });
    login_forwarder forwarder(server.url(), 300ms);
    const auto started = std::chrono::steady_clock::now();
    const auto r = forwarder.forward("/login", "application/json", "{}");
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(unavailable(r, "timed out waiting"));
    CHECK(took >= 290ms);
    CHECK(took < 3s);
}

TEST_CASE("login_forwarder: a service that answers too slowly is 502 at the deadline",
          "[accounts]") {
    // Half an answer in time, the rest never: the deadline covers the whole exchange.
    test_server server([](int fd, const std::string&) {
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"par");
        wait_for_close(fd);
    });
    login_forwarder forwarder(server.url(), 300ms);
    const auto r = forwarder.forward("/login", "application/json", "{}");
    CHECK(unavailable(r, "timed out waiting"));
}

TEST_CASE("login_forwarder: a refused connection is 502 at once", "[accounts]") {
    // A port that was just bound and closed: nothing listens there.
    std::string url;
    {
        test_server gone([](int, const std::string&) {});
        url = gone.url();
    }
    login_forwarder forwarder(url, 5000ms);
    const auto started = std::chrono::steady_clock::now();
    const auto r = forwarder.forward("/login", "application/json", "{}");
    CHECK(unavailable(r, "cannot connect to the login service"));
    CHECK(std::chrono::steady_clock::now() - started < 3s);
}

TEST_CASE("login_forwarder: garbage, silence and floods are 502", "[accounts]") {
    struct bad_answer {
        std::string bytes;
        std::string detail;
    };
    const bad_answer cases[] = {
        {"hello there\r\n\r\nnot http", "is not HTTP"},
        {"HTTP/1.1 abc\r\n\r\n", "has no status"},
        {"HTTP/1.1 999 Nope\r\n\r\n", "has no status"},
        {"HTTP/1.1", "is not HTTP"},
        {"", "is not HTTP"},  // closed without a word
        {"HTTP/1.1 200 OK\r\nContent-Type: application/json", "is not HTTP"},  // no end of head
        {"HTTP/1.1 200 OK\r\n\r\n" + std::string(300 * 1024, 'x'), "answer too large"},
    };
    for (const auto& c : cases) {
        INFO(c.bytes.substr(0, 40));
        test_server server([&](int fd, const std::string&) { send_all(fd, c.bytes); });
        login_forwarder forwarder(server.url(), 5000ms);
        CHECK(unavailable(forwarder.forward("/login", "application/json", "{}"), c.detail));
    }
}

TEST_CASE("login_forwarder: URLs it accepts and refuses", "[accounts]") {
    CHECK(login_forwarder("http://127.0.0.1:8080/auth", 1000ms).valid());
    CHECK(login_forwarder("http://[::1]:8080", 1000ms).valid());
    CHECK(login_forwarder("http://login.internal", 1000ms).valid());
    CHECK_FALSE(login_forwarder("https://127.0.0.1:1", 1000ms).valid());
    CHECK_FALSE(login_forwarder("http://", 1000ms).valid());
    CHECK_FALSE(login_forwarder("http://127.0.0.1:99999", 1000ms).valid());
    CHECK_FALSE(login_forwarder("http://127.0.0.1:0", 1000ms).valid());
    CHECK_FALSE(login_forwarder("http://[::1", 1000ms).valid());
    CHECK_FALSE(login_forwarder("http://h/a b", 1000ms).valid());
    CHECK_FALSE(login_forwarder("http://h", 0ms).valid());
    // The start-up check (gatehouse/accounts.hpp) parses as the forwarder does.
    CHECK(gatehouse::valid_login_service_url("http://[::1]:8080/auth"));
    CHECK_FALSE(gatehouse::valid_login_service_url("https://127.0.0.1:1"));
    CHECK_FALSE(gatehouse::valid_login_service_url("http://127.0.0.1:0"));
}
