#pragma once
/// @file
/// `redis_client`: a blocking Redis client for code that wants one answer at a time (a
/// limiter, a backend service's consumer loop), on the library's own asynchronous connection.

#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "gatehouse/redis_reply.hpp"
#include "gatehouse/redis_url.hpp"

namespace gatehouse {

/// Settings of a `redis_client`.
struct redis_client_options {
    /// `redis://[user:password@]host[:port][/db]` (AUTH with an ACL user when a user is given;
    /// SELECT when db is not 0). IPv6 hosts in brackets.
    std::string url = "redis://127.0.0.1:6379";
    /// Longest wait for a connection to be set up, and the default deadline of a command
    /// (`command()` without one). A link whose replies are overdue past this is dropped even
    /// while nobody waits, and the idle link is PINGed every timeout/4, so a dead Redis is
    /// noticed within about this long. Positive.
    std::chrono::milliseconds timeout{5000};
};

/// One connection to one Redis server, used through blocking calls.
///
/// Connecting: lazily, at the first `command()` (or an explicit `connect()`): AUTH and SELECT
/// as the URL says, then PING, so "connected" means Redis itself answered. A connection that
/// breaks is dropped; the next call makes a new one. Nothing retries behind the caller's back:
/// backoff is the caller's to choose.
///
/// Commands: binary-safe arguments, `argv[0]` the command name. Calls from several threads are
/// pipelined on the one connection and answered in order. A reply overdue past its deadline
/// answers `std::errc::timed_out` and drops the connection (a hung server is not waited on
/// twice). The link itself treats any reply overdue past `options.timeout` as a hung server,
/// so a per-call deadline can only be shorter, and a command that blocks in Redis
/// (`XREADGROUP ... BLOCK`, `BLPOP`) needs an `options.timeout` longer than its block time.
/// Pub/Sub (SUBSCRIBE) is not for this client: use `redis_update_subscriber`.
///
/// Errors (`std::error_code`, never thrown): a socket or resolver error (e.g.
/// `std::errc::connection_refused`); `std::errc::timed_out`; `std::errc::permission_denied`
/// when AUTH was refused or Redis wants a password the URL lacks (`NOAUTH`),
/// `std::errc::invalid_argument` when SELECT was refused, `std::errc::connection_refused` when
/// PING got another error (`LOADING` while Redis starts); `std::errc::connection_reset` when
/// the server closed the link; or the error that broke the link under a command. `last_error()`
/// then says why in words, without the password. A Redis error reply (`-ERR`, `-NOGROUP`, ...) is
/// not an error here: it is a reply of kind `error`.
///
/// Thread safety: every member may be called from any thread.
/// Lifetime: the destructor closes the connection and ends the client's I/O thread; no call
/// may be in progress then. Internally callbacks hold shared state, never the object.
class redis_client {
public:
    /// Starts the client's I/O thread; does not connect. Throws `std::invalid_argument` naming
    /// the option when `url` is not a valid `redis://` URL or `timeout` is not positive.
    explicit redis_client(redis_client_options options);
    ~redis_client();
    redis_client(const redis_client&) = delete;
    redis_client& operator=(const redis_client&) = delete;

    /// Connects unless connected, waiting at most `options.timeout`. Empty once connected;
    /// otherwise the error (see the class comment). While another thread is connecting, waits
    /// for that attempt instead of starting one.
    std::error_code connect();

    /// Runs one command with the deadline `options.timeout`, connecting first if needed.
    /// @param argv the command and its arguments.
    /// @param out receives the reply (possibly of kind `error`); nil on an error.
    /// @return empty when a reply came; otherwise the error (see the class comment).
    std::error_code command(const std::vector<std::string>& argv, redis_reply& out);

    /// As above, with a deadline of its own for this command (connecting included); longer
    /// than `options.timeout` does not help (see the class comment).
    std::error_code command(const std::vector<std::string>& argv, redis_reply& out,
                            std::chrono::milliseconds deadline);

    /// True while a connection is up (after the last connect succeeded, until it broke).
    bool connected() const noexcept;

    /// Drops the connection (commands in flight answer `operation_aborted`); the next call
    /// connects again.
    void disconnect();

    /// Why the last connect or command failed, in words (never the password); empty before
    /// any failure.
    std::string last_error() const;

    /// The URL without its password (`redis://user:***@host:port/db`), for logs.
    const std::string& redacted_url() const noexcept;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace gatehouse
