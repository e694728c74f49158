#pragma once
/// @file
/// `gateway`: the assembled realtime gateway: HTTP and WebSocket listener, authentication
/// at upgrade, codec negotiation, commands onto a `command_bus`, updates from a
/// `pubsub_listener` routed through a `connection_manager`.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "gatehouse/codec_registry.hpp"
#include "gatehouse/command_bus.hpp"
#include "gatehouse/connection_manager.hpp"
#include "gatehouse/errc.hpp"
#include "gatehouse/http.hpp"
#include "gatehouse/log.hpp"
#include "gatehouse/metrics.hpp"
#include "gatehouse/pubsub_listener.hpp"
#include "gatehouse/tracing.hpp"
#include "gatehouse/update_log.hpp"

namespace gatehouse {

/// Who a connection or request is, once authenticated.
struct identity {
    std::string player_id;  ///< The JWT `sub`, or `bot:NAME`.
    client_kind client = client_kind::player;
    std::vector<std::string> roles;
    /// When the credential stops being valid, Unix seconds (the JWT `exp`); 0: never (bots,
    /// or a `token_verifier` that does not say). A session ends then (docs/protocol.md 6.3).
    std::int64_t expires_at = 0;
};

/// Verifies a player's access token: fills `who` or returns an error (any error is a 401).
/// The default verifies HS256 JWTs with `gateway_options::jwt_secret`. Also called for each
/// in-band `gatehouse.refresh` (docs/protocol.md 6.3), where an error answers `invalid_token`; set
/// `who.expires_at` for sessions to end with the token.
using token_verifier = std::function<std::error_code(std::string_view token, identity& who)>;

/// Settings of a `gateway`; the reference server fills them from its flags.
struct gateway_options {
    /// `HOST:PORT`: numeric IPv4, `[IPv6]`, or a host name resolved once by `start()` (its
    /// first IPv4 address, else its first IPv6 one: `localhost` is 127.0.0.1); port 0 picks a
    /// free port.
    std::string listen = "0.0.0.0:8080";
    /// I/O threads; 0 means the hardware concurrency.
    unsigned threads = 0;
    /// PEM files: when both are set the listener speaks only TLS (`https://`, `wss://`).
    std::string tls_cert_file;
    std::string tls_key_file;

    /// HS256 key of access tokens (used by the default `verify_token`).
    std::string jwt_secret;
    /// Replaces JWT verification for `/ws/player` when set.
    token_verifier verify_token;
    /// Bots: `{name, key}` pairs; `/ws/bot/{key}` authenticates as `bot:NAME`.
    std::vector<std::pair<std::string, std::string>> bot_keys;

    /// Largest WebSocket message and HTTP body accepted, in bytes.
    std::size_t max_message_bytes = 65536;
    /// Commands per second per connection (token bucket, burst twice this); 0 is no limit.
    unsigned ws_rate_limit = 100;
    /// A ping is sent after this long without a frame from the client; 0 disables pings.
    std::chrono::milliseconds ping_interval{20000};
    /// A connection with no frame (a pong included) for this long is closed with 1008;
    /// 0 disables the timeout.
    std::chrono::milliseconds idle_timeout{60000};
    /// Longest `shutdown()` waits for pending acks and closing handshakes.
    std::chrono::milliseconds shutdown_timeout{10000};
    /// An idle persistent HTTP connection (no request in progress, not a WebSocket or event
    /// stream) is closed after this long (docs/protocol.md section 6.1).
    std::chrono::milliseconds http_idle_timeout{30000};
    /// A request whose headers are not complete this long after its first byte is answered
    /// 408 and its connection closed (slow-header clients hold no slot for long).
    std::chrono::milliseconds http_header_timeout{10000};
    /// Proxies whose `X-Forwarded-For` is believed (docs/protocol.md section 6.2): `ADDRESS/PREFIX`
    /// or a bare address, IPv4 or IPv6. When the peer is one of them, the client address of a
    /// request (`http_request::remote_address`, the logs, every per-address limit) is the
    /// rightmost `X-Forwarded-For` entry that is not itself trusted (the leftmost when all
    /// are). Empty: the peer address, and `X-Forwarded-For` is ignored.
    std::vector<std::string> trusted_proxies;
    /// Open WebSocket and event-stream connections at most; over it an upgrade or
    /// `GET /sse/player` is answered 503 `over_capacity`. 0: no cap.
    std::size_t max_connections = 0;
    /// Offer permessage-deflate (RFC 7692) to WebSocket clients that ask for it, without
    /// context takeover, so an idle connection holds no compression state. Incoming messages
    /// are inflated (`max_message_bytes` applies after inflation); the server writes its own
    /// messages uncompressed.
    bool ws_compression = false;
    /// Send queues and the slow-consumer policy.
    connection_manager_options connections;
    /// End each player session when its access token expires (docs/protocol.md 6.3):
    /// `gatehouse.token_expiring` a minute before `identity::expires_at`, in-band
    /// `gatehouse.refresh`, close 4001 (an event stream ends) at expiry. False: sessions
    /// outlive their tokens, as in v1. Bot sessions never expire.
    bool session_expiry = true;
    /// Draining (docs/protocol.md 6.7): at `shutdown()` every WebSocket is first sent
    /// `gatehouse.reconnect` with `after_ms` spread evenly over `0..drain_spread` (an event
    /// stream gets it as an event with a `retry:` field), and open connections are served
    /// until the spread has passed or they all closed; then the section 1 shutdown. 0: every
    /// WebSocket's `after_ms` is 0 and shutdown is exactly section 1's.
    std::chrono::milliseconds drain_spread{0};
    /// Append `gatehouse.connected` / `gatehouse.disconnected` entries (client `system`) to
    /// the command bus for every WebSocket, player or bot (docs/protocol.md 6.8).
    bool presence_events = false;

    /// Serve `POST /commands` (docs/protocol.md section 2): a command over HTTP onto the same bus,
    /// with a Bearer access token, answered 202 once the bus accepted it. Rate-limited per
    /// player with `ws_rate_limit` (burst twice that).
    bool http_commands = true;
    /// Bearer key of `POST /updates` (docs/protocol.md 6.4): when set and the gateway has an
    /// `update_log`, that route publishes a service's update through the log and answers
    /// `202 {"update_ids":{PLAYER:ID,...}}`. Empty: no such route.
    std::string publish_key;
    /// Serve `GET /sse/player` (docs/protocol.md section 2): the player's updates as server-sent
    /// events, routed exactly as for WebSocket connections, with a keep-alive comment after
    /// every `ping_interval` without an event.
    bool event_streams = true;
    /// Serve `GET /openapi.json`: the OpenAPI 3.1 description of the HTTP API
    /// (docs/openapi.json, compiled into the library), with only the operations of the routes
    /// this gateway has when `start()` runs: the built-ins it serves and the `accounts` routes
    /// if added (docs/openapi.md). Routes an embedder adds at other paths are not described.
    /// An embedder's own `add_route("GET", "/openapi.json", ...)` replaces it (describing its
    /// routes too). False: no such route.
    bool openapi = true;
    /// This instance's name on the command stream (`gateway_id`); empty: generated from the
    /// host name, the process id and a random suffix.
    std::string gateway_id;
    /// More that `/ready` requires besides the bus and the update listener, e.g. a reachable
    /// user store: while it returns false, `ready()` is false and `/ready` answers 503
    /// `not_ready` with `extra_ready_reason` as its detail. Called on an I/O thread at every
    /// `GET /ready`, so it must be quick and must not throw: read a flag a probe keeps.
    std::function<bool()> extra_ready;
    /// The detail of `/ready`'s 503 while `extra_ready` returns false.
    std::string extra_ready_reason = "a dependency is not reachable";
    /// Members added to `/ready`'s JSON object, on the 200 and on the 503 alike: JSON object
    /// members without the braces (`"bus":"redis","store_up":true`), or empty. Called as
    /// `extra_ready` is.
    std::function<std::string()> ready_fields;
    /// Origins (`scheme://host[:port]`, compared as RFC 6454 serializes them: scheme and host
    /// case-insensitively, a default port the same as none) of browser pages on another
    /// origin allowed to use the gateway: CORS answers (preflight included) on the HTTP
    /// routes, `add_route`'s too, and the `Origin` check on WebSocket upgrades and event
    /// streams (403 `origin_not_allowed` for a request whose `Origin` is not allowed; one
    /// without `Origin`, not a browser's, passes). The request's own origin (its `Host`) is
    /// allowed without an entry when that host is an IP address or `localhost`; a host name
    /// must be listed (with DNS rebinding, a page on any name resolving to the gateway sends
    /// matching `Host` and `Origin`). `*` allows any origin. No `Access-Control-Allow-Credentials`:
    /// tokens are never cookies. Empty: no CORS headers and no `Origin` check (v1 behaviour). An
    /// entry that is neither `*` nor an origin: the constructor throws
    /// `std::invalid_argument` naming it.
    std::vector<std::string> allowed_origins;
    /// `HOST:PORT` (as `listen`; port 0 picks a free port, see `gateway::metrics_address()`)
    /// of a second listener that serves only `GET /metrics` and `GET /health`, so that metrics
    /// need not be public; `/metrics` on `listen` then answers 404. It runs on the same I/O
    /// threads and speaks TLS when `listen` does. Empty: `/metrics` on `listen`.
    std::string metrics_listen;
    /// Trace spans (docs/operations.md, "Tracing"): HTTP requests, WebSocket upgrades,
    /// command ingress and update routing, ended into this tracer, which exports them. A
    /// command's stream entry then carries the `traceparent` of the gateway's ingress span
    /// (a child of the client's `traceparent`, or the root of a new trace), so that a service
    /// continues the trace. Null: no spans, and a client's `traceparent` reaches the stream
    /// unchanged (docs/protocol.md 6.8). One tracer may serve several gateways.
    std::shared_ptr<tracer> tracing;
    /// Where log messages go; empty: nowhere.
    log_sink log;
    /// One record per answered HTTP request and per ended WebSocket or event stream; empty:
    /// none.
    access_log_sink access_log;
};

/// A fresh gateway id: the host name, the process id and a random suffix, at most 64
/// characters of `[A-Za-z0-9_.:-]`. What `gateway_options::gateway_id` defaults to; call it
/// to give the same id to a bus before the gateway exists.
std::string make_gateway_id();

/// Start-up checks an embedding server can run before building anything (the reference
/// server's `check-config`); the constructor and `start()` apply the same rules.
///
/// `HOST:PORT` as `start()` reads `gateway_options::listen`: a numeric IPv4 host, a bracketed
/// IPv6 one or a host name (not resolved here), and a port from 0 to 65535.
/// @return empty, or `errc::invalid_listen_address`.
std::error_code check_listen_address(std::string_view host_port);

/// True for what `gateway_options::gateway_id` may be: 1-64 characters of `[A-Za-z0-9_.:-]`.
bool valid_gateway_id(std::string_view id) noexcept;

/// One `gateway_options::trusted_proxies` entry: `ADDRESS/PREFIX` or a bare address, IPv4 or
/// IPv6. @return empty, or `std::errc::invalid_argument`.
std::error_code check_trusted_proxy(std::string_view entry);

/// One `gateway_options::allowed_origins` entry: `*` or an origin (`scheme://host[:port]`, no
/// path). @return empty, or `std::errc::invalid_argument`.
std::error_code check_allowed_origin(std::string_view entry);

/// A gateway: one listener for HTTP and WebSocket, its I/O threads, and the wiring between
/// connections, codecs, the bus and the update listener.
///
/// Built-in routes: `GET /health`, `GET /ready` (200 while the bus and listener are
/// connected, `gateway_options::extra_ready` holds and the gateway is not shutting down, 503
/// problem+json otherwise),
/// `GET /metrics` (on `metrics_listen` instead when set), `POST /commands` and `GET /sse/player`
/// (see the options); WebSocket upgrades at
/// `/ws/player/{token}`, `/ws/player` (Bearer) and
/// `/ws/bot/{key}`. Other paths go to routes added with `add_route`.
/// Also `POST /updates` (with a `publish_key`) and `GET /openapi.json` (`openapi`), the
/// description of the HTTP API (docs/openapi.md).
///
/// Thread safety: configure (`add_route`) before `start()`; `start`, `shutdown` and the
/// accessors may then be called from any thread. Route handlers, bus callbacks and listener
/// callbacks run on the gateway's I/O threads or the bus's threads, as documented there.
/// Lifetime: the destructor shuts down (gracefully, bounded by `shutdown_timeout`, without
/// serving a `drain_spread`: see `shutdown()`) and joins every thread. The gateway shares ownership
/// of the bus and the listener, and the callbacks it hands them hold only shared or weak state: the
/// gateway, the bus and the listener may be destroyed in any order, and a bus answer that comes
/// after the gateway is gone is ignored.
class gateway {
public:
    /// Builds a gateway. Throws `std::invalid_argument` for unusable options: a TLS
    /// certificate without a key (or the reverse), a registry without a `json` codec (text
    /// frames are always JSON), a null bus or listener, a `gateway_id` outside 1-64 of
    /// `[A-Za-z0-9_.:-]`, a bot key with an empty name or key.
    /// `log` (usually the bus itself) holds each player's logged updates: a player that
    /// connects with `?resume=` gets what it missed from it (docs/protocol.md 6.4), and
    /// `POST /updates` publishes through it. Null: no log; every resume gets
    /// `gatehouse.gap`.
    gateway(gateway_options options, codec_registry codecs, std::shared_ptr<command_bus> bus,
            std::shared_ptr<pubsub_listener> listener, std::shared_ptr<update_log> log = nullptr);
    ~gateway();
    gateway(const gateway&) = delete;
    gateway& operator=(const gateway&) = delete;

    /// Routes `method` requests for exactly `path` to `handler`. A path registered with
    /// another method answers 405; an unregistered path 404. Call before `start()`.
    void add_route(std::string method, std::string path, http_handler handler);

    /// Binds the listener (and the metrics listener, with `metrics_listen`), starts the update
    /// listener and the I/O threads.
    /// Errors: `errc::invalid_listen_address` (for either address), `errc::tls_setup_failed`,
    /// or the system error of a failed bind. Returns once connections are being accepted.
    std::error_code start();

    /// The bound address as `HOST:PORT` (the real port when 0 was asked), after `start()`.
    std::string local_address() const;

    /// The metrics listener's bound address as `HOST:PORT` (the real port when 0 was asked)
    /// after `start()`; empty without `gateway_options::metrics_listen`.
    std::string metrics_address() const;

    /// Graceful shutdown (docs/protocol.md section 1 and 6.7). With a `drain_spread`, first the
    /// drain: `/ready`, new upgrades and event streams answer 503 at once, every open
    /// connection is sent `gatehouse.reconnect` with its `after_ms` (spread evenly over
    /// `0..drain_spread`), and the open connections keep being served (commands acked, updates
    /// delivered, `POST /commands` too) until the spread has passed or every one has closed.
    /// Then section 1: stops reading commands, answers every command already read (ack or
    /// error), sends each WebSocket not told yet `gatehouse.reconnect` with `after_ms` 0 and
    /// closes it with 1001, stops the listener and joins the I/O threads. Blocks until done:
    /// at most `drain_spread` plus `shutdown_timeout`; what the bus has not answered by then is
    /// cancelled (a later answer is ignored).
    /// Idempotent. Called again from another thread during the spread, it cuts the spread
    /// short (the section 1 shutdown starts at once; the `after_ms` already sent stand) and
    /// returns once the first call has finished; later in the shutdown it just waits for it.
    /// The destructor does the same: it sends the spread `after_ms` values but does not serve
    /// the spread, and it may run while another thread is inside `shutdown()`.
    void shutdown();

    /// True when `/ready` would answer 200.
    bool ready() const noexcept;

    /// This instance's gateway id.
    const std::string& gateway_id() const noexcept;

    /// The live connections (for direct sends and room changes by an embedding server).
    connection_manager& connections() noexcept;

    /// The gateway's metrics; an embedding server may register its own here too, and they
    /// appear on `/metrics`.
    metrics_registry& metrics() noexcept;

    /// Verifies a player token as the WebSocket upgrade does (for an embedding server's own
    /// routes, e.g. `POST /commands`).
    std::error_code authenticate(std::string_view token, identity& who) const;

    /// The route table: the built-in routes (WebSocket upgrades as the prefix route `/ws/`,
    /// which answers 426 to a request that is not an upgrade) and those added with `add_route`,
    /// exact routes sorted by path and method, then the prefix routes. `HEAD` is not listed: it
    /// is answered as `GET` wherever `GET` is routed. For checking a route table against a
    /// description of it (tests/unit/openapi_document_test.cpp does so for docs/openapi.json).
    /// Thread safety: call before `start()` or after it, not during `add_route`.
    std::vector<http_route> routes() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gatehouse
