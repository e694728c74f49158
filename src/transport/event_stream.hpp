#pragma once
// GET /sse/player over websocketpp: websocketpp answers an HTTP request with one response, so
// an event stream takes the connection over. The request was read by websocketpp; the
// response is deferred (which also stops websocketpp's handshake timer), and from then on
// this session writes the response head and the events on the connection's socket itself,
// on the connection's strand. websocketpp does nothing with a deferred connection, and when
// the stream ends the socket is closed and the connection released without ever answering.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <asio/bind_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include "gatehouse/connection.hpp"
#include "gateway/session.hpp"

namespace gatehouse::detail {

template <class ConnectionPtr>
class event_stream final : public session,
                           public std::enable_shared_from_this<event_stream<ConnectionPtr>> {
public:
    // Called once when the stream has ended (client gone, closed, write failed).
    using ended_handler = std::function<void(const std::shared_ptr<session>&)>;

    event_stream(session_setup setup, ConnectionPtr con, ended_handler ended)
        : session(std::move(setup), 0, 0), con_(std::move(con)), ended_(std::move(ended)) {}

    // Writes the response head, then starts watching for the client going away. `opened` runs
    // once the head is on its way (the stream may then be routed to).
    void start(std::function<void()> opened) {
        const auto self = this->shared_from_this();
        asio::post(*con_->get_strand(), [self, opened = std::move(opened)] {
            // No Content-Length and no chunking: the body is the events until the connection
            // closes (RFC 9112 section 6.3), which is how EventSource clients read a stream.
            self->enqueue(
                std::make_shared<const std::string>("HTTP/1.1 200 OK\r\n"
                                                    "Content-Type: text/event-stream\r\n"
                                                    "Cache-Control: no-cache\r\n"
                                                    "X-Accel-Buffering: no\r\n"
                                                    "Connection: close\r\n\r\n"));
            self->watch_reads();
            opened();
        });
    }

    send_status send(const shared_frame& frame) override {
        if (!frame.bytes) return send_status::closed;
        return enqueue(frame.bytes) ? send_status::queued : send_status::closed;
    }

    std::size_t buffered_bytes() const noexcept override {
        return buffered_.load(std::memory_order_relaxed);
    }

    // The stream has no close frame: queued events are written, then the socket is closed.
    void close(close_code, std::string_view) override {
        const auto self = this->shared_from_this();
        asio::post(*con_->get_strand(), [self] {
            self->closing_ = true;
            if (!self->writing_) self->end();
        });
    }

    // The keep-alive: an SSE comment line, ignored by clients, that also shows whether the
    // client is still there. It counts as activity so the idle timeout, which is for clients
    // that stopped answering pings, never applies to a stream the client cannot write to.
    bool ping() override {
        static const auto comment = std::make_shared<const std::string>(": keep-alive\n\n");
        if (!enqueue(comment)) return false;
        touch(now_ms());
        return true;
    }

private:
    static std::int64_t now_ms() noexcept {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

    bool enqueue(std::shared_ptr<const std::string> bytes) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (ended_flag_) return false;
            buffered_.fetch_add(bytes->size(), std::memory_order_relaxed);
            queue_.push_back(std::move(bytes));
        }
        const auto self = this->shared_from_this();
        asio::post(*con_->get_strand(), [self] { self->write_some(); });
        return true;
    }

    // On the strand. Everything queued leaves in one gathered write.
    void write_some() {
        if (writing_ || done_) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (queue_.empty()) return;
            in_flight_.assign(queue_.begin(), queue_.end());
            queue_.clear();
        }
        std::vector<asio::const_buffer> buffers;
        buffers.reserve(in_flight_.size());
        std::size_t bytes = 0;
        for (const auto& b : in_flight_) {
            buffers.emplace_back(asio::buffer(*b));
            bytes += b->size();
        }
        writing_ = true;
        const auto self = this->shared_from_this();
        asio::async_write(con_->get_socket(), buffers,
                          asio::bind_executor(
                              *con_->get_strand(), [self, bytes](std::error_code ec, std::size_t) {
                                  self->writing_ = false;
                                  self->in_flight_.clear();
                                  self->buffered_.fetch_sub(bytes, std::memory_order_relaxed);
                                  if (ec) return self->end();
                                  self->write_some();
                                  if (self->closing_ && !self->writing_) {
                                      self->end();
                                  }
                              }));
    }

    // A client sends nothing on an event stream; a read completes when it goes away.
    void watch_reads() {
        const auto self = this->shared_from_this();
        con_->get_socket().async_read_some(
            asio::buffer(read_buffer_),
            asio::bind_executor(*con_->get_strand(), [self](std::error_code ec, std::size_t) {
                if (ec) return self->end();
                self->watch_reads();  // stray bytes are ignored
            }));
    }

    // On the strand; once.
    void end() {
        if (done_) return;
        done_ = true;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ended_flag_ = true;
            std::size_t unwritten = 0;
            for (const auto& b : queue_) unwritten += b->size();
            queue_.clear();
            buffered_.fetch_sub(unwritten, std::memory_order_relaxed);
        }
        std::error_code ignored;
        con_->get_raw_socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        con_->get_raw_socket().close(ignored);
        auto ended = std::move(ended_);
        if (ended) ended(this->shared_from_this());
        // Handlers still pending (the read, a write) hold this session and, through it, the
        // connection; they complete with errors now that the socket is closed, and release it.
    }

    ConnectionPtr con_;
    ended_handler ended_;
    std::mutex mutex_;  // guards queue_ and ended_flag_ (send() comes from any thread)
    std::deque<std::shared_ptr<const std::string>> queue_;
    bool ended_flag_ = false;
    std::atomic<std::size_t> buffered_{0};
    // On the strand only.
    std::vector<std::shared_ptr<const std::string>> in_flight_;
    bool writing_ = false;
    bool closing_ = false;
    bool done_ = false;
    std::array<char, 256> read_buffer_{};
};

}  // namespace gatehouse::detail
