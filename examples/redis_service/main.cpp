// redis_service: a backend service that joins a gatehouse deployment through Redis alone.
//
// It reads the gateway's command stream with a consumer group (PROTOCOL.md section 4) and
// answers every command with one "echo" update for the connection that sent it, published on
// the updates channel (section 5). It needs a Redis client and a JSON library, nothing of
// gatehouse: any language with those two can do the same (echo_service.py is this loop in
// Python). docs/services.md walks through it; test_redis_service.py runs it end to end against
// a real gatehouse-server and redis-server (`ctest -R example_redis_service`).
//
// Delivery, on the service's side: an entry is XACKed only after the PUBLISH of its reply
// succeeded. A crash (or a lost connection) between the two leaves the entry pending for this
// consumer, and it is read again from the pending list at the next start or reconnect: each
// command is answered at least once, possibly twice, never zero times. Redis Pub/Sub itself is
// at-most-once (a gateway that is not subscribed at that moment never sees the update), so a
// reply that matters beyond the live session belongs in a store, not only on the channel.
//
// Synchronous hiredis is enough here: one thread, one connection, one command at a time. Every
// wait is bounded (connect and reply timeouts, XREADGROUP BLOCK 500 ms, backoff sleeps in
// short slices), so SIGINT/SIGTERM stop it within about half a second.

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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
constexpr auto connect_timeout = std::chrono::seconds(2);
// Longer than block_ms: a reply overdue past this means Redis is hung, and the connection is
// dropped and made again rather than waited on forever.
constexpr auto reply_timeout = std::chrono::seconds(5);
constexpr auto backoff_min = std::chrono::milliseconds(50);
constexpr auto backoff_max = std::chrono::milliseconds(2000);

// Set by SIGINT/SIGTERM. Installed without SA_RESTART, but hiredis retries a read that EINTR
// interrupted, so the flag is what ends the loop: every blocking step is short and checks it.
volatile std::sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int /*signal*/) { stop_requested = 1; }

void log_line(const std::string& text) {
    std::fprintf(stderr, "%s: %s\n", program_name, text.c_str());
    std::fflush(stderr);
}

// ---------------------------------------------------------------------------------------------
// Flags.

// redis://[user:password@]host[:port][/db], the form gatehouse-server's --redis takes, with the
// same rules: the userinfo is percent-decoded (passwords hold '@', ':', '/'), a user needs a
// password (a password alone is `:password@`), IPv6 hosts are bracketed, db is 0-15.
struct redis_url {
    std::string host;
    int port = 6379;
    std::string user;
    std::string password;
    int db = 0;

    // For logs: never the password.
    std::string redacted() const {
        std::string out = "redis://";
        if (!password.empty()) out += user + ":***@";
        out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
        out += ":" + std::to_string(port) + "/" + std::to_string(db);
        return out;
    }
};

bool percent_decode(std::string_view in, std::string& out) {
    auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out.push_back(in[i]);
            continue;
        }
        if (i + 2 >= in.size() || hex(in[i + 1]) < 0 || hex(in[i + 2]) < 0) return false;
        out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
        i += 2;
    }
    return true;
}

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

// Empty on success, else why the URL is refused.
std::string parse_redis_url(std::string_view text, redis_url& out) {
    constexpr std::string_view scheme = "redis://";
    if (text.substr(0, scheme.size()) != scheme) return "it must start with redis://";
    std::string_view rest = text.substr(scheme.size());
    redis_url url;

    // The userinfo ends at the last '@', so an unencoded '@' in a password still parses.
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        auto colon = userinfo.find(':');
        if (colon == std::string_view::npos)
            return "a user needs a password (user:password@; a password alone is :password@)";
        if (!percent_decode(userinfo.substr(0, colon), url.user) ||
            !percent_decode(userinfo.substr(colon + 1), url.password))
            return "bad percent-escape in the user or password";
        if (url.password.empty()) return "empty password";
    }

    auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    std::string_view port_text;
    bool has_port = false;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) return "unclosed '[' in the host";
        url.host = std::string(authority.substr(1, close - 1));
        std::string_view tail = authority.substr(close + 1);
        if (!tail.empty()) {
            if (tail.front() != ':') return "junk after the bracketed host";
            port_text = tail.substr(1);
            has_port = true;
        }
    } else {
        auto colon = authority.find(':');
        url.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            has_port = true;
        }
    }
    if (url.host.empty()) return "no host";
    long long number = 0;
    if (has_port) {
        if (!parse_number(port_text, 1, 65535, number)) return "port must be 1-65535";
        url.port = static_cast<int>(number);
    }
    if (!path.empty()) {
        if (!parse_number(path, 0, 15, number)) return "db must be 0-15";
        url.db = static_cast<int>(number);
    }
    out = std::move(url);
    return {};
}

struct options {
    redis_url redis;
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
    // The password is not echoed: the message names the rule that failed.
    if (std::string why = parse_redis_url(redis_text, out.redis); !why.empty()) {
        log_line("bad --redis URL: " + why);
        return false;
    }
    if (out.consumer.empty()) out.consumer = default_consumer();
    return true;
}

// ---------------------------------------------------------------------------------------------
// Small helpers around hiredis.

struct reply_deleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

struct context_deleter {
    void operator()(redisContext* c) const { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

timeval to_timeval(std::chrono::milliseconds d) {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
    return tv;
}

// One command, binary safe (each argument passed with its length: payloads may hold any
// byte). Null when the connection failed; the context is then unusable (`c->err`).
reply_ptr run_command(redisContext* c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    return reply_ptr(static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lengths.data())));
}

std::string reply_text(const redisReply* r) {
    return r != nullptr && r->str != nullptr ? std::string(r->str, r->len) : std::string();
}

bool is_error(const redisReply* r, std::string_view prefix = {}) {
    return r->type == REDIS_REPLY_ERROR && reply_text(r).rfind(prefix, 0) == 0;
}

// Errors a Redis gives while it starts or fails over: worth a retry, unlike a wrong password.
bool is_transient(const redisReply* r) {
    for (std::string_view prefix : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"})
        if (is_error(r, prefix)) return true;
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
    explicit echo_service(options opt) : opt_(std::move(opt)) {}

    // Until a stop signal or --max-commands; throws fatal_error.
    void run() {
        auto backoff = backoff_min;
        while (!stop_requested && !done()) {
            if (ctx_ && claim_due() && !claim_stale()) {
                ctx_.reset();
                continue;
            }
            if (!ctx_ && !connect()) {
                sleep_interruptibly(backoff);
                backoff = std::min(backoff * 2, backoff_max);
                continue;
            }
            if (read_and_answer()) {
                backoff = backoff_min;
            } else {
                // The connection broke (or Redis answered an error we cannot act on): start
                // over on a new one after a pause, re-reading our pending entries first.
                ctx_.reset();
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

    // Connects, authenticates, selects the db and makes sure the group exists. False (with a
    // log line) when Redis cannot be reached; throws fatal_error when it refuses us.
    bool connect() {
        const auto& url = opt_.redis;
        context_ptr c(
            redisConnectWithTimeout(url.host.c_str(), url.port, to_timeval(connect_timeout)));
        if (!c || c->err != 0) {
            // The first failure of an outage and every 30th after it: enough to see it last
            // without a line every two seconds.
            if (failed_connects_++ % 30 == 0)
                log_line("cannot connect to " + url.redacted() + ": " +
                         (c ? std::string(c->errstr) : std::string("out of memory")) +
                         "; retrying");
            return false;
        }
        failed_connects_ = 0;
        if (redisSetTimeout(c.get(), to_timeval(reply_timeout)) != REDIS_OK) return false;
        if (!url.password.empty()) {
            std::vector<std::string> auth{"AUTH"};
            if (!url.user.empty()) auth.push_back(url.user);
            auth.push_back(url.password);
            auto r = run_command(c.get(), auth);
            if (!r) return lost("AUTH", c.get());
            if (is_transient(r.get())) return retry_later("AUTH", r.get());
            if (is_error(r.get())) throw fatal_error("Redis refused AUTH: " + reply_text(r.get()));
        }
        if (url.db != 0) {
            auto r = run_command(c.get(), {"SELECT", std::to_string(url.db)});
            if (!r) return lost("SELECT", c.get());
            if (is_transient(r.get())) return retry_later("SELECT", r.get());
            if (is_error(r.get()))
                throw fatal_error("Redis refused SELECT: " + reply_text(r.get()));
        }
        ctx_ = std::move(c);
        if (!create_group() || !claim_stale()) {
            ctx_.reset();
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
                        url.redacted().c_str(), opt_.command_stream.c_str(), opt_.group.c_str(),
                        opt_.consumer.c_str());
            std::fflush(stdout);
            announced_ = true;
        } else {
            log_line("reconnected to " + url.redacted());
        }
        return true;
    }

    static bool lost(const char* what, const redisContext* c) {
        log_line(std::string("connection lost during ") + what + ": " + c->errstr);
        return false;
    }

    static bool retry_later(const char* what, const redisReply* r) {
        log_line(std::string(what) + ": " + reply_text(r) + "; retrying");
        return false;
    }

    // XGROUP CREATE ... $ MKSTREAM: a new group starts at the end of the stream, so it sees
    // the commands appended after it was first created, not the history. Run at every
    // connect, so a Redis that restarted empty gets the group back.
    bool create_group() {
        auto r = run_command(
            ctx_.get(), {"XGROUP", "CREATE", opt_.command_stream, opt_.group, "$", "MKSTREAM"});
        if (!r) return lost("XGROUP CREATE", ctx_.get());
        if (is_error(r.get(), "BUSYGROUP")) return true;  // it exists: the usual case
        if (is_transient(r.get())) return retry_later("XGROUP CREATE", r.get());
        if (is_error(r.get()))
            throw fatal_error("cannot create group " + opt_.group + " on " + opt_.command_stream +
                              ": " + reply_text(r.get()));
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
            auto r = run_command(
                ctx_.get(), {"XAUTOCLAIM", opt_.command_stream, opt_.group, opt_.consumer,
                             std::to_string(opt_.claim_idle_ms), cursor, "COUNT", "100", "JUSTID"});
            if (!r) return lost("XAUTOCLAIM", ctx_.get());
            if (is_error(r.get(), "NOGROUP")) return create_group();  // the key was deleted
            if (is_error(r.get(), "ERR unknown command")) {
                // Redis before 6.2 has no XAUTOCLAIM: say so once and go on without it.
                log_line(
                    "this Redis has no XAUTOCLAIM; stale entries of other consumers will "
                    "not be taken over");
                opt_.claim_idle_ms = 0;
                return true;
            }
            if (is_error(r.get())) return retry_later("XAUTOCLAIM", r.get());
            // [next cursor, [ids claimed], [ids deleted meanwhile] (Redis 7)]
            if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
                r->element[1]->type != REDIS_REPLY_ARRAY) {
                log_line("unexpected XAUTOCLAIM reply shape");
                return false;
            }
            claimed += r->element[1]->elements;
            cursor = reply_text(r->element[0]);
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
        auto r = run_command(ctx_.get(), args);
        if (!r) return lost("XREADGROUP", ctx_.get());
        if (is_error(r.get(), "NOGROUP")) {
            // The stream or the group is gone (Redis restarted empty, or someone deleted the
            // key): create it again and carry on.
            log_line("group " + opt_.group + " is gone; creating it again");
            return create_group();
        }
        if (is_error(r.get())) {
            log_line("XREADGROUP failed: " + reply_text(r.get()));
            return false;
        }
        if (r->type == REDIS_REPLY_NIL) return true;  // BLOCK expired with nothing new
        // [[stream, [[id, [field, value, ...]], ...]]]
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
            r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2 ||
            r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
            log_line("unexpected XREADGROUP reply shape");
            return false;
        }
        const redisReply* entries = r->element[0]->element[1];
        if (pending && entries->elements == 0) {
            pending_from_.clear();  // the pending list is done: on to new entries
            return true;
        }
        for (std::size_t i = 0; i < entries->elements && !done(); ++i) {
            const redisReply* entry = entries->element[i];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) {
                log_line("unexpected stream entry shape");
                return false;
            }
            std::string id = reply_text(entry->element[0]);
            if (!answer(id, entry->element[1])) return false;
            if (pending) pending_from_ = id;  // the next page starts after it
        }
        return true;
    }

    // Publishes the echo of one entry, then acknowledges it. False when the connection broke
    // (the entry then stays pending and is answered again after the reconnect).
    bool answer(const std::string& id, const redisReply* fields) {
        // A pending entry whose data was trimmed away (MAXLEN) comes back with nil fields:
        // nothing to answer, but it must leave the pending list.
        if (fields->type != REDIS_REPLY_ARRAY) {
            log_line("entry " + id + " was trimmed before it was answered; acknowledging it");
            return ack(id);
        }
        std::map<std::string, std::string> f;
        for (std::size_t k = 0; k + 1 < fields->elements; k += 2)
            f[reply_text(fields->element[k])] = reply_text(fields->element[k + 1]);

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
        auto r = run_command(ctx_.get(), {"PUBLISH", opt_.updates_channel, text});
        if (!r) return lost("PUBLISH", ctx_.get());
        if (is_error(r.get())) {
            log_line("PUBLISH failed: " + reply_text(r.get()));
            return false;  // not acknowledged: answered again after the reconnect
        }
        // The reply counts the subscribers that got it; 0 means no gateway is listening right
        // now, and the update is gone (Pub/Sub keeps nothing). It was published all the same,
        // so the command counts as answered.
        if (!ack(id)) return false;
        ++answered_;
        return true;
    }

    bool ack(const std::string& id) {
        auto r = run_command(ctx_.get(), {"XACK", opt_.command_stream, opt_.group, id});
        if (!r) return lost("XACK", ctx_.get());
        if (is_error(r.get())) {
            log_line("XACK failed: " + reply_text(r.get()));
            return false;
        }
        return true;
    }

    options opt_;
    context_ptr ctx_;
    std::string pending_from_;  // non-empty while the pending list is being read
    long long answered_ = 0;
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
    // hiredis writes with write(): a connection Redis closed must be an error, not a SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);

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
