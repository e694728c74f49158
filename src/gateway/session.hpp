#pragma once
// One WebSocket or event-stream session as the gateway core sees it: the transport-independent
// state of an authenticated connection. It is the `stream_handler` the transport calls and the
// `connection` the connection manager sends through, forwarding sends to the transport's link.
//
// Lifetime: a session holds the two parts of the core it calls (the registry for its open and
// close, the ingress for its messages) by `shared_ptr`, so a transport or a bus callback that
// keeps a session keeps what it calls alive; the registry's references back to open sessions
// are dropped when they close or when the gateway abandons them (session_registry).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "gatehouse/codec.hpp"
#include "gatehouse/connection.hpp"
#include "gatehouse/envelope.hpp"
#include "gatehouse/gateway.hpp"
#include "gatehouse/log.hpp"
#include "gatehouse/token_bucket.hpp"
#include "gateway/access_log.hpp"
#include "gateway/session_lifetime.hpp"
#include "transport/transport_events.hpp"

namespace gatehouse::detail {

// What the upgrade decided, carried from the handshake to the open session.
struct session_setup {
    connection_id id;
    identity who;
    std::shared_ptr<const codec> wire_codec;    // what the server writes
    std::shared_ptr<const codec> text_codec;    // reads text frames (always JSON)
    std::shared_ptr<const codec> binary_codec;  // reads binary frames
    bool event_stream = false;                  // GET /sse/player: sends only, no welcome
    // `?resume=` (an event stream's `Last-Event-ID` too): the update id to replay after
    // (docs/protocol.md 6.4), as given, perhaps malformed; unset when not asked.
    std::optional<std::string> resume;
    // Null unless the access log is on: then the stream's end is reported (session::on_close).
    std::unique_ptr<session_access> access;
};

class session_registry;
class command_ingress;

class session final : public connection,
                      public stream_handler,
                      public std::enable_shared_from_this<session> {
public:
    // `session_expiry`: gateway_options::session_expiry (bots never expire).
    session(std::shared_ptr<session_registry> registry, std::shared_ptr<command_ingress> ingress,
            session_setup setup, double rate, double burst, bool session_expiry)
        : registry_(std::move(registry)),
          ingress_(std::move(ingress)),
          setup_(std::move(setup)),
          bucket_(rate, burst),
          lifetime_(setup_.who.expires_at,
                    session_expiry && setup_.who.client == client_kind::player) {}

    const connection_id& id() const noexcept override { return setup_.id; }
    const session_setup& setup() const noexcept { return setup_; }

    // --- connection: what the connection manager and the core send through ---
    // The link is held weakly: the transport owns it, and a session kept by a bus callback
    // must not keep a dead socket open.
    send_status send(const shared_frame& frame) override {
        const auto link = link_.lock();
        const auto status = link ? link->send(frame) : send_status::closed;
        if (setup_.access) count_sent(frame, status);
        return status;
    }
    send_status send_keyed(const shared_frame& frame, std::string_view key, bool replace) override {
        const auto link = link_.lock();
        const auto status = link ? link->send_keyed(frame, key, replace) : send_status::closed;
        if (setup_.access) count_sent(frame, status);
        return status;
    }
    std::size_t buffered_bytes() const noexcept override {
        const auto link = link_.lock();
        return link ? link->buffered_bytes() : 0;
    }
    void close(close_code code, std::string_view reason) override {
        if (const auto link = link_.lock()) link->close(code, reason);
    }
    // Sends a WebSocket ping (an event stream's keep-alive comment); false when gone.
    bool ping() {
        const auto link = link_.lock();
        return link && link->ping();
    }
    // Sends without the slow-consumer policy: replies (welcome, ack, error) answer commands that
    // are already on the bus, so they are never dropped; the transport's one bound on all that a
    // connection queues still holds them (it stops reading, then closes with 4008).
    send_status send_reply(const shared_frame& frame) { return send(frame); }
    // Encodes a reply envelope (`type`, a JSON payload, `correlation_id`) in the session's
    // codec and sends it with send_reply; a codec that cannot carry it is logged to `log`.
    void reply(std::string_view type, std::string payload_json, std::string_view correlation_id,
               const log_sink& log);
    // An `error` reply (docs/protocol.md section 3): `{"code":..,"message":..}`.
    void reply_error(std::string_view code, std::string_view message,
                     std::string_view correlation_id, const log_sink& log);
    // Draining (docs/protocol.md 6.7): `gatehouse.reconnect` with `after_ms`, at most once per
    // session (the first call wins; later ones return false). An event stream gets it as an
    // event with a `retry:` field of `after_ms` too, so that a browser's EventSource waits that
    // long before it reconnects on its own.
    bool send_reconnect(std::int64_t after_ms, const log_sink& log);
    // Once it drains and nothing is pending: closes with the code of its drain, 1001 for
    // shutdown, 1012 when the updates were interrupted (the client resumes what it missed),
    // 4001 when its token expired (docs/protocol.md 6.3).
    void close_drained() {
        close_code code;
        {
            std::lock_guard<std::mutex> lock(drain_mutex_);
            code = drain_code_;
        }
        close(code, code == close_code::going_away      ? "server shutting down"
                    : code == close_code::token_expired ? "token expired"
                                                        : "updates interrupted");
    }

    // --- stream_handler: the transport's calls, handed to the registry and the ingress ---
    void on_open(const std::shared_ptr<stream_link>& link) override;
    void on_message(bool text, std::string_view bytes) override;
    void on_activity() override;
    void on_close(std::uint16_t code) override;

    // --- state touched only on the session's own strand (message handler) ---
    token_bucket& bucket() noexcept { return bucket_; }
    std::uint64_t next_sequence() noexcept { return ++sequence_; }

    // --- drain accounting: commands handed to the bus and not yet answered ---
    // Returns false when the session is draining: the command must be ignored (docs/protocol.md
    // section 1: a command that arrives after shutdown began is neither accepted nor answered;
    // the close that follows tells the client to send it again, the same after 1012).
    bool begin_command() {
        std::lock_guard<std::mutex> lock(drain_mutex_);
        if (draining_) return false;
        ++in_flight_;
        return true;
    }
    // Returns true when the session is draining and this was its last pending command.
    bool end_command() {
        std::lock_guard<std::mutex> lock(drain_mutex_);
        --in_flight_;
        return draining_ && in_flight_ == 0;
    }
    bool draining() {
        std::lock_guard<std::mutex> lock(drain_mutex_);
        return draining_;
    }
    // Returns true when nothing is pending, so the session may close now. `code`: going_away
    // (shutdown, which wins over an earlier drain), updates_interrupted or token_expired.
    bool start_draining(close_code code = close_code::going_away) {
        std::lock_guard<std::mutex> lock(drain_mutex_);
        if (!draining_ || code == close_code::going_away) drain_code_ = code;
        draining_ = true;
        return in_flight_ == 0;
    }

    // --- session lifetime (docs/protocol.md 6.3), swept with the keepalive ---
    session_lifetime& lifetime() noexcept { return lifetime_; }
    // Sends what the lifetime has due at `unix_ms`: gatehouse.token_expiring, or the expiry.
    // Returns true when the session expired now.
    bool check_lifetime(std::int64_t unix_ms);

    // --- keepalive, read by the sweeper on another thread ---
    void touch(std::int64_t now_ms) noexcept {
        last_seen_ms_.store(now_ms, std::memory_order_relaxed);
        pinged_.store(false, std::memory_order_relaxed);
    }
    std::int64_t last_seen_ms() const noexcept {
        return last_seen_ms_.load(std::memory_order_relaxed);
    }
    // True the first time after the last touch.
    bool mark_pinged() noexcept { return !pinged_.exchange(true, std::memory_order_relaxed); }
    // True only the first time: an idle peer that does not read keeps its close frame queued
    // behind unwritten data and stays registered, so later sweeps find it idle again; it is
    // closed, and counted, once.
    bool mark_idle_closed() noexcept {
        return !idle_closed_.exchange(true, std::memory_order_relaxed);
    }

private:
    void count_sent(const shared_frame& frame, send_status status) noexcept {
        if ((status == send_status::queued || status == send_status::coalesced) && frame.bytes) {
            setup_.access->sent(frame.bytes->size());
        }
    }

    // `reply`'s encoding: false (logged) when the codec cannot carry it.
    bool encode_reply(std::string_view type, std::string payload_json,
                      std::string_view correlation_id, const log_sink& log,
                      std::string& bytes) const;

    const std::shared_ptr<session_registry> registry_;
    const std::shared_ptr<command_ingress> ingress_;
    std::weak_ptr<stream_link> link_;
    session_setup setup_;
    token_bucket bucket_;
    std::uint64_t sequence_ = 0;
    session_lifetime lifetime_;

    std::mutex drain_mutex_;
    bool draining_ = false;
    close_code drain_code_ = close_code::going_away;
    std::size_t in_flight_ = 0;

    // A WebSocket whose `gatehouse.connected` entry was appended (docs/protocol.md 6.8): only it
    // gets a `gatehouse.disconnected` one.
    std::atomic<bool> presence_reported_{false};

    std::atomic<std::int64_t> last_seen_ms_{0};
    std::atomic<bool> pinged_{false};
    std::atomic<bool> idle_closed_{false};
    std::atomic<bool> reconnect_sent_{false};
};

}  // namespace gatehouse::detail
