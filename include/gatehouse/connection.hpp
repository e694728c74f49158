#pragma once
/// @file
/// `connection`: what the connection manager needs of one client connection, whatever
/// transport carries it; `shared_frame`, the encoded message it sends.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "gatehouse/codec.hpp"

namespace gatehouse {

/// A connection's name: an opaque string unique across gateway instances (it travels in
/// `welcome`, on the command stream and in targeted updates). Never a pointer.
using connection_id = std::string;

/// One encoded message, ready to write, shared by every connection it goes to: fan-out
/// encodes once per codec and hands the same bytes to each connection.
///
/// Thread safety: immutable once made; copies may be used on any thread.
struct shared_frame {
    std::shared_ptr<const std::string> bytes;  ///< The whole WebSocket message.
    frame_type type = frame_type::text;        ///< Text for JSON, binary otherwise.

    /// Size of the message in bytes (0 for an empty frame).
    std::size_t size() const noexcept { return bytes ? bytes->size() : 0; }
};

/// Makes a frame owning `bytes`.
inline shared_frame make_frame(std::string bytes, frame_type type) {
    return {std::make_shared<const std::string>(std::move(bytes)), type};
}

/// The outcome of handing a frame to a connection. Sends never throw.
enum class send_status : std::uint8_t {
    queued,   ///< Handed to the transport; it will be written unless the connection dies.
    dropped,  ///< Not sent: the connection's send buffer is full (slow-consumer policy: drop).
    closed,   ///< Not sent: the connection is closed or closing (perhaps by this very send,
              ///< under the slow-consumer policy `close`), or it is unknown.
    /// Queued in place of an earlier frame with the same key, which will not be written
    /// (delivery class `latest`, docs/protocol.md 6.6; only `connection::send_keyed` returns it).
    coalesced,
};

/// WebSocket close codes the gateway uses (RFC 6455 section 7.4.1).
enum class close_code : std::uint16_t {
    normal = 1000,
    going_away = 1001,  ///< Shutdown: the client should reconnect, perhaps elsewhere.
    protocol_error = 1002,
    invalid_payload = 1007,   ///< A text frame that is not UTF-8.
    policy_violation = 1008,  ///< Idle timeout, or a slow consumer closed by policy.
    message_too_big = 1009,   ///< Over `max_message_bytes`.
    internal_error = 1011,
    /// The gateway's update subscription was lost and is back (RFC 6455 "service restart"):
    /// updates published meanwhile were not sent, so the client reconnects with `?resume=`
    /// to get them from the update log (docs/protocol.md 6.4).
    updates_interrupted = 1012,
    token_expired = 4001,  ///< The session's access token expired (docs/protocol.md 6.3).
    slow_consumer =
        4008,  ///< The connection queued more than its hard bound (docs/protocol.md 6.6).
};

/// One client connection as the connection manager sees it: something that can send a
/// frame and be closed. The gateway's WebSocket connections implement it; an embedding team
/// may implement it over another transport (or in memory, for tests).
///
/// Thread safety: every member may be called from any thread, concurrently.
/// Lifetime: owned through `std::shared_ptr`; the manager keeps one until `remove()`.
class connection {
public:
    virtual ~connection() = default;

    /// The connection's id; constant for its life.
    virtual const connection_id& id() const noexcept = 0;

    /// Hands `frame` to the transport for writing, after the frames sent before it.
    /// Returns `queued`, or `closed` once the connection no longer writes. Does not apply
    /// any backpressure policy: that is the connection manager's job.
    virtual send_status send(const shared_frame& frame) = 0;

    /// Hands `frame` to the transport like `send()`, as the newest value of `key` (delivery
    /// class `latest`, docs/protocol.md 6.6). With `replace`, the frame last sent with the same
    /// key, when it is still queued and not yet being written, is withdrawn first: it is never
    /// written, its bytes leave `buffered_bytes()`, and the result is `coalesced` (else
    /// `queued` or `closed`, as for `send()`). Frames keep their order otherwise: the new one
    /// goes after everything queued. The default ignores the key and calls `send()`, so a
    /// connection that predates delivery classes keeps working, without coalescing.
    virtual send_status send_keyed(const shared_frame& frame, std::string_view key, bool replace) {
        static_cast<void>(key);
        static_cast<void>(replace);
        return send(frame);
    }

    /// Bytes handed to `send()` and not yet written to the socket.
    virtual std::size_t buffered_bytes() const noexcept = 0;

    /// Starts closing with `code` and `reason`; frames already queued go out first where
    /// the transport can manage it. Idempotent.
    virtual void close(close_code code, std::string_view reason) = 0;
};

}  // namespace gatehouse
