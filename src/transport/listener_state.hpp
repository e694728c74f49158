#pragma once
// What a listener shares with its connections: the gateway's events, the options, and the
// registry its sweep walks for deadlines (header, idle, close handshake). Connections hold it
// through a shared_ptr, so it lives as long as the last of them, whatever order the gateway
// tears things down in.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "transport/transport_events.hpp"
#include "transport/transport_server.hpp"

namespace gatehouse::detail {

// The part of a connection the sweep sees. Registered at construction, unregistered at
// destruction; the sweep takes a strong reference before touching one.
class swept_connection {
public:
    virtual ~swept_connection() = default;
    // Steady-clock milliseconds after which the connection must act (0: none); read without
    // the connection's own locks.
    std::int64_t deadline_ms() const noexcept {
        return deadline_ms_.load(std::memory_order_relaxed);
    }
    // The deadline passed: the connection closes (or answers 408) on its own strand.
    virtual void expire() = 0;
    // The listener is being destroyed and the io_context will follow: the socket closes now,
    // without a word to the handler, and nothing reaches the io_context from this connection
    // again (a send answers `closed`, an HTTP answer is dropped). Called with no I/O thread
    // running.
    virtual void sever() = 0;

protected:
    void set_deadline(std::int64_t at_ms) noexcept {
        deadline_ms_.store(at_ms, std::memory_order_relaxed);
    }

private:
    std::atomic<std::int64_t> deadline_ms_{0};
};

struct listener_state {
    listener_state(transport_events& e, transport_options o) : events(e), options(std::move(o)) {}

    transport_events& events;
    const transport_options options;

    // Every live connection, for the deadline sweep. Weak: the registry never keeps one alive.
    std::mutex registry_mutex;
    std::vector<std::weak_ptr<swept_connection>> registry;

    void add(const std::shared_ptr<swept_connection>& c) {
        std::lock_guard<std::mutex> lock(registry_mutex);
        registry.push_back(c);
    }

    // While an HTTP answer is being handed to a connection's strand from another thread; the
    // listener's destruction waits for none to be in flight once `severed` is set, so an answer
    // that arrives as the gateway goes never reaches a destroyed io_context.
    std::atomic<int> answers_in_flight{0};
    std::atomic<bool> severed{false};

    // Every connection lets go of the io_context (see swept_connection::sever). No I/O thread
    // may run.
    void sever_all() {
        severed.store(true);
        while (answers_in_flight.load() != 0) std::this_thread::yield();
        std::vector<std::shared_ptr<swept_connection>> live;
        {
            std::lock_guard<std::mutex> lock(registry_mutex);
            for (const auto& weak : registry) {
                if (auto c = weak.lock()) live.push_back(std::move(c));
            }
            registry.clear();
        }
        for (const auto& c : live) c->sever();
    }

    // Expires every connection whose deadline passed and forgets the dead ones.
    void sweep(std::int64_t now_ms) {
        std::vector<std::shared_ptr<swept_connection>> due;
        {
            std::lock_guard<std::mutex> lock(registry_mutex);
            std::size_t kept = 0;
            for (std::size_t i = 0; i < registry.size(); ++i) {
                auto c = registry[i].lock();
                if (!c) continue;
                const auto at = c->deadline_ms();
                if (at != 0 && at <= now_ms) due.push_back(c);
                // Never a self-move: a moved-to weak_ptr that is its own source ends empty.
                if (kept != i) registry[kept] = std::move(registry[i]);
                ++kept;
            }
            registry.resize(kept);
        }
        // Outside the registry lock: expire() takes the connection's own.
        for (const auto& c : due) c->expire();
    }
};

}  // namespace gatehouse::detail
