// An in-process gateway as an embedder without Redis or accounts builds it: the gateway on the
// in-process bus, listening on 127.0.0.1:0, with an echo service. Then one WebSocket session
// against it on a plain POSIX socket (the handshake and frames written here, with no library):
// the welcome, a command, its ack and the service's echo. Exits 0 when all of that holds, and
// 1 with a message otherwise. Every wait is bounded by SO_RCVTIMEO.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "gatehouse/codec_registry.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/jwt.hpp"
#include "gatehouse/update.hpp"
#include "gatehouse/version.hpp"

namespace {

void require(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

// A blocking WebSocket client of one connection, enough for text frames under 64 KiB.
class ws_client {
public:
    ws_client(const std::string& host_port, const std::string& path) {
        const auto colon = host_port.rfind(':');
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port =
            htons(static_cast<std::uint16_t>(std::stoul(host_port.substr(colon + 1))));
        require(inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &address.sin_addr) == 1,
                "bad address " + host_port);
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        require(fd_ >= 0, "socket");
        timeval limit{5, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        require(::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0,
                "cannot connect to " + host_port);
        // RFC 6455 section 1.3's sample key and the accept value it must produce.
        write_all("GET " + path + " HTTP/1.1\r\nHost: " + host_port +
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: gatehouse.json\r\n\r\n");
        std::size_t end;
        while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) read_more();
        const std::string head = buffer_.substr(0, end);
        buffer_.erase(0, end + 4);
        require(head.rfind("HTTP/1.1 101", 0) == 0, "upgrade refused: " + head);
        require(head.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos,
                "wrong Sec-WebSocket-Accept: " + head);
    }
    ~ws_client() { ::close(fd_); }
    ws_client(const ws_client&) = delete;
    ws_client& operator=(const ws_client&) = delete;

    // One masked text frame.
    void send_text(std::string_view text) {
        require(text.size() < 126, "send_text: short messages only");
        const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
        std::string frame;
        frame += static_cast<char>(0x81);
        frame += static_cast<char>(0x80 | text.size());
        frame.append(reinterpret_cast<const char*>(mask), 4);
        for (std::size_t i = 0; i < text.size(); ++i) {
            frame += static_cast<char>(static_cast<unsigned char>(text[i]) ^ mask[i % 4]);
        }
        write_all(frame);
    }

    // The next text message (server frames are unmasked and, from gatehouse, unfragmented).
    std::string receive_text() {
        for (;;) {
            while (buffer_.size() < 2) read_more();
            const auto opcode = static_cast<unsigned char>(buffer_[0]) & 0x0f;
            std::size_t length = static_cast<unsigned char>(buffer_[1]) & 0x7f;
            std::size_t header = 2;
            if (length == 126) {
                while (buffer_.size() < 4) read_more();
                length = (static_cast<std::size_t>(static_cast<unsigned char>(buffer_[2])) << 8) |
                         static_cast<unsigned char>(buffer_[3]);
                header = 4;
            }
            require(length < 65536, "frame too long for this client");
            while (buffer_.size() < header + length) read_more();
            std::string payload = buffer_.substr(header, length);
            buffer_.erase(0, header + length);
            if (opcode == 0x1) return payload;
            require(opcode != 0x8, "connection closed by the gateway");
        }
    }

private:
    void write_all(std::string_view data) {
        while (!data.empty()) {
            const auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            require(n > 0, "send failed");
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    void read_more() {
        char chunk[4096];
        const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
        require(n > 0, "nothing received within 5 s (or the connection closed)");
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }

    int fd_ = -1;
    std::string buffer_;
};

bool has(const std::string& message, std::string_view part) {
    return message.find(part) != std::string::npos;
}

int run() {
    const std::string secret = "consumer-test-secret";
    const std::string gateway_id = gatehouse::make_gateway_id();
    gatehouse::in_process_bus_options bus_options;
    bus_options.gateway_id = gateway_id;
    auto bus = std::make_shared<gatehouse::in_process_bus>(bus_options);

    gatehouse::gateway_options options;
    options.listen = "127.0.0.1:0";
    options.jwt_secret = secret;
    options.gateway_id = gateway_id;
    gatehouse::gateway gw(options, gatehouse::codec_registry::with_builtin_codecs(), bus, bus);

    // The echo service: every command comes back to its sender as an `echo` update.
    auto& commands = *bus;
    bus->on_command([&commands](const gatehouse::bus_entry& entry) {
        commands.publish(gatehouse::update_for_player(entry.command.origin.player_id, "echo",
                                                      entry.command.payload,
                                                      entry.command.correlation_id));
    });
    if (const auto ec = gw.start()) {
        std::fprintf(stderr, "cannot start: %s\n", ec.message().c_str());
        return 1;
    }

    {
        const auto now = gatehouse::unix_now_seconds();
        const std::string token = gatehouse::sign_jwt({"player-1", now, now + 300, {}}, secret);
        ws_client client(gw.local_address(), "/ws/player/" + token);
        const std::string welcome = client.receive_text();
        require(has(welcome, R"("type":"welcome")"), "expected the welcome, got " + welcome);

        client.send_text(R"({"type":"ping.me","payload":{"n":1},"correlation_id":"c-1"})");
        // The echo is published before the ack is sent; they may arrive in either order.
        const std::string first = client.receive_text();
        const std::string second = client.receive_text();
        const bool ack_first = has(first, R"("type":"ack")");
        const std::string& ack = ack_first ? first : second;
        const std::string& echo = ack_first ? second : first;
        require(has(ack, R"("type":"ack")") && has(ack, R"("correlation_id":"c-1")"),
                "expected the ack of c-1, got " + ack);
        require(has(echo, R"("type":"echo")") && has(echo, R"("n":1)") &&
                    has(echo, R"("correlation_id":"c-1")"),
                "expected the echo of c-1, got " + echo);
    }
    gw.shutdown();
    std::printf("in-process gateway ok (gatehouse %s)\n", gatehouse::version_string);
    return 0;
}

}  // namespace

int main() {
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "in-process gateway FAILED: %s\n", e.what());
        return 1;
    }
}
