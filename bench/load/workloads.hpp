#pragma once
// The workloads of the benchmark matrix (bench/README.md). Each runs on the calling
// thread, prints exactly one JSON line on stdout with its parameters and results, and returns
// whether the run was clean (every connection opened and stayed open, nothing lost, no error
// frames): the exit status of the generator.

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gatehouse_load {

struct options {
    std::string workload;          // ingress | fanout | broadcast | roundtrip | connect | idle
    std::string label = "server";  // echoed in the JSON line: which server was measured
    std::uint16_t port = 0;        // the server under test, on 127.0.0.1
    std::string secret;            // HS256 key the server verifies tokens with
    std::uint16_t redis_port = 0;  // fanout, broadcast: where updates are published
    std::string channel = "ws_updates_channel";
    std::size_t connections = 0;    // 0: the workload's default
    std::size_t window = 0;         // 0: the workload's default
    double rate = 5000;             // roundtrip: commands per second, all connections together
    double warmup_s = 1;            // traffic before measuring starts
    double duration_s = 5;          // the measured window
    double drain_s = 5;             // longest wait for stragglers after sending stops
    std::size_t concurrency = 128;  // connection attempts in flight while opening
    int server_pid = 0;             // when set: server CPU (and RSS for connect) are read
    int redis_pid = 0;              // when set: redis-server's CPU is read too
    std::string player_prefix = "bench-p";
    // fanout, broadcast: publish with `FCALL gatehouse_publish 0 <channel> <json>` (the update
    // log, docs/protocol.md 6.4) instead of `PUBLISH <channel> <json>`.
    bool publish_via_fcall = false;
    // fanout, broadcast: when not 0, updates are published to this RabbitMQ broker's
    // `amqp_exchange` (a gatehouse-server --amqp, docs/amqp.md) instead of Redis.
    std::uint16_t amqp_port = 0;
    std::string amqp_exchange = "gateway.updates";
    // Local addresses to connect from, round robin (empty: the kernel's choice, 127.0.0.1).
    // Each gives one ephemeral port range (about 28k ports) towards the server's one port.
    std::vector<in_addr> source_addresses;
};

/// Parses "127.0.0.2-127.0.0.9" (an inclusive range) or "127.0.0.2,127.0.0.5" (a list, whose
/// items may be ranges) into `out`. Returns false on anything else, or on more than 65536.
bool parse_addresses(const std::string& text, std::vector<in_addr>& out);

/// Runs `o.workload`. Returns true when the run was clean.
bool run_workload(const options& o);

}  // namespace gatehouse_load
