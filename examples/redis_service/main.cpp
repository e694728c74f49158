// redis_service: a backend service that joins a gatehouse deployment through Redis alone.
//
// It reads the gateway's command stream with a consumer group (docs/protocol.md section 4) and
// answers every command with one "echo" update for the connection that sent it, published on
// the updates channel (section 5). All it needs is a Redis client and a JSON library: this one
// uses gatehouse's own blocking client (gatehouse::redis_client, gatehouse/redis_client.hpp,
// from the Redis component) and nlohmann-json, and nothing of the gateway; any language with a
// Redis client can do the same (echo_service.py is this loop in Python). docs/services.md walks
// through it; test_redis_service.py runs it end to end against a real gatehouse-server and
// redis-server (`ctest -R example_redis_service`).
//
// Delivery, on the service's side: an entry is XACKed only after its reply was published
// (FCALL gatehouse_publish, section 6.4) successfully. A crash (or a lost connection) between
// the two leaves the entry pending for this consumer, and it is read again from the pending
// list at the next start or reconnect: each command is answered at least once, possibly twice,
// never zero times. On the gateway's side, a reply to a player is kept in that player's update
// log, so a client that reconnects with `resume` gets it; a reply to one connection is not
// logged (that connection is gone once it reconnects), and is at-most-once like Pub/Sub.
//
// One thread, one connection, one command at a time is enough here. Every wait is bounded
// (the client's connect and reply deadline, XREADGROUP BLOCK 500 ms, backoff sleeps in short
// slices), so SIGINT/SIGTERM stop it within about half a second.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "gatehouse/redis_client.hpp"
#include "gatehouse/redis_url.hpp"
#include "gatehouse/version.hpp"

namespace {

using json = nlohmann::json;

constexpr const char* program_name = "gatehouse-example-redis-service";
constexpr int exit_ok = 0;
constexpr int exit_runtime_error = 1;  // Redis refused our credentials or the stream's key
constexpr int exit_bad_flags = 2;

// XREADGROUP BLOCK: how long one read may wait for new entries before the stop flag is
// checked again. Short enough that a signal ends the process promptly.
constexpr int block_ms = 500;
constexpr long long batch_size = 100;  // entries per XREADGROUP
// The client's deadline for connecting and for each reply. Longer than block_ms: a reply
// overdue past this means Redis is hung, and the connection is dropped and made again rather
// than waited on forever.
constexpr auto redis_timeout = std::chrono::seconds(5);
constexpr auto backoff_min = std::chrono::milliseconds(50);
constexpr auto backoff_max = std::chrono::milliseconds(2000);

// Set by SIGINT/SIGTERM; every blocking step is short and checks it.
volatile std::sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int /*signal*/) { stop_requested = 1; }

void log_line(const std::string& text) {
    std::fprintf(stderr, "%s: %s\n", program_name, text.c_str());
    std::fflush(stderr);
}

// ---------------------------------------------------------------------------------------------
// Flags.

// A decimal number in [min, max], digits only.
bool parse_number(std::string_view text, long long min, long long max, long long& out) {
    if (text.empty() || text.size() > 18) return false;
    long long value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + (c - '0');
    }
    if (value < min || value > max) return false;
    out = value;
    return true;
}

struct options {
    std::string redis_url;       // valid: parse_flags checked it
    std::string redis_for_logs;  // the URL without its password
    std::string command_stream = "gateway:commands";
    std::string updates_channel = "ws_updates_channel";
    std::string group = "example-service";
    std::string consumer;  // default: host name and process id
    long long max_commands = 0;
    long long claim_idle_ms = 60000;
};

void print_usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: %s [flags]\n"
                 "  --redis URL             redis://[user:pass@]host[:port][/db]"
                 " (default redis://127.0.0.1:6379)\n"
                 "  --command-stream NAME   stream the gateway appends commands to"
                 " (default gateway:commands)\n"
                 "  --updates-channel NAME  channel the gateway listens on"
                 " (default ws_updates_channel)\n"
                 "  --group NAME            consumer group (default example-service)\n"
                 "  --consumer NAME         consumer name in the group (default HOST-PID);\n"
                 "                          keep it across restarts to finish pending entries\n"
                 "  --max-commands N        exit 0 after answering N commands (0: never)\n"
                 "  --claim-idle-ms N       take over entries another consumer has left\n"
                 "                          unacknowledged this long (XAUTOCLAIM; default\n"
                 "                          60000; 0: never)\n"
                 "  --help                  this text\n",
                 program_name);
}

std::string default_consumer() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
        std::snprintf(host, sizeof host, "service");
    return std::string(host) + "-" + std::to_string(getpid());
}

// Fills `out`; on a bad flag prints why and returns false. `help` is set for --help.
bool parse_flags(int argc, char** argv, options& out, bool& help) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string redis_text = "redis://127.0.0.1:6379";
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string flag = args[i];
        if (flag == "--help" || flag == "-h") {
            help = true;
            return true;
        }
        std::string value;
        if (auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = flag.substr(eq + 1);
            flag.resize(eq);
        } else if (i + 1 < args.size()) {
            value = args[++i];
        } else {
            log_line("flag " + flag + " needs a value (see --help)");
            return false;
        }
        if (flag == "--redis") {
            redis_text = value;
        } else if (flag == "--command-stream" || flag == "--updates-channel" || flag == "--group" ||
                   flag == "--consumer") {
            if (value.empty()) {
                log_line(flag + " must not be empty");
                return false;
            }
            if (flag == "--command-stream") out.command_stream = value;
            if (flag == "--updates-channel") out.updates_channel = value;
            if (flag == "--group") out.group = value;
            if (flag == "--consumer") out.consumer = value;
        } else if (flag == "--claim-idle-ms") {
            if (!parse_number(value, 0, 1LL << 40, out.claim_idle_ms)) {
                log_line("--claim-idle-ms must be a whole number >= 0, not '" + value + "'");
                return false;
            }
        } else if (flag == "--max-commands") {
            if (!parse_number(value, 0, 1LL << 62, out.max_commands)) {
                log_line("--max-commands must be a whole number >= 0, not '" + value + "'");
                return false;
            }
        } else {
            log_line("unknown flag " + flag + " (see --help)");
            return false;
        }
    }
    // The URL is not echoed: it may hold a password.
    gatehouse::redis_url where;
    if (gatehouse::parse_redis_url(redis_text, where)) {
        log_line(
            "bad --redis URL: expected redis://[user:password@]host[:port][/db], the "
            "password percent-encoded, db 0-15");
        return false;
    }
    out.redis_url = redis_text;
    out.redis_for_logs = gatehouse::redacted(where);
    if (out.consumer.empty()) out.consumer = default_consumer();
    return true;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

// Errors a Redis gives while it starts or fails over: worth a retry, unlike a wrong password.
bool is_transient(const gatehouse::redis_reply& r) {
    for (std::string_view prefix : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"})
        if (r.is_error(prefix)) return true;
    return false;
}

std::string base64(std::string_view bytes) {
    static constexpr char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                          static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1]))
                              << 8 |
                          static_cast<unsigned char>(bytes[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6) out.push_back(table[(n >> shift) & 63]);
    }
    if (std::size_t left = bytes.size() - i; left > 0) {
        std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
        if (left == 2)
            n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
        out.push_back(table[(n >> 18) & 63]);
        out.push_back(table[(n >> 12) & 63]);
        out.push_back(left == 2 ? table[(n >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

// Thrown for what retrying cannot fix (wrong password, the stream's key holding another
// type): main() reports it and exits 1, and a supervisor or an operator takes over.
struct fatal_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// ---------------------------------------------------------------------------------------------
// The service.

class echo_service {
public:
    explicit echo_service(options opt) : opt_(std::move(opt)), redis_(client_options(opt_)) {}

    // Until a stop signal or --max-commands; throws fatal_error.
    void run() {
        auto backoff = backoff_min;
        while (!stop_requested && !done()) {
            if (redis_.connected() && claim_due() && !claim_stale()) {
                redis_.disconnect();
                continue;
            }
            if (!redis_.connected() && !connect()) {
                sleep_interruptibly(backoff);
                backoff = std::min(backoff * 2, backoff_max);
                continue;
            }
            if (read_and_answer()) {
                backoff = backoff_min;
            } else {
                // The connection broke (or Redis answered an error we cannot act on): start
                // over on a new one after a pause, re-reading our pending entries first.
                redis_.disconnect();
                sleep_interruptibly(backoff);
                backoff = std::min(backoff * 2, backoff_max);
            }
        }
    }

    long long answered() const { return answered_; }

private:
    bool done() const { return opt_.max_commands > 0 && answered_ >= opt_.max_commands; }

    static void sleep_interruptibly(std::chrono::milliseconds total) {
        auto until = std::chrono::steady_clock::now() + total;
        while (!stop_requested && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }

    static gatehouse::redis_client_options client_options(const options& opt) {
        gatehouse::redis_client_options o;
        o.url = opt.redis_url;
        o.timeout = redis_timeout;
        return o;
    }

    // Connects (AUTH and SELECT as the URL says, then PING) and makes sure the group exists.
    // False (with a log line) when Redis cannot be reached; throws fatal_error when it
    // refuses us.
    bool connect() {
        if (const auto ec = redis_.connect()) {
            // A refused AUTH or SELECT is for an operator to fix, not for a retry loop.
            if (ec == std::errc::permission_denied || ec == std::errc::invalid_argument)
                throw fatal_error("Redis refused us: " + redis_.last_error());
            // The first failure of an outage and every 30th after it: enough to see it last
            // without a line every two seconds.
            if (failed_connects_++ % 30 == 0)
                log_line(redis_.last_error() + " (" + opt_.redis_for_logs + "); retrying");
            return false;
        }
        failed_connects_ = 0;
        if (!create_group() || !claim_stale()) {
            redis_.disconnect();
            return false;
        }
        // Whatever this consumer was given but did not acknowledge (a crash, a connection that
        // broke between PUBLISH and XACK), and whatever claim_stale() just took over, is
        // answered first.
        pending_from_ = "0";
        if (!announced_) {
            // One line on stdout once the group exists: from here on, every command appended
            // to the stream reaches this service (scripts and tests wait for it).
            std::printf("%s ready redis=%s stream=%s group=%s consumer=%s\n", program_name,
                        opt_.redis_for_logs.c_str(), opt_.command_stream.c_str(),
                        opt_.group.c_str(), opt_.consumer.c_str());
            std::fflush(stdout);
            announced_ = true;
        } else {
            log_line("reconnected to " + opt_.redis_for_logs);
        }
        return true;
    }

    // One command. Empty when the connection broke (the client has dropped it); Redis's own
    // errors are replies of kind error.
    std::optional<gatehouse::redis_reply> run_command(const std::vector<std::string>& args) {
        gatehouse::redis_reply r;
        if (redis_.command(args, r)) {
            log_line("connection lost during " + args.front() + ": " + redis_.last_error());
            return std::nullopt;
        }
        return r;
    }

    static bool retry_later(const char* what, const gatehouse::redis_reply& r) {
        log_line(std::string(what) + ": " + r.str + "; retrying");
        return false;
    }

    // XGROUP CREATE ... $ MKSTREAM: a new group starts at the end of the stream, so it sees
    // the commands appended after it was first created, not the history. Run at every
    // connect, so a Redis that restarted empty gets the group back.
    bool create_group() {
        auto r =
            run_command({"XGROUP", "CREATE", opt_.command_stream, opt_.group, "$", "MKSTREAM"});
        if (!r) return false;
        if (r->is_error("BUSYGROUP")) return true;  // it exists: the usual case
        if (is_transient(*r)) return retry_later("XGROUP CREATE", *r);
        if (r->is_error())
            throw fatal_error("cannot create group " + opt_.group + " on " + opt_.command_stream +
                              ": " + r->str);
        log_line("created group " + opt_.group + " on " + opt_.command_stream);
        return true;
    }

    bool claim_due() const {
        return opt_.claim_idle_ms > 0 && std::chrono::steady_clock::now() >= next_claim_;
    }

    // A consumer that crashed for good (its name is never used again, e.g. the default
    // HOST-PID) leaves its unacknowledged entries in its own pending list, where nobody reads
    // them. XAUTOCLAIM moves every entry idle for longer than --claim-idle-ms into this
    // consumer's pending list, which the next read then answers. Run at every connect and then
    // every half idle period. False when the connection broke.
    bool claim_stale() {
        if (opt_.claim_idle_ms <= 0) return true;
        next_claim_ = std::chrono::steady_clock::now() +
                      std::max(std::chrono::milliseconds(opt_.claim_idle_ms / 2),
                               std::chrono::milliseconds(1000));
        std::string cursor = "0-0";
        std::size_t claimed = 0;
        // Bounded: 100 pages of 100 entries per pass; the rest waits for the next pass.
        for (int page = 0; page < 100; ++page) {
            auto r =
                run_command({"XAUTOCLAIM", opt_.command_stream, opt_.group, opt_.consumer,
                             std::to_string(opt_.claim_idle_ms), cursor, "COUNT", "100", "JUSTID"});
            if (!r) return false;
            if (r->is_error("NOGROUP")) return create_group();  // the key was deleted
            if (r->is_error("ERR unknown command")) {
                // Redis before 6.2 has no XAUTOCLAIM: say so once and go on without it.
                log_line(
                    "this Redis has no XAUTOCLAIM; stale entries of other consumers will "
                    "not be taken over");
                opt_.claim_idle_ms = 0;
                return true;
            }
            if (r->is_error()) return retry_later("XAUTOCLAIM", *r);
            // [next cursor, [ids claimed], [ids deleted meanwhile] (Redis 7)]
            if (r->kind != gatehouse::redis_reply_kind::array || r->elements.size() < 2 ||
                r->elements[1].kind != gatehouse::redis_reply_kind::array) {
                log_line("unexpected XAUTOCLAIM reply shape");
                return false;
            }
            claimed += r->elements[1].elements.size();
            cursor = r->elements[0].str;
            if (cursor == "0-0") break;
        }
        if (claimed > 0) {
            log_line("took over " + std::to_string(claimed) +
                     " entries other consumers left unacknowledged");
            pending_from_ = "0";
        }
        return true;
    }

    // One XREADGROUP and the answers to what it returned. False when the connection must be
    // made again.
    bool read_and_answer() {
        // Pending entries first (id 0 and up: the ones delivered to this consumer and not yet
        // acknowledged; no BLOCK, it answers at once), then new ones (">") with a short BLOCK.
        const bool pending = !pending_from_.empty();
        // With --max-commands, never take more than is left: entries read past the limit
        // would stay pending for a consumer that is about to exit.
        long long count = batch_size;
        if (opt_.max_commands > 0) count = std::min(count, opt_.max_commands - answered_);
        std::vector<std::string> args{"XREADGROUP",  "GROUP", opt_.group,
                                      opt_.consumer, "COUNT", std::to_string(count)};
        if (!pending) {
            args.emplace_back("BLOCK");
            args.push_back(std::to_string(block_ms));
        }
        args.emplace_back("STREAMS");
        args.push_back(opt_.command_stream);
        args.push_back(pending ? pending_from_ : ">");
        auto r = run_command(args);
        if (!r) return false;
        if (r->is_error("NOGROUP")) {
            // The stream or the group is gone (Redis restarted empty, or someone deleted the
            // key): create it again and carry on.
            log_line("group " + opt_.group + " is gone; creating it again");
            return create_group();
        }
        if (r->is_error()) {
            log_line("XREADGROUP failed: " + r->str);
            return false;
        }
        using kind = gatehouse::redis_reply_kind;
        if (r->kind == kind::nil) return true;  // BLOCK expired with nothing new
        // [[stream, [[id, [field, value, ...]], ...]]]
        if (r->kind != kind::array || r->elements.size() != 1 ||
            r->elements[0].kind != kind::array || r->elements[0].elements.size() != 2 ||
            r->elements[0].elements[1].kind != kind::array) {
            log_line("unexpected XREADGROUP reply shape");
            return false;
        }
        const auto& entries = r->elements[0].elements[1].elements;
        if (pending && entries.empty()) {
            pending_from_.clear();  // the pending list is done: on to new entries
            return true;
        }
        for (std::size_t i = 0; i < entries.size() && !done(); ++i) {
            const auto& entry = entries[i];
            if (entry.kind != kind::array || entry.elements.size() != 2) {
                log_line("unexpected stream entry shape");
                return false;
            }
            const std::string& id = entry.elements[0].str;
            if (!answer(id, entry.elements[1])) return false;
            if (pending) pending_from_ = id;  // the next page starts after it
        }
        return true;
    }

    // Publishes the echo of one entry, then acknowledges it. False when the connection broke
    // (the entry then stays pending and is answered again after the reconnect).
    bool answer(const std::string& id, const gatehouse::redis_reply& fields) {
        // A pending entry whose data was trimmed away (MAXLEN) comes back with nil fields:
        // nothing to answer, but it must leave the pending list.
        if (fields.kind != gatehouse::redis_reply_kind::array) {
            log_line("entry " + id + " was trimmed before it was answered; acknowledging it");
            return ack(id);
        }
        std::map<std::string, std::string> f;
        for (std::size_t k = 0; k + 1 < fields.elements.size(); k += 2)
            f[fields.elements[k].str] = fields.elements[k + 1].str;

        std::string player_id = f["player_id"];
        std::string connection_id = f["connection_id"];
        if (player_id.empty() || connection_id.empty() || f["type"].empty()) {
            // Not from a gateway: answering is impossible, and leaving it pending would bring
            // it back at every start. Acknowledge and move on.
            log_line("entry " + id + " lacks type, player_id or connection_id; skipped");
            return ack(id);
        }

        json payload;
        const std::string& codec = f["codec"];
        if (codec == "json") {
            payload = json::parse(f["payload"], nullptr, /*allow_exceptions=*/false);
            if (payload.is_discarded()) {
                log_line("entry " + id + " says codec json but its payload is not JSON");
                payload = base64(f["payload"]);
            }
        } else {
            // msgpack or protobuf: bytes this service does not decode; echoed as base64.
            payload = base64(f["payload"]);
        }

        json update = {
            {"player_id", player_id},
            {"type", "echo"},
            {"payload",
             {{"received_type", f["type"]},
              {"codec", codec},
              {"payload", std::move(payload)},
              {"stream_id", id},
              {"gateway_id", f["gateway_id"]}}},
        };
        // Targeted at the one connection that sent the command. A command sent with POST
        // /commands has no connection to answer on (`http:<request id>`): the reply then goes
        // to every connection of the player.
        if (connection_id.rfind("http:", 0) != 0) update["connection_id"] = connection_id;
        if (auto it = f.find("correlation_id"); it != f.end() && !it->second.empty())
            update["correlation_id"] = it->second;

        // Replace, not throw, should a field hold invalid UTF-8: the gateway validates what it
        // writes, but a service must not die on one odd entry.
        std::string text = update.dump(-1, ' ', false, json::error_handler_t::replace);
        if (!publish(text)) return false;  // not acknowledged: answered again later
        if (!ack(id)) return false;
        ++answered_;
        return true;
    }

    // Through the update log (docs/protocol.md 6.4): FCALL gatehouse_publish, the Redis function
    // every gateway loads at connect. A reply to a player (the POST /commands case) is logged,
    // so a client that reconnects with `resume` still gets it; a reply to one connection is
    // published unlogged, as PUBLISH would. Until a gateway has loaded the function (this
    // service started first, or Redis restarted empty) it falls back to a plain PUBLISH,
    // unlogged, and says so once.
    bool publish(const std::string& text) {
        auto r = run_command({"FCALL", "gatehouse_publish", "0", opt_.updates_channel, text});
        if (!r) return false;
        if (!r->is_error()) {
            unlogged_said_ = false;
            return true;
        }
        if (r->str.find("Function not found") == std::string::npos) {
            log_line("FCALL gatehouse_publish failed: " + r->str);
            return false;
        }
        if (!unlogged_said_) {
            log_line(
                "gatehouse_publish is not loaded yet (no gateway connected?); publishing "
                "unlogged until it is");
            unlogged_said_ = true;
        }
        r = run_command({"PUBLISH", opt_.updates_channel, text});
        if (!r) return false;
        if (r->is_error()) {
            log_line("PUBLISH failed: " + r->str);
            return false;
        }
        // The reply counts the subscribers that got it; 0 means no gateway is listening right
        // now, and the update is gone (Pub/Sub keeps nothing). It was published all the same.
        return true;
    }

    bool ack(const std::string& id) {
        auto r = run_command({"XACK", opt_.command_stream, opt_.group, id});
        if (!r) return false;
        if (r->is_error()) {
            log_line("XACK failed: " + r->str);
            return false;
        }
        return true;
    }

    options opt_;
    gatehouse::redis_client redis_;
    std::string pending_from_;  // non-empty while the pending list is being read
    long long answered_ = 0;
    bool unlogged_said_ = false;  // the PUBLISH fallback was announced
    bool announced_ = false;
    unsigned failed_connects_ = 0;
    std::chrono::steady_clock::time_point next_claim_{};
};

}  // namespace

int main(int argc, char** argv) {
    if (gatehouse::print_version_if_asked(argc, argv, "gatehouse-example-redis-service")) return 0;
    options opt;
    bool help = false;
    if (!parse_flags(argc, argv, opt, help)) return exit_bad_flags;
    if (help) {
        print_usage(stdout);
        return exit_ok;
    }

    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    echo_service service(std::move(opt));
    try {
        service.run();
    } catch (const fatal_error& e) {
        log_line(e.what());
        return exit_runtime_error;
    } catch (const std::exception& e) {
        log_line(std::string("unexpected error: ") + e.what());
        return exit_runtime_error;
    }
    log_line("stopped after answering " + std::to_string(service.answered()) + " commands");
    return exit_ok;
}
