#pragma once

// The gateway core's test harness: an in-memory transport link that fails its Nth send
// (Beast's test::fail_count), a bus whose appends wait until the test answers them (or fail
// at once), and a core built on either bus. The core's parts are tested on the same
// `stream_link` seam the socket transport uses, without a socket.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/command_bus.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/in_process_bus.hpp"
#include "gatehouse/jwt.hpp"
#include "gatehouse/pubsub_listener.hpp"
#include "gatehouse/update.hpp"
#include "gatehouse/update_log.hpp"
#include "gateway/gateway_core.hpp"
#include "transport/transport_events.hpp"

namespace gatehouse_test {

using namespace gatehouse;
using namespace gatehouse::detail;

// A stream_link that keeps what it was sent and fails the Nth send (1-based; 0: never). With
// bound_queue(), every frame it keeps counts as unwritten, and one that would pass the bound
// closes it with 4008, as the transport does past transport_options::max_queued_bytes.
class memory_link final : public stream_link {
public:
    explicit memory_link(std::size_t fail_at = 0) : fail_at_(fail_at) {}

    // buffered_bytes() from now on: the bytes of the frames kept (none are ever written), and
    // `max_queued` the bound they may not pass.
    void bound_queue(std::size_t max_queued) {
        std::lock_guard<std::mutex> lock(mutex_);
        max_queued_ = max_queued;
    }

    send_status send(const shared_frame& frame) override {
        std::lock_guard<std::mutex> lock(mutex_);
        ++sends_;
        if (closed_ || (fail_at_ != 0 && sends_ >= fail_at_)) {
            // A failed write ends the stream, as it does on a socket.
            closed_ = true;
            return send_status::closed;
        }
        if (max_queued_ != 0 && queued_bytes_ + frame.size() > max_queued_) {
            close_code_ = static_cast<std::uint16_t>(gatehouse::close_code::slow_consumer);
            closed_ = true;
            return send_status::closed;
        }
        queued_bytes_ += frame.size();
        frames_.push_back(*frame.bytes);
        keys_.emplace_back();
        return send_status::queued;
    }
    // Every frame counts as queued and unwritten: with `replace`, the last one of the same key
    // is taken back out of frames().
    send_status send_keyed(const shared_frame& frame, std::string_view key, bool replace) override {
        bool replaced = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (std::size_t i = keys_.size(); replace && !closed_ && i-- > 0;) {
                if (keys_[i] != key) continue;
                queued_bytes_ -= frames_[i].size();
                frames_.erase(frames_.begin() + static_cast<std::ptrdiff_t>(i));
                keys_.erase(keys_.begin() + static_cast<std::ptrdiff_t>(i));
                replaced = true;
                break;
            }
        }
        const send_status st = send(frame);
        if (st != send_status::queued) return st;
        std::lock_guard<std::mutex> lock(mutex_);
        keys_.back() = std::string(key);
        return replaced ? send_status::coalesced : st;
    }
    std::size_t buffered_bytes() const noexcept override {
        std::lock_guard<std::mutex> lock(mutex_);
        return max_queued_ != 0 ? queued_bytes_ : 0;
    }
    void close(close_code code, std::string_view) override {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!closed_) close_code_ = static_cast<std::uint16_t>(code);
        closed_ = true;
    }
    bool ping() override {
        std::lock_guard<std::mutex> lock(mutex_);
        ++pings_;
        return !closed_;
    }

    std::vector<std::string> frames() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return frames_;
    }
    // The key each kept frame was sent with (empty: none).
    std::vector<std::string> keys() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return keys_;
    }
    std::uint16_t close_code() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return close_code_;
    }
    std::size_t pings() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return pings_;
    }

private:
    mutable std::mutex mutex_;
    std::size_t fail_at_;
    std::size_t sends_ = 0;
    std::size_t pings_ = 0;
    bool closed_ = false;
    std::uint16_t close_code_ = 0;
    std::size_t max_queued_ = 0;  // 0: unbounded, and buffered_bytes() is 0
    std::size_t queued_bytes_ = 0;
    std::vector<std::string> frames_;
    std::vector<std::string> keys_;  // of each frame; empty when sent without one
};

// A bus the test drives: appends wait until `answer_next` / `fail_next` (a bus that never
// answers is one the test never drives), or fail at once while `refusing`. Answers run on the
// calling (test) thread. Its updates are delivered only by `deliver`.
class manual_bus final : public command_bus, public pubsub_listener {
public:
    ~manual_bus() override {
        // Like every bus: whatever is still waiting is answered, with an error.
        while (fail_next()) {
        }
    }

    void append(const envelope& command, append_handler done) override {
        std::unique_lock<std::mutex> lock(mutex_);
        if (refusing) {
            lock.unlock();
            done(errc::bus_unavailable, {});
            return;
        }
        appended_.push_back(command.correlation_id);
        waiting_.push_back(std::move(done));
    }
    bool connected() const noexcept override { return up; }
    void start(update_handler on_message) override {
        std::lock_guard<std::mutex> lock(mutex_);
        handler_ = std::move(on_message);
    }
    void stop() override {
        std::lock_guard<std::mutex> lock(mutex_);
        handler_ = nullptr;
        resubscribed_ = nullptr;
    }
    void on_resubscribed(resubscribed_handler handler) override {
        std::lock_guard<std::mutex> lock(mutex_);
        resubscribed_ = std::move(handler);
    }
    // Tells the listener's owner that a lost subscription is back; false when not started.
    bool resubscribe() {
        resubscribed_handler h;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!handler_) return false;
            h = resubscribed_;
        }
        if (h) h();
        return true;
    }
    // Delivers one update as a listener would; false when not started.
    bool deliver(std::string_view message) {
        update_handler h;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            h = handler_;
        }
        if (!h) return false;
        h(message);
        return true;
    }

    // Answers the oldest waiting append with an entry id; false when none waits.
    bool answer_next() { return finish({}, "1-" + std::to_string(++ids_)); }
    bool fail_next() { return finish(errc::bus_unavailable, {}); }
    std::size_t waiting() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return waiting_.size();
    }
    std::vector<std::string> appended() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return appended_;
    }

    bool refusing = false;
    bool up = true;

private:
    bool finish(std::error_code error, const std::string& id) {
        append_handler done;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (waiting_.empty()) return false;
            done = std::move(waiting_.front());
            waiting_.pop_front();
        }
        done(error, id);
        return true;
    }

    mutable std::mutex mutex_;
    std::deque<append_handler> waiting_;
    std::vector<std::string> appended_;
    update_handler handler_;
    resubscribed_handler resubscribed_;
    int ids_ = 0;
};

// A minimal per-player update log for the resume tests, until the buses implement one: each
// publish appends to the addressed players' logs and hands the message, with its
// `update_ids`, to `publish_to` in one critical section (as the Redis function is one atomic
// step). `read_after` answers at once, or, while `defer_reads`, computes its answer at the
// call (when the read "executes") and keeps it for `answer_reads()`. `lost` answers every read
// with gap (a log that was lost); `unavailable` answers unavailable; `capacity` trims.
class memory_update_log final : public update_log {
public:
    void publish_logged(std::string message, logged_publish_handler done) override {
        update_ids ids;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            update u;
            if (parse_update(message, u)) {
                done(errc::invalid_update, {});
                return;
            }
            std::vector<std::string> players;
            if (u.target == update_target::player) players.push_back(u.player_id);
            if (u.target == update_target::players) players = u.player_ids;
            for (const auto& p : players) {
                bool seen = false;
                for (const auto& [q, id] : ids) seen = seen || q == p;
                if (seen) continue;
                const std::string id = "7-" + std::to_string(++sequence_);
                auto& log = logs_[p];
                log.push_back(logged_update{id, message});
                if (capacity != 0 && log.size() > capacity) log.pop_front();
                ids.emplace_back(p, id);
            }
            u.update_ids = ids;
            if (publish_to) publish_to(ids.empty() ? message : to_json(u));
        }
        done({}, std::move(ids));
    }

    void read_after(std::string player_id, std::string after_id, std::size_t max_bytes,
                    log_read_handler done) override {
        log_read_result result;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++reads_;
            last_max_bytes_ = max_bytes;
            if (unavailable) {
                result.status = log_read_status::unavailable;
            } else if (!lost) {
                const auto& log = logs_[player_id];
                for (std::size_t i = 0; i < log.size(); ++i) {
                    if (log[i].update_id != after_id) continue;
                    result.status = log_read_status::replay;
                    result.updates.assign(log.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                          log.end());
                }
            }
            if (defer_reads) {
                deferred_.emplace_back(std::move(done), std::move(result));
                return;
            }
        }
        done(std::move(result));
    }

    // Answers the reads kept while `defer_reads`; returns how many.
    std::size_t answer_reads() {
        std::deque<std::pair<log_read_handler, log_read_result>> answering;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            answering.swap(deferred_);
        }
        for (auto& [done, result] : answering) done(std::move(result));
        return answering.size();
    }
    std::size_t reads() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return reads_;
    }
    // The byte budget the last read was given (not applied here).
    std::size_t last_max_bytes() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return last_max_bytes_;
    }

    // Publishes and returns the player's id (the first one for `players` shapes).
    std::string publish(const std::string& message) {
        std::string first;
        publish_logged(message, [&first](std::error_code, update_ids ids) {
            if (!ids.empty()) first = ids.front().second;
        });
        return first;
    }

    std::function<void(const std::string&)> publish_to;
    bool defer_reads = false;
    bool lost = false;
    bool unavailable = false;
    std::size_t capacity = 0;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::deque<logged_update>> logs_;
    std::deque<std::pair<log_read_handler, log_read_result>> deferred_;
    std::uint64_t sequence_ = 0;
    std::size_t reads_ = 0;
    std::size_t last_max_bytes_ = 0;
};

inline gateway_options test_options() {
    gateway_options o;
    o.jwt_secret = "core-test-secret";
    o.gateway_id = "core-test";
    return o;
}

inline std::string test_token(const std::string& player) {
    jwt_claims claims;
    claims.sub = player;
    claims.iat = gatehouse::unix_now_seconds();
    claims.exp = claims.iat + 600;
    return sign_jwt(claims, "core-test-secret");
}

// A gateway core on a bus of the test's choice (in-process by default).
template <class Bus = in_process_bus>
struct core_on {
    std::shared_ptr<Bus> bus = std::make_shared<Bus>();
    std::unique_ptr<gateway_core> core;

    explicit core_on(gateway_options options = test_options(),
                     std::shared_ptr<update_log> log = nullptr) {
        core = std::make_unique<gateway_core>(
            std::move(options), codec_registry::with_builtin_codecs(), bus, bus, std::move(log));
    }

    // `query`: the upgrade's query string (`resume=...`), if any.
    upgrade_decision upgrade(const std::string& player, std::string_view query = {}) {
        const std::string path = "/ws/player/" + test_token(player);
        upgrade_request request;
        request.path = path;
        request.query = query;
        request.remote_address = "127.0.0.1";
        return core->authorize_upgrade(request);
    }

    // An open WebSocket session for `player` on a fresh memory link.
    struct open_session {
        std::shared_ptr<stream_handler> handler;
        std::shared_ptr<memory_link> link;
    };
    open_session open(const std::string& player, std::size_t fail_at = 0,
                      std::string_view query = {}) {
        auto decision = upgrade(player, query);
        REQUIRE(decision.accepted);
        open_session s{decision.handler, std::make_shared<memory_link>(fail_at)};
        s.handler->on_open(s.link);
        return s;
    }
};

inline bool contains(const std::vector<std::string>& frames, std::string_view needle) {
    for (const auto& f : frames) {
        if (f.find(needle) != std::string::npos) return true;
    }
    return false;
}

inline std::size_t count(const std::vector<std::string>& frames, std::string_view needle) {
    std::size_t n = 0;
    for (const auto& f : frames) {
        if (f.find(needle) != std::string::npos) ++n;
    }
    return n;
}

}  // namespace gatehouse_test
