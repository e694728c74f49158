#pragma once
// An in-memory gatehouse::connection for unit tests, with failure injection: the buffered
// byte count is whatever the test sets, sends after close() (or after refuse_sends()) return
// `closed`, and every frame and close call is recorded. Thread-safe, as the interface asks.

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gatehouse/connection.hpp"

namespace test_support {

class fake_connection final : public gatehouse::connection {
public:
    /// One recorded close() call.
    struct close_call {
        gatehouse::close_code code;
        std::string reason;
    };

    explicit fake_connection(gatehouse::connection_id id) : id_(std::move(id)) {}

    static std::shared_ptr<fake_connection> make(gatehouse::connection_id id) {
        return std::make_shared<fake_connection>(std::move(id));
    }

    const gatehouse::connection_id& id() const noexcept override { return id_; }

    gatehouse::send_status send(const gatehouse::shared_frame& frame) override {
        std::lock_guard<std::mutex> lock(mutex_);
        ++send_calls_;
        if (!close_calls_.empty() || refusing_) return gatehouse::send_status::closed;
        frames_.push_back(frame);
        keys_.emplace_back();
        if (accumulate_) buffered_.fetch_add(frame.size(), std::memory_order_relaxed);
        return gatehouse::send_status::queued;
    }

    /// Every recorded frame counts as unwritten: with `replace`, the last one sent with `key`
    /// leaves frames() (and, when accumulating, buffered_bytes()).
    gatehouse::send_status send_keyed(const gatehouse::shared_frame& frame, std::string_view key,
                                      bool replace) override {
        std::lock_guard<std::mutex> lock(mutex_);
        ++send_calls_;
        ++keyed_calls_;
        if (!close_calls_.empty() || refusing_) return gatehouse::send_status::closed;
        bool replaced = false;
        for (std::size_t i = keys_.size(); replace && i-- > 0;) {
            if (keys_[i] != key) continue;
            if (accumulate_) buffered_.fetch_sub(frames_[i].size(), std::memory_order_relaxed);
            frames_.erase(frames_.begin() + static_cast<std::ptrdiff_t>(i));
            keys_.erase(keys_.begin() + static_cast<std::ptrdiff_t>(i));
            replaced = true;
            break;
        }
        frames_.push_back(frame);
        keys_.emplace_back(key);
        if (accumulate_) buffered_.fetch_add(frame.size(), std::memory_order_relaxed);
        return replaced ? gatehouse::send_status::coalesced : gatehouse::send_status::queued;
    }

    std::size_t buffered_bytes() const noexcept override {
        return buffered_.load(std::memory_order_relaxed);
    }

    void close(gatehouse::close_code code, std::string_view reason) override {
        std::lock_guard<std::mutex> lock(mutex_);
        close_calls_.push_back({code, std::string(reason)});
    }

    // --- failure injection ---

    /// What buffered_bytes() reports from now on.
    void set_buffered_bytes(std::size_t n) { buffered_.store(n, std::memory_order_relaxed); }
    /// When on, each queued frame adds its size to buffered_bytes() (a client that never
    /// reads).
    void accumulate_buffered(bool on) {
        std::lock_guard<std::mutex> lock(mutex_);
        accumulate_ = on;
    }
    /// Makes send() answer `closed` as if the transport had died, without a close() call.
    void refuse_sends() {
        std::lock_guard<std::mutex> lock(mutex_);
        refusing_ = true;
    }

    // --- inspection ---

    std::vector<gatehouse::shared_frame> frames() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return frames_;
    }
    /// The recorded frames' bytes.
    std::vector<std::string> texts() const {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<std::string> out;
        for (const auto& f : frames_) out.push_back(f.bytes ? *f.bytes : std::string());
        return out;
    }
    std::size_t frame_count() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return frames_.size();
    }
    /// The key each recorded frame was sent with (empty: plain send()).
    std::vector<std::string> keys() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return keys_;
    }
    /// send_keyed() calls, including refused ones.
    std::size_t keyed_calls() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return keyed_calls_;
    }
    /// Every send() call, including refused ones.
    std::size_t send_calls() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return send_calls_;
    }
    std::vector<close_call> close_calls() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return close_calls_;
    }
    bool closed() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return !close_calls_.empty();
    }

private:
    const gatehouse::connection_id id_;
    mutable std::mutex mutex_;
    std::vector<gatehouse::shared_frame> frames_;
    std::vector<std::string> keys_;
    std::vector<close_call> close_calls_;
    std::size_t send_calls_ = 0;
    std::size_t keyed_calls_ = 0;
    bool accumulate_ = false;
    bool refusing_ = false;
    std::atomic<std::size_t> buffered_{0};
};

}  // namespace test_support
