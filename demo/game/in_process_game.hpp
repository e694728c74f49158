#pragma once
// The game inside gatehouse-server --demo: it takes commands from the embedded bus and
// publishes its updates back onto it.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/log.hpp"
#include "session_store.hpp"

namespace gatehouse_demo::game {

/// Settings of an `in_process_game`.
struct in_process_game_options {
    /// Unix milliseconds now; empty: the system clock.
    std::function<std::int64_t()> clock;
    /// Where store failures and refused commands are reported; empty: silent.
    gatehouse::log_sink log;
    /// Commands waiting for the game thread at most; beyond that a command is answered with a
    /// game.error `busy` at once.
    std::size_t max_queued = 10000;
};

/// Plays Click & Cook on an `in_process_bus`: every game command appended to the bus is
/// handled on the game's own thread (one, so each player's commands are applied in the order
/// the bus saw them, and the gateway's I/O threads never wait on the game), and its update is
/// published on the bus for every connection of the player.
///
/// Thread safety: `stop` may be called from any thread but not from inside a bus handler.
/// Lifetime: construct before the gateway starts (it registers the bus's `on_command`
/// handler); call `stop()` after the gateway's `shutdown()` and before the bus is destroyed
/// (the destructor stops too). The bus must not get another `on_command` handler meanwhile.
class in_process_game {
public:
    in_process_game(std::shared_ptr<gatehouse::in_process_bus> bus,
                    std::shared_ptr<session_store> store, in_process_game_options options = {});
    ~in_process_game();
    in_process_game(const in_process_game&) = delete;
    in_process_game& operator=(const in_process_game&) = delete;

    /// Removes the bus handler, handles the commands already queued (publishing their
    /// updates) and joins the game thread. Idempotent.
    void stop();

private:
    struct context;
    std::shared_ptr<gatehouse::in_process_bus> bus_;
    std::shared_ptr<context> context_;
};

}  // namespace gatehouse_demo::game
