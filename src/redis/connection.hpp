#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include "gatehouse/metrics.hpp"
#include "redis/reply.hpp"
#include "redis/url.hpp"

// hiredis's RESP parser, forward-declared: only connection.cpp includes hiredis.
struct redisReader;

namespace gatehouse::detail::redis {

/// One asynchronous, pipelined connection to a Redis server over an Asio TCP socket, using
/// hiredis only to format commands and to parse replies.
///
/// Commands are queued on a strand, coalesced into one `async_write` per batch and answered in
/// FIFO order. A connection serves either commands or, after SUBSCRIBE/PSUBSCRIBE, Pub/Sub:
/// in that mode the subscription confirmations still go to their commands' callbacks and every
/// `message`/`pmessage` array goes to the `on_push` handler.
///
/// Failure: when the link breaks (socket error, end of stream, malformed RESP, failed AUTH or
/// SELECT, or a reply overdue past `set_timeout()`) every pending callback and every later one
/// gets an error exactly once, `connected()` turns false and the `on_failure` handler runs. A
/// connection is not reused after that: make a new one (the owner decides when to retry).
///
/// Callbacks: all run on the connection's strand on a thread running the `io_context`, never
/// inside `command()`/`connect()` themselves. They may call back into the connection.
///
/// Thread safety: every member function may be called from any thread.
///
/// Lifetime: create with `std::make_shared`; outstanding operations keep the object alive, so
/// call `close()` to release it. The `io_context` must outlive it.
class connection : public std::enable_shared_from_this<connection> {
public:
    /// Completion of `connect()`: empty once ready for commands.
    using connect_handler = std::function<void(std::error_code)>;
    /// Completion of `command()`: an error code if no reply came (the reply is then nil);
    /// otherwise empty, with the reply (a Redis error reply has kind `error`).
    using reply_handler = std::function<void(std::error_code, reply)>;
    /// Receives Pub/Sub messages and replies that match no pending command.
    using push_handler = std::function<void(const reply&)>;
    /// Told once that the link broke (not after `close()`), before the pending callbacks run.
    using failure_handler = std::function<void(std::error_code)>;

    /// Makes an unconnected connection; nothing happens until `connect()`.
    connection(asio::io_context& io, url where);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// Opens the TCP connection (resolving the host asynchronously unless it is numeric), then
    /// sends `AUTH [user] password` when a password is set, `SELECT db` when db is not 0, and
    /// `PING`, pipelined. `done` runs once, when Redis has answered all of them: empty when
    /// every step succeeded; otherwise the socket or resolver error,
    /// `std::errc::permission_denied` when AUTH was refused, `std::errc::invalid_argument` when
    /// SELECT was refused or `std::errc::connection_refused` when PING got an error (NOAUTH,
    /// LOADING; `last_error()` then holds Redis's message). Commands issued after `connect()` and
    /// before `done` are queued behind AUTH and SELECT. Calling it twice fails the second with
    /// `asio::error::already_started`.
    void connect(connect_handler done);

    /// Sends one command (`argv[0]` is the command name; arguments are binary-safe).
    /// `done` runs exactly once: with the reply, or with `asio::error::not_connected` when the
    /// connection is not connecting/connected, or the error that broke the link.
    void command(std::vector<std::string> argv, reply_handler done);

    /// Sends a command already in RESP form (`*N\r\n$len\r\narg\r\n...`, one command, one
    /// reply), as `command()` does but without formatting on the strand: a caller on another
    /// thread formats it there, so the strand only appends bytes. See `format_command()`.
    void send_formatted(std::string formatted, reply_handler done);
    /// Sends one command that `format(std::string& out)` appends to `out` in RESP form (one
    /// command, one reply), as `send_formatted()` does but without a string of its own:
    /// `format` runs at once on the calling thread, under a lock that only other senders take,
    /// and writes straight into the batch for the strand. Commands sent this way from any
    /// number of threads reach the strand in one hand-off per batch, not one per command.
    template <class Format>
    void send_with(Format&& format, reply_handler done);

    /// Sets the handler for Pub/Sub messages (see the class comment). Set it before SUBSCRIBE.
    void on_push(push_handler handler);

    /// Sets the handler told when the link breaks. Set it before `connect()`.
    void on_failure(failure_handler handler);

    /// Bounds every wait: `connect()` must complete within `limit`, and each reply must arrive
    /// within `limit` of its command being queued; otherwise the link fails with
    /// `std::errc::timed_out`. A connection idle for `limit / 4` sends a PING (allowed in
    /// Pub/Sub mode too), so a dead or hung server is noticed within about `limit` even when
    /// nothing else is sent. Call before `connect()`; without it nothing times out.
    void set_timeout(std::chrono::milliseconds limit);

    /// Observes, per reply that answers a command, the time from the command being queued on
    /// the strand to its reply being parsed (the clock is read once per batch of replies read
    /// together). Call before `connect()`; without it nothing is timed.
    void set_roundtrip_histogram(std::shared_ptr<metric_histogram> histogram);

    /// Closes the socket; pending callbacks get `asio::error::operation_aborted`. Idempotent.
    void close();

    /// Closes as `close()` does, but before it returns: every pending callback runs now with
    /// `asio::error::operation_aborted`, and every command handed over by `send_with()` or
    /// `send_formatted()` and still waiting for the strand runs now with
    /// `asio::error::not_connected`. Call it only on the one thread that runs the
    /// `io_context` (from one of its handlers), so that nothing of the strand runs meanwhile:
    /// an owner closing on its own I/O thread must answer its callers before it returns.
    void close_now();

    /// True between a successful `connect()` and the first failure or `close()`.
    bool connected() const noexcept { return connected_.load(std::memory_order_acquire); }

    /// The message of the Redis error reply that failed AUTH or SELECT, or of a broken link.
    /// Call from a callback (it is written on the strand).
    const std::string& last_error() const noexcept { return last_error_; }

    /// Number of `async_write` operations started so far (shows commands being coalesced).
    std::size_t write_count() const noexcept { return writes_.load(std::memory_order_relaxed); }

private:
    enum class state { idle, connecting, ready, failed, closed };

    using clock = std::chrono::steady_clock;

    struct pending {
        reply_handler done;
        // Replies this command produces (SUBSCRIBE ch1 ch2 gets two confirmations); the
        // callback gets the last one, so it runs once the whole command has been confirmed.
        std::size_t replies = 1;
        clock::time_point queued;  // for the reply deadline
    };

    void start_connect(connect_handler done);
    void on_connected();
    void enqueue(const std::vector<std::string>& argv, reply_handler done, std::size_t replies);
    void enqueue_formatted(std::string_view formatted, reply_handler done, std::size_t replies);
    void drain_inbox();
    void arm_watchdog();
    void on_watchdog();
    void do_write();
    void do_read();
    void on_data(std::size_t n);
    void dispatch_reply(reply r, clock::time_point now);
    void fail(std::error_code ec, state next = state::failed);
    void finish_connect(std::error_code ec);

    asio::strand<asio::io_context::executor_type> strand_;
    asio::ip::tcp::socket socket_;
    asio::ip::tcp::resolver resolver_;
    asio::steady_timer watchdog_;
    url url_;
    std::chrono::milliseconds timeout_{0};         // 0: no deadlines, no idle PING
    std::shared_ptr<metric_histogram> roundtrip_;  // null: replies are not timed
    clock::time_point connect_started_;
    clock::time_point last_queued_;  // when the latest command was queued (idle PING)
    state state_ = state::idle;
    bool socket_open_ = false;  // TCP connected: writes may start
    bool subscribed_ = false;   // a SUBSCRIBE/PSUBSCRIBE was sent: messages go to on_push_
    bool write_in_flight_ = false;
    std::string out_;      // formatted commands waiting for the next write
    std::string writing_;  // the bytes of the write in flight
    std::deque<pending> pending_;
    std::size_t handshake_replies_ = 0;  // AUTH/SELECT replies still awaited
    connect_handler connect_done_;
    push_handler push_;
    failure_handler failed_;
    std::string last_error_;
    redisReader* reader_ = nullptr;
    std::array<char, std::size_t{16} * 1024> in_{};
    std::atomic<bool> connected_{false};
    std::atomic<std::size_t> writes_{0};

    // Commands from other threads wait here for the strand; `inbox_scheduled_` is true while a
    // drain is posted, so one post carries every command sent until it runs.
    std::mutex inbox_mutex_;
    std::string inbox_bytes_;
    std::vector<reply_handler> inbox_handlers_;
    bool inbox_scheduled_ = false;
    // The strand's side of the swap, kept so their capacity is reused batch after batch.
    std::string drained_bytes_;
    std::vector<reply_handler> drained_handlers_;
};

template <class Format>
void connection::send_with(Format&& format, reply_handler done) {
    {
        std::lock_guard<std::mutex> lock(inbox_mutex_);
        const std::size_t before = inbox_bytes_.size();
        try {
            format(inbox_bytes_);
            inbox_handlers_.push_back(std::move(done));
        } catch (...) {
            inbox_bytes_.resize(before);  // never half a command on the wire
            throw;
        }
        if (inbox_scheduled_) return;
        inbox_scheduled_ = true;
    }
    asio::post(strand_, [self = shared_from_this()] { self->drain_inbox(); });
}

/// Formats one command in RESP (an array of bulk strings), appending to `out`: what
/// `send_formatted()` takes. Binary-safe.
void format_command(std::string& out, std::initializer_list<std::string_view> argv);
/// Appends the RESP array header `*n\r\n`, for building a command argument by argument.
void format_array_header(std::string& out, std::size_t n);
/// Appends one RESP bulk string `$len\r\nbytes\r\n`.
void format_bulk(std::string& out, std::string_view bytes);

}  // namespace gatehouse::detail::redis
