#pragma once
// Idempotent commands without Redis (docs/protocol.md 6.5): which `(player_id, correlation_id)`
// pairs the in-process bus accepted within the window, and the entry id each got, with the
// behaviour of `gatehouse_append` in the Redis library (src/bus/redis_update_log.cpp): a pair
// is remembered for the window from its first append, then forgotten. On top, the memory is
// bounded: past `max_bytes` the oldest pairs are forgotten first (a retry of one of those is
// appended again, as after the window).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace gatehouse::detail {

/// A command's pair as one string, `<bytes of player_id>:<player_id>:<correlation_id>`: the
/// length prefix keeps distinct pairs apart whatever they contain (`:` included). The same
/// spelling names a pair in Redis (the `gatehouse_append` function, redis_update_log.cpp).
std::string command_pair(std::string_view player_id, std::string_view correlation_id);

/// What one remembered pair is counted as besides its key and id bytes (the map node, the
/// queue slot and the strings' headers, roughly).
inline constexpr std::size_t recent_command_overhead = 128;

/// The remembered pairs. Not thread-safe: the in-process bus calls it under its stream's lock,
/// so that the check and the append are one step.
class recent_commands {
public:
    /// `window` 0 remembers nothing. `max_bytes` bounds the pairs' key and id bytes plus
    /// `recent_command_overhead` each.
    recent_commands(std::chrono::seconds window, std::size_t max_bytes);

    /// The entry id the pair got within the window, or null. `now_ms` is steady-clock time;
    /// the pointer is valid until the next call.
    const std::string* find(std::string_view player_id, std::string_view correlation_id,
                            std::int64_t now_ms);
    /// Remembers that the pair was appended as `id` at `now_ms` (after `find` returned null).
    void remember(std::string_view player_id, std::string_view correlation_id,
                  const std::string& id, std::int64_t now_ms);

    std::size_t size() const noexcept { return ids_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }

private:
    struct remembered {
        const std::string* key;  // the map's own key: nodes never move
        std::int64_t until_ms;
        std::size_t bytes;
    };
    void forget_expired(std::int64_t now_ms);
    void forget_oldest();

    const std::int64_t window_ms_;
    const std::size_t max_bytes_;
    // The window is the same for every pair, so the order of appends is the order of expiry:
    // both the expiry and the memory bound drop from the front.
    std::deque<remembered> order_;
    std::unordered_map<std::string, std::string> ids_;
    std::size_t bytes_ = 0;
};

}  // namespace gatehouse::detail
