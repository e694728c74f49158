#pragma once
// journal_bus: a command bus and update source of our own, in place of Redis or the
// in-process bus. Commands wait in a bounded queue; one worker thread appends each to a
// journal file (one JSON line per command, never rewritten), acks it, and hands it to the
// service, whose answers it delivers to the gateway as published updates.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gatehouse/command_bus.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/pubsub_listener.hpp"

namespace standalone {

/// Answers one journaled command with update messages (docs/protocol.md section 5 JSON).
/// Runs on the bus's worker thread, after the command's ack.
using service = std::function<std::vector<std::string>(std::uint64_t entry_number,
                                                       const gatehouse::envelope& command)>;

/// Thread safety: every member may be called from any thread. Lifetime: the worker runs from
/// construction to destruction; commands still queued then are answered `bus_unavailable`.
class journal_bus final : public gatehouse::command_bus, public gatehouse::pubsub_listener {
public:
    /// Appends to `path` (created if missing); entry numbers continue after its last line.
    /// At most `capacity` commands wait: beyond that `append` answers `bus_unavailable` at once,
    /// so a stalled disk pushes back on clients instead of growing memory.
    journal_bus(const std::string& path, std::size_t capacity, std::string gateway_id);
    ~journal_bus() override;
    journal_bus(const journal_bus&) = delete;
    journal_bus& operator=(const journal_bus&) = delete;

    /// Sets the service that answers commands. Call before the gateway starts.
    void serve(service s);

    /// command_bus: queues a copy of `command`; `done` runs on the worker once it is written.
    void append(const gatehouse::envelope& command, gatehouse::append_handler done) override;
    /// True while the journal is writable (for both base classes; drives `/ready`).
    bool connected() const noexcept override { return writable_; }

    /// pubsub_listener: the service's answers go to `on_message` from now on. Answers made
    /// while no listener is started are dropped, as Redis Pub/Sub drops them.
    void start(gatehouse::update_handler on_message) override;
    void stop() override;

    /// Commands written to the journal since this process opened it.
    std::uint64_t written() const noexcept { return written_; }

private:
    struct job {
        gatehouse::envelope command;
        gatehouse::append_handler done;
    };
    void run();
    bool write_line(std::uint64_t number, const gatehouse::envelope& command);

    const std::string gateway_id_;
    const std::size_t capacity_;
    std::ofstream journal_;
    std::uint64_t next_number_ = 1;  // worker thread only
    std::atomic<bool> writable_{false};
    std::atomic<std::uint64_t> written_{0};
    service service_;

    std::mutex queue_mutex_;
    std::condition_variable queue_changed_;
    std::deque<job> queue_;
    bool stopping_ = false;

    // Held while an update is delivered, so that stop() returns only once none is running.
    std::mutex listener_mutex_;
    gatehouse::update_handler on_message_;

    std::thread worker_;  // last: starts once everything above exists
};

}  // namespace standalone
