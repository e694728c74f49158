// gatehouse-demo-game: the Click & Cook game as its own process, beside a gatehouse-server
// that runs with --redis (docs/examples/demo-game.md) or --amqp (docs/amqp.md). It prints one
// ready line on stdout once its consumer group exists (its queue is consumed), and exits 0 on
// SIGINT/SIGTERM.

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>

#include "gatehouse/redis_url.hpp"
#include "gatehouse/version.hpp"
#include "queue_service.hpp"
#include "stream_service.hpp"

namespace {

constexpr const char* program_name = "gatehouse-demo-game";
constexpr int exit_ok = 0;
constexpr int exit_runtime_error = 1;  // Redis refused our credentials, or the stream's key
constexpr int exit_usage_error = 2;

// Set by SIGINT/SIGTERM. The flag is what ends the loop: every blocking step is short (a
// bounded wait on the Redis client) and looks at it.
volatile std::sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int /*signal*/) { stop_requested = 1; }

void log_line(const std::string& text) {
    std::fprintf(stderr, "%s: %s\n", program_name, text.c_str());
    std::fflush(stderr);
}

// The host name: stable across restarts on one machine, so a restarted game finds the
// entries its previous run left unacknowledged.
std::string default_consumer() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "demo-game";
    return host;
}

void on_stop_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

// --amqp: the game on the gateway's command queue (docs/amqp.md).
int run_amqp(gatehouse_demo::game::queue_service_options options) {
    if (options.command_exchange.empty() || options.updates_exchange.empty()) {
        log_line("--amqp-exchange and --amqp-updates-exchange must not be empty");
        return exit_usage_error;
    }
    on_stop_signals();
    const std::string ready = std::string(program_name) +
                              " ready amqp exchange=" + options.command_exchange +
                              " updates=" + options.updates_exchange;
    gatehouse_demo::game::queue_service service(std::move(options), log_line);
    if (!service.run(stop_requested, [&ready] {
            std::printf("%s\n", ready.c_str());
            std::fflush(stdout);
        })) {
        log_line("bad --amqp URL: expected amqp://[user:pass@]host[:port][/vhost]");
        return exit_usage_error;
    }
    log_line("stopped after answering " + std::to_string(service.answered()) + " commands");
    return exit_ok;
}

int run(int argc, char** argv) {
    gatehouse_demo::game::stream_service_options options;
    gatehouse_demo::game::queue_service_options amqp_options;
    CLI::App app{
        "gatehouse-demo-game: the Click & Cook game on a Redis- or RabbitMQ-backed "
        "gatehouse"};
    // Environment twins as gatehouse-server's, so one environment configures both.
    auto* redis =
        app.add_option("--redis", options.redis_url, "redis://[user:pass@]host[:port][/db]")
            ->envname("GATEHOUSE_REDIS");
    auto* amqp = app.add_option("--amqp", amqp_options.amqp_url,
                                "amqp://[user:pass@]host[:port][/vhost]: RabbitMQ instead of Redis")
                     ->envname("GATEHOUSE_AMQP")
                     ->excludes(redis);
    redis->excludes(amqp);
    app.add_option("--amqp-exchange", amqp_options.command_exchange,
                   "with --amqp: the gateway's command exchange (and queue)")
        ->envname("GATEHOUSE_AMQP_EXCHANGE")
        ->capture_default_str();
    app.add_option("--amqp-updates-exchange", amqp_options.updates_exchange,
                   "with --amqp: the exchange the gateways consume updates from")
        ->envname("GATEHOUSE_AMQP_UPDATES_EXCHANGE")
        ->capture_default_str();
    app.add_option("--command-stream", options.command_stream,
                   "stream the gateway appends commands to")
        ->envname("GATEHOUSE_COMMAND_STREAM")
        ->capture_default_str();
    app.add_option("--updates-channel", options.updates_channel,
                   "channel the gateway listens on for updates")
        ->envname("GATEHOUSE_UPDATES_CHANNEL")
        ->capture_default_str();
    app.add_option("--group", options.group, "consumer group")->capture_default_str();
    app.add_option("--consumer", options.consumer,
                   "consumer name in the group (default: the host name); keep it across "
                   "restarts so pending entries are finished");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? exit_ok : exit_usage_error;
    }
    if (redis->count() == 0 && amqp->count() == 0) {
        log_line("give --redis or --amqp");
        return exit_usage_error;
    }
    if (amqp->count() != 0) return run_amqp(std::move(amqp_options));
    // The URL is not echoed: it may hold a password.
    gatehouse::redis_url where;
    if (gatehouse::parse_redis_url(options.redis_url, where)) {
        log_line("bad --redis URL: expected redis://[user:pass@]host[:port][/db]");
        return exit_usage_error;
    }
    if (options.command_stream.empty() || options.updates_channel.empty() ||
        options.group.empty()) {
        log_line("--command-stream, --updates-channel and --group must not be empty");
        return exit_usage_error;
    }
    if (options.consumer.empty()) options.consumer = default_consumer();

    on_stop_signals();
    const std::string ready =
        std::string(program_name) + " ready redis=" + gatehouse::redacted(where) +
        " stream=" + options.command_stream + " channel=" + options.updates_channel +
        " group=" + options.group + " consumer=" + options.consumer;
    gatehouse_demo::game::stream_service service(std::move(options), log_line);
    try {
        service.run(stop_requested, [&ready] {
            std::printf("%s\n", ready.c_str());
            std::fflush(stdout);
        });
    } catch (const gatehouse_demo::game::fatal_error& e) {
        log_line(e.what());
        return exit_runtime_error;
    }
    log_line("stopped after answering " + std::to_string(service.answered()) + " commands");
    return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "gatehouse-demo-game")) return 0;
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        log_line(std::string("unexpected error: ") + e.what());
        return exit_runtime_error;
    }
}
