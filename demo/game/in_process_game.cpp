#include "in_process_game.hpp"

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "game_service.hpp"
#include "gatehouse/worker_pool.hpp"
#include "rules.hpp"

namespace gatehouse_demo::game {

// Shared by the bus handler and the game: the handler may still be running on a gateway I/O
// thread when stop() replaces it (the bus calls a copy outside its lock), so what it touches
// lives as long as the last copy.
struct in_process_game::context {
    context(gatehouse::in_process_bus& b, std::shared_ptr<session_store> s,
            in_process_game_options o)
        : bus(b), store(std::move(s)), options(std::move(o)), pool(1, options.max_queued) {}

    void log(gatehouse::log_level level, const std::string& text) const {
        if (options.log) options.log(level, "demo game: " + text);
    }

    // On the game thread.
    void play(const command& c) {
        const std::int64_t now = options.clock ? options.clock() : unix_now_ms();
        auto result = handle(*store, c, now);
        if (result.what == handled::store_failed) {
            log(gatehouse::log_level::error,
                "the session store failed; command " + c.type + " not applied");
            return;
        }
        if (result.what == handled::answered) publish(std::move(result.update));
    }

    // Through the update log (docs/protocol.md 6.4), so a player who reconnects with `resume`
    // gets the state changes it missed. The bus answers on this thread.
    void publish(std::string update) {
        bus.publish_logged(
            std::move(update), [this](std::error_code ec, const gatehouse::update_ids&) {
                if (ec)
                    log(gatehouse::log_level::warn, "the bus refused an update: " + ec.message());
            });
    }

    // On a gateway I/O thread: only a copy and a hand-off.
    void on_command(const gatehouse::bus_entry& entry) {
        const auto& e = entry.command;
        if (stopped.load() || !is_game_command(e.type)) return;
        command c;
        c.type = e.type;
        c.player_id = e.origin.player_id;
        c.correlation_id = e.correlation_id;
        c.codec = e.format == gatehouse::payload_format::json      ? "json"
                  : e.format == gatehouse::payload_format::msgpack ? "msgpack"
                                                                   : "protobuf";
        // The gateway writes a missing payload as JSON null.
        if (!(e.format == gatehouse::payload_format::json && e.payload == "null")) {
            c.payload = e.payload;
        }
        const auto job = std::make_shared<const command>(std::move(c));
        if (pool.post([this, job] { play(*job); })) return;
        if (stopped.load()) return;
        // A full queue: answered at once rather than silently dropped.
        log(gatehouse::log_level::warn, "game queue full; answering busy");
        nlohmann::json update = {{"player_id", job->player_id},
                                 {"type", "game.error"},
                                 {"payload",
                                  {{"request", job->type},
                                   {"code", "busy"},
                                   {"message", "the game is overloaded; try again"}}}};
        if (!job->correlation_id.empty()) update["correlation_id"] = job->correlation_id;
        publish(update.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }

    gatehouse::in_process_bus& bus;
    std::shared_ptr<session_store> store;
    in_process_game_options options;
    std::atomic<bool> stopped{false};
    gatehouse::worker_pool pool;
};

in_process_game::in_process_game(std::shared_ptr<gatehouse::in_process_bus> bus,
                                 std::shared_ptr<session_store> store,
                                 in_process_game_options options)
    : bus_(std::move(bus)),
      context_(std::make_shared<context>(*bus_, std::move(store), std::move(options))) {
    bus_->on_command(
        [ctx = context_](const gatehouse::bus_entry& entry) { ctx->on_command(entry); });
}

in_process_game::~in_process_game() { stop(); }

void in_process_game::stop() {
    if (context_->stopped.exchange(true)) return;
    bus_->on_command({});
    // Jobs already queued run now; the bus (held by bus_) is alive for their publishes.
    context_->pool.stop();
}

}  // namespace gatehouse_demo::game
