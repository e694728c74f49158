// gatehouse_load: the load generator of the benchmark matrix (bench/README.md).
//
//   gatehouse_load WORKLOAD --port P --secret S [options]
//
// One thread, one epoll loop, gatehouse::client_codec for every frame. Prints exactly one JSON
// line with the workload's parameters and results; exit status 0 when the run was clean
// (nothing lost, no connection dropped, no error frame), 1 otherwise, 2 for bad flags.
// Everything it talks to is on 127.0.0.1, and every phase is bounded in time; an alarm is the
// backstop for anything that is not.

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "gatehouse/version.hpp"
#include "workloads.hpp"

namespace {

void usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s ingress|fanout|broadcast|roundtrip|connect|idle --port P --secret S\n"
                 "  [--label NAME] [--redis-port P] [--channel NAME] [--connections N]\n"
                 "  [--window W] [--rate R] [--warmup S] [--duration S] [--drain S]\n"
                 "  [--concurrency N] [--server-pid PID] [--redis-pid PID] [--player-prefix TEXT]\n"
                 "  [--publish-via publish|fcall] [--amqp-port P] [--amqp-exchange NAME]\n"
                 "  [--source-addresses 127.0.0.2-127.0.0.9[,ADDR...]]\n"
                 "defaults: ingress 100 connections x window 8; fanout 1000 connections,\n"
                 "window 1000; broadcast 1000 connections, window 16; roundtrip 50\n"
                 "connections at --rate 5000/s; connect 2000 connections, 128 at a time;\n"
                 "idle 1000 connections held until SIGTERM or --duration;\n"
                 "--warmup 1 --duration 5 --drain 5 (seconds); fanout and broadcast publish\n"
                 "with PUBLISH, or with --publish-via fcall through the update log's\n"
                 "FCALL gatehouse_publish (docs/protocol.md 6.4), or with --amqp-port to a\n"
                 "RabbitMQ broker's fanout exchange (gatehouse-server --amqp)\n",
                 argv0);
}

bool parse_number(const char* text, double& out) {
    char* end = nullptr;
    out = std::strtod(text, &end);
    return end != text && *end == '\0' && out >= 0;
}

// Each connection is a descriptor on both ends; the default soft limit (1024) is far below
// what the connect workload opens.
void raise_fd_limit() {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

int run(int argc, char** argv) {
    if (argc < 2) {
        usage(argv[0]);
        return 2;
    }
    gatehouse_load::options o;
    o.workload = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s needs a value\n", argv[i]);
            return 2;
        }
        const char* value = argv[++i];
        double v = 0;
        const bool numeric = parse_number(value, v);
        if (flag == "--label") {
            o.label = value;
        } else if (flag == "--secret") {
            o.secret = value;
        } else if (flag == "--channel") {
            o.channel = value;
        } else if (flag == "--amqp-exchange") {
            o.amqp_exchange = value;
        } else if (flag == "--player-prefix") {
            o.player_prefix = value;
        } else if (flag == "--publish-via") {
            if (std::string_view(value) != "publish" && std::string_view(value) != "fcall") {
                std::fprintf(stderr, "--publish-via: want publish or fcall\n");
                return 2;
            }
            o.publish_via_fcall = std::string_view(value) == "fcall";
        } else if (flag == "--source-addresses") {
            if (!gatehouse_load::parse_addresses(value, o.source_addresses)) {
                std::fprintf(stderr, "--source-addresses: want A.B.C.D[-A.B.C.D][,...]\n");
                return 2;
            }
        } else if (!numeric) {
            std::fprintf(stderr, "%s: not a number or unknown flag\n", argv[i - 1]);
            return 2;
        } else if (flag == "--port") {
            o.port = static_cast<std::uint16_t>(v);
        } else if (flag == "--redis-port") {
            o.redis_port = static_cast<std::uint16_t>(v);
        } else if (flag == "--amqp-port") {
            o.amqp_port = static_cast<std::uint16_t>(v);
        } else if (flag == "--connections") {
            o.connections = static_cast<std::size_t>(v);
        } else if (flag == "--window") {
            o.window = static_cast<std::size_t>(v);
        } else if (flag == "--rate") {
            o.rate = v;
        } else if (flag == "--warmup") {
            o.warmup_s = v;
        } else if (flag == "--duration") {
            o.duration_s = v;
        } else if (flag == "--drain") {
            o.drain_s = v;
        } else if (flag == "--concurrency") {
            o.concurrency = v < 1 ? 1 : static_cast<std::size_t>(v);
        } else if (flag == "--server-pid") {
            o.server_pid = static_cast<int>(v);
        } else if (flag == "--redis-pid") {
            o.redis_pid = static_cast<int>(v);
        } else {
            std::fprintf(stderr, "unknown flag %s\n", argv[i - 1]);
            usage(argv[0]);
            return 2;
        }
    }
    const bool needs_redis = o.workload == "fanout" || o.workload == "broadcast";
    if (o.port == 0 || o.secret.empty() || (needs_redis && o.redis_port == 0 && o.amqp_port == 0) ||
        o.duration_s <= 0 || o.duration_s > 600 || o.warmup_s > 600 || o.drain_s > 60 ||
        o.rate <= 0 || o.rate > 1e6) {
        usage(argv[0]);
        return 2;
    }
    raise_fd_limit();
    // Backstop: opening (at most 60 s), warmup, duration and drain are each bounded already.
    alarm(static_cast<unsigned>(o.warmup_s + o.duration_s + o.drain_s) + 90);
    return gatehouse_load::run_workload(o) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "gatehouse_load")) return 0;
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gatehouse_load: %s\n", e.what());
        return 1;
    }
}
