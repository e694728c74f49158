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
// Replicas and the AOF get what the function would have propagated: each entry as the XADD of
// the id it was given (RedisModule_Replicate), then the XTRIM, HSET, UNLINK and EXPIREAT, which
// go through RedisModule_Call with '!'.
//
// What a fresh command still costs Redis (bench/redis_append_cost.py: about 1.1x a pipelined
// plain XADD, which parses more arguments): half of it is the window hash, its lookup, its
// insert and the incremental rehashing of a hash of millions of pairs, as in the function;
// about a tenth is RedisModule_Replicate (a command lookup and an argv per entry), paid even
// when nothing is propagated, since the module API cannot tell (and it is what counts the
// entries as changes for the RDB save points).

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

extern "C" {
#include <redismodule.h>
}

namespace {

constexpr int head_args = 5;  // GATEHOUSE.APPEND stream window maxlen gateway_id
constexpr int values_per_command = 8;
constexpr long long max_window = 1000000000;  // seconds, some 31 years

// The names of the fields every entry carries, in the order of the values sent; created once.
const char* const value_names[values_per_command] = {
    "type", "payload", "codec", "correlation_id", "player_id", "connection_id", "client", "ts_ms"};
RedisModuleString* names[values_per_command];
RedisModuleString* gateway_id_name;
RedisModuleString* maxlen_name;
RedisModuleString* approx;
RedisModuleString* auto_id;
bool in_cluster = false;  // redis-server runs with cluster-enabled (set at load)

std::string_view view(RedisModuleString* s) {
    std::size_t len = 0;
    const char* p = RedisModule_StringPtrLen(s, &len);
    return {p, len};
}

bool to_count(RedisModuleString* s, long long& out) {
    const std::string_view v = view(s);
    if (v.size() == 1 && v[0] >= '0' && v[0] <= '9') {  // a command's extra count, mostly "0"
        out = v[0] - '0';
        return true;
    }
    return RedisModule_StringToLongLong(s, &out) == REDISMODULE_OK;
}

// The leading decimal digits of an entry id: its milliseconds; -1 when there are none.
// Leading zeros do not count towards the 18 digits read (as for Lua's tonumber).
long long id_ms(std::string_view id) {
    std::size_t i = 0;
    while (i < id.size() && id[i] == '0') ++i;
    const bool zeros = i > 0;
    long long ms = 0;
    std::size_t digits = 0;
    for (; i < id.size() && id[i] >= '0' && id[i] <= '9' && digits < 18; ++i, ++digits)
        ms = ms * 10 + (id[i] - '0');
    return zeros || digits > 0 ? ms : -1;
}

// Writes `v` in decimal at `out`; returns the end. By hand rather than std::to_chars, whose
// tables GCC emits as STB_GNU_UNIQUE symbols: those keep a dlclose()d object mapped, so MODULE
// UNLOAD would leave the old code and its statics for the next MODULE LOAD.
char* write_decimal(char* out, unsigned long long v) {
    char digits[20];
    std::size_t n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) *out++ = digits[--n];
    return out;
}

char* write_decimal(char* out, long long v) {
    if (v >= 0) return write_decimal(out, static_cast<unsigned long long>(v));
    *out++ = '-';
    return write_decimal(out, 0ULL - static_cast<unsigned long long>(v));
}

// `<stream>:dedupe:<window>`, the key of a window's hash (formatted by hand: with printf, the
// three of a call cost a 1-command call 7% of its time).
RedisModuleString* dedupe_key(RedisModuleCtx* ctx, std::string_view stream, long long window) {
    constexpr std::string_view infix = ":dedupe:";
    const std::size_t most = stream.size() + infix.size() + 20;  // 20: "-9223372036854775808"
    char small[256];
    std::string large;
    char* buf = small;
    if (most > sizeof small) {
        large.resize(most);
        buf = large.data();
    }
    char* end = std::copy(stream.begin(), stream.end(), buf);
    end = std::copy(infix.begin(), infix.end(), end);
    end = write_decimal(end, window);
    return RedisModule_CreateString(ctx, buf, static_cast<std::size_t>(end - buf));
}

RedisModuleString* id_string(RedisModuleCtx* ctx, const RedisModuleStreamID& id) {
    char buf[48];
    char* end = write_decimal(buf, static_cast<unsigned long long>(id.ms));
    *end++ = '-';
    end = write_decimal(end, static_cast<unsigned long long>(id.seq));
    return RedisModule_CreateString(ctx, buf, static_cast<std::size_t>(end - buf));
}

struct command {
    int at;     // its pair's index in argv
    int extra;  // its extra arguments
};

struct answer {
    // A fresh entry's id, or the first id of a duplicate found in a window hash; created in
    // this call, freed after the reply.
    RedisModuleString* id = nullptr;
    std::size_t same_as = 0;  // a duplicate of a command earlier in the call: its index + 1
    bool fresh = false;
};

// The first command of each pair in this call, so that a pair repeated within one call is a
// duplicate of its first: open addressing over a power of two of slots, at most half of them
// used.
class pair_table {
public:
    void reset(std::size_t pairs) {
        std::size_t size = 16;
        while (size < 2 * pairs) size *= 2;
        if (slots_.size() < size) slots_.resize(size);
        std::fill_n(slots_.begin(), size, slot{});
        mask_ = size - 1;
    }

    // The index + 1 of the first command of `pair` (0 for none yet), where to record it.
    std::size_t& at(std::string_view pair) {
        for (std::size_t i = std::hash<std::string_view>{}(pair)&mask_;; i = (i + 1) & mask_) {
            slot& s = slots_[i];
            if (s.first == 0) {
                s.pair = pair;
                return s.first;
            }
            if (s.pair == pair) return s.first;
        }
    }

private:
    struct slot {
        std::string_view pair;
        std::size_t first = 0;
    };
    std::vector<slot> slots_;
    std::size_t mask_ = 0;
};

// What a call works in, kept between calls so that a call allocates no memory of its own once
// the buffers have grown: Redis runs module commands on its main thread only.
struct scratch_space {
    std::vector<command> commands;
    std::vector<answer> answers;
    std::vector<RedisModuleString*> entry;  // XADD's arguments: stream, id, name value ...
    std::vector<RedisModuleString*> hset;   // current window's hash, pair, id, ...
    pair_table first_ids;
    bool busy = false;
};
scratch_space kept;

// The kept scratch space, or a fresh one for a call made while another runs (a keyspace
// notification's subscriber in another module calling GATEHOUSE.APPEND, say).
class scratch_lease {
public:
    scratch_lease() : space_(kept.busy ? own_ : kept), leased_(!kept.busy) {
        if (leased_) kept.busy = true;
    }
    ~scratch_lease() {
        if (leased_) kept.busy = false;
    }
    scratch_lease(const scratch_lease&) = delete;
    scratch_lease& operator=(const scratch_lease&) = delete;
    scratch_space* operator->() { return &space_; }

private:
    scratch_space own_;
    scratch_space& space_;
    bool leased_;
};

void release(RedisModuleCtx* ctx, std::vector<answer>& answers) {
    for (const answer& a : answers) {
        if (a.id != nullptr) RedisModule_FreeString(ctx, a.id);
    }
    answers.clear();
}

// The call's answer: one element per command.
void reply(RedisModuleCtx* ctx, const std::vector<answer>& answers) {
    RedisModule_ReplyWithArray(ctx, static_cast<long>(answers.size()));
    for (const answer& a : answers) {
        if (a.fresh) {
            RedisModule_ReplyWithString(ctx, a.id);
        } else {
            RedisModuleString* first = a.same_as ? answers[a.same_as - 1].id : a.id;
            RedisModule_ReplyWithSimpleString(ctx, RedisModule_StringPtrLen(first, nullptr));
        }
    }
}

int append(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
    long long window = 0;
    // At most max_window: the gateway's own bound is a day, and with it no time below (the
    // window in ms, the EXPIREAT) can overflow or be refused.
    if (argc < head_args || !to_count(argv[2], window) || window < 1 || window > max_window) {
        return RedisModule_ReplyWithError(
            ctx,
            "ERR usage: GATEHOUSE.APPEND <stream> <window> <maxlen> <gateway_id> "
            "(<pair> <extra> <8 values> [name value]...)...");
    }
    // The window hashes are not declared keys (nor are they the function's): in a cluster they
    // could live on another node's slots.
    if (in_cluster) {
        return RedisModule_ReplyWithError(
            ctx,
            "ERR GATEHOUSE.APPEND does not support Redis Cluster (its window hashes are "
            "not declared keys)");
    }
    RedisModuleString* stream = argv[1];
    RedisModuleString* maxlen = argv[3];
    RedisModuleString* gateway = argv[4];
    const bool trimmed = view(maxlen) != "0";

    scratch_lease scratch;
    std::vector<command>& commands = scratch->commands;
    commands.clear();
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
    std::vector<answer>& answers = scratch->answers;
    answers.assign(commands.size(), answer{});

    // Every pair's first id in this window's hash or the last one's, while younger than the
    // window. All the lookups come first, as the function's, back to back: in a hash larger
    // than the CPU's caches, the misses of one lookup overlap the next's (interleaved with the
    // appends, a call cost 7% more).
    {
        RedisModuleString* previous = dedupe_key(ctx, view(stream), w - 1);
        auto* a = static_cast<RedisModuleKey*>(RedisModule_OpenKey(ctx, current, REDISMODULE_READ));
        auto* b =
            static_cast<RedisModuleKey*>(RedisModule_OpenKey(ctx, previous, REDISMODULE_READ));
        const int a_type = RedisModule_KeyType(a);
        const int b_type = RedisModule_KeyType(b);
        const bool a_hash = a_type == REDISMODULE_KEYTYPE_HASH;
        const bool b_hash = b_type == REDISMODULE_KEYTYPE_HASH;
        const auto close = [&] {
            RedisModule_CloseKey(a);
            RedisModule_CloseKey(b);
            RedisModule_FreeString(ctx, previous);
        };
        // Another type where a window hash should be: the function's HMGET fails before any
        // write (when there is a pair to look up), and so does this; else nothing would be
        // remembered (the HSET failing unseen) while the entries were appended.
        if ((!a_hash && a_type != REDISMODULE_KEYTYPE_EMPTY) ||
            (!b_hash && b_type != REDISMODULE_KEYTYPE_EMPTY)) {
            const bool looked =
                std::any_of(commands.begin(), commands.end(),
                            [&](const command& c) { return !view(argv[c.at]).empty(); });
            if (looked) {
                close();
                RedisModule_FreeString(ctx, current);
                return RedisModule_ReplyWithError(
                    ctx, "WRONGTYPE Operation against a key holding the wrong kind of value");
            }
        }
        if (a_hash || b_hash) {
            for (std::size_t i = 0; i < commands.size(); ++i) {
                RedisModuleString* pair = argv[commands[i].at];
                if (view(pair).empty()) continue;
                RedisModuleString* id = nullptr;
                if (a_hash) RedisModule_HashGet(a, REDISMODULE_HASH_NONE, pair, &id, nullptr);
                if (id == nullptr && b_hash) {
                    RedisModule_HashGet(b, REDISMODULE_HASH_NONE, pair, &id, nullptr);
                }
                if (id == nullptr) continue;
                const long long ms = id_ms(view(id));
                // (now - ms) < window * 1000, without overflowing for a huge window
                if (ms >= 0 && (now_ms - ms) / 1000 < window) {
                    answers[i].id = id;
                } else {
                    RedisModule_FreeString(ctx, id);
                }
            }
        }
        close();
    }

    // Which commands are fresh, before anything is opened for writing: a call of duplicates
    // only (or of none) writes nothing, as the function's, so it leaves a WATCH on the stream
    // alone and answers even where the stream has another type.
    bool any_fresh = false;
    scratch->first_ids.reset(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
        if (answers[i].id != nullptr) continue;  // in a window hash
        const std::string_view p = view(argv[commands[i].at]);
        if (!p.empty()) {
            std::size_t& first = scratch->first_ids.at(p);
            if (first != 0) {
                answers[i].same_as = first;  // the same pair earlier in this call
                continue;
            }
            first = i + 1;
        }
        answers[i].fresh = true;
        any_fresh = true;
    }
    const auto done = [&](int status) {
        release(ctx, answers);
        RedisModule_FreeString(ctx, current);
        return status;
    };
    if (!any_fresh) {
        reply(ctx, answers);
        return done(REDISMODULE_OK);
    }
    // The function's XADD MAXLEN refuses a bad maxlen before appending anything.
    long long bound = 0;
    if (trimmed && (!to_count(maxlen, bound) || bound < 0)) {
        return done(RedisModule_ReplyWithError(
            ctx, "ERR gatehouse_append: maxlen must be an integer >= 0 (0: no trimming)"));
    }

    // The fresh commands, appended with the stream's own API (no command dispatch, no reply to
    // parse: what makes this cheaper than the function) and propagated to replicas and the AOF
    // as the XADD of the id each got, which is what Redis propagates for an XADD too.
    auto* key = static_cast<RedisModuleKey*>(
        RedisModule_OpenKey(ctx, stream, REDISMODULE_READ | REDISMODULE_WRITE));
    const int type = RedisModule_KeyType(key);
    if (type != REDISMODULE_KEYTYPE_EMPTY && type != REDISMODULE_KEYTYPE_STREAM) {
        RedisModule_CloseKey(key);
        return done(RedisModule_ReplyWithError(
            ctx, "WRONGTYPE Operation against a key holding the wrong kind of value"));
    }
    std::vector<RedisModuleString*>& entry = scratch->entry;
    std::vector<RedisModuleString*>& hset = scratch->hset;  // current, pair, id, ...
    hset.clear();
    hset.push_back(current);
    std::size_t appended = 0;
    // Keyspace notifications only once the key is closed: a module subscribed to stream events
    // may write or delete the stream from its callback, which would leave `key` pointing at a
    // freed object (RedisModule_StreamAdd then reads and writes freed memory).
    const auto notify = [&] {
        for (std::size_t n = 0; n < appended; ++n)
            RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_STREAM, "xadd", stream);
    };
    for (std::size_t i = 0; i < commands.size(); ++i) {
        if (!answers[i].fresh) continue;
        const command& c = commands[i];
        entry.clear();
        entry.push_back(stream);
        entry.push_back(nullptr);  // the id, once known
        for (int v = 0; v < values_per_command; ++v) {
            if (v == 6) {  // gateway_id comes before client
                entry.push_back(gateway_id_name);
                entry.push_back(gateway);
            }
            entry.push_back(names[v]);
            entry.push_back(argv[c.at + 2 + v]);
        }
        entry.insert(entry.end(), argv + c.at + 10, argv + c.at + 10 + c.extra);
        RedisModuleStreamID added{};
        if (RedisModule_StreamAdd(key, REDISMODULE_STREAM_ADD_AUTOID, &added, entry.data() + 2,
                                  static_cast<std::int64_t>((entry.size() - 2) / 2)) !=
            REDISMODULE_OK) {
            // Too large an entry or the last possible id: what came before stays appended, as
            // after the function's failing redis.call; the gateway answers every command of the
            // call with an error.
            RedisModule_CloseKey(key);
            notify();
            return done(RedisModule_ReplyWithError(ctx, "ERR gatehouse_append: XADD refused"));
        }
        RedisModuleString* id = id_string(ctx, added);
        answers[i].id = id;
        entry[1] = id;
        RedisModule_Replicate(ctx, "XADD", "v", entry.data(), entry.size());
        ++appended;
        if (!view(argv[c.at]).empty()) {
            hset.push_back(argv[c.at]);
            hset.push_back(id);
        }
    }
    RedisModule_CloseKey(key);  // wakes the consumers blocked on the stream
    notify();
    RedisModule_SignalModifiedKey(ctx, stream);
    if (trimmed) {
        // One approximate trim per call rather than per entry: the same bound, and XTRIM
        // propagates what it removed exactly.
        RedisModuleCallReply* r =
            RedisModule_Call(ctx, "XTRIM", "!sccs", stream, "MAXLEN", "~", maxlen);
        if (r != nullptr) RedisModule_FreeCallReply(r);
    }

    if (hset.size() > 1) {
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
    }

    reply(ctx, answers);
    return done(REDISMODULE_OK);
}

}  // namespace

// MODULE UNLOAD: the strings made at load (the next load makes its own).
extern "C" __attribute__((visibility("default"))) int RedisModule_OnUnload(
    RedisModuleCtx* /*ctx*/) {
    for (RedisModuleString*& s : names) RedisModule_FreeString(nullptr, s);
    for (RedisModuleString** s : {&gateway_id_name, &maxlen_name, &approx, &auto_id}) {
        RedisModule_FreeString(nullptr, *s);
    }
    return REDISMODULE_OK;
}

extern "C" __attribute__((visibility("default"))) int RedisModule_OnLoad(
    RedisModuleCtx* ctx, RedisModuleString** /*argv*/, int /*argc*/) {
    if (RedisModule_Init(ctx, "gatehouse", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) {
        return REDISMODULE_ERR;
    }
    // Redis 7.0 or later: before 6.2 RedisModule_StreamAdd is missing (a call would jump to a
    // null pointer), and before 7.0 what RedisModule_Replicate propagates follows what
    // RedisModule_Call('!') does, so replicas and the AOF would get the XTRIM before the XADDs.
    if (RedisModule_StreamAdd == nullptr || RedisModule_GetServerVersion == nullptr ||
        RedisModule_GetServerVersion() < 0x00070000) {
        RedisModule_Log(ctx, "warning", "the gatehouse module needs Redis 7.0 or later");
        return REDISMODULE_ERR;
    }
    // Cluster mode is fixed for a server's life: asked once, not per call.
    in_cluster = (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_CLUSTER) != 0;
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
