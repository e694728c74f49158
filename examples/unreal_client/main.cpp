// unreal_client: a game client in the shape of an Unreal plugin, playing Click & Cook against
// `gatehouse-server --demo`. It uses gatehouse::client_codec and nothing else of gatehouse: its
// own RFC 6455 client (websocket_client) on POSIX sockets (posix_transport), Protobuf
// envelopes with JSON payloads, HTTP login on the same socket code.
//
// Usage:
//   gatehouse-example-unreal-client --server HOST:PORT
//       (--token ACCESS_TOKEN | --username NAME --password PASS [--register])
//       [--idle-seconds N]
// It plays a fixed round (reset, cook, sell, a refused purchase, a knife, a level-up), checks
// every state the game answers with, and exits 0 only when all of them hold. --idle-seconds
// then idles that long (the server's pings must be answered to stay connected) and plays once
// more. docs/examples/unreal-client.md walks through it.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "gatehouse/version.hpp"
#include "gatehouse_session.hpp"
#include "http_post.hpp"
#include "json_fields.hpp"
#include "posix_transport.hpp"

namespace {

using gh_client::gatehouse_session;
using gh_client::json_int;
using gh_client::json_string;
using clock_type = std::chrono::steady_clock;

constexpr int reply_timeout_ms = 5000;

struct options {
    std::string host;
    std::uint16_t port = 0;
    std::string token, username, password;
    bool register_first = false;
    int idle_seconds = 0;
};

bool parse_options(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--register") {
            o.register_first = true;
        } else if (has_value && arg == "--server") {
            const std::string value = argv[++i];
            const auto colon = value.rfind(':');
            if (colon == std::string::npos) return false;
            o.host = value.substr(0, colon);
            const long port = std::strtol(value.c_str() + colon + 1, nullptr, 10);
            if (port <= 0 || port > 65535) return false;
            o.port = static_cast<std::uint16_t>(port);
        } else if (has_value && arg == "--token") {
            o.token = argv[++i];
        } else if (has_value && arg == "--username") {
            o.username = argv[++i];
        } else if (has_value && arg == "--password") {
            o.password = argv[++i];
        } else if (has_value && arg == "--idle-seconds") {
            o.idle_seconds = static_cast<int>(std::strtol(argv[++i], nullptr, 10));
        } else {
            return false;
        }
    }
    return o.port != 0 && (!o.token.empty() || (!o.username.empty() && !o.password.empty()));
}

// The account routes of docs/protocol.md section 2 (usernames and passwords here are plain ASCII
// without quotes, so they are written into the JSON as they are).
std::optional<std::string> log_in(const options& o) {
    if (o.register_first) {
        gh_client::posix_transport t;
        const auto r = gh_client::http_post_json(
            t, o.host, o.port, "/register",
            R"({"username":")" + o.username + R"(","email":")" + o.username +
                R"(@example.com","password":")" + o.password + R"("})",
            reply_timeout_ms);
        // 409: the account exists already (a second run); logging in is what matters.
        if (r.status != 201 && r.status != 409) {
            std::fprintf(stderr, "register: HTTP %d %s\n", r.status, r.body.c_str());
            return std::nullopt;
        }
    }
    gh_client::posix_transport t;
    const auto r = gh_client::http_post_json(
        t, o.host, o.port, "/login",
        R"({"username":")" + o.username + R"(","password":")" + o.password + R"("})",
        reply_timeout_ms);
    auto token = json_string(r.body, "access_token");
    if (r.status != 200 || !token) {
        std::fprintf(stderr, "login: HTTP %d %s\n", r.status, r.body.c_str());
        return std::nullopt;
    }
    return token;
}

// Ticks the session, as the engine's frame loop would, until `done` or the time limit.
template <class Done>
bool tick_until(gatehouse_session& session, int timeout_ms, Done done) {
    const auto deadline = clock_type::now() + std::chrono::milliseconds(timeout_ms);
    while (!done()) {
        if (clock_type::now() > deadline) return false;
        session.tick();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // ~ a frame, minus the work
    }
    return true;
}

// What the game answered to one command.
struct answer {
    bool acked = false;
    std::string type;     // game.state or game.error; empty until it came
    std::string payload;  // its JSON
};

// The game layer of the plugin: one call per player action.
class click_and_cook {
public:
    explicit click_and_cook(gatehouse_session& s) : session_(s) {}

    // Sends a command and waits for its ack and the game's answer (in either order).
    answer play(std::string_view type, std::string_view payload_json) {
        answer a;
        const std::string id = session_.send_command(type, payload_json, [&a](const auto& reply) {
            const std::string_view t = reply.type();
            if (t == "ack") a.acked = true;
            if (t == "game.state" || t == "game.error" || t == "error") {
                a.type = std::string(t);
                a.payload = std::string(reply.payload());
            }
            return a.acked && !a.type.empty();
        });
        if (id.empty()) {
            a.type = "not sent";
            return a;
        }
        tick_until(session_, reply_timeout_ms,
                   [&a] { return a.type == "error" || (a.acked && !a.type.empty()); });
        std::printf("%-12s %-16s -> %s %s\n", std::string(type).c_str(),
                    std::string(payload_json).c_str(),
                    a.type.empty() ? "(no answer)" : a.type.c_str(), a.payload.c_str());
        return a;
    }

private:
    gatehouse_session& session_;
};

// Collects failed checks; the program's exit code.
struct checks {
    int failed = 0;
    void expect(bool ok, const std::string& what) {
        if (!ok) {
            ++failed;
            std::fprintf(stderr, "FAILED: %s\n", what.c_str());
        }
    }
    // A game.state whose state has each `key=value` given.
    void state(const answer& a, std::initializer_list<std::pair<const char*, long long>> want) {
        expect(a.acked, "the command was not acked");
        expect(a.type == "game.state", "want game.state, got " + a.type + " " + a.payload);
        for (const auto& [key, value] : want) {
            const auto got = json_int(a.payload, key);
            expect(got == value, std::string(key) + " = " + (got ? std::to_string(*got) : "none") +
                                     ", want " + std::to_string(value));
        }
    }
    void error(const answer& a, const char* code) {
        expect(a.acked, "the command was not acked");
        expect(a.type == "game.error" && json_string(a.payload, "code") == code,
               std::string("want game.error ") + code + ", got " + a.type + " " + a.payload);
    }
};

int run(const options& o) {
    std::string token = o.token;
    if (token.empty()) {
        auto t = log_in(o);
        if (!t) return 1;
        token = *t;
    }

    gh_client::posix_transport transport;
    std::string player_id;
    std::uint16_t closed_with = 0;
    gatehouse_session::delegates events;
    events.on_welcome = [&player_id](std::string_view player, std::string_view connection) {
        player_id = std::string(player);
        std::printf("welcome: player %s, connection %.*s\n", player_id.c_str(),
                    static_cast<int>(connection.size()), connection.data());
    };
    events.on_update = [](const gatehouse::client::envelope& m) {
        std::printf("update %.*s\n", static_cast<int>(m.type().size()), m.type().data());
    };
    events.on_disconnected = [&closed_with](std::uint16_t code, std::string_view why) {
        closed_with = code;
        std::printf("disconnected: %u %.*s\n", code, static_cast<int>(why.size()), why.data());
    };
    gatehouse_session session(transport, events);
    if (!session.connect(o.host, o.port, token)) {
        std::fprintf(stderr, "cannot connect to %s:%u\n", o.host.c_str(), o.port);
        return 1;
    }
    if (!tick_until(session, reply_timeout_ms, [&] { return session.ready() || closed_with; }) ||
        !session.ready()) {
        std::fprintf(stderr, "no welcome (upgrade answered HTTP %d)\n",
                     session.socket().handshake_status());
        return 1;
    }

    click_and_cook game(session);
    checks c;
    c.expect(game.play("session", "{}").type == "game.state", "session");
    // A known starting point, whatever this player did before.
    c.state(game.play("session_reset", "{}"),
            {{"coins", 0}, {"dishes", 0}, {"level", 1}, {"xp", 0}, {"cook_power", 1}});
    c.state(game.play("cook", R"({"count":5})"), {{"dishes", 5}, {"xp", 5}});
    c.state(game.play("sell", R"({"count":3})"), {{"dishes", 2}, {"coins", 6}, {"xp", 8}});
    c.error(game.play("upgrade_buy", R"({"upgrade":"knife"})"), "not_enough_coins");
    c.state(game.play("cook", R"({"count":10})"), {{"dishes", 12}, {"xp", 18}});
    c.state(game.play("sell", "{}"), {{"dishes", 0}, {"coins", 30}, {"xp", 30}});
    c.state(game.play("upgrade_buy", R"({"upgrade":"knife"})"),
            {{"coins", 20}, {"cook_power", 2}, {"knife", 1}});
    c.state(game.play("cook", "{}"), {{"dishes", 2}, {"xp", 31}});
    const answer check = game.play("level_check", "{}");
    c.state(check, {{"xp_required", 20}});
    c.expect(gh_client::json_bool(check.payload, "can_level_up") == true, "can_level_up");
    c.state(game.play("level_up", "{}"), {{"level", 2}, {"xp", 11}, {"cook_power", 3}});
    c.error(game.play("cook", R"({"count":0})"), "invalid_payload");
    if (c.failed != 0) return 1;

    if (o.idle_seconds > 0) {
        // Quiet on our side: the gateway pings, and closes an idle connection that does not
        // answer (--idle-timeout), so staying open proves the pongs.
        std::printf("idling %d s\n", o.idle_seconds);
        tick_until(session, o.idle_seconds * 1000, [] { return false; });
        c.expect(session.ready(), "the connection did not survive idling");
        c.expect(session.socket().pings_answered() > 0, "no ping was answered");
        std::printf("pings answered: %llu\n",
                    static_cast<unsigned long long>(session.socket().pings_answered()));
        if (c.failed != 0) return 1;
        c.state(game.play("cook", "{}"), {{"dishes", 5}, {"level", 2}});
    }

    c.expect(session.pending_commands() == 0, "commands still waiting for replies");
    session.disconnect();
    tick_until(session, reply_timeout_ms, [&] { return closed_with != 0; });
    c.expect(closed_with == 1000, "close code " + std::to_string(closed_with) + ", want 1000");
    if (c.failed == 0) std::printf("all checks passed\n");
    return c.failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "gatehouse-example-unreal-client")) return 0;
    options o;
    if (!parse_options(argc, argv, o)) {
        std::fprintf(stderr,
                     "usage: %s --server HOST:PORT (--token TOKEN | --username NAME --password "
                     "PASS [--register]) [--idle-seconds N]\n",
                     argv[0]);
        return 2;
    }
    return run(o);
}
