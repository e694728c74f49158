#pragma once
// The seam between a transport and the gateway: what a transport tells the gateway (an HTTP
// request, an upgrade or event-stream request, a stream's messages and end) and what the
// gateway hands back (a response, a stream handler). The transport owns this interface and
// knows nothing of the gateway behind it; gateway_core implements it. A second transport (the
// in-memory one of the unit tests) plugs into the same interface.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gatehouse/connection.hpp"
#include "gatehouse/http.hpp"
#include "gatehouse/log.hpp"

namespace gatehouse::detail {

// The transport's end of one WebSocket or event stream, as the gateway drives it.
//
// Thread safety: every member may be called from any thread, concurrently.
class stream_link {
public:
    virtual ~stream_link() = default;
    // Queues one message (a WebSocket frame's payload, or an event stream's bytes); never
    // blocks. `closed` once the stream no longer writes.
    virtual send_status send(const shared_frame& frame) = 0;
    // send() as the newest value of `key`: `connection::send_keyed` (docs/protocol.md 6.6).
    virtual send_status send_keyed(const shared_frame& frame, std::string_view key,
                                   bool replace) = 0;
    // Bytes queued and not yet written to the socket.
    virtual std::size_t buffered_bytes() const noexcept = 0;
    // Starts closing: a WebSocket sends its close frame after what is queued; an event stream
    // ends after it. Idempotent.
    virtual void close(close_code code, std::string_view reason) = 0;
    // A WebSocket ping, or an event stream's keep-alive comment; false when closed.
    virtual bool ping() = 0;
};

// The gateway's end of one stream, as the transport calls it. Calls for one stream never run
// concurrently and come in this order: on_open once, then messages and activity, then
// on_close once (on_close also when the stream ends before on_open).
class stream_handler {
public:
    virtual ~stream_handler() = default;
    // The handshake answer is queued: the stream may be written to from now on.
    virtual void on_open(const std::shared_ptr<stream_link>& link) = 0;
    // One whole WebSocket message (never called for event streams).
    virtual void on_message(bool text, std::string_view bytes) = 0;
    // A ping or pong from the peer.
    virtual void on_activity() = 0;
    // The stream ended. `code`: the close code this side sent or echoed, 1006 when it ended
    // without a closing handshake, 0 for event streams.
    virtual void on_close(std::uint16_t code) = 0;
};

// What a transport read from a WebSocket upgrade request.
struct upgrade_request {
    std::string_view path;
    std::string_view query;
    std::string_view authorization;  // the Authorization header, possibly empty
    std::string_view origin;         // the Origin header (browsers send it), possibly empty
    bool several_origins = false;    // more than one Origin header (`origin` is the first)
    std::string_view host;           // the Host header
    std::string_view traceparent;    // the traceparent header (W3C Trace Context), possibly empty
    std::vector<std::string> offered_subprotocols;
    std::string_view remote_address;
};

// The gateway's answer to an upgrade or event-stream request.
struct upgrade_decision {
    bool accepted = false;
    http_response refusal;                                     // when not accepted
    std::string subprotocol;                                   // to echo; empty when none
    std::vector<std::pair<std::string, std::string>> headers;  // more headers of the acceptance
    std::shared_ptr<stream_handler> handler;
};

// Everything a transport tells the gateway. The transport calls it from its I/O threads.
class transport_events {
public:
    virtual ~transport_events() = default;

    // A plain HTTP request (not an upgrade, not an event stream). `respond` may be called
    // later from any thread, exactly once.
    virtual void handle_http(const http_request& request, http_responder respond) = 0;

    // WebSocket upgrade: accept with a handler, or refuse with a response.
    virtual upgrade_decision authorize_upgrade(const upgrade_request& request) = 0;

    // True when the transport should serve this request as an event stream (text/event-stream
    // response kept open) rather than hand it to handle_http.
    virtual bool is_event_stream_request(const http_request& request) const noexcept = 0;
    virtual upgrade_decision authorize_event_stream(const http_request& request) = 0;

    virtual void log(log_level level, std::string_view message) const = 0;

    // The transport answered a request itself, without the gateway: a malformed or too large
    // request, the header deadline (408), an upgrade that is not RFC 6455's. For the access
    // log; `method` and `target` are empty when the request line was not read whole, and
    // `duration` runs from the request's first byte. Not called for refusals the gateway
    // decided (authorize_upgrade, authorize_event_stream), which it reports itself.
    virtual void answered_by_transport(std::string_view method, std::string_view target,
                                       std::string_view client_address,
                                       const http_response& response,
                                       std::chrono::microseconds duration) {
        static_cast<void>(method);
        static_cast<void>(target);
        static_cast<void>(client_address);
        static_cast<void>(response);
        static_cast<void>(duration);
    }
};

}  // namespace gatehouse::detail
