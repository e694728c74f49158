#include "gateway/session_registry.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "gateway/json_text.hpp"

namespace gatehouse::detail {

session_registry::session_registry(std::shared_ptr<const gateway_options> options,
                                   std::shared_ptr<connection_manager> connections,
                                   std::shared_ptr<gateway_metrics> metrics,
                                   std::shared_ptr<update_log> log)
    : options_(std::move(options)),
      connections_(std::move(connections)),
      metrics_(std::move(metrics)),
      resumes_(std::make_shared<resume_join>(options_, connections_, metrics_, std::move(log))),
      access_(std::make_shared<const access_log>(options_->access_log, metrics_)) {}

bool session_registry::reserve_slot() {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto cap = options_->max_connections;
    if (cap > 0 && sessions_.size() + opening_ >= cap) return false;
    // Counted from here, not from open(): a connection whose handshake is still being written
    // when shutdown begins must be waited for and closed with 1001 too.
    ++opening_;
    return true;
}

connection_id session_registry::next_connection_id() {
    return options_->gateway_id + "-" +
           std::to_string(connection_counter_.fetch_add(1, std::memory_order_relaxed) + 1);
}

void session_registry::open(const std::shared_ptr<session>& s) {
    s->touch(steady_now_ms());
    const auto& setup = s->setup();
    if (!setup.event_stream) {
        // The welcome goes out before the connection is registered for routing, so no update
        // can overtake it (docs/protocol.md section 3: the welcome comes first).
        std::string payload = "{\"connection_id\":";
        append_json_string(payload, setup.id);
        payload += ",\"player_id\":";
        append_json_string(payload, setup.who.player_id);
        payload += ",\"codec\":";
        append_json_string(payload, setup.wire_codec->name());
        payload += '}';
        s->reply("welcome", std::move(payload), {}, options_->log);
    }
    // A token with less than a minute left is told so at once, right after the welcome.
    check_lifetime(s, unix_now_ms());
    if (setup.resume) {
        resumes_->start(s, [this, &s](bool resuming) { add(s, resuming); });
    } else {
        add(s, false);
    }
}

void session_registry::add(const std::shared_ptr<session>& s, bool resuming) {
    const auto& setup = s->setup();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        --opening_;
        sessions_.emplace(s.get(), s);
    }
    connections_->add(
        s, connection_info{setup.who.player_id, setup.who.client, setup.wire_codec, resuming});
    if (!setup.event_stream) metrics_->connections_opened.add();
    metrics_->open_gauge(setup).add(1);
    if (shutting_down_) {
        // A connection that opened while shutdown began is closed like the others.
        if (!setup.event_stream) s->send_reconnect(0, options_->log);
        if (s->start_draining()) s->close_drained();
    } else if (draining_) {
        // Its upgrade was accepted before the drain began; it takes a turn at random.
        std::int64_t after_ms = 0;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            after_ms = std::uniform_int_distribution<std::int64_t>(0, spread_.count())(turns_);
        }
        if (s->send_reconnect(after_ms, options_->log) && setup.event_stream) {
            std::lock_guard<std::mutex> lock(mutex_);
            schedule_stream_end_locked(s, after_ms);
        }
    }
}

std::vector<std::shared_ptr<session>> session_registry::snapshot() const {
    std::vector<std::shared_ptr<session>> live;
    std::lock_guard<std::mutex> lock(mutex_);
    live.reserve(sessions_.size());
    for (const auto& entry : sessions_) live.push_back(entry.second);
    return live;
}

void session_registry::close(const std::shared_ptr<session>& s, std::uint16_t code) {
    connections_->remove(s->id());
    bool was_open = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        was_open = sessions_.erase(s.get()) > 0;
        if (!was_open && opening_ > 0) --opening_;  // its handshake failed after acceptance
        if (sessions_.empty() && opening_ == 0) all_closed_.notify_all();
    }
    if (!was_open) return;
    metrics_->open_gauge(s->setup()).add(-1);
    // An event stream has no close code: it is not a WebSocket.
    if (!s->setup().event_stream) metrics_->count_close(code);
}

std::chrono::milliseconds session_registry::sweep_interval() const noexcept {
    using std::chrono::milliseconds;
    milliseconds shortest{1000};
    for (auto d : {options_->ping_interval, options_->idle_timeout}) {
        if (d.count() > 0) shortest = std::min(shortest, d / 4);
    }
    return std::max(shortest, milliseconds{10});
}

bool session_registry::check_lifetime(const std::shared_ptr<session>& s, std::int64_t unix_ms) {
    std::int64_t exp = 0;
    switch (s->lifetime().check(unix_ms, exp)) {
        case session_lifetime::due::nothing: return false;
        case session_lifetime::due::warn:
            s->reply("gatehouse.token_expiring", "{\"exp\":" + std::to_string(exp) + "}", {},
                     options_->log);
            return false;
        case session_lifetime::due::expire: break;
    }
    metrics_->sessions_expired.add();
    // No update reaches a session whose token expired (its replies still do); like the drain,
    // the commands it has pending are answered before the 4001, and anything it sends from now
    // on is neither accepted nor answered.
    connections_->remove(s->id());
    if (s->start_draining(close_code::token_expired)) s->close_drained();
    return true;
}

void session_registry::sweep(std::int64_t now, std::int64_t unix_ms) {
    const auto live = snapshot();
    const auto ping_after = options_->ping_interval.count();
    const auto idle_after = options_->idle_timeout.count();
    for (const auto& s : live) {
        if (check_lifetime(s, unix_ms)) continue;
        const auto quiet = now - s->last_seen_ms();
        if (s->setup().event_stream) {
            // A client never writes on an event stream, so it is never idle: the keep-alive
            // comment (every ping interval, or 15 s when pings are off) shows whether it is
            // still there, and a write that fails ends the stream.
            const std::int64_t keepalive = ping_after > 0 ? ping_after : 15000;
            if (quiet >= keepalive && s->ping()) s->touch(now);
            continue;
        }
        if (idle_after > 0 && quiet >= idle_after) {
            if (s->mark_idle_closed()) {
                metrics_->idle_closed.add();
                s->close(close_code::policy_violation, "idle timeout");
            }
        } else if (ping_after > 0 && quiet >= ping_after && s->mark_pinged()) {
            s->ping();
        }
    }
}

std::size_t session_registry::begin_drain(std::chrono::milliseconds spread) {
    std::vector<std::shared_ptr<session>> live;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        // Set under the lock that add() takes for its turn, so that a session opening now is
        // either in this snapshot or sees the flag (the session's once-only send settles both).
        if (draining_.exchange(true)) return 0;
        spread_ = std::max(spread, std::chrono::milliseconds{0});
        turns_.seed(std::random_device{}());
        live.reserve(sessions_.size());
        for (const auto& entry : sessions_) live.push_back(entry.second);
        std::shuffle(live.begin(), live.end(), turns_);
    }
    const auto count = static_cast<std::int64_t>(live.size());
    const auto span = std::max<std::int64_t>(spread.count(), 0);
    std::vector<std::pair<std::shared_ptr<session>, std::int64_t>> streams;
    for (std::int64_t i = 0; i < count; ++i) {
        const auto& s = live[static_cast<std::size_t>(i)];
        const auto after_ms = i * span / count;
        if (s->send_reconnect(after_ms, options_->log) && s->setup().event_stream) {
            streams.emplace_back(s, after_ms);
        }
    }
    if (!streams.empty()) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto& [s, after_ms] : streams) schedule_stream_end_locked(s, after_ms);
    }
    return live.size();
}

void session_registry::schedule_stream_end_locked(const std::shared_ptr<session>& s,
                                                  std::int64_t after_ms) {
    stream_ends_.emplace(std::chrono::steady_clock::now() + std::chrono::milliseconds(after_ms), s);
    // A waiting wait_for_spread wakes for a turn earlier than the one it waits for.
    all_closed_.notify_all();
}

bool session_registry::wait_for_spread(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto done = [this] { return spread_cut_ || (sessions_.empty() && opening_ == 0); };
    while (!done()) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        std::vector<std::shared_ptr<session>> due;
        while (!stream_ends_.empty() && stream_ends_.begin()->first <= now) {
            if (auto s = stream_ends_.begin()->second.lock()) due.push_back(std::move(s));
            stream_ends_.erase(stream_ends_.begin());
        }
        if (!due.empty()) {
            // docs/protocol.md 6.7: the stream has its `retry:` and reconnect event; it ends after
            // them, as in section 1, and its browser comes back `retry` later. Outside the lock:
            // a stream that ends at once calls close() here.
            lock.unlock();
            for (const auto& s : due) {
                if (s->start_draining()) s->close_drained();
            }
            due.clear();  // a session's last reference goes outside the lock too
            lock.lock();
            continue;
        }
        const auto wake =
            stream_ends_.empty() ? deadline : std::min(deadline, stream_ends_.begin()->first);
        all_closed_.wait_until(lock, wake);
    }
    // The turns not reached stay listed (a later wait takes them up); after a cut, the
    // section 1 shutdown ends those streams.
    return sessions_.empty() && opening_ == 0;
}

void session_registry::end_spread() {
    std::lock_guard<std::mutex> lock(mutex_);
    spread_cut_ = true;
    all_closed_.notify_all();
}

void session_registry::begin_shutdown() {
    if (shutting_down_.exchange(true)) return;
    for (const auto& s : snapshot()) {
        // docs/protocol.md 6.7: every WebSocket hears when to come back before its 1001; after a
        // spread it was told already (a second send is refused by the session).
        if (!s->setup().event_stream) s->send_reconnect(0, options_->log);
        if (s->start_draining()) s->close_drained();
    }
}

std::size_t session_registry::interrupt_updates() {
    const auto live = snapshot();
    for (const auto& s : live) {
        // Unregistered first, so that no update routed from now on reaches it (its replies
        // still do), then drained like a shutdown: its commands are answered before the close.
        connections_->remove(s->id());
        if (s->start_draining(close_code::updates_interrupted)) s->close_drained();
    }
    return live.size();
}

bool session_registry::wait_for_sessions(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return all_closed_.wait_until(lock, deadline,
                                  [this] { return sessions_.empty() && opening_ == 0; });
}

void session_registry::abandon_all() {
    std::unordered_map<const session*, std::shared_ptr<session>> abandoned;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        abandoned.swap(sessions_);
    }
    for (const auto& entry : abandoned) connections_->remove(entry.second->id());
    // `abandoned` is released here, outside the lock: a session's last reference may go with
    // it, and its destructor releases this registry's other users.
}

std::size_t session_registry::size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return sessions_.size();
}

}  // namespace gatehouse::detail
