#include "gatehouse/connection_manager.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <iterator>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "gatehouse/update_log.hpp"

namespace gatehouse {
namespace {

// More shards than this buys no parallelism on any machine we run on, and each costs a mutex
// and two maps that broadcast must visit.
constexpr std::size_t max_shards = 4096;

std::size_t shard_count(std::size_t wanted) {
    wanted = std::clamp<std::size_t>(wanted, 1, max_shards);
    std::size_t n = 1;
    while (n < wanted) n <<= 1;
    return n;
}

// A frame deliver() held for a resuming connection, with the update id it carries (empty for an
// unlogged update), and the key of a `latest` one (empty otherwise), which it keeps when flushed.
struct held_frame {
    shared_frame frame;
    std::string update_id;
    std::string key;
};

// What a WebSocket frame's header may add to a frame's bytes on the transport's queue (2 to 10
// bytes; an event stream adds none): the fit of a replay is tested against the transport's
// count, not ours, so that a replay judged to fit never meets the transport's bound.
constexpr std::size_t frame_overhead = 10;

// The resume state of a connection added resuming (docs/protocol.md 6.4). Allocated only for those,
// so an ordinary connection pays one null pointer for it.
struct resume_state {
    std::mutex mutex;
    // Guarded by `mutex`; only ever goes from true to false (finish_resume).
    bool active = true;
    std::vector<held_frame> held;
    std::size_t held_bytes = 0;
    // Set when the resume finishes: the last update id the replay covered. A logged update at
    // or before it that reaches the router even later (published before the read, delivered
    // by Pub/Sub after the log's answer: two connections, no order between them) is one the
    // client has, and is never sent again.
    std::string through;
};

// One registered connection. The maps and every in-flight send share it, so a send that
// copied it out before a concurrent remove() still finishes on a live connection, and the
// slow-consumer flag is seen by every sender.
struct entry {
    entry(std::shared_ptr<connection> c, connection_info info)
        : conn(std::move(c)),
          player_id(std::move(info.player_id)),
          client(info.client),
          wire_codec(std::move(info.wire_codec)),
          resume(info.resuming ? std::make_unique<resume_state>() : nullptr) {}

    const std::shared_ptr<connection> conn;
    const std::string player_id;
    const client_kind client;
    const std::shared_ptr<const codec> wire_codec;
    const std::unique_ptr<resume_state> resume;
    // Set by the sender that closed it under the `close` policy: the close (and its counter)
    // happens once, and later frames are refused without asking the transport.
    std::atomic<bool> closed_as_slow{false};
};

using entry_ptr = std::shared_ptr<entry>;

// alignas: neighbouring shards' mutexes on one cache line would contend even though the
// shards are independent.
struct alignas(64) player_shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<entry_ptr>> players;
};

struct alignas(64) connection_shard {
    std::mutex mutex;
    std::unordered_map<connection_id, entry_ptr> connections;
};

// What became of one frame for one connection (connection_manager_stats::delivery_outcomes).
enum class outcome : std::uint8_t { sent, dropped, coalesced, closed };
constexpr std::size_t outcome_count = 4;
using outcome_tally = std::array<std::uint64_t, outcome_count>;

outcome outcome_of(send_status st) noexcept {
    switch (st) {
        case send_status::queued: return outcome::sent;
        case send_status::coalesced: return outcome::coalesced;
        case send_status::dropped: return outcome::dropped;
        case send_status::closed: break;
    }
    return outcome::closed;
}

// One encoding of the update being delivered, per codec in use among its targets (and, for a
// logged update, per player: each carries its own update id).
struct encoding {
    const codec* wire_codec = nullptr;
    shared_frame frame;
    bool ok = false;
};

}  // namespace

struct connection_manager::impl {
    explicit impl(const connection_manager_options& o)
        : options(o),
          mask(shard_count(o.shards) - 1),
          players(new player_shard[mask + 1]),
          connections(new connection_shard[mask + 1]) {}

    player_shard& shard_of_player(std::string_view player_id) const {
        return players[std::hash<std::string_view>{}(player_id)&mask];
    }
    connection_shard& shard_of_connection(std::string_view id) const {
        return connections[std::hash<std::string_view>{}(id)&mask];
    }

    // Sends one frame of class `delivery` (docs/protocol.md 6.6). Counts nothing but the slow
    // consumers it closes: deliver() tallies the outcomes of a whole fan-out and adds them
    // once, so that the hot path pays no shared counter per connection.
    outcome send_one(entry& e, const shared_frame& frame, delivery_class delivery,
                     std::string_view key) {
        if (e.closed_as_slow.load(std::memory_order_acquire)) return outcome::closed;
        connection& c = *e.conn;
        const std::size_t limit = options.max_buffered_bytes;
        const std::size_t size = frame.size();
        const std::size_t buffered = c.buffered_bytes();
        if (size <= limit && buffered <= limit - size) {
            return outcome_of(delivery == delivery_class::latest ? c.send_keyed(frame, key, false)
                                                                 : c.send(frame));
        }
        // Past the send buffer. The hard bound is the transport's too (gateway.cpp), checked
        // here as well so that a connection of an embedder's own is bounded the same way.
        const std::size_t hard = hard_bound();
        const bool past_hard = size > hard || buffered > hard - size;
        switch (delivery) {
            case delivery_class::droppable: return outcome::dropped;
            case delivery_class::latest: return send_latest(e, frame, key, past_hard);
            case delivery_class::reliable: break;
        }
        switch (options.slow_consumer) {
            case slow_consumer_policy::drop: return outcome::dropped;
            case slow_consumer_policy::close: return close_slow(e, close_code::policy_violation);
            case slow_consumer_policy::queue: break;
        }
        if (past_hard) return close_slow(e, close_code::slow_consumer);
        return outcome_of(c.send(frame));
    }

    // Twice the send buffer: no update may take a connection's unsent bytes past it (4008).
    std::size_t hard_bound() const noexcept {
        const std::size_t limit = options.max_buffered_bytes;
        return limit > SIZE_MAX / 2 ? SIZE_MAX : 2 * limit;
    }

    // A `latest` frame past the send buffer replaces the queued one with its key. Only the
    // connection knows whether that one is still withdrawable (not yet being written), and the
    // bound is tested after the withdrawal, as the transport's enqueue_keyed does: a frame that
    // replaces one of its own size never passes it. `past_hard` (counting no withdrawal) says
    // the bound may be passed: then the drop policy drops the frame rather than risk the close,
    // and a `closed` answer is the transport's own 4008 (counted here). A connection that does
    // not bound itself is closed here when the frame took it past the bound.
    outcome send_latest(entry& e, const shared_frame& frame, std::string_view key, bool past_hard) {
        if (past_hard && options.slow_consumer == slow_consumer_policy::drop) {
            return outcome::dropped;
        }
        if (frame.size() > hard_bound()) return close_slow(e, close_code::slow_consumer);
        const send_status st = e.conn->send_keyed(frame, key, true);
        if (st == send_status::closed) {
            return past_hard ? close_slow(e, close_code::slow_consumer) : outcome::closed;
        }
        if (e.conn->buffered_bytes() > hard_bound())
            return close_slow(e, close_code::slow_consumer);
        return outcome_of(st);
    }

    // The close (and its counter) happens once; later frames are refused without asking the
    // transport.
    outcome close_slow(entry& e, close_code code) {
        if (!e.closed_as_slow.exchange(true, std::memory_order_acq_rel)) {
            slow_consumers_closed.fetch_add(1, std::memory_order_relaxed);
            e.conn->close(code, "slow consumer");
        }
        return outcome::closed;
    }

    void count(delivery_class delivery, const outcome_tally& t) {
        const auto add = [](std::atomic<std::uint64_t>& a, std::uint64_t n) {
            if (n != 0) a.fetch_add(n, std::memory_order_relaxed);
        };
        auto& by = by_class[static_cast<std::size_t>(delivery)];
        for (std::size_t i = 0; i < outcome_count; ++i) add(by[i], t[i]);
        add(frames_sent, t[static_cast<std::size_t>(outcome::sent)] +
                             t[static_cast<std::size_t>(outcome::coalesced)]);
        add(frames_dropped, t[static_cast<std::size_t>(outcome::dropped)]);
    }

    // An update's frame for `e`: held while it resumes, else sent by its class. The check and
    // the hold happen under the resume lock, so a frame is either held before finish_resume()
    // flushes or sent after it: never in between, never reordered against the flush.
    outcome send_update(entry& e, const shared_frame& frame, std::string_view update_id,
                        delivery_class delivery, std::string_view key) {
        if (e.resume) {
            std::lock_guard<std::mutex> lock(e.resume->mutex);
            if (e.resume->active) return hold(e, frame, update_id, delivery, key);
            // Already replayed: the client has it (counted as sent).
            if (replayed(*e.resume, update_id)) return outcome::sent;
        }
        return send_one(e, frame, delivery, key);
    }

    // Caller holds r.mutex. True for a logged frame the replay (or the client, before `resume`)
    // already covered: ids increase in publish order per player.
    static bool replayed(const resume_state& r, std::string_view update_id) noexcept {
        return !update_id.empty() && !r.through.empty() &&
               compare_update_ids(update_id, r.through) <= 0;
    }

    // Caller holds e.resume->mutex. The held frames are bounded like a send buffer: past it a
    // droppable update is dropped, and anything else makes the connection a slow consumer
    // whatever the policy (dropping it would break exactly-once): closed with 4008, it resumes
    // again from its last update id. Held frames are not coalesced by key; a `latest` one keeps
    // its key, so that once flushed a later one can replace it.
    outcome hold(entry& e, const shared_frame& frame, std::string_view update_id,
                 delivery_class delivery, std::string_view key) {
        resume_state& r = *e.resume;
        if (e.closed_as_slow.load(std::memory_order_acquire)) return outcome::closed;
        if (frame.size() >
            options.max_buffered_bytes - std::min(r.held_bytes, options.max_buffered_bytes)) {
            if (delivery == delivery_class::droppable) return outcome::dropped;
            r.held.clear();
            r.held.shrink_to_fit();
            r.held_bytes = 0;
            return close_slow(e, close_code::slow_consumer);
        }
        r.held.push_back(
            held_frame{frame, std::string(update_id),
                       delivery == delivery_class::latest ? std::string(key) : std::string()});
        r.held_bytes += frame.size();
        return outcome::sent;
    }

    void collect_player(const std::string& player_id, std::vector<entry_ptr>& out) const {
        player_shard& s = shard_of_player(player_id);
        std::lock_guard<std::mutex> lock(s.mutex);
        const auto it = s.players.find(player_id);
        if (it != s.players.end()) out.insert(out.end(), it->second.begin(), it->second.end());
    }

    void collect_targets(const update& u, std::vector<entry_ptr>& out) const {
        switch (u.target) {
            case update_target::player: collect_player(u.player_id, out); break;
            case update_target::connection: {
                connection_shard& s = shard_of_connection(u.connection_id);
                std::lock_guard<std::mutex> lock(s.mutex);
                const auto it = s.connections.find(u.connection_id);
                // The player must match too: a service naming a connection id that belongs
                // to someone else (a stale id, reused on reconnect) must not reach it.
                if (it != s.connections.end() && it->second->player_id == u.player_id) {
                    out.push_back(it->second);
                }
                break;
            }
            case update_target::players: {
                // A player listed twice still gets the update once.
                std::unordered_set<std::string_view> seen;
                for (const auto& p : u.player_ids) {
                    if (seen.insert(p).second) collect_player(p, out);
                }
                break;
            }
            case update_target::room: {
                std::vector<std::string> members;
                {
                    std::lock_guard<std::mutex> lock(rooms_mutex);
                    const auto it = room_members.find(u.room);
                    if (it != room_members.end())
                        members.assign(it->second.begin(), it->second.end());
                }
                for (const auto& p : members) collect_player(p, out);
                break;
            }
            case update_target::broadcast:
                // Shard by shard: a broadcast never holds more than one lock, so sends to
                // other players carry on meanwhile.
                for (std::size_t i = 0; i <= mask; ++i) {
                    std::lock_guard<std::mutex> lock(players[i].mutex);
                    for (const auto& [player, entries] : players[i].players) {
                        out.insert(out.end(), entries.begin(), entries.end());
                    }
                }
                break;
            case update_target::join:
            case update_target::leave: break;
        }
    }

    encoding encode(const codec* c, const envelope& message) {
        encoding e;
        e.wire_codec = c;
        if (c != nullptr) {
            try {
                std::string bytes;
                if (!c->encode(message, bytes)) {
                    e.frame = make_frame(std::move(bytes), c->frame());
                    e.ok = true;
                }
            } catch (...) {
                // A plug-in codec that throws must not take the delivering thread (the bus
                // listener) down with it; the update is counted as unencodable instead.
                e.ok = false;
            }
        }
        if (!e.ok) encode_failures.fetch_add(1, std::memory_order_relaxed);
        return e;
    }

    // Caller holds rooms_mutex.
    void leave_all_rooms(const std::string& player_id) {
        const auto it = player_rooms.find(player_id);
        if (it == player_rooms.end()) return;
        for (const auto& room : it->second) {
            const auto r = room_members.find(room);
            if (r == room_members.end()) continue;
            r->second.erase(player_id);
            if (r->second.empty()) room_members.erase(r);
        }
        player_rooms.erase(it);
    }

    const connection_manager_options options;
    const std::size_t mask;
    // Lock order, where more than one is held: a connection shard, then a player shard, then
    // rooms_mutex. The send path takes exactly one of them, never two.
    const std::unique_ptr<player_shard[]> players;
    const std::unique_ptr<connection_shard[]> connections;

    mutable std::mutex rooms_mutex;
    std::unordered_map<std::string, std::unordered_set<std::string>> room_members;
    std::unordered_map<std::string, std::set<std::string>> player_rooms;

    std::atomic<std::uint64_t> connection_count{0};
    std::atomic<std::uint64_t> frames_sent{0};
    std::atomic<std::uint64_t> frames_dropped{0};
    std::atomic<std::uint64_t> slow_consumers_closed{0};
    std::atomic<std::uint64_t> updates_routed{0};
    std::atomic<std::uint64_t> updates_unrouted{0};
    std::atomic<std::uint64_t> encode_failures{0};
    std::atomic<std::uint64_t> updates_oversized{0};
    // [delivery_class][outcome]
    std::array<std::array<std::atomic<std::uint64_t>, outcome_count>, 3> by_class{};
};

connection_manager::connection_manager(connection_manager_options options)
    : impl_(std::make_unique<impl>(options)) {}

connection_manager::~connection_manager() = default;

void connection_manager::add(std::shared_ptr<connection> c, connection_info info) {
    if (!c) return;
    auto e = std::make_shared<entry>(std::move(c), std::move(info));
    const connection_id& id = e->conn->id();
    connection_shard& cs = impl_->shard_of_connection(id);
    std::lock_guard<std::mutex> connection_lock(cs.mutex);
    if (!cs.connections.emplace(id, e).second) return;
    // Both maps change under the connection shard's lock, so a concurrent remove() of the
    // same id sees the connection in both or in neither.
    player_shard& ps = impl_->shard_of_player(e->player_id);
    std::lock_guard<std::mutex> player_lock(ps.mutex);
    ps.players[e->player_id].push_back(std::move(e));
    impl_->connection_count.fetch_add(1, std::memory_order_relaxed);
}

void connection_manager::remove(const connection_id& id) {
    // Declared first so the last reference (and the connection's destructor, whatever it
    // does) goes after the locks are released.
    entry_ptr removed;
    connection_shard& cs = impl_->shard_of_connection(id);
    std::lock_guard<std::mutex> connection_lock(cs.mutex);
    const auto it = cs.connections.find(id);
    if (it == cs.connections.end()) return;
    removed = std::move(it->second);
    cs.connections.erase(it);
    impl_->connection_count.fetch_sub(1, std::memory_order_relaxed);

    player_shard& ps = impl_->shard_of_player(removed->player_id);
    std::lock_guard<std::mutex> player_lock(ps.mutex);
    const auto p = ps.players.find(removed->player_id);
    if (p == ps.players.end()) return;
    auto& entries = p->second;
    entries.erase(std::remove(entries.begin(), entries.end(), removed), entries.end());
    if (!entries.empty()) return;
    ps.players.erase(p);
    // Under the player shard's lock, so a join() racing with this removal either comes first
    // (and is undone here) or finds the player gone.
    std::lock_guard<std::mutex> rooms_lock(impl_->rooms_mutex);
    impl_->leave_all_rooms(removed->player_id);
}

send_status connection_manager::send(const connection_id& to, const shared_frame& frame) {
    entry_ptr target;
    {
        connection_shard& cs = impl_->shard_of_connection(to);
        std::lock_guard<std::mutex> lock(cs.mutex);
        const auto it = cs.connections.find(to);
        if (it == cs.connections.end()) return send_status::closed;
        target = it->second;
    }
    const outcome o = impl_->send_one(*target, frame, delivery_class::reliable, {});
    outcome_tally tally{};
    ++tally[static_cast<std::size_t>(o)];
    impl_->count(delivery_class::reliable, tally);
    switch (o) {
        case outcome::sent: return send_status::queued;
        case outcome::dropped: return send_status::dropped;
        case outcome::coalesced: return send_status::coalesced;
        case outcome::closed: break;
    }
    return send_status::closed;
}

delivery_result connection_manager::deliver(const update& u) {
    if (u.target == update_target::join) {
        join(u.player_id, u.room);
        return {};
    }
    if (u.target == update_target::leave) {
        leave(u.player_id, u.room);
        return {};
    }

    std::vector<entry_ptr> targets;
    impl_->collect_targets(u, targets);

    // A logged update carries each player's own id. Only the player-addressed shapes are
    // logged; an `update_ids` on any other shape means nothing and is not shown to clients.
    const bool logged = !u.update_ids.empty() &&
                        (u.target == update_target::player || u.target == update_target::players);
    // A map only for long `player_ids` lists: the usual one id is found without allocating.
    std::unordered_map<std::string_view, std::string_view> ids;
    if (logged && u.update_ids.size() > 8) {
        for (const auto& [player, id] : u.update_ids) ids.emplace(player, id);
    }
    const auto id_of = [&u, &ids](const std::string& player) -> std::string_view {
        if (!ids.empty()) {
            const auto it = ids.find(player);
            return it == ids.end() ? std::string_view() : it->second;
        }
        for (const auto& [p, id] : u.update_ids) {
            if (p == player) return id;
        }
        return {};
    };
    envelope message_with_id;
    std::string_view current_id;

    // Encode lazily, once per codec in use among the targets: a broadcast to 10k JSON
    // connections encodes once and hands all of them the same bytes. There are only ever a
    // handful of codecs, so a linear search beats a map.
    delivery_result result;
    outcome_tally tally{};
    std::vector<encoding> encodings;
    for (const auto& e : targets) {
        const codec* c = e->wire_codec.get();
        std::string_view update_id;
        if (logged) {
            update_id = id_of(e->player_id);
            // Targets come grouped by player: a new id starts a new set of encodings.
            if (update_id != current_id) {
                encodings.clear();
                current_id = update_id;
                message_with_id = u.message;
                message_with_id.update_id = std::string(update_id);
            }
        }
        auto enc = std::find_if(encodings.begin(), encodings.end(),
                                [c](const encoding& x) { return x.wire_codec == c; });
        if (enc == encodings.end()) {
            encodings.push_back(impl_->encode(c, update_id.empty() ? u.message : message_with_id));
            enc = std::prev(encodings.end());
        }
        if (enc->ok && enc->frame.size() > impl_->options.max_buffered_bytes) {
            ++result.oversized;
            result.oversized_frame_bytes =
                std::max(result.oversized_frame_bytes, enc->frame.size());
        } else if (!enc->ok) {
            ++result.dropped;
        } else {
            const outcome o = impl_->send_update(*e, enc->frame, update_id, u.delivery, u.key);
            ++tally[static_cast<std::size_t>(o)];
            if (o == outcome::sent || o == outcome::coalesced) {
                ++result.queued;
            } else {
                ++result.dropped;
            }
        }
    }
    result.coalesced =
        static_cast<std::size_t>(tally[static_cast<std::size_t>(outcome::coalesced)]);
    impl_->count(u.delivery, tally);
    if (result.oversized > 0) impl_->updates_oversized.fetch_add(1, std::memory_order_relaxed);
    if (result.queued > 0) {
        impl_->updates_routed.fetch_add(1, std::memory_order_relaxed);
    } else if (result.oversized == 0) {
        impl_->updates_unrouted.fetch_add(1, std::memory_order_relaxed);
    }
    return result;
}

resume_result connection_manager::finish_resume(const connection_id& id,
                                                const std::vector<shared_frame>& replay,
                                                std::string_view replayed_through,
                                                const shared_frame& gap) {
    resume_result result;
    entry_ptr target;
    {
        connection_shard& cs = impl_->shard_of_connection(id);
        std::lock_guard<std::mutex> lock(cs.mutex);
        const auto it = cs.connections.find(id);
        if (it == cs.connections.end()) return result;
        target = it->second;
    }
    entry& e = *target;
    const auto send_all = [&e, this](const shared_frame& frame, std::string_view key) {
        if (e.closed_as_slow.load(std::memory_order_acquire)) return send_status::closed;
        const send_status st =
            key.empty() ? e.conn->send(frame) : e.conn->send_keyed(frame, key, false);
        if (st == send_status::queued) {
            impl_->frames_sent.fetch_add(1, std::memory_order_relaxed);
        }
        return st;
    };
    const auto bytes_of = [](const shared_frame& f) { return f.size() + frame_overhead; };
    // The replay fits when everything this call queues stays within the transport's hard bound:
    // the replay and the held frames that follow it, on top of what is queued already (the
    // welcome, replies).
    const auto fits = [&](std::size_t held_bytes) {
        if (replay.empty()) return false;
        std::size_t bytes = e.conn->buffered_bytes();
        const std::size_t hard = impl_->hard_bound();
        if (bytes > hard) return false;
        for (const auto& f : replay) {
            if (bytes_of(f) > hard - bytes) return false;
            bytes += bytes_of(f);
        }
        return held_bytes <= hard - bytes;
    };
    const auto send_end = [&](bool replayed) {
        result.sent = replayed ? resume_result::answer::replay : resume_result::answer::gap;
        result.status = send_status::queued;
        // A gap the codec could not encode: nothing in its place, the held frames still go.
        if (!replayed) return result.status = gap.bytes ? send_all(gap, {}) : send_status::queued;
        for (const auto& f : replay) {
            result.status = send_all(f, {});
            if (result.status != send_status::queued) break;
        }
        return result.status;
    };
    if (!e.resume) {
        send_end(fits(0));
        return result;
    }
    // Everything below under the resume lock: a deliver() running now either held its frame
    // before this (flushed here, in order) or waits and then sends after the flush.
    resume_state& r = *e.resume;
    std::lock_guard<std::mutex> lock(r.mutex);
    if (!r.active) return result;
    r.active = false;
    r.through = std::string(replayed_through);
    // The held frames a replay would be followed by: those it does not cover already.
    std::size_t held_after_replay = 0;
    for (const auto& h : r.held) {
        if (!impl::replayed(r, h.update_id)) held_after_replay += bytes_of(h.frame);
    }
    const bool replayed = fits(held_after_replay);
    // Nothing is skipped after a gap: the client's `resume` may be any id at all (one from a
    // lost log, or forged), and a watermark there could hide live updates.
    if (!replayed) r.through.clear();
    if (send_end(replayed) == send_status::queued) {
        for (const auto& h : r.held) {
            if (impl::replayed(r, h.update_id)) continue;
            result.status = send_all(h.frame, h.key);
            if (result.status != send_status::queued) break;
        }
    }
    r.held.clear();
    r.held.shrink_to_fit();
    r.held_bytes = 0;
    return result;
}

bool connection_manager::join(std::string_view player_id, std::string_view room) {
    if (room.empty()) return false;
    const std::string player(player_id);
    player_shard& ps = impl_->shard_of_player(player);
    std::lock_guard<std::mutex> player_lock(ps.mutex);
    if (ps.players.find(player) == ps.players.end()) return false;
    std::lock_guard<std::mutex> rooms_lock(impl_->rooms_mutex);
    impl_->room_members[std::string(room)].insert(player);
    impl_->player_rooms[player].emplace(room);
    return true;
}

bool connection_manager::leave(std::string_view player_id, std::string_view room) {
    const std::string player(player_id);
    player_shard& ps = impl_->shard_of_player(player);
    std::lock_guard<std::mutex> player_lock(ps.mutex);
    if (ps.players.find(player) == ps.players.end()) return false;
    std::lock_guard<std::mutex> rooms_lock(impl_->rooms_mutex);
    const std::string name(room);
    const auto r = impl_->room_members.find(name);
    if (r != impl_->room_members.end()) {
        r->second.erase(player);
        if (r->second.empty()) impl_->room_members.erase(r);
    }
    const auto p = impl_->player_rooms.find(player);
    if (p != impl_->player_rooms.end()) {
        p->second.erase(name);
        if (p->second.empty()) impl_->player_rooms.erase(p);
    }
    return true;
}

void connection_manager::close_all(close_code code, std::string_view reason) {
    std::vector<std::shared_ptr<connection>> all;
    all.reserve(size());
    for (std::size_t i = 0; i <= impl_->mask; ++i) {
        connection_shard& cs = impl_->connections[i];
        std::lock_guard<std::mutex> lock(cs.mutex);
        for (const auto& [id, e] : cs.connections) all.push_back(e->conn);
    }
    // Outside the locks: a transport's close may call back into the manager (remove()).
    for (const auto& c : all) c->close(code, reason);
}

std::vector<connection_id> connection_manager::connections_of(std::string_view player_id) const {
    std::vector<connection_id> ids;
    const std::string player(player_id);
    player_shard& ps = impl_->shard_of_player(player);
    std::lock_guard<std::mutex> lock(ps.mutex);
    const auto it = ps.players.find(player);
    if (it == ps.players.end()) return ids;
    ids.reserve(it->second.size());
    for (const auto& e : it->second) ids.push_back(e->conn->id());
    return ids;
}

std::string connection_manager::player_of(const connection_id& id) const {
    connection_shard& cs = impl_->shard_of_connection(id);
    std::lock_guard<std::mutex> lock(cs.mutex);
    const auto it = cs.connections.find(id);
    return it == cs.connections.end() ? std::string() : it->second->player_id;
}

std::size_t connection_manager::size() const noexcept {
    return static_cast<std::size_t>(impl_->connection_count.load(std::memory_order_relaxed));
}

std::vector<std::string> connection_manager::rooms_of(std::string_view player_id) const {
    std::lock_guard<std::mutex> lock(impl_->rooms_mutex);
    const auto it = impl_->player_rooms.find(std::string(player_id));
    if (it == impl_->player_rooms.end()) return {};
    return std::vector<std::string>(it->second.begin(), it->second.end());
}

connection_manager_stats connection_manager::stats() const noexcept {
    const auto load = [](const std::atomic<std::uint64_t>& a) {
        return a.load(std::memory_order_relaxed);
    };
    connection_manager_stats s;
    s.connections = load(impl_->connection_count);
    s.frames_sent = load(impl_->frames_sent);
    s.frames_dropped = load(impl_->frames_dropped);
    s.slow_consumers_closed = load(impl_->slow_consumers_closed);
    s.updates_routed = load(impl_->updates_routed);
    s.updates_unrouted = load(impl_->updates_unrouted);
    s.encode_failures = load(impl_->encode_failures);
    s.updates_oversized = load(impl_->updates_oversized);
    const auto outcomes = [&](delivery_class d) {
        const auto& by = impl_->by_class[static_cast<std::size_t>(d)];
        delivery_outcomes o;
        o.sent = load(by[static_cast<std::size_t>(outcome::sent)]);
        o.dropped = load(by[static_cast<std::size_t>(outcome::dropped)]);
        o.coalesced = load(by[static_cast<std::size_t>(outcome::coalesced)]);
        o.closed = load(by[static_cast<std::size_t>(outcome::closed)]);
        return o;
    };
    s.reliable = outcomes(delivery_class::reliable);
    s.droppable = outcomes(delivery_class::droppable);
    s.latest = outcomes(delivery_class::latest);
    return s;
}

}  // namespace gatehouse
