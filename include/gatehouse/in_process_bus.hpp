#pragma once
/// @file
/// `in_process_bus`: the command bus and update source of a gateway that runs without
/// Redis, with the API a service in the same process uses to consume commands and publish
/// updates, and its update log (docs/protocol.md 6.4) in memory.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse/command_bus.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/pubsub_listener.hpp"
#include "gatehouse/update.hpp"
#include "gatehouse/update_log.hpp"

namespace gatehouse {

/// One command on the in-process stream: a client's, or with `command.origin.client`
/// `client_kind::system` the gateway's own presence entry (`gatehouse.connected` /
/// `gatehouse.disconnected`, docs/protocol.md 6.8).
struct bus_entry {
    std::string id;  ///< `<ms>-<seq>`, increasing, like a Redis stream entry id.
    /// The command with its `origin` filled by the gateway, and its `traceparent` when it came
    /// with one (docs/protocol.md 6.8); `update_id` is always empty.
    envelope command;
    std::string gateway_id;
};

/// Settings of an `in_process_bus`.
struct in_process_bus_options {
    /// The stream keeps the newest this many entries (like XADD MAXLEN); older ones are
    /// trimmed whether or not anyone read them. 0 keeps none (`on_command` still sees each).
    std::size_t max_entries = 100000;
    /// Published updates not yet handed to the handler are capped at this; when this many
    /// wait, `publish` refuses (so 0 refuses every message).
    std::size_t max_pending_updates = 65536;
    /// Written into each entry's `gateway_id`.
    std::string gateway_id = "local";
    /// Each player's update log keeps the newest this many updates (at least 1).
    std::size_t update_log_size = 1000;
    /// A logged update is replayed for at most this long (positive); a player's log not
    /// written for this long is dropped.
    std::chrono::seconds update_log_ttl{3600};
    /// Idempotent commands (docs/protocol.md 6.5): a command whose `(player_id, correlation_id)`
    /// was accepted within this window is not appended again; `done` gets the original
    /// entry id. Only client-chosen correlation ids count
    /// (`command_origin::correlation_assigned` is false). 0: off. The pairs are remembered
    /// in at most 16 MiB (key and id bytes plus 128 each: about 80,000 pairs of short ids);
    /// past it the oldest are forgotten first, and a retry of one of those is appended again.
    std::chrono::seconds dedupe_window{120};
    /// The whole update log's memory bound (message and player bytes plus about 100 bytes
    /// per entry). Past it, the logs of the players written to least recently are dropped
    /// whole (their resumes get `gap`); a single player's log over it keeps its newest update.
    std::size_t update_log_bytes = std::size_t{64} * 1024 * 1024;
};

/// A command stream and an update channel in memory. The gateway uses it as its
/// `command_bus` and `pubsub_listener`; services in the same process read commands with
/// `read()` or `on_command()` and publish updates with `publish()` (unlogged, like `PUBLISH`)
/// or `publish_logged()` (through the update log, like `FCALL gatehouse_publish`).
///
/// Thread safety: every member may be called from any thread concurrently. Updates are
/// delivered to the listener's handler on the bus's own delivery thread, in publish order.
/// Lifetime: the delivery thread runs from `start()` to `stop()` or destruction.
class in_process_bus final : public command_bus, public pubsub_listener, public update_log {
public:
    /// Throws `std::invalid_argument` when `update_log_size` is 0, `update_log_ttl` is not
    /// positive (up to a year) or `dedupe_window` is negative or over a year.
    explicit in_process_bus(in_process_bus_options options = {});
    ~in_process_bus() override;
    in_process_bus(const in_process_bus&) = delete;
    in_process_bus& operator=(const in_process_bus&) = delete;

    /// command_bus: stores a copy of `command` (with `gateway_id` from the options) under a
    /// new id, then calls the `on_command` handler, then `done` with the entry id, all on the
    /// calling thread. Never fails: `done` always reports success. A retry (the same
    /// `(player_id, correlation_id)` within `dedupe_window`, the id the client's own) is not
    /// stored and not handed to `on_command`: `done` gets the first entry's id.
    void append(const envelope& command, append_handler done) override;
    /// Always true: an in-memory bus cannot be disconnected (for both base classes).
    bool connected() const noexcept override;

    /// Called for every appended command on the appending thread (a gateway I/O thread),
    /// outside the bus's lock: keep it short and hand heavy work elsewhere. With several
    /// appending threads, calls may overlap and arrive slightly out of id order. An
    /// exception it throws is swallowed (the command is on the stream and acked anyway).
    /// Replaces any earlier handler; an empty one removes it. Set it before the gateway
    /// starts.
    void on_command(std::function<void(const bus_entry&)> handler);

    /// Entries with an id greater than `after_id` (`""` or `"0"`: from the oldest kept),
    /// oldest first, at most `max_count`, waiting up to `wait` for the first one when there
    /// is none: the shape of `XREAD BLOCK`. `after_id` is `<ms>-<seq>` or `<ms>` (as
    /// `<ms>-0`) and is compared numerically; a malformed one, or `max_count` 0, returns
    /// nothing at once without waiting. Entries trimmed away are gone, as in Redis.
    std::vector<bus_entry> read(std::string_view after_id, std::size_t max_count,
                                std::chrono::milliseconds wait = std::chrono::milliseconds{0});

    /// Number of entries kept now.
    std::size_t size() const;

    /// pubsub_listener: starts the delivery thread, which hands every published message to
    /// `on_message` in publish order, including those published before `start`. Ignored
    /// when `on_message` is empty or the thread already runs; may be called again after
    /// `stop()`. An exception from `on_message` is swallowed and delivery goes on.
    void start(update_handler on_message) override;
    /// pubsub_listener: stops and joins the delivery thread. Messages still waiting are
    /// discarded, not delivered; messages published afterwards wait for a later `start()`
    /// (up to `max_pending_updates`). Does nothing when not started.
    void stop() override;

    /// Publishes an update message (docs/protocol.md section 5 JSON), as a service would with
    /// `PUBLISH`. Returns false when `max_pending_updates` messages wait already (the message
    /// is dropped and counted in `updates_refused()`). Malformed messages are delivered too:
    /// the gateway counts them.
    bool publish(std::string message);
    /// Publishes `u` as `to_json(u)`.
    bool publish(const update& u);

    /// update_log: parses `message` (docs/protocol.md section 5; `errc::invalid_update` when
    /// `parse_update` refuses it or it has an `update_ids` key of its own). A player-addressed
    /// update is appended to each addressed player's log under one new id `<ms>-<seq>` (from
    /// the Unix clock, increasing), and queued for delivery with `"update_ids":{...}` inserted
    /// after its first `{`, in the same critical section, so that the log's order is the
    /// delivery order; other shapes are queued as they are. `errc::bus_unavailable` when the
    /// delivery queue is full (nothing logged). `done` runs on the calling thread, before
    /// this returns.
    void publish_logged(std::string message, logged_publish_handler done) override;
    /// update_log: reads the log in memory; `done` runs on the calling thread, before this
    /// returns. Never `unavailable`.
    void read_after(std::string player_id, std::string after_id, std::size_t max_bytes,
                    log_read_handler done) override;

    /// Retried commands answered with their first entry id, not appended (docs/protocol.md 6.5).
    std::uint64_t duplicates() const noexcept;

    /// Updates refused because the delivery queue was full.
    std::uint64_t updates_refused() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gatehouse
