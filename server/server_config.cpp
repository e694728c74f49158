#include "server_config.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <string_view>
#include <utility>

namespace gatehouse_server {
namespace {

// `--max-message-bytes` -> `GATEHOUSE_MAX_MESSAGE_BYTES`.
std::string env_twin(const std::string& flag) {
    std::string name = "GATEHOUSE_";
    for (const char c : flag.substr(2)) {
        name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return name;
}

template <class T>
CLI::Option* flag(CLI::App& app, const std::string& name, T& value, const std::string& help) {
    return app.add_option(name, value, help)->envname(env_twin(name))->capture_default_str();
}

std::chrono::milliseconds seconds_to_ms(double seconds) {
    return std::chrono::milliseconds(static_cast<long long>(std::llround(seconds * 1000.0)));
}

}  // namespace

void add_flags(CLI::App& app, config& c) {
    app.add_option("--config", c.config_file,
                   "TOML file of flags (key = value, keys the long flag names without --); the "
                   "command line and GATEHOUSE_* variables win over it")
        ->envname(env_twin("--config"));
    // Answered by main() before parsing (gatehouse::print_version_if_asked), wherever it
    // stands; declared here so that --help lists it.
    app.add_flag("--version", "print the version and exit");
    flag(app, "--listen", c.listen,
         "HTTP + WebSocket listener HOST:PORT (a host name is resolved once; port 0: any free "
         "port)");
    flag(app, "--redis", c.redis, "redis://[user:pass@]host:port[/db]; unset: in-process bus");
    flag(app, "--amqp", c.amqp,
         "amqp://[user:pass@]host[:port][/vhost]: RabbitMQ as the bus instead (not with "
         "--redis; docs/amqp.md)");
    flag(app, "--amqp-exchange", c.amqp_exchange,
         "with --amqp: durable topic exchange (and queue) receiving commands");
    flag(app, "--amqp-updates-exchange", c.amqp_updates_exchange,
         "with --amqp: durable fanout exchange services publish updates to");
    flag(app, "--amqp-timeout", c.amqp_timeout,
         "with --amqp: connect, declare and publisher-confirm deadline, seconds");
    flag(app, "--db", c.db,
         "user store: sqlite:PATH, sqlite::memory: or postgresql://[user[:pw]@]host[:port]/db");
    flag(app, "--jwt-secret", c.jwt_secret, "HS256 key for access tokens (default: random)");
    flag(app, "--access-ttl", c.access_ttl, "access token lifetime, seconds");
    flag(app, "--command-stream", c.command_stream, "Redis stream receiving commands");
    flag(app, "--updates-channel", c.updates_channel, "Redis Pub/Sub channel of updates");
    flag(app, "--bot-key", c.bot_keys, "NAME:KEY a bot presents at /ws/bot/{KEY} (repeatable)")
        ->delimiter(',');
    flag(app, "--ws-rate-limit", c.ws_rate_limit,
         "commands per second per connection (burst 2N); 0: off");
    flag(app, "--max-message-bytes", c.max_message_bytes,
         "largest WebSocket message and HTTP body");
    flag(app, "--login-max-failures", c.login_max_failures, "failed logins before lockout");
    flag(app, "--login-lockout", c.login_lockout, "lockout length and failure window, seconds");
    flag(app, "--threads", c.threads, "I/O threads (0: hardware concurrency)");
    flag(app, "--tls-cert", c.tls_cert, "PEM certificate chain: serve https:// and wss://");
    flag(app, "--tls-key", c.tls_key, "PEM private key for --tls-cert");
    flag(app, "--ping-interval", c.ping_interval,
         "ping a connection quiet this long, seconds; 0: off");
    flag(app, "--idle-timeout", c.idle_timeout,
         "close (1008) a connection silent this long, seconds; 0: off");
    flag(app, "--send-buffer-bytes", c.send_buffer_bytes,
         "per-connection cap on unwritten bytes before the slow-consumer policy applies");
    flag(app, "--slow-consumer", c.slow_consumer,
         "reliable updates past --send-buffer-bytes: queue: up to twice it, then close with "
         "4008; drop: drop the update; close: close with 1008")
        ->check(CLI::IsMember({"queue", "drop", "close"}));
    flag(app, "--shutdown-timeout", c.shutdown_timeout,
         "longest graceful shutdown waits for acks and closes, seconds");
    flag(app, "--http-idle-timeout", c.http_idle_timeout,
         "close an idle persistent HTTP connection after this long, seconds");
    flag(app, "--http-header-timeout", c.http_header_timeout,
         "answer 408 and close when a request's headers take longer, seconds");
    flag(app, "--trusted-proxies", c.trusted_proxies,
         "CIDR,...: peers whose X-Forwarded-For names the client address (default: none)")
        ->delimiter(',');
    flag(app, "--max-connections", c.max_connections,
         "open WebSocket and SSE connections at most (503 over_capacity past it); 0: no cap");
    app.add_flag("--ws-compression", c.ws_compression,
                 "accept permessage-deflate from WebSocket clients that offer it")
        ->envname(env_twin("--ws-compression"));
    flag(app, "--gateway-id", c.gateway_id, "this instance's gateway_id (default: generated)");
    flag(app, "--log-level", c.log_level, "debug, info, warn or error")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    flag(app, "--publish-key", c.publish_key,
         "enables POST /updates (logged publishing) with this Bearer key");
    flag(app, "--refresh-ttl", c.refresh_ttl, "refresh token lifetime, seconds");
    flag(app, "--auth-rate-limit", c.auth_rate_limit,
         "account requests (register, login, refresh, logout) per minute per client address; "
         "0: off");
    flag(app, "--password-hash-kib", c.password_hash_kib, "Argon2id memory per hash, KiB");
    flag(app, "--password-hash-passes", c.password_hash_passes, "Argon2id passes per hash");
    flag(app, "--login-service", c.login_service,
         "http://HOST[:PORT][/PATH]: forward register, login, refresh and logout there");
    flag(app, "--worker-threads", c.worker_threads,
         "threads for password hashing and the user store (0: hardware concurrency)");
    flag(app, "--worker-queue", c.worker_queue,
         "account requests waiting for a worker at most (503 busy past it); 0: 4 per thread");
    flag(app, "--worker-queue-timeout", c.worker_queue_timeout,
         "an account request that waited this long for a worker answers 503 busy, seconds");
    flag(app, "--stream-maxlen", c.stream_maxlen,
         "with --redis: trim the command stream to about N entries (MAXLEN ~); 0: never");
    flag(app, "--redis-timeout", c.redis_timeout,
         "with --redis: connect and reply deadline, seconds (a silent link is reconnected)");
    flag(app, "--redis-reconnect-max", c.redis_reconnect_max,
         "with --redis: longest pause between reconnect attempts, seconds");
    app.add_flag("--redis-batch-scheduling", c.redis_batch_scheduling,
                 "with --redis: run the bus's I/O threads under SCHED_BATCH (Linux): more "
                 "commands/s on a saturated shared core, a longer round-trip tail")
        ->envname(env_twin("--redis-batch-scheduling"));
    flag(app, "--update-log-size", c.update_log_size,
         "updates kept in each player's log for resume (docs/protocol.md 6.4)");
    flag(app, "--update-log-ttl", c.update_log_ttl,
         "seconds a logged update can be replayed for on resume");
    flag(app, "--session-expiry", c.session_expiry,
         "on: a player session ends when its access token does, unless refreshed in band "
         "(docs/protocol.md 6.3); off: sessions outlive their tokens")
        ->check(CLI::IsMember({"on", "off"}));
    flag(app, "--dedupe-window", c.dedupe_window,
         "seconds a command's (player_id, correlation_id) is remembered, so a retried command "
         "is acked with its first stream id and not appended again; 0: off");
    flag(app, "--drain-spread-ms", c.drain_spread_ms,
         "on SIGTERM, spread the clients' reconnects (gatehouse.reconnect after_ms) over this "
         "many milliseconds, serving them meanwhile; 0: close at once");
    app.add_flag("--presence-events", c.presence_events,
                 "append gatehouse.connected / gatehouse.disconnected entries to the command "
                 "stream for every WebSocket")
        ->envname(env_twin("--presence-events"));
    flag(app, "--log-format", c.log_format,
         "text: one human-readable line per event; json: one JSON object per line (UTC "
         "timestamps either way)")
        ->check(CLI::IsMember({"text", "json"}));
    flag(app, "--metrics-listen", c.metrics_listen,
         "HOST:PORT: serve /metrics on this separate listener only (not on --listen)");
    flag(app, "--allowed-origins", c.allowed_origins,
         "ORIGIN,...: browser origins (https://game.example) allowed on the JSON API (CORS), "
         "upgrades and SSE; *: any; default: no CORS, no Origin check")
        ->delimiter(',');
    flag(app, "--otlp-endpoint", c.otlp_endpoint,
         "http://HOST:PORT[/PATH]: export trace spans there over OTLP/HTTP (default path "
         "/v1/traces); unset: no tracing");
    flag(app, "--otlp-service-name", c.otlp_service_name,
         "with --otlp-endpoint: the service.name resource attribute of exported spans");
    app.add_flag("--demo", c.demo,
                 "serve the Click & Cook demo: the browser client at / and, without --redis, "
                 "the game itself (with --redis, run gatehouse-demo-game beside it)")
        ->envname(env_twin("--demo"));
}

void to_gateway_options(config& c, gatehouse::gateway_options& out) {
    out.listen = c.listen;
    out.threads = c.threads;
    out.publish_key = c.publish_key;
    out.tls_cert_file = c.tls_cert;
    out.tls_key_file = c.tls_key;
    if (c.jwt_secret.empty()) {
        unsigned char random[32];
        RAND_bytes(random, sizeof random);
        static constexpr char hex[] = "0123456789abcdef";
        for (unsigned char b : random) {
            c.jwt_secret += hex[b >> 4];
            c.jwt_secret += hex[b & 0xF];
        }
    }
    out.jwt_secret = c.jwt_secret;
    for (const auto& entry : c.bot_keys) {
        const auto colon = entry.find(':');  // checked: NAME:KEY
        out.bot_keys.emplace_back(entry.substr(0, colon), entry.substr(colon + 1));
    }
    out.max_message_bytes = c.max_message_bytes;
    out.ws_rate_limit = c.ws_rate_limit;
    out.ping_interval = seconds_to_ms(c.ping_interval);
    out.idle_timeout = seconds_to_ms(c.idle_timeout);
    out.shutdown_timeout = seconds_to_ms(c.shutdown_timeout);
    out.http_idle_timeout = seconds_to_ms(c.http_idle_timeout);
    out.http_header_timeout = seconds_to_ms(c.http_header_timeout);
    out.max_connections = c.max_connections;
    out.trusted_proxies = c.trusted_proxies;
    out.ws_compression = c.ws_compression;
    out.connections.max_buffered_bytes = c.send_buffer_bytes;
    out.connections.slow_consumer =
        c.slow_consumer == "drop"    ? gatehouse::slow_consumer_policy::drop
        : c.slow_consumer == "close" ? gatehouse::slow_consumer_policy::close
                                     : gatehouse::slow_consumer_policy::queue;
    out.session_expiry = c.session_expiry != "off";
    out.drain_spread = std::chrono::milliseconds(c.drain_spread_ms);
    out.presence_events = c.presence_events;
    out.allowed_origins = c.allowed_origins;
    out.metrics_listen = c.metrics_listen;
    out.gateway_id = c.gateway_id.empty() ? gatehouse::make_gateway_id() : c.gateway_id;
}

void to_accounts_options(const config& c, const gatehouse::gateway_options& gateway,
                         gatehouse::accounts_options& out) {
    out.jwt_secret = gateway.jwt_secret;
    out.access_ttl = std::chrono::seconds(c.access_ttl);
    out.refresh_ttl = std::chrono::seconds(c.refresh_ttl);
    out.login_max_failures = c.login_max_failures;
    out.login_lockout = std::chrono::seconds(c.login_lockout);
    out.auth_rate_limit = c.auth_rate_limit;
    out.password_cost.memory_bytes = c.password_hash_kib * 1024;
    out.password_cost.passes = c.password_hash_passes;
    out.login_service_url = c.login_service;
    out.max_queued_jobs = c.worker_queue;
    out.queue_timeout = seconds_to_ms(c.worker_queue_timeout);
}

void to_redis_options(const config& c, const gatehouse::gateway_options& gateway,
                      gatehouse::redis_bus_options& out) {
    out.url = c.redis;
    out.command_stream = c.command_stream;
    out.updates_channel = c.updates_channel;
    out.gateway_id = gateway.gateway_id;
    out.stream_maxlen = c.stream_maxlen;
    out.timeout = seconds_to_ms(c.redis_timeout);
    out.reconnect_max = std::max(seconds_to_ms(c.redis_reconnect_max), out.reconnect_min);
    out.batch_scheduling = c.redis_batch_scheduling;
    out.update_log_size = c.update_log_size;
    out.update_log_ttl = std::chrono::seconds(c.update_log_ttl);
    out.dedupe_window = std::chrono::seconds(c.dedupe_window);
}

void to_amqp_options(const config& c, const gatehouse::gateway_options& gateway,
                     gatehouse::amqp_bus_options& out) {
    out.url = c.amqp;
    out.command_exchange = c.amqp_exchange;
    out.updates_exchange = c.amqp_updates_exchange;
    out.gateway_id = gateway.gateway_id;
    out.timeout = seconds_to_ms(c.amqp_timeout);
}

void to_in_process_options(const config& c, const gatehouse::gateway_options& gateway,
                           gatehouse::in_process_bus_options& out) {
    out.gateway_id = gateway.gateway_id;
    out.update_log_size = c.update_log_size;
    out.update_log_ttl = std::chrono::seconds(c.update_log_ttl);
    out.dedupe_window = std::chrono::seconds(c.dedupe_window);
}

}  // namespace gatehouse_server
