// gatehouse_bench_echo: the backend of the roundtrip workload. A consumer-group service that
// answers every command on the stream with one update targeted to the sending player,
// carrying the command's correlation_id (docs/protocol.md sections 4 and 5):
//
//   {"player_id": P, "type": "bench.echo", "correlation_id": C, "payload": {"n": 1}}
//
// Unlike examples/redis_service (one PUBLISH and one XACK round trip per command, the way a
// simple service is written), it pipelines: one XREADGROUP of up to 1000 entries, then every
// PUBLISH and one XACK for the batch in a single write, then their replies. So at the offered
// rates the service is not what is measured; the gateway is. It is the same for both servers.
//
//   gatehouse_bench_echo --redis-port P [--stream NAME] [--channel NAME] [--group NAME]
//
// Prints "echo ready" once its group exists. SIGINT/SIGTERM stop it within ~100 ms (the
// XREADGROUP BLOCK).

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/version.hpp"

namespace {

volatile std::sig_atomic_t stop_requested = 0;
extern "C" void on_stop(int /*sig*/) { stop_requested = 1; }

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
            out += buf;
        } else {
            out += c;
        }
    }
    out += '"';
}

std::string_view field_of(const redisReply* fields, std::string_view name) {
    for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply* k = fields->element[i];
        if (std::string_view(k->str, k->len) == name) {
            return {fields->element[i + 1]->str, fields->element[i + 1]->len};
        }
    }
    return {};
}

int run(int argc, char** argv) {
    int port = 0;
    std::string stream = "gateway:commands", channel = "ws_updates_channel", group = "bench-echo";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--redis-port") {
            port = std::atoi(argv[i + 1]);
        } else if (flag == "--stream") {
            stream = argv[i + 1];
        } else if (flag == "--channel") {
            channel = argv[i + 1];
        } else if (flag == "--group") {
            group = argv[i + 1];
        } else {
            port = 0;
            break;
        }
    }
    if (port <= 0 || argc % 2 == 0) {
        std::fprintf(stderr,
                     "usage: %s --redis-port P [--stream NAME] [--channel NAME] [--group NAME]\n",
                     argv[0]);
        return 2;
    }
    std::signal(SIGINT, on_stop);
    std::signal(SIGTERM, on_stop);
    timeval tv{5, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == nullptr || c->err != 0) {
        std::fprintf(stderr, "gatehouse_bench_echo: cannot connect to redis\n");
        return 1;
    }
    redisSetTimeout(c, tv);
    auto* r = static_cast<redisReply*>(
        redisCommand(c, "XGROUP CREATE %s %s $ MKSTREAM", stream.c_str(), group.c_str()));
    if (r == nullptr ||
        (r->type == REDIS_REPLY_ERROR && std::strstr(r->str, "BUSYGROUP") == nullptr)) {
        std::fprintf(stderr, "gatehouse_bench_echo: XGROUP CREATE failed\n");
        return 1;
    }
    freeReplyObject(r);
    std::printf("echo ready\n");
    std::fflush(stdout);

    std::string update;
    std::vector<std::string> ack_args;
    std::vector<const char*> argv_ptrs;
    std::vector<std::size_t> argv_lens;
    unsigned long long answered = 0;
    while (stop_requested == 0) {
        r = static_cast<redisReply*>(
            redisCommand(c, "XREADGROUP GROUP %s echo COUNT 1000 BLOCK 100 STREAMS %s >",
                         group.c_str(), stream.c_str()));
        if (r == nullptr) {
            if (stop_requested != 0) break;
            std::fprintf(stderr, "gatehouse_bench_echo: redis connection lost\n");
            return 1;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            freeReplyObject(r);
            continue;
        }
        const redisReply* entries = r->element[0]->element[1];
        ack_args.assign({"XACK", stream, group});
        for (std::size_t i = 0; i < entries->elements; ++i) {
            const redisReply* entry = entries->element[i];
            const redisReply* fields = entry->element[1];
            ack_args.emplace_back(entry->element[0]->str, entry->element[0]->len);
            if (fields->type != REDIS_REPLY_ARRAY) continue;
            update = "{\"player_id\":";
            append_json_string(update, field_of(fields, "player_id"));
            update += ",\"type\":\"bench.echo\",\"correlation_id\":";
            append_json_string(update, field_of(fields, "correlation_id"));
            update += ",\"payload\":{\"n\":1}}";
            redisAppendCommand(c, "PUBLISH %b %b", channel.data(), channel.size(), update.data(),
                               update.size());
        }
        const std::size_t publishes = entries->elements;
        freeReplyObject(r);
        argv_ptrs.clear();
        argv_lens.clear();
        for (const auto& a : ack_args) {
            argv_ptrs.push_back(a.data());
            argv_lens.push_back(a.size());
        }
        redisAppendCommandArgv(c, static_cast<int>(argv_ptrs.size()), argv_ptrs.data(),
                               argv_lens.data());
        for (std::size_t i = 0; i < publishes + 1; ++i) {
            void* reply = nullptr;
            if (redisGetReply(c, &reply) != REDIS_OK) {
                std::fprintf(stderr, "gatehouse_bench_echo: redis connection lost\n");
                return 1;
            }
            freeReplyObject(reply);
        }
        answered += publishes;
    }
    redisFree(c);
    std::fprintf(stderr, "gatehouse_bench_echo: answered %llu commands\n", answered);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "gatehouse_bench_echo")) return 0;
    return run(argc, argv);
}
