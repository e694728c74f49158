#pragma once
// The open sessions of a gateway: admission (the connection cap, connection ids), each
// session's open (welcome, then routing) and close, the sweep (keepalive and each token's
// expiry, docs/protocol.md 6.3), and the drain on shutdown: the reconnect spread
// (docs/protocol.md 6.7), then each session closed once its pending commands are answered.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <unordered_map>
#include <vector>

#include "gatehouse/connection_manager.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/update_log.hpp"
#include "gateway/gateway_metrics.hpp"
#include "gateway/resume_join.hpp"
#include "gateway/session.hpp"

namespace gatehouse::detail {

// Thread safety: every member may be called from any thread.
// Lifetime: it holds each open session (for sweeps and the drain) and each session holds it;
// `close` or `abandon_all` ends that pairing, so nothing outlives the gateway through it.
class session_registry {
public:
    session_registry(std::shared_ptr<const gateway_options> options,
                     std::shared_ptr<connection_manager> connections,
                     std::shared_ptr<gateway_metrics> metrics,
                     std::shared_ptr<update_log> log = nullptr);
    session_registry(const session_registry&) = delete;
    session_registry& operator=(const session_registry&) = delete;

    // --- admission ---
    bool shutting_down() const noexcept { return shutting_down_.load(); }
    // True from the drain's start (begin_drain, or begin_shutdown without one): new upgrades,
    // event streams and `/ready` answer 503, while open sessions may still be served.
    bool refusing_new() const noexcept { return draining_.load() || shutting_down_.load(); }
    // Counts an accepted upgrade until it opens or fails; false when over max_connections.
    bool reserve_slot();
    // `<gateway_id>-<n>`, unique for this gateway's life.
    connection_id next_connection_id();

    // --- a session's life (its stream_handler calls) ---
    // A WebSocket gets its welcome, then is registered for routing (so no update overtakes the
    // welcome); an event stream is registered at once. One that asks to resume is registered
    // resuming and gets its replay (resume_join).
    void open(const std::shared_ptr<session>& s);
    // Unregisters it (or gives back the slot of one that never opened) and counts the close.
    void close(const std::shared_ptr<session>& s, std::uint16_t code);

    // --- the sweep: keepalive and session lifetime ---
    // Pings quiet WebSockets, closes idle ones (1008), sends event streams their keep-alive
    // (`now_ms`: the steady clock); and ends sessions whose token expired (`unix_ms`: the Unix
    // clock tokens are written in), after sending `gatehouse.token_expiring` a minute before.
    void sweep(std::int64_t now_ms, std::int64_t unix_ms);
    // How often sweep() should run for the configured ping and idle intervals: at most a second,
    // which is how late after its token's exp a session may close.
    std::chrono::milliseconds sweep_interval() const noexcept;
    // What `s`'s lifetime has due at `unix_ms` (docs/protocol.md 6.3): `gatehouse.token_expiring`
    // once a minute before the deadline; at it the session is taken out of routing and closed
    // with 4001 once its pending commands are answered (an event stream ends). True when it
    // expired now.
    bool check_lifetime(const std::shared_ptr<session>& s, std::int64_t unix_ms);

    // --- drain ---
    // The reconnect spread (docs/protocol.md 6.7): from now on upgrades are refused while the open
    // sessions are still served. Each is sent `gatehouse.reconnect` with an `after_ms` spread
    // evenly over `0..spread` (`i * spread / count`, in random order, so that nothing about a
    // connection decides its turn); one whose upgrade was accepted just before and opens later
    // gets a random `after_ms` in that range. Returns how many were told.
    std::size_t begin_drain(std::chrono::milliseconds spread);
    // Waits until every session has closed, `deadline` passed or end_spread() was called; true
    // when every session closed. Meanwhile it ends each event stream at its own `after_ms`
    // (a client never closes one, so streams would otherwise hold the drain for the whole
    // spread): the calling thread does, as their turns come.
    bool wait_for_spread(std::chrono::steady_clock::time_point deadline);
    // Cuts the spread short: wait_for_spread returns at once, now and later. Any thread.
    void end_spread();
    // From now on upgrades are refused and sessions read nothing; each closes (1001) once its
    // pending commands are answered, at once when none are. A WebSocket not told yet by
    // begin_drain is sent `gatehouse.reconnect` with `after_ms` 0 first (an event stream is
    // sent nothing: it ends as in docs/protocol.md section 1, and its browser waits its own retry
    // delay).
    void begin_shutdown();
    // The listener's subscription was lost and is back (docs/protocol.md 6.4): updates published
    // meanwhile reached no connection. Every open session is unregistered from routing at once
    // and closes with 1012 once its pending commands are answered (at once when none are),
    // so that its client resumes from the last update it got. Returns how many.
    std::size_t interrupt_updates();
    // Waits until every session has closed or `deadline` passed; true when all closed.
    bool wait_for_sessions(std::chrono::steady_clock::time_point deadline);
    // Forgets every session still registered, as the gateway goes away after a drain that
    // timed out: their sockets close with the transport.
    void abandon_all();

    std::size_t size() const;

    // The access log (gateway_options::access_log): owned here, as every session holds the
    // registry, so a session's access state points at it without a reference count of its own.
    // HTTP requests, which may be answered after the gateway went, share it.
    const std::shared_ptr<const access_log>& access() const noexcept { return access_; }

private:
    void add(const std::shared_ptr<session>& s, bool resuming);
    // Puts an event stream told `after_ms` now on the drain's list of streams to end; under
    // mutex_.
    void schedule_stream_end_locked(const std::shared_ptr<session>& s, std::int64_t after_ms);
    std::vector<std::shared_ptr<session>> snapshot() const;

    const std::shared_ptr<const gateway_options> options_;
    const std::shared_ptr<connection_manager> connections_;
    const std::shared_ptr<gateway_metrics> metrics_;
    const std::shared_ptr<resume_join> resumes_;
    const std::shared_ptr<const access_log> access_;

    std::atomic<bool> draining_{false};
    std::atomic<bool> shutting_down_{false};
    std::atomic<std::uint64_t> connection_counter_{0};

    // Not on the send path: only opens, closes, sweeps and the drain take it.
    mutable std::mutex mutex_;
    std::condition_variable all_closed_;
    std::unordered_map<const session*, std::shared_ptr<session>> sessions_;
    // Upgrades accepted whose open has not run yet.
    std::size_t opening_ = 0;
    // The drain's spread, the turns of the sessions that open during it, and its cut.
    std::chrono::milliseconds spread_{0};
    std::minstd_rand turns_;
    bool spread_cut_ = false;
    // When each event stream's turn comes (wait_for_spread ends it then); a stream that closed
    // first is found expired.
    std::multimap<std::chrono::steady_clock::time_point, std::weak_ptr<session>> stream_ends_;
};

}  // namespace gatehouse::detail
