#pragma once
/// @file
/// `connection_manager`: which connections are open, whose they are, which rooms their
/// players are in, and the backpressure-aware send path to them.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/codec.hpp"
#include "gatehouse/connection.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/update.hpp"

namespace gatehouse {

/// What happens to a `reliable` update (every update that names no delivery class, and every
/// frame given to `connection_manager::send`) for a connection whose send buffer is full.
/// `droppable` and `latest` updates follow their own rules whatever the policy (docs/protocol.md
/// 6.6): dropped, or coalesced by key; docs/updates.md has the whole table.
enum class slow_consumer_policy : std::uint8_t {
    drop,   ///< The frame is dropped (and counted); the connection stays open.
    close,  ///< The connection is closed with 1008 (and counted); it can reconnect.
    /// docs/protocol.md 6.6 (the default): the frame is still queued, up to twice
    /// `max_buffered_bytes`; one that would pass that closes the connection with 4008 `slow
    /// consumer` (and is counted).
    queue,
};

/// Settings of a `connection_manager`.
struct connection_manager_options {
    /// A connection whose unwritten bytes would exceed this gets the slow-consumer policy;
    /// twice this is the hard bound no update may pass (4008).
    std::size_t max_buffered_bytes = std::size_t{1} << 20;
    /// `queue` by default: the contract's rule (docs/protocol.md 6.6), as gatehouse-server has it.
    slow_consumer_policy slow_consumer = slow_consumer_policy::queue;
    /// Lock shards: connections and players are spread over this many independently locked
    /// maps, so sends to different players do not contend. Rounded up to a power of two.
    std::size_t shards = 16;
};

/// What the manager knows of a connection besides the connection itself.
struct connection_info {
    std::string player_id;  ///< `bot:NAME` for bots.
    client_kind client = client_kind::player;
    std::shared_ptr<const codec> wire_codec;  ///< Encodes the updates sent to it.
    /// Registers the connection resuming (docs/protocol.md 6.4): `deliver()` holds the updates
    /// for it, in order, until `finish_resume()`.
    bool resuming = false;
};

/// What became of one delivery class's frames, one count per connection an update was for
/// (docs/protocol.md 6.6).
struct delivery_outcomes {
    std::uint64_t sent = 0;       ///< Queued on the connection.
    std::uint64_t dropped = 0;    ///< Dropped: the send buffer was full.
    std::uint64_t coalesced = 0;  ///< Queued in place of the unsent one with the same key.
    std::uint64_t closed = 0;     ///< Not sent: the connection closed (by this send or before).
};

/// Counters, read with relaxed loads; monotonic except `connections`.
struct connection_manager_stats {
    std::uint64_t connections = 0;  ///< Currently registered.
    std::uint64_t frames_sent = 0;  ///< Frames queued on a connection.
    /// Frames dropped for a full send buffer: `droppable` updates, and any by the `drop` policy.
    std::uint64_t frames_dropped = 0;
    /// Connections closed as slow consumers: 1008 by the `close` policy, 4008 past the hard
    /// bound (once per connection).
    std::uint64_t slow_consumers_closed = 0;
    std::uint64_t updates_routed = 0;    ///< Updates that reached at least one connection.
    std::uint64_t updates_unrouted = 0;  ///< Updates for no connection held here.
    std::uint64_t encode_failures = 0;   ///< Update/codec pairs that could not be encoded.
    /// Updates not sent to some of their connections because their frame for that
    /// connection's codec was larger than `max_buffered_bytes`.
    std::uint64_t updates_oversized = 0;
    /// By delivery class, for `deliver()` (frames given to `send()` count as `reliable`).
    delivery_outcomes reliable;
    delivery_outcomes droppable;
    delivery_outcomes latest;
};

/// What `connection_manager::finish_resume()` sent, and how the sends went.
struct resume_result {
    /// Which end of the resume was sent.
    enum class answer : std::uint8_t {
        none,    ///< Nothing: the connection is unknown, or its resume had already finished.
        replay,  ///< The replay (it fitted under the hard bound).
        gap,     ///< `gatehouse.gap`: there was no replay, or it did not fit.
    };
    answer sent = answer::none;
    /// The last send's status: `closed` when nothing was sent, or the connection closed.
    send_status status = send_status::closed;
};

/// The result of `deliver()`.
struct delivery_result {
    std::size_t queued = 0;   ///< Connections the update was queued on (coalesced included).
    std::size_t dropped = 0;  ///< Connections it was dropped for (slow, closed, unencodable).
    /// Connections where it replaced the queued update with the same key (`latest`).
    std::size_t coalesced = 0;
    /// Connections it was not sent to because its frame was larger than `max_buffered_bytes`
    /// (not counted in `dropped`): a frame no send buffer can hold is refused before any
    /// connection sees it, rather than closing connections that read promptly.
    std::size_t oversized = 0;
    /// The largest such frame, in bytes (0 when `oversized` is 0).
    std::size_t oversized_frame_bytes = 0;
};

/// Registry of live connections: player -> connections (several per player), lookup by
/// connection id, rooms, and fan-out.
///
/// Rooms belong to players (docs/protocol.md section 5): a join covers all of the player's
/// connections, including ones opened later, and membership ends when the player's last
/// connection is removed. A join or leave for a player with no connection here is ignored.
///
/// Thread safety: every member may be called from any thread concurrently. State is sharded
/// by player id with one mutex per shard, so there is no global lock on the send path;
/// broadcast and room delivery visit the shards one by one. Frames for one player sent from
/// one thread keep their order.
/// Lifetime: holds a `shared_ptr` to each connection until `remove()`.
class connection_manager {
public:
    explicit connection_manager(connection_manager_options options = {});
    ~connection_manager();
    connection_manager(const connection_manager&) = delete;
    connection_manager& operator=(const connection_manager&) = delete;

    /// Registers `c` for `info.player_id`. A second `add` of the same id is ignored.
    void add(std::shared_ptr<connection> c, connection_info info);

    /// Forgets a connection (it does not close it). When it was its player's last, the
    /// player leaves every room. Unknown ids are ignored.
    void remove(const connection_id& id);

    /// Sends `frame` to one connection as a `reliable` update, applying the slow-consumer
    /// policy. Returns `closed` for an unknown id, or once the connection was closed as a slow
    /// consumer.
    send_status send(const connection_id& to, const shared_frame& frame);

    /// Routes a parsed update (docs/protocol.md section 5): join/leave change rooms (and return
    /// an empty result); every other target gets `u.message` encoded once per codec in use
    /// among its connections, the same bytes shared by all of them. A connection target is
    /// reached only when it belongs to `u.player_id`; a player listed twice gets it once.
    /// An encoding larger than `max_buffered_bytes` is sent to none of its connections
    /// (`oversized`, and `updates_oversized` counts the update); the slow-consumer policy is
    /// for clients that fall behind, not for frames no buffer could hold.
    /// For a connection past `max_buffered_bytes`, `u.delivery` decides (docs/protocol.md 6.6):
    /// `droppable` is dropped, `latest` replaces the queued update with the same `u.key`
    /// (`connection::send_keyed`), `reliable` gets the slow-consumer policy. A `latest` update
    /// that takes the unsent bytes past twice `max_buffered_bytes` even once the replaced frame
    /// is withdrawn closes the connection with 4008 too (the `drop` policy drops any that might
    /// pass it, counting no withdrawal).
    /// Sends run on the calling thread, outside the manager's locks.
    /// A logged update (`u.update_ids`) reaches each player's connections with that player's
    /// `update_id` in the envelope. For a connection still resuming the frame is held, not
    /// sent (it counts as queued); past `max_buffered_bytes` of held frames the connection is
    /// closed with 4008 `slow consumer`.
    delivery_result deliver(const update& u);

    /// Ends the resume of a connection added with `connection_info::resuming`, all under that
    /// connection's lock so that no concurrent `deliver()` can come in between. Sends `replay`
    /// (the replayed updates, then `gatehouse.resumed`) when it fits: when the connection's
    /// `buffered_bytes()`, the replay and the frames `deliver()` held meanwhile that follow it
    /// stay within the hard bound (twice `max_buffered_bytes`, docs/protocol.md 6.6), which every
    /// byte of them will be queued against; else, or when `replay` is empty (the log answered
    /// gap), sends `gap` (`gatehouse.gap`) in its place. A replay that could never be queued
    /// would close the connection with 4008 at every attempt to resume from the same id; after
    /// a gap the client re-syncs instead. Then it sends the held frames, except, after a
    /// replay, the logged ones whose update id is at or before `replayed_through` (those were
    /// in the replay); `latest` ones keep their key (`connection::send_keyed`) so a later one
    /// can still replace them. From then on `deliver()` sends to it directly, still skipping
    /// logged updates at or before `replayed_through` after a replay (one published before the
    /// log was read may reach the router after the log's answer); after a gap nothing is
    /// skipped. These sends bypass the slow-consumer policy (a dropped replay frame would break
    /// exactly-once): only the transport's hard bound applies. A second call finds the resume
    /// finished and sends nothing (`answer::none`). For a connection not added resuming it
    /// only sends `replay` (when it fits) or `gap`.
    resume_result finish_resume(const connection_id& id, const std::vector<shared_frame>& replay,
                                std::string_view replayed_through, const shared_frame& gap);

    /// Adds the player to `room` / removes it. Returns false when the player has no
    /// connection here, or (join) `room` is empty; nothing changes then.
    bool join(std::string_view player_id, std::string_view room);
    bool leave(std::string_view player_id, std::string_view room);

    /// Closes every connection with `code` (they remain registered until removed).
    void close_all(close_code code, std::string_view reason);

    /// Ids of a player's connections (empty when none).
    std::vector<connection_id> connections_of(std::string_view player_id) const;
    /// The player a connection belongs to, or empty.
    std::string player_of(const connection_id& id) const;
    /// Number of registered connections.
    std::size_t size() const noexcept;
    /// Rooms the player is in, sorted.
    std::vector<std::string> rooms_of(std::string_view player_id) const;

    connection_manager_stats stats() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gatehouse
