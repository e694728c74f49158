// embedding_tour: the walkthrough of docs/embedding.md, built in the gatehouse tree: a team's
// own game server with the gatehouse gateway inside it, using each public abstraction once.
// (examples/standalone_server is the other embedding example: a project of its own, with its
// own codec and bus, that a team copies out of the tree and builds with find_package.)
//
// The first half of run() is what an embedding team writes: an in-process bus (no Redis), a
// gateway on it listening on 127.0.0.1:0, an HTTP route of its own (`GET /version`), two
// metrics of its own, and an "echo" service that consumes every command in-process and
// answers it with an update for the sender carrying the command's correlation_id.
//
// The rest (the second half of run(), http_get and game_client) is a game client on real
// sockets (the small RFC 6455 client of examples/unreal_client on POSIX sockets, which needs
// only OpenSSL's libcrypto) that exercises all of that, so this example runs as a test
// (`ctest -R example.embedding_tour`) and cannot rot: it exits 0 when every check holds, and
// 1 with a message at the first one that does not. Every wait is bounded.
// docs/embedding.md walks through it.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/codec_registry.hpp"
#include "gatehouse/command_bus.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/jwt.hpp"
#include "gatehouse/update.hpp"
#include "gatehouse/version.hpp"
#include "posix_transport.hpp"   // examples/unreal_client: the client half's socket
#include "websocket_client.hpp"  // examples/unreal_client: the client half's WebSocket

namespace {

using json = nlohmann::json;
constexpr auto wait_limit = std::chrono::seconds(5);

// Any failed check ends the run: main() catches it, prints it and returns 1.
void require(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The client half runs on the small blocking-free WebSocket client of examples/unreal_client
// (target gatehouse_example_ws_client: POSIX sockets, RFC 6455 framing, no other library). That
// client is driven by tick() from a game loop; here a loop ticks it until what a check waits for
// has happened or the time limit has passed.
constexpr auto tick_interval = std::chrono::milliseconds(1);

// host:port split for gh_client::posix_transport::connect.
std::pair<std::string, std::uint16_t> split_address(const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    return {host_port.substr(0, colon),
            static_cast<std::uint16_t>(std::stoul(host_port.substr(colon + 1)))};
}

// A bounded HTTP/1.1 GET on loopback; returns the raw response (status line, headers, body).
std::string http_get(const std::string& host_port, const std::string& path) {
    const auto [host, port] = split_address(host_port);
    gh_client::posix_transport socket;
    require(socket.connect(host, port, 5000), "cannot connect to " + host_port);
    const std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n";
    std::size_t sent = 0;
    std::string response;
    const auto deadline = std::chrono::steady_clock::now() + wait_limit;
    while (std::chrono::steady_clock::now() < deadline) {
        std::size_t moved = 0;
        if (sent < request.size()) {
            const auto r = socket.send(request.data() + sent, request.size() - sent, moved);
            require(r == gh_client::io_result::ok || r == gh_client::io_result::would_block,
                    "GET " + path + ": send failed");
            sent += moved;
        }
        char buffer[4096];
        const auto r = socket.receive(buffer, sizeof buffer, moved);
        // Connection: close: the gateway closes the connection after its answer.
        if (r == gh_client::io_result::closed || r == gh_client::io_result::error) break;
        if (r == gh_client::io_result::ok) {
            response.append(buffer, moved);
        } else {
            std::this_thread::sleep_for(tick_interval);
        }
    }
    return response;
}

// A game client: gh_client::websocket_client over a POSIX socket, ticked by the checks while
// they wait. What it receives waits in an inbox that the checks read with a deadline.
class game_client {
public:
    game_client()
        : ws_(socket_, {[this](std::string_view) { opened_ = true; },
                        [this](bool, std::string_view data) { inbox_.emplace_back(data); },
                        [this](std::uint16_t code, std::string_view) {
                            close_code_ = code;
                            closed_ = true;
                        }}) {}

    void connect(const std::string& address, const std::string& path,
                 const std::string& subprotocol) {
        const auto [host, port] = split_address(address);
        require(socket_.connect(host, port, 5000), "cannot connect to " + address);
        ws_.open(address, path, subprotocol);
        require(tick_until([this] { return opened_ || closed_; }) && opened_,
                "the WebSocket upgrade did not succeed (HTTP " +
                    std::to_string(ws_.handshake_status()) + ")");
    }

    void send(const std::string& text) { require(ws_.send(true, text), "send: not open"); }

    // The next message, parsed; fails the run when none arrives in time.
    json receive() {
        require(tick_until([this] { return !inbox_.empty(); }), "no message within the time limit");
        auto text = std::move(inbox_.front());
        inbox_.pop_front();
        return json::parse(text);
    }

    // `count` messages by type, whatever order they arrive in.
    std::map<std::string, json> receive_by_type(int count) {
        std::map<std::string, json> by_type;
        for (int i = 0; i < count; ++i) {
            json m = receive();
            const std::string type = m.at("type");
            by_type[type] = std::move(m);
        }
        return by_type;
    }

    // The server's close code (0 when the connection is still open after the limit).
    std::uint16_t wait_closed() {
        tick_until([this] { return closed_; });
        return closed_ ? close_code_ : 0;
    }

private:
    // Ticks the client until `done()` holds (true) or the time limit passes (false).
    template <class Predicate>
    bool tick_until(Predicate done) {
        const auto deadline = std::chrono::steady_clock::now() + wait_limit;
        for (;;) {
            ws_.tick();
            if (done()) return true;
            if (std::chrono::steady_clock::now() >= deadline) return false;
            std::this_thread::sleep_for(tick_interval);
        }
    }

    gh_client::posix_transport socket_;  // outlives ws_, as websocket_client requires
    gh_client::websocket_client ws_;
    std::deque<std::string> inbox_;
    bool opened_ = false;
    bool closed_ = false;
    std::uint16_t close_code_ = 0;
};

int run() {
    const std::string jwt_secret = "example-secret-not-for-production";

    // --- The server: one id for the bus and the gateway, so entries carry the right one.
    const std::string gateway_id = gatehouse::make_gateway_id();
    gatehouse::in_process_bus_options bus_options;
    bus_options.gateway_id = gateway_id;
    auto bus = std::make_shared<gatehouse::in_process_bus>(bus_options);

    gatehouse::gateway_options options;
    options.listen = "127.0.0.1:0";
    options.threads = 2;
    options.jwt_secret = jwt_secret;
    options.gateway_id = gateway_id;
    options.log = [](gatehouse::log_level level, std::string_view message) {
        static const char* const names[] = {"debug", "info", "warn", "error"};
        std::fprintf(stderr, "[gateway %s] %.*s\n", names[static_cast<int>(level)],
                     static_cast<int>(message.size()), message.data());
    };
    // The bus is both the command bus and the update listener.
    gatehouse::gateway gw(options, gatehouse::codec_registry::with_builtin_codecs(), bus, bus);

    // Metrics of our own appear on the gateway's /metrics.
    auto& echoes =
        gw.metrics().counter("mygame_echoes_total", "Commands the echo service answered.");
    gw.metrics().gauge_callback("mygame_stream_entries", "Commands kept on the in-process stream.",
                                [&bus] { return static_cast<double>(bus->size()); });

    // A route of our own beside /health, /ready and /metrics.
    gw.add_route("GET", "/version",
                 [](const gatehouse::http_request&, const gatehouse::http_responder& respond) {
                     respond(gatehouse::http_response::json(200, R"({"version":"1.4.2"})"));
                 });

    // The echo service. on_command runs on the gateway I/O thread that accepted the command,
    // before the ack is sent: keep it short (publish only queues the update).
    auto& commands = *bus;
    bus->on_command([&commands, &echoes](const gatehouse::bus_entry& entry) {
        const auto& command = entry.command;
        // update_for_player takes JSON text; a msgpack or protobuf client's payload is not.
        const std::string payload =
            command.format == gatehouse::payload_format::json ? command.payload : "null";
        // publish() is false only when max_pending_updates wait already (then it is counted
        // in updates_refused()); a real service would log that.
        if (commands.publish(gatehouse::update_for_player(command.origin.player_id, "echo", payload,
                                                          command.correlation_id))) {
            echoes.add();
        }
    });

    if (const auto ec = gw.start()) {
        std::fprintf(stderr, "embedding_tour: cannot start: %s\n", ec.message().c_str());
        return 1;
    }
    const std::string address = gw.local_address();
    std::printf("embedding_tour: listening on %s as %s\n", address.c_str(),
                gw.gateway_id().c_str());
    std::fflush(stdout);

    // --- The client side: our route, then a WebSocket session.
    const std::string version = http_get(address, "/version");
    require(version.rfind("HTTP/1.1 200", 0) == 0 &&
                version.find(R"({"version":"1.4.2"})") != std::string::npos,
            "GET /version answered: " + version);

    const std::string player = "player-42";
    const auto now = gatehouse::unix_now_seconds();
    const std::string token = gatehouse::sign_jwt({player, now, now + 300, {}}, jwt_secret);
    game_client client;
    client.connect(address, "/ws/player/" + token, "gatehouse.json");

    const json welcome = client.receive();
    require(welcome.at("type") == "welcome", "first message is not welcome: " + welcome.dump());
    const std::string connection_id = welcome.at("payload").at("connection_id");
    require(welcome.at("payload").at("player_id") == player, "welcome player_id");
    require(welcome.at("payload").at("codec") == "json", "welcome codec");

    const std::int64_t sent_at = unix_ms();
    client.send(R"({"type":"chat.say","payload":{"text":"hello"},"correlation_id":"c-1"})");
    // The echo is published before the ack is sent, so the two may arrive in either order.
    auto replies = client.receive_by_type(2);
    const std::int64_t answered_at = unix_ms();
    require(replies.count("ack") == 1 && replies.count("echo") == 1, "expected an ack and an echo");
    const json& ack = replies["ack"];
    const json& echo = replies["echo"];
    require(ack.at("correlation_id") == "c-1", "ack correlation_id: " + ack.dump());
    require(echo.at("correlation_id") == "c-1", "echo correlation_id: " + echo.dump());
    require(echo.at("payload") == json{{"text", "hello"}}, "echo payload: " + echo.dump());

    // The command as a service reads it (docs/protocol.md section 4's fields).
    const auto entries = bus->read("0", 10);
    require(entries.size() == 1, "one entry on the stream");
    const gatehouse::bus_entry& entry = entries.front();
    const gatehouse::envelope& command = entry.command;
    require(entry.id == ack.at("payload").at("stream_id"), "ack stream_id is the entry id");
    require(command.type == "chat.say", "entry type");
    require(command.payload == R"({"text":"hello"})", "entry payload: " + command.payload);
    require(gatehouse::bus_codec_name(command.format) == "json", "entry codec");
    require(command.correlation_id == "c-1", "entry correlation_id");
    require(command.origin.player_id == player, "entry player_id");
    require(command.origin.connection_id == connection_id, "entry connection_id");
    require(command.origin.client == gatehouse::client_kind::player, "entry client");
    require(
        command.origin.accepted_at_ms >= sent_at && command.origin.accepted_at_ms <= answered_at,
        "entry ts_ms is not between send and answer");
    require(entry.gateway_id == gw.gateway_id(), "entry gateway_id");

    // The connection manager: a direct send, and a room joined by the server itself.
    auto& connections = gw.connections();
    require(connections.connections_of(player) == std::vector<std::string>{connection_id},
            "connections_of");
    const auto direct = connections.deliver(gatehouse::update_for_connection(
        player, connection_id, "server.notice", R"({"text":"welcome to the lobby"})"));
    require(direct.queued == 1, "direct delivery queued");
    require(connections.join(player, "lobby"), "join lobby");
    bus->publish(gatehouse::update_for_room("lobby", "lobby.news", R"({"players":1})"));
    auto pushed = client.receive_by_type(2);
    require(pushed.count("server.notice") == 1 && pushed.count("lobby.news") == 1,
            "expected the direct notice and the room update");

    // Our metrics, and the gateway's.
    const std::string metrics = http_get(address, "/metrics");
    require(metrics.find("\nmygame_echoes_total 1\n") != std::string::npos, "mygame_echoes_total");
    require(metrics.find("\nmygame_stream_entries 1\n") != std::string::npos,
            "mygame_stream_entries");
    require(metrics.find("\ngatehouse_commands_accepted_total 1\n") != std::string::npos,
            "gatehouse_commands_accepted_total");

    // Graceful shutdown: every command is answered already, so the client gets 1001 at once.
    // shutdown() blocks until the closing handshakes are done, and this client only answers
    // while it is ticked: shut down on a thread of its own and keep ticking here.
    std::thread stopping([&gw] { gw.shutdown(); });
    const auto close_code = client.wait_closed();
    stopping.join();
    require(!gw.ready(), "ready after shutdown");
    require(close_code == 1001, "close code " + std::to_string(close_code) + ", expected 1001");
    bus->on_command({});  // the handler refers to the gateway's metrics
    std::printf("embedding_tour: all checks passed\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "gatehouse-example-embedding-tour")) return 0;
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "embedding_tour: FAILED: %s\n", e.what());
        return 1;
    }
}
