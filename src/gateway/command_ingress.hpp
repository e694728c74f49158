#pragma once
// Command acceptance, the one path every command takes whichever way it came (a WebSocket
// message or `POST /commands`): decode -> rate limit -> bus append -> ack, or an error
// (docs/protocol.md sections 2 and 3). A session's control messages (the reserved `gatehouse.`
// types, docs/protocol.md 6) branch off to session_control after the rate limit. It also appends
// the gateway's own presence entries (docs/protocol.md 6.8) through the same bus, and keeps track
// of all its appends still waiting for the bus, so that shutdown can drain them and then cancel
// what is left.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "gatehouse/codec.hpp"
#include "gatehouse/command_bus.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/http.hpp"
#include "gatehouse/token_bucket.hpp"
#include "gateway/append_tracker.hpp"
#include "gateway/gateway_metrics.hpp"
#include "gateway/session_control.hpp"

namespace gatehouse::detail {

class session;
struct session_setup;

// Thread safety: every member may be called from any thread; one session's messages come one
// at a time (the transport's promise), which is what lets a session's bucket go unlocked.
// Lifetime: a bus callback holds the session weakly and the ingress not at all, so the bus may
// answer after either is gone; once `cancel_appends()` returned, no callback does anything but
// release what it held, whenever the bus calls it.
class command_ingress {
public:
    // `verify`: how the upgrade checks an access token, for in-band refreshes.
    command_ingress(std::shared_ptr<const gateway_options> options,
                    std::shared_ptr<command_bus> bus, std::shared_ptr<const codec> json,
                    std::shared_ptr<gateway_metrics> metrics, token_verifier verify);
    command_ingress(const command_ingress&) = delete;
    command_ingress& operator=(const command_ingress&) = delete;

    // One WebSocket message: every message takes a token of the session's bucket, valid or
    // not, so a flood of garbage is limited too. Ignored once the session is draining
    // (docs/protocol.md section 1: neither accepted nor answered).
    void on_message(const std::shared_ptr<session>& s, bool text, std::string_view bytes);

    // `POST /commands` from `who` (already authorized): 202 once the bus accepted it, 400,
    // 415, 429 with Retry-After (a bucket per player), or 503 `bus_unavailable`.
    void on_http_command(const http_request& request, const identity& who,
                         const http_responder& respond);

    // docs/protocol.md 6.8, with `presence_events`: appends `gatehouse.connected` (`connected`) or
    // `gatehouse.disconnected` for the WebSocket `setup` describes; false when it did not (the
    // option is off, or shutdown is over). Never blocks or fails the
    // session: a bus that refuses the entry is counted and logged (at most every ten seconds),
    // and the entry is lost. Counted with the commands pending, so that shutdown's drain
    // waits for the disconnected entries of the sessions it closes; once `cancel_appends()`
    // ran, nothing more is appended (the gateway is done with the bus).
    bool append_presence(const session_setup& setup, bool connected);

    // Forgets per-player HTTP buckets unused for a minute (a full bucket again, so nothing
    // changes for that player, and the map stays bounded).
    void forget_idle_buckets(std::int64_t now_ms);

    // --- appends handed to the bus and not yet answered ---
    std::size_t pending_appends() const noexcept { return answers_->tracker.pending(); }
    // Waits until none is pending or `deadline` passed; true when none is.
    bool wait_for_appends(std::chrono::steady_clock::time_point deadline) {
        return answers_->tracker.wait_drained(deadline);
    }
    // From now on a bus answer is dropped: nobody is acked or answered any more. Returns once
    // no answer is being handled, so the transport can go away safely after it. Idempotent.
    void cancel_appends() { answers_->tracker.cancel(); }
    // From now on `POST /commands` is answered 503 `shutting_down` instead of appended. Called
    // before shutdown reads `pending_appends()`: a request either counts as pending there or
    // sees this (both are sequentially consistent), so none slips between the drain and the
    // cancel unanswered.
    void stop_accepting() noexcept { accepting_.store(false); }

    // Decoding reuses one envelope (its strings keep their capacity, so steady-state decoding
    // does not allocate) owned by each of the gateway's I/O threads: the gateway binds one
    // for a thread's life. On any other thread (tests) a message decodes into a fresh one.
    class scratch_binding {
    public:
        explicit scratch_binding(envelope& scratch) noexcept;
        ~scratch_binding();
        scratch_binding(const scratch_binding&) = delete;
        scratch_binding& operator=(const scratch_binding&) = delete;

    private:
        envelope* previous_;
    };

private:
    // `received`: when the message arrived, before decoding (gatehouse_command_ack_seconds);
    // `started_ns`: the same on the Unix clock, for its span (0 when tracing is off).
    template <class Answer>
    void accept(std::error_code decoded, bool within_rate, std::chrono::milliseconds retry_after,
                envelope& command, Answer answer, std::chrono::steady_clock::time_point received,
                std::int64_t started_ns);

    // What a bus callback holds (strongly, one reference per command): what it needs to answer,
    // never the bus itself, so that a callback that outlives the gateway and is the last to
    // hold this releases nothing that could join the bus's own thread.
    struct answer_context {
        std::shared_ptr<const gateway_options> options;
        std::shared_ptr<gateway_metrics> metrics;
        append_tracker tracker;
        // Presence entries the bus refused: when one was last logged (steady ms), and how many
        // failed since, so that a bus that is down is reported, not once per connection.
        std::atomic<std::int64_t> presence_failure_logged_ms{0};
        std::atomic<std::uint64_t> presence_failures_unlogged{0};
        void presence_refused(std::error_code error);
    };

    const std::shared_ptr<const gateway_options> options_;
    const std::shared_ptr<command_bus> bus_;
    const std::shared_ptr<const codec> json_;
    const std::shared_ptr<gateway_metrics> metrics_;
    const std::shared_ptr<answer_context> answers_;
    const session_control control_;
    std::atomic<bool> accepting_{true};

    // POST /commands: a token bucket per player (docs/protocol.md section 2), with when it was last
    // used so that forget_idle_buckets() can drop players who went quiet.
    struct http_bucket {
        token_bucket bucket;
        std::int64_t last_used_ms = 0;
    };
    std::mutex http_buckets_mutex_;
    std::unordered_map<std::string, http_bucket> http_buckets_;
    std::atomic<std::uint64_t> http_request_counter_{0};
};

}  // namespace gatehouse::detail
