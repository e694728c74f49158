#pragma once
// The game as its own process on Redis: read the gateway's command stream with a consumer
// group, play each command against the Redis session store, publish the update through the
// update log (FCALL gatehouse_publish), then XACK.

#include <csignal>
#include <functional>
#include <stdexcept>
#include <string>

#include "redis_link.hpp"
#include "redis_session_store.hpp"

namespace gatehouse_demo::game {

/// Settings of a `stream_service` (gatehouse-demo-game's flags).
struct stream_service_options {
    std::string redis_url;  ///< `redis://...`, valid (`gatehouse::parse_redis_url`).
    std::string command_stream = "gateway:commands";
    std::string updates_channel = "ws_updates_channel";
    std::string group = "demo-game";
    std::string consumer;  ///< Keep it across restarts: its pending entries are read first.
};

/// Thrown for what retrying cannot fix (Redis refused AUTH, the stream key holds another type).
struct fatal_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The consumer loop. Delivery: an entry is acknowledged only after its update was published
/// (and its session saved before that), so a crash in between leaves it pending for this
/// consumer, and it is played again at the next start or reconnect: at least once.
///
/// Thread safety: none; `run` on one thread. Every wait is bounded (XREADGROUP BLOCK 500 ms,
/// reply timeouts, backoff in short slices), so a stop request is seen within about 0.5 s.
class stream_service {
public:
    /// `log` receives one line per event worth an operator's eye (never the password).
    stream_service(stream_service_options options, std::function<void(const std::string&)> log);

    /// Plays commands until `stop_requested` becomes non-zero. Calls `on_ready` once, when the
    /// group first exists (from then on every appended command reaches this service). Throws
    /// `fatal_error`.
    void run(const volatile std::sig_atomic_t& stop_requested,
             const std::function<void()>& on_ready);

    /// Commands answered (game.state or game.error published) so far.
    long long answered() const { return answered_; }

private:
    bool connect();
    bool create_group();
    bool read_and_answer();
    bool answer(const std::string& id, const gatehouse::redis_reply& fields);
    bool publish(const std::string& update);
    bool ack(const std::string& id);
    bool lost(const char* what);

    stream_service_options options_;
    std::function<void(const std::string&)> log_;
    redis_link link_;
    redis_session_store store_;
    std::string pending_from_;  // non-empty while this consumer's pending list is re-read
    long long answered_ = 0;
    bool unlogged_warned_ = false;  // said once that updates go out unlogged
    bool announced_ = false;
    unsigned failed_connects_ = 0;
};

}  // namespace gatehouse_demo::game
