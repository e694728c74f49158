#include "gatehouse/in_process_bus.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "bus/memory_update_log.hpp"
#include "bus/recent_commands.hpp"
#include "common/clock.hpp"
#include "gatehouse/errc.hpp"

namespace gatehouse {
namespace {

// An entry id as numbers: ids are compared numerically, as Redis does, so that
// "1700000000000-10" sorts after "1700000000000-9".
struct stream_id {
    std::uint64_t ms = 0;
    std::uint64_t seq = 0;
};

bool operator<(const stream_id& a, const stream_id& b) noexcept {
    return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq);
}

bool parse_u64(std::string_view s, std::uint64_t& out) noexcept {
    if (s.empty()) return false;
    const char* const end = s.data() + s.size();
    const auto r = std::from_chars(s.data(), end, out);
    return r.ec == std::errc{} && r.ptr == end;
}

// `<ms>-<seq>`, or `<ms>` alone meaning `<ms>-0` (Redis accepts both in XREAD).
// `""` reads as 0-0, which every entry follows.
bool parse_stream_id(std::string_view s, stream_id& out) noexcept {
    out = {};
    if (s.empty()) return true;
    const auto dash = s.find('-');
    if (dash == std::string_view::npos) return parse_u64(s, out.ms);
    return parse_u64(s.substr(0, dash), out.ms) && parse_u64(s.substr(dash + 1), out.seq);
}

std::uint64_t unix_ms_now() noexcept {
    const std::int64_t ms = detail::unix_now_ms();
    return ms > 0 ? static_cast<std::uint64_t>(ms) : 0;
}

// Entries are shared so that `append` can hand its entry to `on_command` outside the lock
// without copying the command a second time, and a trim cannot free it during that call.
struct stored_entry {
    stream_id id;
    std::shared_ptr<const bus_entry> entry;
};

}  // namespace

struct in_process_bus::impl {
    explicit impl(in_process_bus_options o)
        : options(std::move(o)),
          recent(options.dedupe_window, dedupe_bytes),
          log(options.update_log_size, options.update_log_ttl, options.update_log_bytes) {}

    // The memory bound of the remembered command pairs (docs/protocol.md 6.5): about 80,000 pairs
    // of short ids. Past it the oldest are forgotten first.
    static constexpr std::size_t dedupe_bytes = std::size_t{16} * 1024 * 1024;

    const in_process_bus_options options;

    // Command side.
    mutable std::mutex commands_mutex;
    std::condition_variable commands_cv;
    std::deque<stored_entry> entries;  // Ascending ids.
    stream_id last_id;
    std::shared_ptr<const std::function<void(const bus_entry&)>> command_handler;
    // Under commands_mutex, so that a pair's check and its append are one step.
    detail::recent_commands recent;
    std::atomic<std::uint64_t> duplicates{0};

    // Update side. `lifecycle_mutex` serialises start() and stop() (including the join),
    // so that two concurrent stop()s both return only once the handler has finished;
    // the delivery thread never takes it.
    std::mutex lifecycle_mutex;
    std::mutex updates_mutex;
    std::condition_variable updates_cv;
    std::deque<std::string> pending;
    update_handler on_message;
    std::thread delivery;
    std::thread::id delivery_id;
    bool stopping = false;
    std::atomic<std::uint64_t> refused{0};
    // Under updates_mutex: a logged update's ids are assigned in the critical section that
    // queues it, so each player's log order is its delivery order.
    detail::memory_update_log log;

    // Redis's rule: the id's time part never goes backwards, even when the clock does;
    // within one millisecond (or a stalled clock) the sequence counts up.
    stream_id next_id() noexcept {
        const std::uint64_t now = unix_ms_now();
        if (now > last_id.ms) {
            last_id = {now, 0};
        } else if (last_id.seq == std::numeric_limits<std::uint64_t>::max()) {
            last_id = {last_id.ms + 1, 0};
        } else {
            ++last_id.seq;
        }
        return last_id;
    }

    void deliver_loop() {
        std::unique_lock<std::mutex> lock(updates_mutex);
        for (;;) {
            updates_cv.wait(lock, [this] { return stopping || !pending.empty(); });
            if (stopping) return;
            std::string message = std::move(pending.front());
            pending.pop_front();
            // The handler runs unlocked so that it may publish (or anything else) itself.
            lock.unlock();
            try {
                on_message(message);
            } catch (...) {
                // An exception escaping a thread's function ends the process; one bad
                // message must never stop the listener (docs/protocol.md section 5).
            }
            lock.lock();
        }
    }
};

in_process_bus::in_process_bus(in_process_bus_options options) {
    if (options.update_log_size == 0 || options.update_log_ttl.count() <= 0 ||
        options.update_log_ttl > std::chrono::hours(24 * 365)) {
        throw std::invalid_argument(
            "in_process_bus: update_log_size must be at least 1 and update_log_ttl positive (up "
            "to a year)");
    }
    if (options.dedupe_window.count() < 0 || options.dedupe_window > std::chrono::hours(24 * 365)) {
        throw std::invalid_argument(
            "in_process_bus: dedupe_window must be 0 (off) or positive (up to a year)");
    }
    impl_ = std::make_unique<impl>(std::move(options));
}

in_process_bus::~in_process_bus() { stop(); }

void in_process_bus::append(const envelope& command, append_handler done) {
    auto entry = std::make_shared<bus_entry>();
    entry->command = command;
    // The stream holds docs/protocol.md section 4's fields and 6.8's traceparent: a command has no
    // update id.
    entry->command.update_id.clear();
    entry->gateway_id = impl_->options.gateway_id;
    // A client's own correlation id may name a retry (docs/protocol.md 6.5); gateway-made ids are
    // unique and never looked up. The check and the append share one critical section, so
    // that two copies sent at once are appended once.
    const bool dedupe =
        !command.origin.correlation_assigned && impl_->options.dedupe_window.count() > 0;
    std::string first_id;
    std::shared_ptr<const std::function<void(const bus_entry&)>> handler;
    {
        std::lock_guard<std::mutex> lock(impl_->commands_mutex);
        const std::int64_t now = dedupe ? detail::steady_now_ms() : 0;
        const std::string* seen =
            dedupe ? impl_->recent.find(command.origin.player_id, command.correlation_id, now)
                   : nullptr;
        if (seen) {
            first_id = *seen;
        } else {
            const stream_id id = impl_->next_id();
            entry->id = std::to_string(id.ms) + "-" + std::to_string(id.seq);
            impl_->entries.push_back({id, entry});
            while (impl_->entries.size() > impl_->options.max_entries) {
                impl_->entries.pop_front();
            }
            if (dedupe) {
                impl_->recent.remember(command.origin.player_id, command.correlation_id, entry->id,
                                       now);
            }
            handler = impl_->command_handler;
        }
    }
    if (!first_id.empty()) {
        impl_->duplicates.fetch_add(1, std::memory_order_relaxed);
        if (done) done(std::error_code{}, first_id);
        return;
    }
    impl_->commands_cv.notify_all();
    // Outside the lock: the handler may read() or append() itself. With several appending
    // threads, handlers may therefore see entries slightly out of id order.
    if (handler && *handler) {
        try {
            (*handler)(*entry);
        } catch (...) {
            // The command is on the stream already, and `done` must be called exactly once
            // with that news: a failing consumer is not the client's error.
        }
    }
    if (done) done(std::error_code{}, entry->id);
}

bool in_process_bus::connected() const noexcept { return true; }

void in_process_bus::on_command(std::function<void(const bus_entry&)> handler) {
    auto shared = std::make_shared<const std::function<void(const bus_entry&)>>(std::move(handler));
    std::lock_guard<std::mutex> lock(impl_->commands_mutex);
    impl_->command_handler = std::move(shared);
}

std::vector<bus_entry> in_process_bus::read(std::string_view after_id, std::size_t max_count,
                                            std::chrono::milliseconds wait) {
    std::vector<bus_entry> out;
    stream_id after;
    if (max_count == 0 || !parse_stream_id(after_id, after)) return out;

    const auto first_after = [&] {
        return std::upper_bound(impl_->entries.begin(), impl_->entries.end(), after,
                                [](const stream_id& a, const stored_entry& e) { return a < e.id; });
    };
    std::unique_lock<std::mutex> lock(impl_->commands_mutex);
    auto it = first_after();
    if (it == impl_->entries.end() && wait.count() > 0) {
        const auto found = [&] {
            it = first_after();
            return it != impl_->entries.end();
        };
        // `now + wait` overflows for a huge wait (milliseconds::max() as "forever"): a wait
        // beyond what the clock can represent waits without a deadline.
        const auto now = std::chrono::steady_clock::now();
        const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::time_point::max() - now);
        if (wait >= room) {
            impl_->commands_cv.wait(lock, found);
        } else {
            impl_->commands_cv.wait_until(lock, now + wait, found);
        }
        // Whether it timed out or not, `it` was computed under the lock just now.
    }
    const auto available = static_cast<std::size_t>(impl_->entries.end() - it);
    out.reserve(std::min(max_count, available));
    for (; it != impl_->entries.end() && out.size() < max_count; ++it) out.push_back(*it->entry);
    return out;
}

std::size_t in_process_bus::size() const {
    std::lock_guard<std::mutex> lock(impl_->commands_mutex);
    return impl_->entries.size();
}

void in_process_bus::start(update_handler on_message) {
    if (!on_message) return;
    std::lock_guard<std::mutex> lifecycle(impl_->lifecycle_mutex);
    std::thread finished;
    {
        std::lock_guard<std::mutex> lock(impl_->updates_mutex);
        if (impl_->delivery.joinable()) {
            if (!impl_->stopping) return;  // Already running.
            // stop() was called from the handler itself and could not join; that thread
            // is on its way out.
            finished = std::move(impl_->delivery);
        }
    }
    if (finished.joinable()) finished.join();

    std::lock_guard<std::mutex> lock(impl_->updates_mutex);
    impl_->on_message = std::move(on_message);
    impl_->stopping = false;
    // The thread starts by taking updates_mutex, held here, so it sees delivery_id set.
    impl_->delivery = std::thread([this] { impl_->deliver_loop(); });
    impl_->delivery_id = impl_->delivery.get_id();
}

void in_process_bus::stop() {
    {
        std::lock_guard<std::mutex> lock(impl_->updates_mutex);
        if (impl_->delivery_id == std::this_thread::get_id()) {
            // Called from the handler (which the contract forbids): joining here would
            // deadlock, so only ask the loop to end once the handler returns.
            impl_->stopping = true;
            impl_->pending.clear();
            return;
        }
    }
    std::lock_guard<std::mutex> lifecycle(impl_->lifecycle_mutex);
    std::thread delivery;
    {
        std::lock_guard<std::mutex> lock(impl_->updates_mutex);
        if (!impl_->delivery.joinable()) return;
        impl_->stopping = true;
        impl_->pending.clear();
        delivery = std::move(impl_->delivery);
    }
    impl_->updates_cv.notify_all();
    delivery.join();
    std::lock_guard<std::mutex> lock(impl_->updates_mutex);
    impl_->delivery_id = std::thread::id{};
    // Released here, not by the thread, so that what the handler captured dies on the
    // caller's thread, after the handler has run for the last time.
    impl_->on_message = nullptr;
}

bool in_process_bus::publish(std::string message) {
    {
        std::lock_guard<std::mutex> lock(impl_->updates_mutex);
        if (impl_->pending.size() >= impl_->options.max_pending_updates) {
            impl_->refused.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        impl_->pending.push_back(std::move(message));
    }
    impl_->updates_cv.notify_one();
    return true;
}

bool in_process_bus::publish(const update& u) { return publish(to_json(u)); }

void in_process_bus::publish_logged(std::string message, logged_publish_handler done) {
    update parsed;
    if (parse_update(message, parsed) || detail::has_update_ids(message)) {
        done(make_error_code(errc::invalid_update), {});
        return;
    }
    const auto players = detail::logged_players(parsed);
    update_ids ids;
    bool queued = false;
    {
        std::lock_guard<std::mutex> lock(impl_->updates_mutex);
        queued = impl_->pending.size() < impl_->options.max_pending_updates;
        if (!queued) {
            impl_->refused.fetch_add(1, std::memory_order_relaxed);
        } else if (players.empty()) {
            impl_->pending.push_back(std::move(message));
        } else {
            const auto id = impl_->log.append(players, message, detail::unix_now_ms());
            ids.reserve(players.size());
            for (const auto& p : players) ids.emplace_back(p, id);
            impl_->pending.push_back(detail::with_update_ids(message, ids));
        }
    }
    if (!queued) {
        done(make_error_code(errc::bus_unavailable), {});
        return;
    }
    impl_->updates_cv.notify_one();
    done({}, std::move(ids));
}

void in_process_bus::read_after(std::string player_id, std::string after_id, std::size_t max_bytes,
                                log_read_handler done) {
    log_read_result result;
    {
        std::lock_guard<std::mutex> lock(impl_->updates_mutex);
        result = impl_->log.read_after(player_id, after_id, max_bytes, detail::unix_now_ms());
    }
    done(std::move(result));
}

std::uint64_t in_process_bus::duplicates() const noexcept {
    return impl_->duplicates.load(std::memory_order_relaxed);
}

std::uint64_t in_process_bus::updates_refused() const noexcept {
    return impl_->refused.load(std::memory_order_relaxed);
}

}  // namespace gatehouse
