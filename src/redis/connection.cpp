#include "redis/connection.hpp"

#include <algorithm>
#include <cctype>
#include <new>
#include <utility>

#include <hiredis/hiredis.h>
#include <asio/bind_executor.hpp>
#include <asio/connect.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

namespace gatehouse::detail::redis {

reply from_hiredis(const ::redisReply& r) {
    reply out;
    switch (r.type) {
        case REDIS_REPLY_STRING:
            out.kind = reply_kind::string;
            out.str.assign(r.str, r.len);
            break;
        case REDIS_REPLY_STATUS:
            out.kind = reply_kind::status;
            out.str.assign(r.str, r.len);
            break;
        case REDIS_REPLY_ERROR:
            out.kind = reply_kind::error;
            out.str.assign(r.str, r.len);
            break;
        case REDIS_REPLY_INTEGER:
            out.kind = reply_kind::integer;
            out.integer = r.integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.kind = reply_kind::array;
            out.elements.reserve(r.elements);
            // hiredis bounds the nesting depth of what it parses, so the recursion is bounded.
            for (std::size_t i = 0; i < r.elements; ++i)
                out.elements.push_back(from_hiredis(*r.element[i]));
            break;
        default: out.kind = reply_kind::nil; break;
    }
    return out;
}

namespace {

std::string upper(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

bool is_pubsub_message(const reply& r) {
    return r.kind == reply_kind::array && !r.elements.empty() &&
           (r.elements[0].is_text("message") || r.elements[0].is_text("pmessage"));
}

}  // namespace

void format_array_header(std::string& out, std::size_t n) {
    out += '*';
    out += std::to_string(n);
    out += "\r\n";
}

void format_bulk(std::string& out, std::string_view bytes) {
    out += '$';
    out += std::to_string(bytes.size());
    out += "\r\n";
    out.append(bytes.data(), bytes.size());
    out += "\r\n";
}

void format_command(std::string& out, std::initializer_list<std::string_view> argv) {
    format_array_header(out, argv.size());
    for (auto a : argv) format_bulk(out, a);
}

connection::connection(asio::io_context& io, url where)
    : strand_(asio::make_strand(io)),
      socket_(io),
      resolver_(io),
      watchdog_(io),
      url_(std::move(where)) {
    reader_ = redisReaderCreate();
    if (reader_ == nullptr) throw std::bad_alloc();
}

connection::~connection() { redisReaderFree(reader_); }

void connection::connect(connect_handler done) {
    asio::post(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
        self->start_connect(std::move(done));
    });
}

void connection::start_connect(connect_handler done) {
    if (state_ != state::idle) {
        done(asio::error::already_started);
        return;
    }
    state_ = state::connecting;
    connect_done_ = std::move(done);
    connect_started_ = clock::now();
    last_queued_ = connect_started_;
    arm_watchdog();

    // AUTH and SELECT go first in the output buffer, so they are pipelined in the first write
    // together with any command issued while the TCP connection is being set up.
    auto handshake = [this](std::errc refused) {
        return [this, refused](std::error_code ec, const reply& r) {
            if (ec) return;  // the link failed: fail() reports it to connect_done_
            if (r.is_error()) {
                last_error_ = r.str;
                fail(std::make_error_code(refused));
                return;
            }
            if (--handshake_replies_ == 0) finish_connect({});
        };
    };
    if (!url_.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!url_.user.empty()) auth.push_back(url_.user);
        auth.push_back(url_.password);
        ++handshake_replies_;
        enqueue(auth, handshake(std::errc::permission_denied), 1);
    }
    if (url_.db != 0) {
        ++handshake_replies_;
        enqueue({"SELECT", std::to_string(url_.db)}, handshake(std::errc::invalid_argument), 1);
    }
    // A TCP connect proves only that the kernel accepted it (a hung server's kernel still
    // does): the connection counts as up once Redis itself answered. PING also turns a missing
    // password (NOAUTH) or a server still loading its data into a failed connect.
    ++handshake_replies_;
    enqueue({"PING"}, handshake(std::errc::connection_refused), 1);

    auto self = shared_from_this();
    std::error_code not_numeric;
    auto address = asio::ip::make_address(url_.host, not_numeric);
    if (!not_numeric) {
        socket_.async_connect(asio::ip::tcp::endpoint(address, url_.port),
                              asio::bind_executor(strand_, [self](std::error_code ec) {
                                  if (self->state_ != state::connecting) return;
                                  if (ec) return self->fail(ec);
                                  self->on_connected();
                              }));
        return;
    }
    resolver_.async_resolve(
        url_.host, std::to_string(url_.port),
        asio::bind_executor(strand_, [self](std::error_code ec,
                                            const asio::ip::tcp::resolver::results_type& results) {
            if (self->state_ != state::connecting) return;
            if (ec) return self->fail(ec);
            asio::async_connect(
                self->socket_, results,
                asio::bind_executor(self->strand_, [self](std::error_code connect_ec,
                                                          const asio::ip::tcp::endpoint&) {
                    if (self->state_ != state::connecting) return;
                    if (connect_ec) return self->fail(connect_ec);
                    self->on_connected();
                }));
        }));
}

void connection::on_connected() {
    socket_open_ = true;
    std::error_code ignored;
    // Commands are small and latency matters more than packet count; coalescing already
    // happens in our output buffer.
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    do_read();
    do_write();
}

void connection::finish_connect(std::error_code ec) {
    if (!connect_done_) return;
    if (!ec) {
        state_ = state::ready;
        connected_.store(true, std::memory_order_release);
    }
    auto done = std::move(connect_done_);
    connect_done_ = nullptr;
    done(ec);
}

void connection::command(std::vector<std::string> argv, reply_handler done) {
    asio::post(strand_, [self = shared_from_this(), argv = std::move(argv),
                         done = std::move(done)]() mutable {
        if (self->state_ != state::connecting && self->state_ != state::ready) {
            done(asio::error::not_connected, reply{});
            return;
        }
        if (argv.empty()) {
            done(std::make_error_code(std::errc::invalid_argument), reply{});
            return;
        }
        std::size_t replies = 1;
        std::string name = upper(argv[0]);
        if (name == "SUBSCRIBE" || name == "PSUBSCRIBE") {
            self->subscribed_ = true;
            replies = std::max<std::size_t>(1, argv.size() - 1);
        } else if ((name == "UNSUBSCRIBE" || name == "PUNSUBSCRIBE") && argv.size() > 1) {
            replies = argv.size() - 1;
        }
        self->enqueue(argv, std::move(done), replies);
        self->do_write();
    });
}

void connection::send_formatted(std::string formatted, reply_handler done) {
    send_with([&formatted](std::string& out) { out += formatted; }, std::move(done));
}

void connection::drain_inbox() {
    drained_bytes_.clear();
    drained_handlers_.clear();
    {
        std::lock_guard<std::mutex> lock(inbox_mutex_);
        drained_bytes_.swap(inbox_bytes_);
        drained_handlers_.swap(inbox_handlers_);
        inbox_scheduled_ = false;
    }
    if (state_ != state::connecting && state_ != state::ready) {
        // Out of the member first: a handler may close its owner, which drains again
        // (close_now) and would clear the vector this loop walks.
        std::vector<reply_handler> refused;
        refused.swap(drained_handlers_);
        for (auto& done : refused) done(asio::error::not_connected, reply{});
        return;
    }
    out_ += drained_bytes_;
    last_queued_ = clock::now();
    for (auto& done : drained_handlers_)
        pending_.push_back(pending{std::move(done), 1, last_queued_});
    do_write();
}

void connection::enqueue_formatted(std::string_view formatted, reply_handler done,
                                   std::size_t replies) {
    out_.append(formatted.data(), formatted.size());
    last_queued_ = clock::now();
    pending_.push_back(pending{std::move(done), replies, last_queued_});
}

void connection::enqueue(const std::vector<std::string>& argv, reply_handler done,
                         std::size_t replies) {
    std::vector<const char*> args;
    std::vector<std::size_t> lengths;
    args.reserve(argv.size());
    lengths.reserve(argv.size());
    for (const auto& a : argv) {
        args.push_back(a.data());
        lengths.push_back(a.size());
    }
    char* formatted = nullptr;
    int len = redisFormatCommandArgv(&formatted, static_cast<int>(args.size()), args.data(),
                                     lengths.data());
    if (len < 0 || formatted == nullptr) {
        done(std::make_error_code(std::errc::not_enough_memory), reply{});
        return;
    }
    enqueue_formatted(std::string_view(formatted, static_cast<std::size_t>(len)), std::move(done),
                      replies);
    redisFreeCommand(formatted);
}

void connection::set_timeout(std::chrono::milliseconds limit) {
    asio::post(strand_, [self = shared_from_this(), limit] { self->timeout_ = limit; });
}

void connection::set_roundtrip_histogram(std::shared_ptr<metric_histogram> histogram) {
    asio::post(strand_, [self = shared_from_this(), h = std::move(histogram)]() mutable {
        self->roundtrip_ = std::move(h);
    });
}

void connection::arm_watchdog() {
    if (timeout_.count() <= 0) return;
    // A quarter of the deadline: a late reply is noticed at most 25% after it fell due, and an
    // idle link is PINGed often enough that a dead server shows within the deadline.
    const auto tick = std::max(timeout_ / 4, std::chrono::milliseconds{1});
    watchdog_.expires_after(tick);
    watchdog_.async_wait(
        asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
            if (ec || (self->state_ != state::connecting && self->state_ != state::ready)) return;
            self->on_watchdog();
        }));
}

void connection::on_watchdog() {
    const auto now = clock::now();
    const bool connect_overdue = state_ == state::connecting && now - connect_started_ > timeout_;
    const bool reply_overdue = !pending_.empty() && now - pending_.front().queued > timeout_;
    if (connect_overdue || reply_overdue) {
        last_error_ = connect_overdue ? "connect timed out" : "reply timed out";
        fail(std::make_error_code(std::errc::timed_out));
        return;
    }
    if (state_ == state::ready && pending_.empty() && now - last_queued_ >= timeout_ / 4) {
        // The reply is discarded: only its absence matters (the deadline above).
        enqueue(
            {"PING"}, [](std::error_code, const reply&) {}, 1);
        do_write();
    }
    arm_watchdog();
}

void connection::do_write() {
    if (!socket_open_ || write_in_flight_ || out_.empty()) return;
    if (state_ != state::connecting && state_ != state::ready) return;
    // Everything queued since the last write goes out in one async_write: under load many
    // commands share one syscall, and order on the wire is the order of command() calls.
    writing_.clear();
    writing_.swap(out_);
    write_in_flight_ = true;
    writes_.fetch_add(1, std::memory_order_relaxed);
    asio::async_write(
        socket_, asio::buffer(writing_),
        asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec, std::size_t) {
            self->write_in_flight_ = false;
            if (self->state_ != state::connecting && self->state_ != state::ready) return;
            if (ec) return self->fail(ec);
            self->do_write();
        }));
}

void connection::do_read() {
    socket_.async_read_some(
        asio::buffer(in_), asio::bind_executor(strand_, [self = shared_from_this()](
                                                            std::error_code ec, std::size_t n) {
            if (self->state_ != state::connecting && self->state_ != state::ready) return;
            if (ec) return self->fail(ec);
            self->on_data(n);
            if (self->state_ == state::connecting || self->state_ == state::ready) self->do_read();
        }));
}

void connection::on_data(std::size_t n) {
    if (redisReaderFeed(reader_, in_.data(), n) != REDIS_OK) {
        last_error_ = reader_->errstr;
        fail(std::make_error_code(std::errc::bad_message));
        return;
    }
    // One clock read for every reply of this read: they all arrived together.
    const auto now = roundtrip_ ? clock::now() : clock::time_point();
    // Bounded by the bytes just fed: each iteration consumes one complete reply.
    for (;;) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
            last_error_ = reader_->errstr;
            fail(std::make_error_code(std::errc::bad_message));
            return;
        }
        if (raw == nullptr) return;
        reply r = from_hiredis(*static_cast<const redisReply*>(raw));
        freeReplyObject(raw);
        dispatch_reply(std::move(r), now);
        if (state_ != state::connecting && state_ != state::ready) return;
    }
}

void connection::dispatch_reply(reply r, clock::time_point now) {
    if ((subscribed_ && is_pubsub_message(r)) || pending_.empty()) {
        if (!push_) return;
        // Called through a copy: the handler may close this connection (its owner closing from
        // inside a delivery), which drops push_ while it runs.
        const auto push = push_;
        push(r);
        return;
    }
    auto& front = pending_.front();
    if (--front.replies > 0) return;  // an intermediate SUBSCRIBE confirmation
    if (roundtrip_) roundtrip_->observe(now - front.queued);
    auto done = std::move(front.done);
    pending_.pop_front();
    done({}, std::move(r));
}

void connection::fail(std::error_code ec, state next) {
    if (next == state::closed) {
        // The owner is done with it: drop its handlers, which may hold the owner.
        failed_ = nullptr;
        push_ = nullptr;
    }
    if (state_ == state::failed || state_ == state::closed) {
        state_ = next == state::closed ? state::closed : state_;
        return;
    }
    state_ = next;
    connected_.store(false, std::memory_order_release);
    socket_open_ = false;
    std::error_code ignored;
    resolver_.cancel();
    watchdog_.cancel();
    socket_.close(ignored);
    out_.clear();
    // Taken out first: the callbacks may issue new commands, which then fail on their own.
    auto orphans = std::move(pending_);
    pending_.clear();
    finish_connect(ec);
    // The owner hears of the failure before the commands do, so that whoever gets an error
    // from a callback already sees the connection as down (redis_bus's /ready, its retries).
    if (next == state::failed && failed_) {
        auto told = std::move(failed_);
        failed_ = nullptr;
        told(ec);
    }
    for (auto& p : orphans) p.done(ec, reply{});
}

void connection::on_push(push_handler handler) {
    asio::post(strand_, [self = shared_from_this(), handler = std::move(handler)]() mutable {
        self->push_ = std::move(handler);
    });
}

void connection::on_failure(failure_handler handler) {
    asio::post(strand_, [self = shared_from_this(), handler = std::move(handler)]() mutable {
        self->failed_ = std::move(handler);
    });
}

void connection::close_now() {
    fail(asio::error::operation_aborted, state::closed);
    drain_inbox();  // the state is closed: each waiting command is answered not_connected
}

void connection::close() {
    asio::post(strand_, [self = shared_from_this()] {
        self->fail(asio::error::operation_aborted, state::closed);
    });
}

}  // namespace gatehouse::detail::redis
