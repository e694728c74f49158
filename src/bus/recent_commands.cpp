#include "bus/recent_commands.hpp"

#include <utility>

namespace gatehouse::detail {
std::string command_pair(std::string_view player_id, std::string_view correlation_id) {
    std::string pair = std::to_string(player_id.size());
    pair.reserve(pair.size() + 2 + player_id.size() + correlation_id.size());
    pair.append(":").append(player_id).append(":").append(correlation_id);
    return pair;
}

recent_commands::recent_commands(std::chrono::seconds window, std::size_t max_bytes)
    : window_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(window).count()),
      max_bytes_(max_bytes) {}

const std::string* recent_commands::find(std::string_view player_id,
                                         std::string_view correlation_id, std::int64_t now_ms) {
    forget_expired(now_ms);
    if (ids_.empty()) return nullptr;
    const auto it = ids_.find(command_pair(player_id, correlation_id));
    return it == ids_.end() ? nullptr : &it->second;
}

void recent_commands::remember(std::string_view player_id, std::string_view correlation_id,
                               const std::string& id, std::int64_t now_ms) {
    if (window_ms_ <= 0) return;
    auto key = command_pair(player_id, correlation_id);
    const std::size_t bytes = key.size() + id.size() + recent_command_overhead;
    if (bytes > max_bytes_) return;  // one pair over the whole bound: not remembered
    while (!order_.empty() && bytes_ + bytes > max_bytes_) forget_oldest();
    const auto [it, fresh] = ids_.try_emplace(std::move(key), id);
    if (!fresh) return;  // find() said it was not there; kept for safety
    order_.push_back({&it->first, now_ms + window_ms_, bytes});
    bytes_ += bytes;
}

void recent_commands::forget_expired(std::int64_t now_ms) {
    while (!order_.empty() && order_.front().until_ms <= now_ms) forget_oldest();
}

void recent_commands::forget_oldest() {
    const auto& front = order_.front();
    bytes_ -= front.bytes;
    // By iterator: erasing by a key that lives in the node being erased would alias it.
    ids_.erase(ids_.find(*front.key));
    order_.pop_front();
}

}  // namespace gatehouse::detail
