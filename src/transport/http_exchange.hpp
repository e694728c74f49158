#pragma once
// The HTTP/1.1 side of one connection (RFC 9112): persistent requests and pipelining, the
// header and idle deadlines, 100-continue, HEAD, and the requests that end HTTP on this
// connection (a WebSocket upgrade, an event stream). It parses what the connection reads,
// hands requests to the gateway and queues the answers; it never touches the socket, so the
// same code serves plain and TLS connections.
//
// A connection holds its exchange only while it speaks HTTP: once it becomes a WebSocket or an
// event stream the exchange (with the peer's address, the parser and any pipelined input) is
// destroyed, so an idle WebSocket keeps none of it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "gatehouse/http.hpp"
#include "transport/http_parser.hpp"
#include "transport/transport_events.hpp"
#include "transport/transport_server.hpp"

namespace gatehouse::detail {

// What a connection is speaking.
enum class stream_kind : std::uint8_t { http, websocket, event_stream };

// The connection, as its HTTP exchange drives it. Called on the connection's strand.
class http_exchange_host {
public:
    // Queues bytes for the socket (a response, 100 Continue, a handshake answer).
    virtual void queue_bytes(std::shared_ptr<const std::string> bytes) = 0;
    // Nothing more will be written: the connection ends once what is queued is written.
    virtual void end_after_output() = 0;
    // The steady-clock millisecond (0: none) at which the connection's sweep acts.
    virtual void set_deadline_at(std::int64_t at_ms) = 0;
    // False once the connection is closing.
    virtual bool is_open() const = 0;
    // A callback that answers request `sequence` on the connection's strand, from any thread;
    // it does not keep the connection alive.
    virtual http_responder responder(std::uint64_t sequence) = 0;

protected:
    ~http_exchange_host() = default;
};

// The stream a request turned the connection into: its handshake answer is queued, and the
// bytes after the request belong to it.
struct stream_switch {
    stream_kind kind = stream_kind::http;
    std::shared_ptr<stream_handler> handler;
    bool deflate = false;  // permessage-deflate was negotiated (WebSocket)
};

// Thread safety: none; used on its connection's strand only.
class http_exchange {
public:
    // `peer`: the address of the socket's peer, as text.
    http_exchange(http_exchange_host& host, transport_events& events,
                  const transport_options& options, std::string peer);

    // What consume() left the connection to do.
    enum class progress : std::uint8_t {
        reading,   // read on
        paused,    // stop reading: a response is pending, or the connection ends
        switched,  // the connection is now `switch_to()`; `data` holds the bytes after the request
    };

    // Parses `data` (every byte the client sent, in order) and handles each whole request.
    progress consume(std::string_view& data);

    // After `switched`: the stream to become.
    stream_switch& switch_to() noexcept { return switch_; }

    // What on_response() left the connection to do.
    enum class after_response : std::uint8_t {
        nothing,  // a stale or late answer, or one that ends the connection
        resume,   // read on: first `input` (requests pipelined behind the answered one)
    };

    // The gateway's answer to request `sequence`; the first answer to the current request wins.
    after_response on_response(std::uint64_t sequence, const http_response& response,
                               std::string& input);

    // The deadline passed: true when it was the header deadline of a request in progress, now
    // answered 408 (the connection ends after it); false when the connection should just close.
    bool header_deadline_passed();

    // The idle deadline from now.
    void arm_idle_deadline();

    // The connection ends (closed by the client, or by a deadline) with this exchange still
    // on it: a request whose headers came whole but whose body never completed reaches the
    // access log as not answered (status 0), once.
    void connection_ended();

private:
    progress consume_requests(std::string_view& data);
    void continue_if_expected();
    void handle_request(parsed_request& parsed);
    void handle_upgrade(parsed_request& parsed);
    void start_event_stream(const http_request& request);
    void write_response(const http_response& response, bool close);
    void answer_refusal(const http_response& refusal);
    void answer_and_close(const http_response& response);
    // answer_and_close for a request the gateway never saw, told to it for the access log.
    void refuse_and_close(const parsed_request* request, const std::string& client,
                          const http_response& response);
    std::string remote_address(const parsed_request& request) const;
    http_limits limits() const;

    http_exchange_host& host_;
    transport_events& events_;
    const transport_options& options_;
    std::string peer_;

    std::unique_ptr<http_request_parser> parser_;  // while a request is in progress
    std::string pending_input_;                    // requests pipelined behind a pending response
    std::uint64_t request_sequence_ = 0;
    // The current request's first byte (its access line's duration runs from here).
    std::chrono::steady_clock::time_point request_started_;
    // The duration from request_started_ to now.
    std::chrono::microseconds since_request_started() const;
    stream_switch switch_;
    bool response_pending_ = false;
    bool in_consume_ = false;
    bool keep_alive_ = true;
    bool http_1_0_ = false;
    bool head_request_ = false;
    bool continue_sent_ = false;
    bool closing_answered_ = false;  // answer_and_close ran: nothing left to report
};

}  // namespace gatehouse::detail
