// standalone_server: a team's own game server built on the gatehouse library, with
//   - its own wire format, registered by name (netstring_codec.hpp; subprotocol
//     `gatehouse.netstring`), beside the built-in json, msgpack and protobuf;
//   - its own command bus and update source (journal_bus.hpp): commands go to an append-only
//     journal file, and a worker answers them through a service of ours;
//   - its own service, a kitchen that takes `order` commands, and its own route, GET /kitchen.
// This directory is a project of its own (CMakeLists.txt): copy it out of the gatehouse tree
// and build it against an installed gatehouse with find_package(gatehouse).
//
// Usage: gatehouse-example-standalone-server --jwt-secret SECRET [--listen 127.0.0.1:8090]
//        [--journal orders.jsonl] [--version]
// Prints `standalone_server ready listen=HOST:PORT` once it accepts connections; SIGINT/SIGTERM
// stop it gracefully. docs/examples/standalone-server.md walks through it;
// test_standalone_server.py runs it as a test.

#include <pthread.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/codec_registry.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/update.hpp"
#include "gatehouse/version.hpp"
#include "journal_bus.hpp"
#include "netstring_codec.hpp"

namespace {

using nlohmann::json;

struct settings {
    std::string listen = "127.0.0.1:8090";
    std::string jwt_secret;
    std::string journal = "orders.jsonl";
};

bool parse_args(int argc, char** argv, settings& s) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--listen") {
            s.listen = argv[i + 1];
        } else if (flag == "--jwt-secret") {
            s.jwt_secret = argv[i + 1];
        } else if (flag == "--journal") {
            s.journal = argv[i + 1];
        } else {
            return false;
        }
    }
    return argc % 2 == 1 && !s.jwt_secret.empty();
}

// The kitchen: `order {"dish": "soup", "qty"?: 1..20}` is answered, for the sending player
// only, with `order.placed {"order_no", "dish", "qty"}` or `order.rejected {"reason"}`,
// carrying the command's correlation_id. Other command types are journaled, not answered.
std::vector<std::string> kitchen(std::uint64_t entry_number, const gatehouse::envelope& command,
                                 std::atomic<std::uint64_t>& orders_placed) {
    if (command.type != "order") return {};
    const auto& player = command.origin.player_id;
    const auto reject = [&](const char* reason) {
        return std::vector<std::string>{gatehouse::to_json(gatehouse::update_for_player(
            player, "order.rejected", json{{"reason", reason}}.dump(), command.correlation_id))};
    };
    // Payloads arrive as the client's codec carried them: JSON from json and netstring clients.
    if (command.format != gatehouse::payload_format::json) return reject("send a JSON payload");
    const json order = json::parse(command.payload, nullptr, /*allow_exceptions=*/false);
    if (!order.is_object() || !order.contains("dish") || !order["dish"].is_string()) {
        return reject("an order needs a \"dish\"");
    }
    const auto dish = order["dish"].get<std::string>();
    const json qty = order.value("qty", json(1));
    if (dish.empty() || dish.size() > 32 || !qty.is_number_integer() || qty < 1 || qty > 20) {
        return reject("dish: 1-32 characters, qty: 1-20");
    }
    ++orders_placed;
    const json placed = {{"order_no", entry_number}, {"dish", dish}, {"qty", qty}};
    return {gatehouse::to_json(gatehouse::update_for_player(player, "order.placed", placed.dump(),
                                                            command.correlation_id))};
}

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "gatehouse-example-standalone-server"))
        return 0;
    settings s;
    if (!parse_args(argc, argv, s)) {
        std::fprintf(stderr,
                     "usage: %s --jwt-secret SECRET [--listen HOST:PORT] [--journal FILE]\n",
                     argv[0]);
        return 2;
    }
    // Signals are taken by sigwait() below; blocked before any thread starts, so every thread
    // inherits the mask and none of them is interrupted.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    // Our codec beside the built-in ones (the registry must keep `json`: text frames are JSON).
    auto codecs = gatehouse::codec_registry::with_builtin_codecs();
    if (codecs.add(std::make_shared<standalone::netstring_codec>())) return 1;

    gatehouse::gateway_options options;
    options.listen = s.listen;
    options.jwt_secret = s.jwt_secret;
    options.gateway_id = gatehouse::make_gateway_id();
    options.log = [](gatehouse::log_level level, std::string_view message) {
        if (level >= gatehouse::log_level::warn) {
            std::fprintf(stderr, "standalone_server: %.*s\n", static_cast<int>(message.size()),
                         message.data());
        }
    };

    // Declared before the bus, whose worker counts into it until the bus is destroyed.
    std::atomic<std::uint64_t> orders_placed{0};
    // Our bus: the gateway appends to it and listens to it, as it would to Redis.
    auto bus = std::make_shared<standalone::journal_bus>(s.journal, 1024, options.gateway_id);
    bus->serve([&orders_placed](std::uint64_t number, const gatehouse::envelope& command) {
        return kitchen(number, command, orders_placed);
    });

    gatehouse::gateway gw(options, std::move(codecs), bus, bus);
    // Our route, beside /health, /ready and /metrics.
    gw.add_route("GET", "/kitchen",
                 [&bus, &orders_placed](const gatehouse::http_request&,
                                        const gatehouse::http_responder& respond) {
                     const json body = {{"journal_entries", bus->written()},
                                        {"orders_placed", orders_placed.load()}};
                     respond(gatehouse::http_response::json(200, body.dump()));
                 });

    if (const auto ec = gw.start()) {
        std::fprintf(stderr, "standalone_server: cannot start on %s: %s\n", s.listen.c_str(),
                     ec.message().c_str());
        return 1;
    }
    std::printf("standalone_server ready listen=%s\n", gw.local_address().c_str());
    std::fflush(stdout);

    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    gw.shutdown();  // answers every command already read, then closes connections with 1001
    return 0;
}
