#include "bus/memory_update_log.hpp"

#include <algorithm>
#include <limits>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

namespace gatehouse::detail {
namespace {

// What an entry costs beyond its text: the deque slot, the id, the shared message's control
// block. An estimate; it only has to keep the bound honest for many tiny messages.
constexpr std::size_t entry_overhead = 96;

}  // namespace

std::vector<std::string> logged_players(const update& u) {
    std::vector<std::string> out;
    if (u.target == update_target::player) {
        out.push_back(u.player_id);
    } else if (u.target == update_target::players) {
        std::unordered_set<std::string_view> seen;
        for (const auto& p : u.player_ids) {
            if (seen.insert(p).second) out.push_back(p);
        }
    }
    return out;
}

std::string with_update_ids(std::string_view message, const update_ids& ids) {
    std::string keys = "\"update_ids\":{";
    bool first = true;
    for (const auto& [player, id] : ids) {
        if (!first) keys += ',';
        first = false;
        keys +=
            nlohmann::json(player).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        keys += ":\"";
        keys += id;
        keys += '"';
    }
    keys += "},";
    const auto brace = message.find('{');
    std::string out;
    out.reserve(message.size() + keys.size());
    out.append(message.substr(0, brace + 1)).append(keys).append(message.substr(brace + 1));
    return out;
}

bool has_update_ids(std::string_view message) {
    // The common case costs one search; only a message that names the key is parsed.
    if (message.find("\"update_ids\"") == std::string_view::npos) return false;
    const auto parsed = nlohmann::json::parse(message, nullptr, false);
    return parsed.is_object() && parsed.contains("update_ids");
}

memory_update_log::memory_update_log(std::size_t size, std::chrono::milliseconds ttl,
                                     std::size_t max_bytes)
    : size_(std::max<std::size_t>(size, 1)),
      ttl_ms_(ttl.count()),
      max_bytes_(max_bytes),
      random_(std::random_device{}()) {}

std::size_t memory_update_log::entry_bytes(const std::string& player,
                                           const entry& e) const noexcept {
    return e.message->size() + player.size() + entry_overhead;
}

// Redis's rule for stream ids: the time part never goes backwards, even when the clock does;
// within one millisecond the sequence counts up. One id serves all players of an update.
// Unlike Redis, nothing remembers the last id across a restart: a process restarted within
// the same millisecond, or after the clock stepped back, would issue `<ms>-0` again and an
// old resume id would find a different update. So each millisecond's sequence starts at a
// random 32-bit value: two processes' ids meet only if they use the same millisecond and
// their sequences overlap (about one chance in 2^32 per millisecond shared), and the 32 bits
// of headroom above keep the sequence from wrapping.
void memory_update_log::next_id(std::int64_t now_ms) {
    const auto now = static_cast<std::uint64_t>(std::max<std::int64_t>(now_ms, 0));
    if (now > last_ms_) {
        last_ms_ = now;
        last_seq_ = random_() & 0xFFFFFFFFU;
    } else if (last_seq_ == std::numeric_limits<std::uint64_t>::max()) {
        ++last_ms_;
        last_seq_ = 0;
    } else {
        ++last_seq_;
    }
}

void memory_update_log::drop(const std::string& player) {
    const auto it = logs_.find(player);
    if (it == logs_.end()) return;
    bytes_ -= it->second.bytes;
    lru_.erase(it->second.lru);
    logs_.erase(it);
}

// A log not written for the TTL holds nothing readable: dropped, as Redis expires the key.
void memory_update_log::drop_expired(std::int64_t now_ms) {
    while (!lru_.empty()) {
        const auto it = logs_.find(lru_.front());
        if (now_ms - it->second.written_ms <= ttl_ms_) return;
        const std::string victim = lru_.front();  // drop() erases the list's copy
        drop(victim);
    }
}

// The least recently written players go first; `keep` (being written) last, and then only
// down to its newest entry.
void memory_update_log::enforce_bytes(const std::string& keep) {
    while (bytes_ > max_bytes_ && !lru_.empty() && lru_.front() != keep) {
        const std::string victim = lru_.front();  // drop() erases the list's copy
        drop(victim);
    }
    if (bytes_ <= max_bytes_) return;
    auto& log = logs_.at(keep);
    while (bytes_ > max_bytes_ && log.entries.size() > 1) {
        const auto cost = entry_bytes(keep, log.entries.front());
        log.entries.pop_front();
        log.bytes -= cost;
        bytes_ -= cost;
    }
}

std::string memory_update_log::append(const std::vector<std::string>& players,
                                      const std::string& message, std::int64_t now_ms) {
    drop_expired(now_ms);
    next_id(now_ms);
    entry e;
    e.ms = last_ms_;
    e.id = std::to_string(last_ms_) + "-" + std::to_string(last_seq_);
    e.message = std::make_shared<const std::string>(message);
    for (const auto& player : players) {
        auto [it, inserted] = logs_.try_emplace(player);
        auto& log = it->second;
        if (inserted) {
            log.lru = lru_.insert(lru_.end(), player);
        } else {
            lru_.splice(lru_.end(), lru_, log.lru);
        }
        log.written_ms = now_ms;
        const auto cost = entry_bytes(player, e);
        log.entries.push_back(e);
        log.bytes += cost;
        bytes_ += cost;
        while (log.entries.size() > size_) {
            const auto old = entry_bytes(player, log.entries.front());
            log.entries.pop_front();
            log.bytes -= old;
            bytes_ -= old;
        }
        enforce_bytes(player);
    }
    return e.id;
}

log_read_result memory_update_log::read_after(std::string_view player, std::string_view after_id,
                                              std::size_t max_bytes, std::int64_t now_ms) const {
    log_read_result result;  // gap
    if (!valid_update_id(after_id)) return result;
    const auto it = logs_.find(std::string(player));
    if (it == logs_.end()) return result;
    const auto& entries = it->second.entries;
    const auto at = std::lower_bound(
        entries.begin(), entries.end(), after_id,
        [](const entry& e, std::string_view id) { return compare_update_ids(e.id, id) < 0; });
    if (at == entries.end() || compare_update_ids(at->id, after_id) != 0) return result;
    const auto now = static_cast<std::uint64_t>(std::max<std::int64_t>(now_ms, 0));
    if (at->ms < now && now - at->ms > static_cast<std::uint64_t>(ttl_ms_)) return result;
    // Summed before anything is copied: the caller holds the bus-wide lock, and a replay past
    // the budget would be answered with a gap anyway.
    std::size_t bytes = 0;
    for (auto next = at + 1; next != entries.end(); ++next) {
        if (next->message->size() > max_bytes - bytes) return result;
        bytes += next->message->size();
    }
    result.status = log_read_status::replay;
    result.updates.reserve(static_cast<std::size_t>(entries.end() - at - 1));
    for (auto next = at + 1; next != entries.end(); ++next) {
        result.updates.push_back({next->id, *next->message});
    }
    return result;
}

}  // namespace gatehouse::detail
