#include "config_check.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <limits>
#include <stdexcept>
#include <string_view>

#include "gatehouse/accounts.hpp"
#include "gatehouse/amqp_bus.hpp"
#include "gatehouse/credentials.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/redis_url.hpp"
#include "gatehouse/tracing.hpp"
#include "gatehouse/user_store.hpp"

namespace gatehouse_server {
namespace {

constexpr double no_limit = std::numeric_limits<double>::infinity();

// A numeric flag's range. `above_min`: the minimum itself is refused (a duration above 0).
struct range_rule {
    const char* flag;
    double (*value)(const config&);
    double min;
    double max;
    const char* unit;  // "seconds", "bytes", ...
    bool above_min = false;
};

#define GATEHOUSE_VALUE(member) [](const config& c) { return static_cast<double>(c.member); }

// Every numeric flag with a bound beyond its C++ type's (CLI11 already refuses a negative
// number for an unsigned one, and anything that is not a number).
const range_rule ranges[] = {
    {"--amqp-timeout", GATEHOUSE_VALUE(amqp_timeout), 0, 3600, "seconds", true},
    {"--access-ttl", GATEHOUSE_VALUE(access_ttl), 1, no_limit, "seconds"},
    {"--max-message-bytes", GATEHOUSE_VALUE(max_message_bytes), 1, no_limit, "bytes"},
    {"--login-max-failures", GATEHOUSE_VALUE(login_max_failures), 1, no_limit, "failures"},
    {"--login-lockout", GATEHOUSE_VALUE(login_lockout), 1, no_limit, "seconds"},
    {"--threads", GATEHOUSE_VALUE(threads), 0, 1024, "threads (0: one per core)"},
    {"--ping-interval", GATEHOUSE_VALUE(ping_interval), 0, 86400, "seconds (0: off)"},
    {"--idle-timeout", GATEHOUSE_VALUE(idle_timeout), 0, 86400, "seconds (0: off)"},
    {"--shutdown-timeout", GATEHOUSE_VALUE(shutdown_timeout), 0, 86400, "seconds"},
    {"--http-idle-timeout", GATEHOUSE_VALUE(http_idle_timeout), 0, 86400, "seconds", true},
    {"--http-header-timeout", GATEHOUSE_VALUE(http_header_timeout), 0, 86400, "seconds", true},
    {"--refresh-ttl", GATEHOUSE_VALUE(refresh_ttl), 1, no_limit, "seconds"},
    {"--password-hash-passes", GATEHOUSE_VALUE(password_hash_passes), 1, no_limit, "passes"},
    {"--worker-threads", GATEHOUSE_VALUE(worker_threads), 0, 1024, "threads (0: one per core)"},
    {"--worker-queue-timeout", GATEHOUSE_VALUE(worker_queue_timeout), 0.001, 3600, "seconds"},
    {"--redis-timeout", GATEHOUSE_VALUE(redis_timeout), 0, 3600, "seconds", true},
    {"--redis-reconnect-max", GATEHOUSE_VALUE(redis_reconnect_max), 0, 3600, "seconds", true},
    {"--update-log-size", GATEHOUSE_VALUE(update_log_size), 1, 1000000, "updates per player"},
    {"--update-log-ttl", GATEHOUSE_VALUE(update_log_ttl), 1, 2592000, "seconds (30 days)"},
    {"--dedupe-window", GATEHOUSE_VALUE(dedupe_window), 0, 86400, "seconds (0: off)"},
    {"--drain-spread-ms", GATEHOUSE_VALUE(drain_spread_ms), 0, 3600000, "milliseconds"},
};

#undef GATEHOUSE_VALUE

std::string number_text(double v) {
    std::string text = std::to_string(v);
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.') text.pop_back();
    return text;
}

// "--threads is threads from 0 to 1024 (0: one per core)": a unit's parenthesis goes last.
std::string range_text(const range_rule& r) {
    std::string unit(r.unit);
    std::string note;
    if (const auto paren = unit.find(" ("); paren != std::string::npos) {
        note = unit.substr(paren);
        unit.erase(paren);
    }
    std::string text = std::string(r.flag) + " is " + unit;
    if (r.max == no_limit) {
        text += ", at least " + number_text(r.min);
    } else if (r.above_min) {
        text += " above " + number_text(r.min) + ", up to " + number_text(r.max);
    } else {
        text += " from " + number_text(r.min) + " to " + number_text(r.max);
    }
    return text + note;
}

bool in_range(const range_rule& r, double v) {
    // Written so that NaN fails both ways.
    const bool low_ok = r.above_min ? v > r.min : v >= r.min;
    return low_ok && v <= r.max;
}

class problems {
public:
    void add(const char* flag, std::string message) { list_.push_back({flag, std::move(message)}); }
    std::vector<config_problem> take() { return std::move(list_); }

private:
    std::vector<config_problem> list_;
};

constexpr std::string_view listen_syntax =
    "HOST:PORT (a numeric IPv4 address, a bracketed IPv6 one or a host name, and a port from "
    "0 to 65535)";

// A TLS file flag names a regular file this process may read: stat and access only, nothing is
// opened (the gateway loads it at start).
void check_readable_file(const char* flag, const std::string& path, problems& out) {
    if (path.empty()) return;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        out.add(flag, std::string(flag) + " \"" + path + "\" does not exist");
    } else if (!S_ISREG(st.st_mode)) {
        out.add(flag, std::string(flag) + " \"" + path + "\" is not a regular file");
    } else if (::access(path.c_str(), R_OK) != 0) {
        out.add(flag, std::string(flag) + " \"" + path + "\" is not readable by this process");
    }
}

void check_addresses(const config& c, problems& out) {
    if (gatehouse::check_listen_address(c.listen)) {
        out.add("--listen", "--listen \"" + c.listen + "\" is not " + std::string(listen_syntax));
    }
    if (!c.metrics_listen.empty() && gatehouse::check_listen_address(c.metrics_listen)) {
        out.add("--metrics-listen", "--metrics-listen \"" + c.metrics_listen + "\" is not " +
                                        std::string(listen_syntax));
    }
    for (const auto& entry : c.trusted_proxies) {
        if (gatehouse::check_trusted_proxy(entry)) {
            out.add("--trusted-proxies",
                    "--trusted-proxies entry \"" + entry + "\" is not ADDRESS or ADDRESS/PREFIX");
        }
    }
    for (const auto& entry : c.allowed_origins) {
        if (gatehouse::check_allowed_origin(entry)) {
            out.add("--allowed-origins", "--allowed-origins entry \"" + entry +
                                             "\" is not an origin (scheme://host[:port], no "
                                             "path) nor *");
        }
    }
    if (!c.gateway_id.empty() && !gatehouse::valid_gateway_id(c.gateway_id)) {
        out.add("--gateway-id", "--gateway-id must be 1-64 characters of [A-Za-z0-9_.:-]");
    }
    if (c.tls_cert.empty() != c.tls_key.empty()) {
        out.add(c.tls_cert.empty() ? "--tls-key" : "--tls-cert",
                "--tls-cert and --tls-key go together");
    }
    check_readable_file("--tls-cert", c.tls_cert, out);
    check_readable_file("--tls-key", c.tls_key, out);
    for (std::size_t i = 0; i < c.bot_keys.size(); ++i) {
        const auto& entry = c.bot_keys[i];
        const auto colon = entry.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == entry.size()) {
            // The entry holds a key: said by its position only.
            out.add("--bot-key", "--bot-key entry " + std::to_string(i + 1) +
                                     " is not NAME:KEY (a name, a colon, a key)");
        }
    }
}

// The URLs are never quoted: they may hold passwords.
void check_buses(const config& c, problems& out) {
    gatehouse::redis_url redis;
    if (!c.redis.empty() && gatehouse::parse_redis_url(c.redis, redis)) {
        out.add("--redis",
                "--redis is not a redis://[user:password@]host[:port][/db] URL (db 0-15)");
    }
    if (!c.amqp.empty()) {
        if (!c.redis.empty()) {
            out.add("--amqp", "--amqp and --redis exclude each other: choose one bus");
        }
        if (gatehouse::check_amqp_url(c.amqp)) {
            out.add("--amqp", "--amqp is not an amqp://[user[:password]@]host[:port][/vhost] URL");
        }
    }
    for (const auto& [flag, name] :
         {std::pair{"--amqp-exchange", &c.amqp_exchange},
          std::pair{"--amqp-updates-exchange", &c.amqp_updates_exchange}}) {
        if (name->empty() || name->size() > 255) {
            out.add(flag, std::string(flag) + " is an exchange name of 1 to 255 bytes");
        }
    }
    for (const auto& [flag, name] : {std::pair{"--command-stream", &c.command_stream},
                                     std::pair{"--updates-channel", &c.updates_channel}}) {
        if (name->empty()) out.add(flag, std::string(flag) + " must not be empty");
    }
}

void check_accounts(const config& c, problems& out) {
    try {
        gatehouse::check_user_store_url(c.db);
    } catch (const std::invalid_argument& e) {
        // The library's message never repeats a password.
        out.add("--db", std::string("--db: ") + e.what());
    }
    if (!c.login_service.empty() && !gatehouse::valid_login_service_url(c.login_service)) {
        out.add("--login-service", "--login-service is not http://HOST[:PORT][/PATH]");
    }
    if (c.password_hash_kib > std::numeric_limits<std::size_t>::max() / 1024) {
        out.add("--password-hash-kib", "--password-hash-kib is too large");
        return;
    }
    // A cost libsodium refuses would fail every registration: refuse it at start instead, by
    // its limits rather than a probe hash, which would take the cost's memory and time (a
    // check-config of --password-hash-kib 524288 ran 8 s and took 512 MiB).
    gatehouse::password_hash_cost cost;
    cost.memory_bytes = c.password_hash_kib * 1024;
    cost.passes = c.password_hash_passes;
    if (c.password_hash_passes > 0 && !gatehouse::valid_password_hash_cost(cost)) {
        out.add("--password-hash-kib",
                "--password-hash-kib / --password-hash-passes outside Argon2id's limits");
    }
}

void check_operations(const config& c, problems& out) {
    if (!c.otlp_endpoint.empty() && !gatehouse::valid_otlp_endpoint(c.otlp_endpoint)) {
        out.add("--otlp-endpoint", "--otlp-endpoint is not http://HOST:PORT[/PATH]");
    }
    if (c.otlp_service_name.empty()) {
        out.add("--otlp-service-name", "--otlp-service-name must not be empty");
    }
}

}  // namespace

std::vector<config_problem> check_config(const config& c) {
    problems out;
    for (const auto& rule : ranges) {
        if (!in_range(rule, rule.value(c))) out.add(rule.flag, range_text(rule));
    }
    check_addresses(c, out);
    check_buses(c, out);
    check_accounts(c, out);
    check_operations(c, out);
    return out.take();
}

}  // namespace gatehouse_server
