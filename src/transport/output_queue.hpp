#pragma once
// The bytes queued for one connection's socket, and their count. An item is a frame header
// (2-14 bytes, WebSocket only) beside shared, already encoded bytes, so the payload of one
// broadcast is queued for every recipient without a copy. No I/O and no locking: the
// connection's writer (connection_writer.hpp) holds its output mutex around every call except
// buffered(), and gathers the queue into one sendmsg.
//
// A frame may be queued under a key (delivery class `latest`, docs/protocol.md 6.6): the queue then
// remembers the newest item of each key until everything is written, and withdraw() turns that
// item, while none of it is written, into an empty one (nothing gathered, nothing counted), so
// a newer value pushed behind it takes its place without reordering anything else. The key
// index is made only for keyed frames and let go with the items: an unkeyed queue pays a null
// pointer for it. Items already written and withdrawn ones stay in the vector until everything
// is written; when they are most of it, push() compacts it, so that a peer that never catches
// up (while its `latest` frames replace each other) cannot grow the vector either.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/uio.h>

namespace gatehouse::detail {

struct out_item {
    std::shared_ptr<const std::string> bytes;
    unsigned char header[14] = {};
    std::uint8_t header_len = 0;
    std::size_t size() const noexcept { return header_len + bytes->size(); }
};

class output_queue {
public:
    // Every byte queued and not yet written (frame headers included); from any thread.
    std::size_t buffered() const noexcept { return buffered_.load(std::memory_order_relaxed); }
    std::size_t buffered_acquire() const noexcept {
        return buffered_.load(std::memory_order_acquire);
    }

    bool empty() const noexcept { return items_.empty(); }
    // Heap bytes the queue holds for its items (not the bytes they share).
    std::size_t memory_bytes() const noexcept { return items_.capacity() * sizeof(out_item); }
    bool all_written() const noexcept { return head_ == items_.size(); }

    void push(out_item item) {
        compact_if_mostly_dead();
        append(std::move(item));
    }

    // push(), remembering the item as the newest of `key`.
    void push_keyed(out_item item, std::string_view key) {
        compact_if_mostly_dead();
        if (!keyed_) keyed_ = std::make_unique<key_index>();
        (*keyed_)[std::string(key)] = static_cast<std::uint32_t>(items_.size());
        append(std::move(item));
    }

    // Withdraws the newest item pushed with `key` when none of it has been written (or handed
    // to take()): it becomes empty and its bytes are un-counted. False when there is none.
    bool withdraw(std::string_view key) {
        if (!keyed_) return false;
        const auto it = keyed_->find(std::string(key));
        if (it == keyed_->end()) return false;
        const std::uint32_t index = it->second;
        keyed_->erase(it);
        // The head item is being written once any of it went out.
        if (index < head_ || (index == head_ && offset_ > 0) || index >= items_.size()) {
            return false;
        }
        out_item& item = items_[index];
        buffered_.fetch_sub(item.size(), std::memory_order_relaxed);
        item.bytes = withdrawn_bytes();
        item.header_len = 0;
        ++withdrawn_;
        return true;
    }

    // Fills `out` with up to `max` buffers of the bytes not yet written, in order; returns how
    // many. `max` is at least 2 (an item may need two: its header and its bytes).
    std::size_t gather(iovec* out, std::size_t max) {
        std::size_t count = 0;
        std::size_t skip = offset_;
        for (std::size_t i = head_; i < items_.size() && count + 1 < max; ++i) {
            auto& item = items_[i];
            if (skip < item.header_len) {
                out[count++] = {item.header + skip, item.header_len - skip};
                skip = 0;
            } else {
                skip -= item.header_len;
            }
            if (skip < item.bytes->size()) {
                // sendmsg only reads through iov_base; the iovec type is not const.
                out[count++] = {const_cast<char*>(item.bytes->data()) + skip,
                                item.bytes->size() - skip};
            }
            skip = 0;
        }
        return count;
    }

    // `n` bytes of what gather() offered reached the socket: the items they complete are
    // released. Returns the bytes still counted (see uncount()).
    std::size_t written(std::size_t n) {
        const std::size_t left = uncount(n);
        // Also past withdrawn (empty) items, which complete with no byte written.
        while (head_ < items_.size()) {
            const std::size_t rest = items_[head_].size() - offset_;
            if (n < rest) {
                offset_ += n;
                return left;
            }
            n -= rest;
            items_[head_].bytes.reset();
            ++head_;
            offset_ = 0;
        }
        return left;
    }

    // `n` bytes handed over by take() reached the socket. Returns the bytes still counted.
    std::size_t uncount(std::size_t n) noexcept {
        return buffered_.fetch_sub(n, std::memory_order_acq_rel) - n;
    }

    // Hands every item to `into` (empty) for one asynchronous write; they stay counted until
    // uncount().
    void take(std::vector<out_item>& into) {
        into.swap(items_);
        keyed_.reset();
        withdrawn_ = 0;
    }

    // Everything was written: forget the items.
    void clear_written() {
        items_.clear();
        keyed_.reset();
        head_ = 0;
        offset_ = 0;
        withdrawn_ = 0;
        // A burst can leave a large queue behind; an idle connection keeps none of it.
        if (items_.capacity() > 16 || release_when_written_) {
            items_ = std::vector<out_item>();
            release_when_written_ = false;
        }
    }

    // The next time everything is written, the queue lets go of its memory whatever its size:
    // the burst that fills it now (a handshake's answer and the stream's first message) says
    // nothing of the traffic to come, and most streams idle after it (64 bytes each).
    void release_when_written() noexcept { release_when_written_ = true; }

    // Nothing more will be written: what is queued is dropped and un-counted.
    void drop() {
        std::size_t unsent = 0;
        for (std::size_t i = head_; i < items_.size(); ++i) unsent += items_[i].size();
        buffered_.fetch_sub(unsent - std::min(unsent, offset_), std::memory_order_relaxed);
        items_.clear();
        keyed_.reset();
        head_ = 0;
        offset_ = 0;
        withdrawn_ = 0;
    }

    // Items in the vector, written and withdrawn ones included (for tests).
    std::size_t item_count() const noexcept { return items_.size(); }

private:
    using key_index = std::unordered_map<std::string, std::uint32_t>;  // key -> newest item

    // Fewer dead items than this are not worth a pass.
    static constexpr std::size_t compact_after = 64;

    // What a withdrawn item holds instead of its bytes: shared, so withdrawing allocates nothing.
    static const std::shared_ptr<const std::string>& withdrawn_bytes() {
        static const auto nothing = std::make_shared<const std::string>();
        return nothing;
    }

    void append(out_item item) {
        buffered_.fetch_add(item.size(), std::memory_order_relaxed);
        items_.push_back(std::move(item));
    }

    void compact_if_mostly_dead() {
        const std::size_t dead = head_ + withdrawn_;
        if (dead >= compact_after && 2 * dead >= items_.size()) compact();
    }

    // Drops the written items and the withdrawn ones, keeping the order of the rest (the head
    // item, perhaps partly written, first) and the key index pointing at the same items.
    void compact() {
        const std::size_t old_head = head_;
        std::vector<std::uint32_t> moved_to;
        if (keyed_ && !keyed_->empty()) moved_to.assign(items_.size() - old_head, UINT32_MAX);
        std::size_t to = 0;
        for (std::size_t i = old_head; i < items_.size(); ++i) {
            if (items_[i].bytes == withdrawn_bytes()) continue;
            if (!moved_to.empty()) moved_to[i - old_head] = static_cast<std::uint32_t>(to);
            if (to != i) items_[to] = std::move(items_[i]);
            ++to;
        }
        items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(to), items_.end());
        head_ = 0;
        withdrawn_ = 0;
        if (!keyed_) return;
        for (auto it = keyed_->begin(); it != keyed_->end();) {
            // An item already written (before the head) is no longer anyone's to withdraw.
            const std::uint32_t now = it->second < old_head || moved_to.empty()
                                          ? UINT32_MAX
                                          : moved_to[it->second - old_head];
            if (now == UINT32_MAX) {
                it = keyed_->erase(it);
            } else {
                it->second = now;
                ++it;
            }
        }
    }

    std::vector<out_item> items_;
    std::unique_ptr<key_index> keyed_;
    std::atomic<std::size_t> buffered_{0};
    std::size_t offset_ = 0;  // bytes of the first item not completely written already written
    std::uint32_t head_ = 0;  // that item
    // Items withdrawn since the last compaction (a trigger only: some may be behind the head).
    std::uint32_t withdrawn_ = 0;
    bool release_when_written_ = false;
};

}  // namespace gatehouse::detail
