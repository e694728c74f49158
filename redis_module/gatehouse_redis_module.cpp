// The gatehouse Redis module: `GATEHOUSE.APPEND`, the idempotent append of docs/protocol.md 6.5
// done natively. It is the `gatehouse_append` function of the gatehouse Lua library
// (src/bus/redis_update_log.cpp) with the same arguments, keys and answers, so gateways and
// Redis servers with and without the module share one command stream and one set of window
// hashes. Why it exists: the function spends about 2 µs of Redis CPU per command making every
// argument a Lua string and, in `redis.call`, a Redis string again (docs/benchmarks.md,
// "Idempotent commands"); here the arguments Redis parsed are passed on as they are.
//
//   GATEHOUSE.APPEND <stream> <window s> <maxlen> <gateway_id>
//                    (<pair> <extra> <8 values> [name value]...)...
//
// Per command: its pair (`<bytes of player_id>:<player_id>:<correlation_id>`, or '' for a
// command never looked up), the count of its extra arguments, the values of type, payload,
// codec, correlation_id, player_id, connection_id, client and ts_ms, then its extra fields
// as name value ... Answers one element per command: a fresh entry's id as a bulk string, a
// duplicate's first id as a status reply.
//
// Writes go through RedisModule_Call with '!', so replicas and the AOF get what the function
// would have propagated: each XADD with the id it was given, one HSET, the UNLINK and the
// EXPIREAT.

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

extern "C" {
#include <redismodule.h>
}

namespace {

constexpr int head_args = 5;  // GATEHOUSE.APPEND stream window maxlen gateway_id
constexpr int values_per_command = 8;

// The names of the fields every entry carries, in the order of the values sent; created once.
const char* const value_names[values_per_command] = {
    "type", "payload", "codec", "correlation_id", "player_id", "connection_id", "client", "ts_ms"};
RedisModuleString* names[values_per_command];
RedisModuleString* gateway_id_name;
RedisModuleString* maxlen_name;
RedisModuleString* approx;
RedisModuleString* auto_id;

std::string_view view(RedisModuleString* s) {
    std::size_t len = 0;
    const char* p = RedisModule_StringPtrLen(s, &len);
    return {p, len};
}

bool to_count(RedisModuleString* s, long long& out) {
    return RedisModule_StringToLongLong(s, &out) == REDISMODULE_OK;
}

// The leading decimal digits of an entry id: its milliseconds; -1 when there are none.
long long id_ms(std::string_view id) {
    long long ms = 0;
    std::size_t i = 0;
    for (; i < id.size() && id[i] >= '0' && id[i] <= '9' && i < 18; ++i)
        ms = ms * 10 + (id[i] - '0');
    return i == 0 ? -1 : ms;
}

RedisModuleString* dedupe_key(RedisModuleCtx* ctx, std::string_view stream, long long window) {
    return RedisModule_CreateStringPrintf(ctx, "%.*s:dedupe:%lld", static_cast<int>(stream.size()),
                                          stream.data(), window);
}

struct command {
    int at;     // its pair's index in argv
    int extra;  // its extra arguments
};

struct answer {
    bool fresh = false;
    std::string id;           // fresh: the id it was given
    std::string first;        // a duplicate: the first entry's id
    std::size_t same_as = 0;  // a duplicate of a command earlier in the call: its index + 1
};

std::string format_id(const RedisModuleStreamID& id) {
    char buf[48];
    const int n =
        std::snprintf(buf, sizeof buf, "%llu-%llu", static_cast<unsigned long long>(id.ms),
                      static_cast<unsigned long long>(id.seq));
    return std::string(buf, static_cast<std::size_t>(n));
}

// The call's answer: one element per command. Frees `current`.
int reply(RedisModuleCtx* ctx, std::vector<answer>& answers, RedisModuleString* current) {
    RedisModule_ReplyWithArray(ctx, static_cast<long>(answers.size()));
    for (answer& a : answers) {
        if (a.fresh) {
            RedisModule_ReplyWithStringBuffer(ctx, a.id.data(), a.id.size());
        } else {
            const std::string& first = a.same_as ? answers[a.same_as - 1].id : a.first;
            RedisModule_ReplyWithSimpleString(ctx, first.c_str());
        }
    }
    RedisModule_FreeString(ctx, current);
    return REDISMODULE_OK;
}

int append(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
    long long window = 0;
    if (argc < head_args || !to_count(argv[2], window) || window < 1) {
        return RedisModule_ReplyWithError(
            ctx,
            "ERR usage: GATEHOUSE.APPEND <stream> <window> <maxlen> <gateway_id> "
            "(<pair> <extra> <8 values> [name value]...)...");
    }
    RedisModuleString* stream = argv[1];
    RedisModuleString* maxlen = argv[3];
    RedisModuleString* gateway = argv[4];
    const bool trimmed = view(maxlen) != "0";

    std::vector<command> commands;
    for (int at = head_args; at < argc;) {
        long long extra = -1;
        // (at + 9 + extra >= argc, written so that a huge extra cannot overflow past the check)
        if (at + 1 >= argc || !to_count(argv[at + 1], extra) || extra < 0 || extra % 2 != 0 ||
            extra > argc - at - 10) {
            return RedisModule_ReplyWithError(
                ctx, "ERR gatehouse_append: a command's argument count is wrong");
        }
        commands.push_back({at, static_cast<int>(extra)});
        at += 10 + static_cast<int>(extra);
    }

    const long long now_ms = RedisModule_Milliseconds();
    const long long w = (now_ms / 1000) / window;
    RedisModuleString* current = dedupe_key(ctx, view(stream), w);

    // The first id of each pair seen in this window's hash or the last one's, while younger than
    // the window; a pair appended earlier in this call joins them below.
    std::unordered_map<std::string_view, std::string> seen;
    seen.reserve(commands.size());
    {
        RedisModuleString* previous = dedupe_key(ctx, view(stream), w - 1);
        auto* a = static_cast<RedisModuleKey*>(RedisModule_OpenKey(ctx, current, REDISMODULE_READ));
        auto* b =
            static_cast<RedisModuleKey*>(RedisModule_OpenKey(ctx, previous, REDISMODULE_READ));
        const int a_type = RedisModule_KeyType(a);
        const int b_type = RedisModule_KeyType(b);
        const bool a_hash = a_type == REDISMODULE_KEYTYPE_HASH;
        const bool b_hash = b_type == REDISMODULE_KEYTYPE_HASH;
        // Another type where a window hash should be: the function's HMGET fails before any
        // write (when there is a pair to look up), and so does this; else nothing would be
        // remembered (the HSET failing unseen) while the entries were appended.
        if ((!a_hash && a_type != REDISMODULE_KEYTYPE_EMPTY) ||
            (!b_hash && b_type != REDISMODULE_KEYTYPE_EMPTY)) {
            const bool looked =
                std::any_of(commands.begin(), commands.end(),
                            [&](const command& c) { return !view(argv[c.at]).empty(); });
            if (looked) {
                RedisModule_CloseKey(a);
                RedisModule_CloseKey(b);
                RedisModule_FreeString(ctx, previous);
                RedisModule_FreeString(ctx, current);
                return RedisModule_ReplyWithError(
                    ctx, "WRONGTYPE Operation against a key holding the wrong kind of value");
            }
        }
        if (a_hash || b_hash) {
            for (const command& c : commands) {
                RedisModuleString* pair = argv[c.at];
                const std::string_view p = view(pair);
                if (p.empty()) continue;
                RedisModuleString* id = nullptr;
                if (a_hash) RedisModule_HashGet(a, REDISMODULE_HASH_NONE, pair, &id, nullptr);
                if (id == nullptr && b_hash) {
                    RedisModule_HashGet(b, REDISMODULE_HASH_NONE, pair, &id, nullptr);
                }
                if (id == nullptr) continue;
                const std::string_view v = view(id);
                const long long ms = id_ms(v);
                // (now - ms) < window * 1000, without overflowing for a huge window
                if (ms >= 0 && (now_ms - ms) / 1000 < window) seen.emplace(p, std::string(v));
                RedisModule_FreeString(ctx, id);
            }
        }
        RedisModule_CloseKey(a);
        RedisModule_CloseKey(b);
        RedisModule_FreeString(ctx, previous);
    }

    // Which commands are fresh, before anything is opened for writing: a call of duplicates
    // only (or of none) writes nothing, as the function's, so it leaves a WATCH on the stream
    // alone and answers even where the stream has another type.
    std::vector<answer> answers(commands.size());
    bool any_fresh = false;
    {
        std::unordered_map<std::string_view, std::size_t> first;  // pair -> its command's index
        for (std::size_t i = 0; i < commands.size(); ++i) {
            const std::string_view p = view(argv[commands[i].at]);
            if (!p.empty()) {
                if (auto it = seen.find(p); it != seen.end()) {
                    answers[i].first = it->second;
                    continue;
                }
                if (auto it = first.find(p); it != first.end()) {
                    answers[i].same_as = it->second + 1;  // the same pair earlier in this call
                    continue;
                }
                first.emplace(p, i);
            }
            answers[i].fresh = true;
            any_fresh = true;
        }
    }
    if (!any_fresh) return reply(ctx, answers, current);
    // The function's XADD MAXLEN refuses a bad maxlen before appending anything.
    long long bound = 0;
    if (trimmed && (!to_count(maxlen, bound) || bound < 0)) {
        RedisModule_FreeString(ctx, current);
        return RedisModule_ReplyWithError(
            ctx, "ERR gatehouse_append: maxlen must be an integer >= 0 (0: no trimming)");
    }

    // The fresh commands, appended with the stream's own API (no command dispatch, no reply to
    // parse: what makes this cheaper than the function) and propagated to replicas and the AOF
    // as the XADD of the id each got, which is what Redis propagates for an XADD too.
    auto* key = static_cast<RedisModuleKey*>(
        RedisModule_OpenKey(ctx, stream, REDISMODULE_READ | REDISMODULE_WRITE));
    const int type = RedisModule_KeyType(key);
    if (type != REDISMODULE_KEYTYPE_EMPTY && type != REDISMODULE_KEYTYPE_STREAM) {
        RedisModule_CloseKey(key);
        RedisModule_FreeString(ctx, current);
        return RedisModule_ReplyWithError(
            ctx, "WRONGTYPE Operation against a key holding the wrong kind of value");
    }
    std::vector<RedisModuleString*> fields;
    std::vector<RedisModuleString*> remember;  // pair, id, ...
    for (std::size_t i = 0; i < commands.size(); ++i) {
        if (!answers[i].fresh) continue;
        const command& c = commands[i];
        const std::string_view p = view(argv[c.at]);
        fields.clear();
        for (int v = 0; v < values_per_command; ++v) {
            if (v == 6) {  // gateway_id comes before client
                fields.push_back(gateway_id_name);
                fields.push_back(gateway);
            }
            fields.push_back(names[v]);
            fields.push_back(argv[c.at + 2 + v]);
        }
        for (int e = 0; e < c.extra; ++e) fields.push_back(argv[c.at + 10 + e]);
        RedisModuleStreamID id{};
        if (RedisModule_StreamAdd(key, REDISMODULE_STREAM_ADD_AUTOID, &id, fields.data(),
                                  static_cast<std::int64_t>(fields.size() / 2)) != REDISMODULE_OK) {
            // Too large an entry or the last possible id: what came before stays appended, as
            // after the function's failing redis.call; the gateway answers every command of the
            // call with an error.
            RedisModule_CloseKey(key);
            RedisModule_FreeString(ctx, current);
            for (std::size_t k = 1; k < remember.size(); k += 2)
                RedisModule_FreeString(ctx, remember[k]);
            return RedisModule_ReplyWithError(ctx, "ERR gatehouse_append: XADD refused");
        }
        answers[i].id = format_id(id);
        RedisModule_Replicate(ctx, "XADD", "sbv", stream, answers[i].id.data(),
                              answers[i].id.size(), fields.data(), fields.size());
        RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_STREAM, "xadd", stream);
        if (!p.empty()) {
            remember.push_back(argv[c.at]);
            remember.push_back(
                RedisModule_CreateString(ctx, answers[i].id.data(), answers[i].id.size()));
        }
    }
    RedisModule_CloseKey(key);  // wakes the consumers blocked on the stream
    RedisModule_SignalModifiedKey(ctx, stream);
    if (trimmed) {
        // One approximate trim per call rather than per entry: the same bound, and XTRIM
        // propagates what it removed exactly.
        RedisModuleCallReply* r =
            RedisModule_Call(ctx, "XTRIM", "!sccs", stream, "MAXLEN", "~", maxlen);
        if (r != nullptr) RedisModule_FreeCallReply(r);
    }

    if (!remember.empty()) {
        std::vector<RedisModuleString*> hset;
        hset.reserve(remember.size() + 1);
        hset.push_back(current);
        hset.insert(hset.end(), remember.begin(), remember.end());
        RedisModuleCallReply* r = RedisModule_Call(ctx, "HSET", "!v", hset.data(), hset.size());
        if (r != nullptr) RedisModule_FreeCallReply(r);
        // As the function does: the hash of the window before the last is unlinked (freed on
        // Redis's background thread), and the current one expires once traffic stops.
        RedisModuleString* old = dedupe_key(ctx, view(stream), w - 2);
        r = RedisModule_Call(ctx, "UNLINK", "!s", old);
        if (r != nullptr) RedisModule_FreeCallReply(r);
        RedisModule_FreeString(ctx, old);
        // (w + 3) * window, saturated rather than overflowing for a huge window
        const long long at = w + 3 > LLONG_MAX / window ? LLONG_MAX : (w + 3) * window;
        r = RedisModule_Call(ctx, "EXPIREAT", "!sl", current, at);
        if (r != nullptr) RedisModule_FreeCallReply(r);
        for (std::size_t i = 1; i < remember.size(); i += 2)
            RedisModule_FreeString(ctx, remember[i]);
    }

    return reply(ctx, answers, current);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int RedisModule_OnLoad(
    RedisModuleCtx* ctx, RedisModuleString** /*argv*/, int /*argc*/) {
    if (RedisModule_Init(ctx, "gatehouse", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) {
        return REDISMODULE_ERR;
    }
    for (int v = 0; v < values_per_command; ++v) {
        names[v] = RedisModule_CreateString(nullptr, value_names[v], std::strlen(value_names[v]));
    }
    gateway_id_name = RedisModule_CreateString(nullptr, "gateway_id", 10);
    maxlen_name = RedisModule_CreateString(nullptr, "MAXLEN", 6);
    approx = RedisModule_CreateString(nullptr, "~", 1);
    auto_id = RedisModule_CreateString(nullptr, "*", 1);
    // The stream is the one declared key; the window hashes are derived from it, as in the
    // function (which is why neither is Redis Cluster safe).
    if (RedisModule_CreateCommand(ctx, "gatehouse.append", append, "write deny-oom", 1, 1, 1) ==
        REDISMODULE_ERR) {
        return REDISMODULE_ERR;
    }
    return REDISMODULE_OK;
}
