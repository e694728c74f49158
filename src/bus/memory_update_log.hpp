#pragma once
// The update log of a gateway without Redis (docs/protocol.md 6.4): each player's last updates in
// memory, with the behaviour of the Redis library (src/bus/redis_update_log.cpp): capped per
// player, a time to live, ids `<ms>-<seq>` from the Unix clock. On top, the whole log is
// bounded in bytes: past the bound the logs of the players written to least recently are
// dropped (their resumes get `gap`, which is always a correct answer).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gatehouse/update.hpp"
#include "gatehouse/update_log.hpp"

namespace gatehouse::detail {

/// The players an update is logged for, in order and each once: the `player` shape's player,
/// the `players` shape's distinct players; none for the other shapes.
std::vector<std::string> logged_players(const update& u);

/// `message` with `"update_ids":{"PLAYER":"ID",...},` inserted after its first `{`: how a
/// logged update is published. The message's own text is kept byte for byte.
std::string with_update_ids(std::string_view message, const update_ids& ids);

/// True when `message` (a JSON object) has a top-level `update_ids` key, which only the log
/// may add.
bool has_update_ids(std::string_view message);

/// Thread safety: none; the owner locks.
class memory_update_log {
public:
    /// `size` updates per player (at least 1), each readable for `ttl`, `max_bytes` in all
    /// (counted as the message and player bytes plus a fixed overhead per entry).
    memory_update_log(std::size_t size, std::chrono::milliseconds ttl, std::size_t max_bytes);

    /// Appends `message` to each player's log under one new id, which it returns; `now_ms` is
    /// the Unix clock.
    std::string append(const std::vector<std::string>& players, const std::string& message,
                       std::int64_t now_ms);

    /// What `update_log::read_after` answers (never `unavailable`); past `max_bytes` of
    /// messages the copy stops and the answer is `gap`.
    log_read_result read_after(std::string_view player, std::string_view after_id,
                               std::size_t max_bytes, std::int64_t now_ms) const;

    /// Bytes counted now, and players with a log.
    std::size_t bytes() const noexcept { return bytes_; }
    std::size_t players() const noexcept { return logs_.size(); }

private:
    struct entry {
        std::uint64_t ms = 0;
        std::string id;
        std::shared_ptr<const std::string> message;  // shared by the players of one update
    };
    struct player_log {
        std::deque<entry> entries;  // ascending ids
        std::list<std::string>::iterator lru;
        std::int64_t written_ms = 0;
        std::size_t bytes = 0;
    };

    std::size_t entry_bytes(const std::string& player, const entry& e) const noexcept;
    void next_id(std::int64_t now_ms);
    void drop(const std::string& player);
    void drop_expired(std::int64_t now_ms);
    void enforce_bytes(const std::string& keep);

    const std::size_t size_;
    const std::int64_t ttl_ms_;
    const std::size_t max_bytes_;
    std::unordered_map<std::string, player_log> logs_;
    std::list<std::string> lru_;  // players, least recently written first
    std::size_t bytes_ = 0;
    std::uint64_t last_ms_ = 0;
    std::uint64_t last_seq_ = 0;
    std::mt19937_64 random_;  // each millisecond's first sequence number
};

}  // namespace gatehouse::detail
