#include "gatehouse/gateway.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/jwt.hpp"
#include "gatehouse/redis_bus.hpp"
#include "gateway/gateway_core.hpp"
#include "memory_transport.hpp"
#include "redis_server_fixture.hpp"

// Destruction order does not matter: a gateway and its bus (in-process, or Redis against a
// real redis-server, healthy or hung) are destroyed in every order while commands are in
// flight, and a bus answer that arrives after the gateway is gone does nothing. Run under the
// `ci` preset (ASan+UBSan), a dangling callback fails these tests.

namespace {

using namespace gatehouse_test;
using namespace std::chrono_literals;

constexpr const char* secret = "lifetime-secret";

std::string token_for(const std::string& player) {
    jwt_claims claims;
    claims.sub = player;
    claims.iat = gatehouse::unix_now_seconds();
    claims.exp = claims.iat + 600;
    return sign_jwt(claims, secret);
}

// A WebSocket client on a plain socket that sends commands until told to stop, reading (and
// discarding) whatever comes back so that the server's writes never stall on it.
class blasting_client {
public:
    blasting_client(const std::string& address, const std::string& player) {
        const auto colon = address.rfind(':');
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
        inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        timeval timeout{2, 0};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        REQUIRE(::connect(fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
        const std::string request = "GET /ws/player/" + token_for(player) +
                                    " HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        REQUIRE(::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(request.size()));
        std::string head;
        char c = 0;
        while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd_, &c, 1, 0) == 1) head += c;
        REQUIRE(head.rfind("HTTP/1.1 101", 0) == 0);
        reader_ = std::thread([this] {
            char buf[4096];
            while (::recv(fd_, buf, sizeof buf, 0) > 0) {
            }
        });
        writer_ = std::thread([this] {
            for (std::uint64_t n = 0; !stop_; ++n) {
                if (!send_text(R"({"type":"move","payload":{"n":)" + std::to_string(n) + "}}")) {
                    break;
                }
                ++sent_;
            }
        });
    }
    ~blasting_client() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        writer_.join();
        reader_.join();
        ::close(fd_);
    }
    std::uint64_t sent() const { return sent_; }
    // Waits (bounded) until `n` commands were written.
    bool sent_at_least(std::uint64_t n) {
        for (int i = 0; i < 500 && sent_ < n; ++i) std::this_thread::sleep_for(10ms);
        return sent_ >= n;
    }

private:
    bool send_text(const std::string& text) {
        // A masked text frame (RFC 6455 section 5.2); the mask is zero, which is allowed.
        std::string frame;
        frame += static_cast<char>(0x81);
        frame += static_cast<char>(0x80 | text.size());  // the commands are < 126 bytes
        frame.append(4, '\0');
        frame += text;
        return ::send(fd_, frame.data(), frame.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(frame.size());
    }

    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> sent_{0};
    std::thread reader_;
    std::thread writer_;
};

gateway_options gateway_settings(std::chrono::milliseconds shutdown_timeout = 2000ms) {
    gateway_options o;
    o.listen = "127.0.0.1:0";
    o.threads = 2;
    o.jwt_secret = secret;
    o.gateway_id = "lifetime";
    o.ws_rate_limit = 0;
    o.shutdown_timeout = shutdown_timeout;
    return o;
}

redis_bus_options redis_settings(const redis_server& server) {
    redis_bus_options o;
    o.url = server.url();
    o.command_stream = "lifetime:commands";
    o.updates_channel = "lifetime:updates";
    o.gateway_id = "lifetime";
    o.timeout = 3000ms;
    return o;
}

enum class order { gateway_first, bus_first };

// Builds the gateway on `bus`, starts a client blasting commands, then lets go of both in
// `o`'s order while the commands are in flight.
template <class Bus>
void destroy_in_order(std::shared_ptr<Bus> bus, order o,
                      std::chrono::milliseconds shutdown_timeout = 2000ms) {
    auto gw = std::make_unique<gateway>(gateway_settings(shutdown_timeout),
                                        codec_registry::with_builtin_codecs(), bus, bus);
    REQUIRE_FALSE(gw->start());
    {
        blasting_client client(gw->local_address(), "mover");
        REQUIRE(client.sent_at_least(200));
        if (o == order::bus_first) {
            bus.reset();  // the gateway holds the last reference now
            gw.reset();
        } else {
            gw.reset();
            bus.reset();
        }
    }
}

}  // namespace

TEST_CASE(
    "gateway lifetime: gateway and in-process bus destroyed in either order, commands in "
    "flight",
    "[gateway_lifetime]") {
    for (const auto o : {order::gateway_first, order::bus_first}) {
        destroy_in_order(std::make_shared<in_process_bus>(), o);
    }
}

TEST_CASE(
    "gateway lifetime: gateway and redis_bus destroyed in either order, commands in "
    "flight",
    "[gateway_lifetime][redis]") {
    for (const auto o : {order::gateway_first, order::bus_first}) {
        redis_server server;
        auto bus = std::make_shared<redis_bus>(redis_settings(server));
        REQUIRE(bus->wait_connected(5000ms));
        destroy_in_order(bus, o);
    }
}

TEST_CASE("gateway lifetime: a hung Redis answers after the gateway is gone",
          "[gateway_lifetime][redis]") {
    for (const auto o : {order::gateway_first, order::bus_first}) {
        redis_server server;
        auto bus = std::make_shared<redis_bus>(redis_settings(server));
        REQUIRE(bus->wait_connected(5000ms));
        auto gw = std::make_unique<gateway>(gateway_settings(200ms),
                                            codec_registry::with_builtin_codecs(), bus, bus);
        REQUIRE_FALSE(gw->start());
        {
            blasting_client client(gw->local_address(), "stuck");
            REQUIRE(client.sent_at_least(50));
            server.pause();  // commands wait on Redis from here
            REQUIRE(client.sent_at_least(100));
            if (o == order::bus_first) {
                bus.reset();
                gw.reset();  // drains for 200 ms, cancels, then destroys the bus it held last
            } else {
                gw.reset();  // drains for 200 ms and cancels; the bus still owes the answers
                server.resume();
                bus.reset();  // answers them now (or fails them): nobody is there to tell
            }
        }
        server.resume();
    }
}

TEST_CASE("gateway lifetime: a core and a redis_bus with commands waiting on a hung Redis",
          "[gateway_lifetime][redis]") {
    for (const auto o : {order::gateway_first, order::bus_first}) {
        redis_server server;
        auto bus = std::make_shared<redis_bus>(redis_settings(server));
        REQUIRE(bus->wait_connected(5000ms));
        auto options = test_options();
        auto core = std::make_unique<gateway_core>(options, codec_registry::with_builtin_codecs(),
                                                   bus, bus);
        core->start_listener();
        upgrade_request request;
        const std::string path = "/ws/player/" + test_token("wait");
        request.path = path;
        auto decision = core->authorize_upgrade(request);
        REQUIRE(decision.accepted);
        auto link = std::make_shared<memory_link>();
        decision.handler->on_open(link);
        decision.handler->on_message(true, R"({"type":"before","correlation_id":"ok"})");
        for (int i = 0; i < 100 && !contains(link->frames(), "\"ack\""); ++i) {
            std::this_thread::sleep_for(10ms);
        }
        CHECK(contains(link->frames(), "\"ack\""));
        server.pause();
        for (int i = 0; i < 20; ++i) {
            decision.handler->on_message(true, R"({"type":"stuck"})");
        }
        CHECK(core->ingress().pending_appends() == 20);
        if (o == order::bus_first) {
            bus.reset();
            core.reset();
        } else {
            core.reset();
            server.resume();
            bus.reset();
        }
        // The transport lets go last: the session held the ingress (and through it the bus).
        decision.handler->on_close(1006);
        decision.handler.reset();
        server.resume();
    }
}

// The drain's spread (docs/protocol.md 6.7) ends early without a dangling thread or callback: a
// second shutdown() from another thread, or the gateway destroyed, while clients keep sending.
TEST_CASE("gateway lifetime: a second shutdown() cuts the drain's spread short",
          "[gateway_lifetime][drain]") {
    auto options = gateway_settings(500ms);
    options.drain_spread = 60000ms;
    auto bus = std::make_shared<in_process_bus>();
    gateway gw(options, codec_registry::with_builtin_codecs(), bus, bus);
    REQUIRE_FALSE(gw.start());
    blasting_client client(gw.local_address(), "spread");
    REQUIRE(client.sent_at_least(100));
    const auto t0 = std::chrono::steady_clock::now();
    std::atomic<bool> first_returned{false};
    std::thread first([&] {
        gw.shutdown();
        first_returned = true;
    });
    // Refusing new clients from the start of the spread, while serving the open one.
    for (int i = 0; i < 500 && gw.ready(); ++i) std::this_thread::sleep_for(1ms);
    CHECK_FALSE(gw.ready());
    REQUIRE(client.sent_at_least(client.sent() + 100));  // commands still flowing
    CHECK_FALSE(first_returned.load());
    gw.shutdown();  // cuts the spread short; returns once the first call has finished
    first.join();
    CHECK(std::chrono::steady_clock::now() - t0 < 20s);
}

TEST_CASE("gateway lifetime: the gateway destroyed during the drain's spread",
          "[gateway_lifetime][drain]") {
    auto options = gateway_settings(500ms);
    options.drain_spread = 60000ms;
    auto bus = std::make_shared<in_process_bus>();
    auto gw = std::make_unique<gateway>(options, codec_registry::with_builtin_codecs(), bus, bus);
    REQUIRE_FALSE(gw->start());
    const auto t0 = std::chrono::steady_clock::now();
    {
        blasting_client client(gw->local_address(), "leaving");
        REQUIRE(client.sent_at_least(100));
        gateway* raw = gw.get();
        std::thread shutting([raw] { raw->shutdown(); });
        for (int i = 0; i < 500 && gw->ready(); ++i) std::this_thread::sleep_for(1ms);
        gw.reset();  // cuts the spread short and waits for the other thread's shutdown()
        shutting.join();
    }
    // Never started a spread of its own: a destructor does not wait one out either.
    auto again =
        std::make_unique<gateway>(options, codec_registry::with_builtin_codecs(), bus, bus);
    REQUIRE_FALSE(again->start());
    {
        blasting_client client(again->local_address(), "dropped");
        REQUIRE(client.sent_at_least(100));
        again.reset();
    }
    CHECK(std::chrono::steady_clock::now() - t0 < 20s);
}
