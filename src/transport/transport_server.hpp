#pragma once
// gatehouse's own HTTP/1.1 + WebSocket (RFC 6455) + server-sent events listener on standalone
// Asio, plain or TLS. It calls the gateway through `transport_events` and knows nothing else of
// it (docs/architecture.md, "Transport").

#include <chrono>
#include <cstddef>
#include <memory>
#include <system_error>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

#include "transport/client_address.hpp"
#include "transport/transport_events.hpp"

namespace gatehouse::detail {

struct transport_options {
    // Largest WebSocket message (after inflation) and decoded HTTP request body.
    std::size_t max_message_bytes = 65536;
    // An idle persistent HTTP connection is closed after this long.
    std::chrono::milliseconds http_idle_timeout{30000};
    // A request's headers (and a TLS handshake) must be complete this long after they began.
    std::chrono::milliseconds http_header_timeout{10000};
    // After this side sent its close frame (or ended a response with Connection: close), how
    // long the peer has to close its end before the socket is closed under it.
    std::chrono::milliseconds close_timeout{2000};
    // Event streams send a keep-alive comment after this long without an event.
    std::chrono::milliseconds event_stream_keepalive{15000};
    // permessage-deflate for WebSocket clients that offer it.
    bool ws_compression = false;
    // Every byte a connection queues (updates, replies, pongs, its own responses) counts
    // against one bound: past `max_queued_bytes` a WebSocket is closed with 4008 (an event
    // stream or HTTP connection simply ends), and while more than `read_pause_bytes` wait
    // unwritten nothing more is read from the client, so a client that sends without reading
    // cannot make the server queue answers without end. 0: no bound.
    std::size_t max_queued_bytes = 0;
    std::size_t read_pause_bytes = 0;
    // Whose X-Forwarded-For names the client (docs/protocol.md 6.2).
    trusted_proxies proxies;
};

class transport_server {
public:
    // Destroy it when no I/O thread runs and before the io_context: its connections then let
    // go of the io_context (answers and sends that come later are dropped), so they may
    // outlive both.
    virtual ~transport_server() = default;
    // Binds and starts accepting. Call before the I/O threads run.
    virtual std::error_code listen(const asio::ip::tcp::endpoint& endpoint) = 0;
    // The bound endpoint.
    virtual asio::ip::tcp::endpoint local_endpoint() const = 0;
    // Closes the listening socket. Asio's acceptor is not safe to close while an I/O thread
    // may be re-arming it, so call this only when no I/O thread runs.
    virtual void stop_listening() = 0;
};

// `tls` null: plain HTTP and ws://; otherwise every connection speaks TLS first.
// `events` must outlive every connection's use of it: the gateway keeps it until the I/O
// threads have stopped.
std::unique_ptr<transport_server> make_transport_server(transport_events& events,
                                                        asio::io_context& io,
                                                        transport_options options,
                                                        std::shared_ptr<asio::ssl::context> tls);

}  // namespace gatehouse::detail
