#pragma once
// The batches of `GATEHOUSE.APPEND` (the gatehouse Redis module, redis_module/) or `FCALL
// gatehouse_append` (idempotent commands, docs/protocol.md 6.5) that the Redis command producer
// sends while de-duplication is on. A call costs Redis several times an XADD of its own, so
// commands wait here (formatted on the appending thread) and the
// producer's I/O thread sends everything that waited as few calls as it can. Batches form by
// themselves: at most `max_calls_in_flight` calls are unanswered, and what arrives meanwhile
// waits for the next one; a lone command leaves at once. What the producer holds is bounded:
// in flight, `max_calls_in_flight` calls of `max_commands_per_call` commands; waiting, about
// `max_waiting_bytes` (past it a command is refused, and answered `bus_unavailable`).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "gatehouse/command_bus.hpp"
#include "redis/reply.hpp"

namespace gatehouse::detail::redis {

/// Which command appends a call's commands. Both take the same arguments after their head, keys
/// and answers, so the bytes of a batch formatted for one can be sent with the other.
enum class append_via {
    function,  ///< `FCALL gatehouse_append 1 <stream> ...`: the `gatehouse` library's function.
    module,    ///< `GATEHOUSE.APPEND <stream> ...`: the gatehouse Redis module, about half the CPU.
};

class append_batch {
public:
    /// Commands per call: Lua unpacks a call's pairs in one go, and its stack holds some
    /// thousands of values.
    static constexpr std::size_t max_commands_per_call = 256;
    /// A hard cap: `take()` never has more calls unanswered.
    static constexpr std::size_t max_calls_in_flight = 16;
    /// Bytes of commands waiting for a call: `add` refuses once they reach it. Some 80,000
    /// commands of 200 bytes, seconds of a busy gateway's traffic: reached only while Redis
    /// answers far slower than commands arrive, where refusing at once beats holding them.
    static constexpr std::size_t max_waiting_bytes = std::size_t{16} << 20U;

    /// The calls go to `stream`, with the window, the stream's MAXLEN (0: none) and the
    /// gateway_id every entry carries.
    append_batch(std::string_view stream, std::chrono::seconds window, std::size_t maxlen,
                 std::string_view gateway_id);

    /// Appending threads: queues one command. `format(out)` appends its bulk strings (pair,
    /// extra count, the eight values, the extra fields; see `gatehouse_append`) to `out` and
    /// returns how many. Returns false (and leaves `done`) when closed or when
    /// `max_waiting_bytes` wait already; sets `schedule` when the caller must have the I/O
    /// thread call `take()`.
    template <class Format>
    bool add(Format&& format, append_handler& done, bool& schedule) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (closed_ || bytes_.size() >= max_waiting_bytes) return false;
        const std::size_t before = bytes_.size();
        try {
            const std::size_t args = format(bytes_);
            commands_.push_back({bytes_.size(), args});
            handlers_.push_back(std::move(done));
        } catch (...) {
            bytes_.resize(before);
            throw;
        }
        schedule = !scheduled_;
        scheduled_ = true;
        return true;
    }

    /// One call: its commands' handlers, in order.
    struct call {
        std::size_t from = 0, to = 0;  // its commands' bytes in `taken::bytes`
        std::size_t args = 0;
        std::shared_ptr<std::vector<append_handler>> handlers;
    };
    struct taken {
        std::string bytes;
        std::vector<call> calls;
    };

    /// I/O thread: what waited, as calls, each counted in flight, as many as fit under
    /// `max_calls_in_flight`; the rest keeps waiting (the next `answered()` says when to take
    /// again).
    taken take();
    /// Appends call `c` of a `taken` whose bytes are `bytes` in RESP form: `GATEHOUSE.APPEND
    /// <stream> <window> <maxlen> <gateway_id>` (`via` module) or `FCALL gatehouse_append 1
    /// <stream> <window> <maxlen> <gateway_id>` (function), then its commands.
    void format_call(std::string& out, const std::string& bytes, const call& c,
                     append_via via) const;
    /// I/O thread: a call was answered. True when a batch waits for `take()`.
    bool answered();
    /// Refuses every later `add`; returns the handlers still waiting (the caller answers them).
    std::vector<append_handler> close();

private:
    struct command {
        std::size_t end;   // of its bytes in bytes_
        std::size_t args;  // bulk strings it added
    };

    std::string function_head_;  // `FCALL gatehouse_append 1 <stream> <window> <maxlen> <id>`
    std::string module_head_;    // `GATEHOUSE.APPEND <stream> <window> <maxlen> <gateway_id>`

    std::mutex mutex_;
    std::string bytes_;
    std::vector<command> commands_;
    std::vector<append_handler> handlers_;
    bool scheduled_ = false;  // a take() is due
    bool closed_ = false;

    // I/O thread only.
    std::size_t in_flight_ = 0;
    bool held_ = false;
};

/// What one call's answer did to its commands.
struct append_outcome {
    std::uint64_t appended = 0;    ///< Answered with a new entry id.
    std::uint64_t duplicates = 0;  ///< Answered with the first entry's id (a status reply).
    std::uint64_t failed = 0;      ///< Answered with `errc::bus_unavailable`.
    bool refused = false;          ///< Redis answered, but not with one id per command.
};

/// What a call's reply means for its `commands`: one element per command, a bulk string for a
/// fresh entry, a status for a duplicate; anything else (the link broke, the function failed
/// or is missing) fails them all. Counted before `answer_appends`, so that counters are
/// current when a handler runs.
append_outcome count_appends(std::error_code ec, const reply& r, std::size_t commands);
/// Answers each handler as `count_appends` counted: with its id, or `errc::bus_unavailable`.
void answer_appends(std::error_code ec, const reply& r, std::vector<append_handler>& handlers);

/// True when Redis answered a call of the `gatehouse` library that it does not have (flushed,
/// or replaced by a library without it): nothing of the call ran.
bool function_missing(std::error_code ec, const reply& r);

/// True when Redis answered `GATEHOUSE.APPEND` as a command it does not know (started without
/// the module, or `MODULE UNLOAD gatehouse`) or that the connection's ACL user may not run:
/// nothing of the call ran.
bool module_missing(std::error_code ec, const reply& r);

/// The commands of one call (its bytes in `taken::bytes`, as `add` formatted them), each as
/// the values of its bulk strings: pair, extra count, the eight values, the extra fields.
/// Empty when the bytes are not that (they always are: a sanity check).
std::vector<std::vector<std::string_view>> split_call(std::string_view bytes);

}  // namespace gatehouse::detail::redis
