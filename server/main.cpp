// gatehouse-server: the reference server. It reads docs/protocol.md section 1's flags (each with
// its GATEHOUSE_* environment twin, or from a --config TOML file), checks them all before
// opening anything (`check-config` stops there), builds a gateway on the in-process bus or, with
// --redis, on Redis, prints the ready line, and shuts down gracefully on SIGINT/SIGTERM. With
// --demo it also serves the Click & Cook demo (docs/examples/demo-game.md).

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "config_file.hpp"
#include "fleet_health.hpp"
#include "gatehouse/accounts.hpp"
#include "gatehouse/amqp_bus.hpp"
#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/redis_bus.hpp"
#include "gatehouse/redis_limiter.hpp"
#include "gatehouse/version.hpp"
#include "in_process_game.hpp"
#include "log_output.hpp"
#include "memory_session_store.hpp"
#include "server_config.hpp"
#include "tracing_setup.hpp"
#include "web_client.hpp"

namespace {

// Exit codes scripts can tell apart: 2 is "you called me wrongly", 1 is "the environment did
// not let me run" (port in use, unreadable certificate, ...).
constexpr int exit_runtime_error = 1;
constexpr int exit_usage_error = 2;

// The Redis bus's counters on /metrics.
void add_redis_metrics(gatehouse::gateway& gw, const std::shared_ptr<gatehouse::redis_bus>& redis) {
    auto& m = gw.metrics();
    using stats = gatehouse::redis_bus_stats;
    const auto counter = [&m, redis](const char* name, const char* help,
                                     std::uint64_t stats::*field) {
        m.counter_callback(name, help,
                           [redis, field] { return static_cast<double>(redis->stats().*field); });
    };
    counter("gatehouse_redis_commands_appended_total", "Commands Redis answered with an entry id.",
            &stats::appended);
    counter("gatehouse_redis_append_failures_total",
            "Commands the Redis bus answered with bus_unavailable.", &stats::append_failures);
    counter("gatehouse_redis_updates_received_total", "Pub/Sub messages received.",
            &stats::updates_received);
    counter("gatehouse_redis_command_reconnects_total",
            "Times the command connection was re-established.", &stats::command_reconnects);
    counter("gatehouse_redis_listener_reconnects_total",
            "Times the subscription was re-established.", &stats::listener_reconnects);
    counter("gatehouse_commands_deduplicated_total",
            "Retried commands answered with their first stream id, not appended again.",
            &stats::duplicates);
    m.add_histogram("gatehouse_redis_roundtrip_seconds",
                    "Round trips on the command connection, per reply: the command queued for "
                    "the next write to its reply read (XADD, FCALL, the idle PING).",
                    redis->producer().roundtrip_histogram());
    m.gauge_callback("gatehouse_redis_connected",
                     "1 while the command connection and the subscription are up.",
                     [redis] { return redis->connected() ? 1.0 : 0.0; });
    m.gauge_callback("gatehouse_redis_module_loaded",
                     "1 while commands are appended by GATEHOUSE.APPEND (the gatehouse Redis "
                     "module); 0 while by FCALL gatehouse_append or XADD.",
                     [redis] { return redis->producer().stats().append_module ? 1.0 : 0.0; });
}

// The RabbitMQ bus's counters on /metrics.
void add_amqp_metrics(gatehouse::gateway& gw, const std::shared_ptr<gatehouse::amqp_bus>& amqp) {
    auto& m = gw.metrics();
    using stats = gatehouse::amqp_bus_stats;
    const auto counter = [&m, amqp](const char* name, const char* help,
                                    std::uint64_t stats::*field) {
        m.counter_callback(name, help,
                           [amqp, field] { return static_cast<double>(amqp->stats().*field); });
    };
    counter("gatehouse_amqp_commands_appended_total", "Commands the broker confirmed.",
            &stats::appended);
    counter("gatehouse_amqp_append_failures_total",
            "Commands the AMQP bus answered with bus_unavailable.", &stats::append_failures);
    counter("gatehouse_amqp_updates_received_total", "Update messages received.",
            &stats::updates_received);
    counter("gatehouse_amqp_reconnects_total", "Times the broker connection was re-established.",
            &stats::reconnects);
    m.gauge_callback("gatehouse_amqp_connected", "1 while the AMQP bus is connected and consuming.",
                     [amqp] { return amqp->connected() ? 1.0 : 0.0; });
}

// --demo: the browser client's routes, and the game itself on the embedded bus. With Redis the
// game is a process of its own (it must share the sessions across gateway instances), so this
// only says how to run it. Null when the game does not run in this process.
std::unique_ptr<gatehouse_demo::game::in_process_game> start_demo(
    const gatehouse_server::config& config, const gatehouse::gateway_options& options,
    gatehouse::gateway& gw, const std::shared_ptr<gatehouse::in_process_bus>& local_bus,
    const std::shared_ptr<gatehouse::redis_bus>& redis, spdlog::logger& logger) {
    gatehouse_demo::add_web_client_routes(gw);
    if (!local_bus && !redis) {
        logger.info(
            "demo: serving the web client; with --amqp the game runs as its own process: "
            "gatehouse-demo-game --amqp URL (with the same --amqp-exchange and "
            "--amqp-updates-exchange)");
        return nullptr;
    }
    if (!local_bus) {
        std::string flags;
        if (config.command_stream != gatehouse_server::config{}.command_stream) {
            flags += " --command-stream " + config.command_stream;
        }
        if (config.updates_channel != gatehouse_server::config{}.updates_channel) {
            flags += " --updates-channel " + config.updates_channel;
        }
        logger.info(
            "demo: serving the web client; with --redis the game runs as its own process: "
            "gatehouse-demo-game --redis URL{} (URL as given to --redis, here {})",
            flags, redis->redacted_url());
        return nullptr;
    }
    gatehouse_demo::game::in_process_game_options game_options;
    game_options.log = options.log;
    logger.info("demo: serving the web client and running the game in-process");
    return std::make_unique<gatehouse_demo::game::in_process_game>(
        local_bus, std::make_shared<gatehouse_demo::game::memory_session_store>(),
        std::move(game_options));
}

// What the account routes run on; `workers` is null when they could not be set up (logged),
// and `exit_code` then says why.
struct account_services {
    std::shared_ptr<gatehouse::worker_pool> workers;
    std::shared_ptr<gatehouse::user_store> store;
    int exit_code = exit_usage_error;
};

account_services make_account_services(gatehouse_server::config& config,
                                       const gatehouse::gateway_options& options,
                                       gatehouse::gateway& gw, spdlog::logger& logger,
                                       gatehouse::audit_sink audit) {
    gatehouse::accounts_options accounts_options;
    gatehouse_server::to_accounts_options(config, options, accounts_options);
    accounts_options.log = options.log;
    accounts_options.audit = std::move(audit);
    std::unique_ptr<gatehouse::user_store> store;
    account_services failed;
    try {
        const auto db_log = [&logger](gatehouse::log_level, std::string_view why) {
            logger.error("--db: {}", why);
        };
        // A database that cannot be opened is a runtime error (logged by db_log)...
        if (gatehouse::open_user_store(config.db, store, db_log)) {
            failed.exit_code = exit_runtime_error;
            return failed;
        }
    } catch (const std::invalid_argument& e) {
        // ...an unsupported or malformed URL a usage error.
        logger.error("--db: {}", e.what());
        failed.exit_code = exit_usage_error;
        return failed;
    }
    std::unique_ptr<gatehouse::attempt_limiter> limiter;
    if (config.redis.empty()) {
        limiter = gatehouse::make_memory_limiter();
    } else {
        gatehouse::redis_limiter_options limiter_options;
        limiter_options.url = config.redis;
        limiter_options.log = options.log;
        try {
            limiter = gatehouse::make_redis_limiter(limiter_options);
        } catch (const std::invalid_argument& e) {
            logger.error("--redis: {}", e.what());
            return {};
        }
    }
    const unsigned threads = config.worker_threads != 0
                                 ? config.worker_threads
                                 : std::max(1U, std::thread::hardware_concurrency());
    account_services out;
    out.workers = std::make_shared<gatehouse::worker_pool>(threads);
    out.store = std::move(store);
    try {
        gatehouse::accounts routes(std::move(accounts_options), out.store, std::move(limiter),
                                   out.workers);
        routes.add_routes(gw);
    } catch (const std::invalid_argument& e) {
        logger.error("{}", e.what());
        return {};
    }
    return out;
}

int run(int argc, char** argv) {
    gatehouse_server::config config;
    CLI::App app{"gatehouse-server: realtime game gateway (docs/protocol.md)"};
    gatehouse_server::add_flags(app, config);
    auto* check_only =
        app.add_subcommand("check-config",
                           "check the flags, GATEHOUSE_* variables and --config file without "
                           "opening anything: 'configuration ok' and exit 0, or one line per "
                           "problem and exit 2")
            ->fallthrough();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : exit_usage_error;
    }
    // Every flag is checked here, before anything is opened, bound or connected.
    const auto problems = gatehouse_server::settle_config(app, config);
    if (check_only->parsed()) {
        for (const auto& line : problems) std::cerr << line << '\n';
        if (!problems.empty()) return exit_usage_error;
        std::cout << "configuration ok" << std::endl;
        return 0;
    }

    const gatehouse_server::log_output logs(gatehouse_server::parse_log_format(config.log_format),
                                            config.log_level);
    const auto& logger = logs.logger();
    if (!problems.empty()) {
        for (const auto& line : problems) logger->error("{}", line);
        return exit_usage_error;
    }
    const bool secret_generated = config.jwt_secret.empty();
    gatehouse::gateway_options options;
    gatehouse_server::to_gateway_options(config, options);
    if (secret_generated) {
        logger->warn(
            "no --jwt-secret given: a random one was generated for this run, so tokens "
            "will not survive a restart nor verify on another instance");
    }
    if (!config.amqp.empty() && app.count("--dedupe-window") > 0) {
        // Accepted, so that one configuration serves Redis and RabbitMQ deployments alike;
        // said once, so that nobody relies on it (docs/amqp.md).
        logger->warn(
            "--dedupe-window has no effect with --amqp: commands are not de-duplicated on "
            "RabbitMQ; deduplicate in the services on (player_id, correlation_id)");
    }
    options.log = logs.sink();
    options.access_log = logs.access_sink();
    gatehouse_server::add_tracing(config, options);
    // Which bus and store, and whether each answers: on /ready (503 while the store does not)
    // and /metrics.
    auto health = std::make_shared<gatehouse_server::fleet_health>();
    health->bus = !config.amqp.empty() ? "amqp" : config.redis.empty() ? "in-process" : "redis";
    health->store = gatehouse_server::store_kind(config.db);
    gatehouse_server::add_ready_checks(options, health);

    // Block the stop signals in every thread (the I/O threads inherit this mask), and take
    // them synchronously below: no async-signal-safety puzzles.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    // Destruction order does not matter (each part holds what it needs); the order of the
    // stop calls at the end is only what makes shutdown graceful.
    std::shared_ptr<gatehouse::in_process_bus> local_bus;
    std::shared_ptr<gatehouse::redis_bus> redis;
    std::shared_ptr<gatehouse::amqp_bus> amqp;
    std::unique_ptr<gatehouse::gateway> gw;
    try {
        if (!config.amqp.empty()) {
            gatehouse::amqp_bus_options amqp_options;
            gatehouse_server::to_amqp_options(config, options, amqp_options);
            amqp_options.log = options.log;
            amqp = std::make_shared<gatehouse::amqp_bus>(amqp_options);
            // No update log on RabbitMQ (docs/amqp.md): every resume gets gatehouse.gap.
            gw = std::make_unique<gatehouse::gateway>(
                options, gatehouse::codec_registry::with_builtin_codecs(), amqp, amqp);
        } else if (config.redis.empty()) {
            gatehouse::in_process_bus_options bus_options;
            gatehouse_server::to_in_process_options(config, options, bus_options);
            local_bus = std::make_shared<gatehouse::in_process_bus>(bus_options);
            // The bus is the update log too (docs/protocol.md 6.4): resume, and POST /updates.
            gw = std::make_unique<gatehouse::gateway>(
                options, gatehouse::codec_registry::with_builtin_codecs(), local_bus, local_bus,
                local_bus);
        } else {
            gatehouse::redis_bus_options redis_options;
            gatehouse_server::to_redis_options(config, options, redis_options);
            redis_options.log = options.log;
            redis = std::make_shared<gatehouse::redis_bus>(redis_options);
            gw = std::make_unique<gatehouse::gateway>(
                options, gatehouse::codec_registry::with_builtin_codecs(), redis, redis, redis);
        }
    } catch (const std::invalid_argument& e) {
        // The configuration check before (config_check.cpp) refuses every bad entry by its
        // flag with the constructors' own rules: this is a disagreement between the two.
        logger->error("{}", e.what());
        return exit_usage_error;
    }
    const auto account_services =
        make_account_services(config, options, *gw, *logger, logs.audit_sink());
    if (!account_services.workers) return account_services.exit_code;
    if (redis) add_redis_metrics(*gw, redis);
    if (local_bus) {
        // The same counter as on Redis (add_redis_metrics), from the in-process bus.
        gw->metrics().counter_callback(
            "gatehouse_commands_deduplicated_total",
            "Retried commands answered with their first stream id, not appended again.",
            [local_bus] { return static_cast<double>(local_bus->duplicates()); });
    }
    if (amqp) add_amqp_metrics(*gw, amqp);
    health->bus_connected = [local_bus, redis, amqp] {
        return local_bus || (redis && redis->connected()) || (amqp && amqp->connected());
    };
    gatehouse_server::add_fleet_metrics(*gw, health);
    gatehouse_server::store_probe probe(account_services.store, health,
                                        std::chrono::milliseconds(2000), options.log);
    // Declared after gw, so that on an early return it goes first, while the bus still exists.
    std::unique_ptr<gatehouse_demo::game::in_process_game> game;
    if (config.demo) game = start_demo(config, options, *gw, local_bus, redis, *logger);

    if (const auto ec = gw->start()) {
        if (ec == gatehouse::errc::tls_setup_failed) {
            // The check before start found both files readable: their content is at fault.
            logger->error(
                "--tls-cert {} and --tls-key {}: {} (a PEM certificate chain and its "
                "private key)",
                options.tls_cert_file, options.tls_key_file, ec.message());
            return exit_runtime_error;
        }
        // With --metrics-listen the gateway's own line before this one says which failed.
        logger->error("cannot listen on {}: {}",
                      options.metrics_listen.empty()
                          ? options.listen
                          : options.listen + " or " + options.metrics_listen,
                      ec.message());
        return ec == gatehouse::errc::invalid_listen_address ? exit_usage_error
                                                             : exit_runtime_error;
    }
    if (redis) {
        // Serving starts either way (docs/protocol.md section 1: /ready tells whether the bus is
        // connected); waiting a little first only spares the first clients a bus_unavailable
        // when Redis is merely slower to answer than we are to bind.
        logger->info("redis: {}, stream {}, channel {}", redis->redacted_url(),
                     config.command_stream, config.updates_channel);
        if (!redis->wait_connected(
                std::chrono::milliseconds(static_cast<long long>(config.redis_timeout * 1000)))) {
            logger->warn(
                "redis not reachable yet: serving anyway, /ready answers 503 and "
                "commands get bus_unavailable until it is");
        }
    }
    if (amqp) {
        logger->info("amqp: {}, command exchange {}, updates exchange {}", amqp->redacted_url(),
                     config.amqp_exchange, config.amqp_updates_exchange);
        if (!amqp->wait_connected(
                std::chrono::milliseconds(static_cast<long long>(config.amqp_timeout * 1000)))) {
            logger->warn(
                "amqp broker not reachable yet: serving anyway, /ready answers 503 and "
                "commands get bus_unavailable until it is");
        }
    }
    // The contract's ready line: stdout, no log prefix, flushed at once.
    std::cout << "gatehouse ready listen=" << gw->local_address() << std::endl;

    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    if (options.drain_spread.count() > 0) {
        logger->info("signal {}: draining over {} ms, then shutting down", signal_number,
                     options.drain_spread.count());
    } else {
        logger->info("signal {}: shutting down", signal_number);
    }
    // The shutdown runs on a thread of its own while this one still takes signals: a second
    // SIGINT/SIGTERM during the drain's spread cuts it short (shutdown() called again does
    // that, then waits for the first call). Polled, as sigwait cannot also wait for a thread.
    std::atomic<bool> stopped{false};
    std::thread stopper([&gw, &stopped] {
        gw->shutdown();
        stopped = true;
    });
    constexpr timespec poll{0, 20L * 1000 * 1000};
    while (!stopped.load()) {
        const int again = sigtimedwait(&stop_signals, nullptr, &poll);
        if (again > 0) {
            logger->info(options.drain_spread.count() > 0
                             ? "signal {} again: cutting the drain short"
                             : "signal {} again: already shutting down",
                         again);
            gw->shutdown();
            break;
        }
    }
    stopper.join();
    // Graceful, not required for safety: account requests the gateway already read are
    // answered by the jobs still queued before their workers stop.
    account_services.workers->stop();
    // No command arrives any more; the game answers what it still holds, onto a bus that
    // exists until run() returns.
    if (game) game->stop();
    // Answers anything still waiting on a hung Redis now rather than at destruction.
    if (redis) redis->close();
    if (amqp) amqp->close();
    logger->info("stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "gatehouse-server")) return 0;
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        // Only start-up can throw (allocation, spdlog setup); the gateway reports errors by code.
        std::cerr << "gatehouse-server: " << e.what() << std::endl;
        return exit_runtime_error;
    }
}
