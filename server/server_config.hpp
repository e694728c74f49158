#pragma once
// The reference server's configuration: docs/protocol.md section 1's flags and their environment
// twins (and the file of config_file.hpp), and their translation into gateway options.

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/accounts.hpp"
#include "gatehouse/amqp_bus.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/redis_bus.hpp"

namespace gatehouse_server {

struct config {
    std::string config_file;  // --config: the TOML file the other flags may come from
    std::string listen = "0.0.0.0:8080";
    std::string redis;
    std::string amqp;  // issue 20: RabbitMQ instead of Redis (docs/amqp.md)
    std::string amqp_exchange = "gateway.commands";
    std::string amqp_updates_exchange = "gateway.updates";
    double amqp_timeout = 5;
    std::string db = "sqlite:gatehouse.db";
    std::string jwt_secret;
    unsigned access_ttl = 900;
    std::string command_stream = "gateway:commands";
    std::string updates_channel = "ws_updates_channel";
    std::vector<std::string> bot_keys;  // NAME:KEY
    unsigned ws_rate_limit = 100;
    std::size_t max_message_bytes = 65536;
    unsigned login_max_failures = 5;
    unsigned login_lockout = 900;
    unsigned threads = 0;
    std::string tls_cert;
    std::string tls_key;
    // Extensions (docs/operations.md).
    double ping_interval = 20;
    double idle_timeout = 60;
    std::size_t send_buffer_bytes = std::size_t{1} << 20;
    std::string slow_consumer = "queue";  // docs/protocol.md 6.6
    double shutdown_timeout = 10;
    // docs/protocol.md section 6.1 and 6.2.
    double http_idle_timeout = 30;
    double http_header_timeout = 10;
    std::size_t max_connections = 0;
    std::vector<std::string> trusted_proxies;  // CIDR
    bool ws_compression = false;
    std::string gateway_id;
    std::string log_level = "info";
    std::string publish_key;
    unsigned refresh_ttl = 2592000;
    unsigned auth_rate_limit = 0;
    std::size_t password_hash_kib = 65536;
    unsigned password_hash_passes = 2;
    std::string login_service;
    unsigned worker_threads = 0;
    unsigned worker_queue = 0;
    double worker_queue_timeout = 2;
    std::size_t stream_maxlen = 0;
    double redis_timeout = 5;
    double redis_reconnect_max = 2;
    bool redis_batch_scheduling = false;
    // docs/protocol.md section 6.4.
    std::size_t update_log_size = 1000;
    unsigned update_log_ttl = 3600;
    // docs/protocol.md sections 6.3, 6.5, 6.7 and 6.8.
    std::string session_expiry = "on";
    unsigned dedupe_window = 120;
    unsigned drain_spread_ms = 0;
    bool presence_events = false;
    // Issue 19: operations.
    std::string log_format = "text";  // text | json
    std::string metrics_listen;
    std::vector<std::string> allowed_origins;
    std::string otlp_endpoint;
    std::string otlp_service_name = "gatehouse";
    // The Click & Cook demo (docs/examples/demo-game.md).
    bool demo = false;
};

// Registers every flag, with `GATEHOUSE_<NAME>` as its environment twin, and `--config`.
void add_flags(CLI::App& app, config& c);

// The translations below expect a configuration check_config (config_check.hpp) found no
// problem in; they check nothing themselves.

// The gateway's options. Generates the JWT secret and the gateway id when they were not given.
void to_gateway_options(config& c, gatehouse::gateway_options& out);

// The accounts routes' settings (docs/protocol.md section 2).
void to_accounts_options(const config& c, const gatehouse::gateway_options& gateway,
                         gatehouse::accounts_options& out);

// With `--redis` (gateway id from `gateway`).
void to_redis_options(const config& c, const gatehouse::gateway_options& gateway,
                      gatehouse::redis_bus_options& out);

// With `--amqp` (gateway id from `gateway`).
void to_amqp_options(const config& c, const gatehouse::gateway_options& gateway,
                     gatehouse::amqp_bus_options& out);

// Without `--redis` or `--amqp` (gateway id from `gateway`, the update log's flags).
void to_in_process_options(const config& c, const gatehouse::gateway_options& gateway,
                           gatehouse::in_process_bus_options& out);

}  // namespace gatehouse_server
