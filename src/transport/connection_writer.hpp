#pragma once
// The write side of one connection: the corked write path and the one bound on everything
// queued. Senders on any thread take `out_mutex_` and append to the queue; frames are never
// written one syscall each. On the connection's strand, what a read batch provokes (acks,
// errors, pongs) leaves in one gathered write when the batch ends (a cork, as in uWebSockets);
// from another thread (fan-out, bus callbacks), the first frame of a batch posts one write to
// the strand and the frames queued behind it ride along, so a hand-off is paid per batch, not
// per frame, and fan-out is written by the I/O threads. Only what the kernel would not take
// waits for writability. A TLS stream is not safe for a read and a write at once, so its
// writes always go through the strand.
//
// A base of server_connection (CRTP): `Connection` gives it the socket, the strand, the
// options, whether the bound applies and what to do past it, and the connection's ending (linger,
// finish) and reading (arm_read).

#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

#include <asio/bind_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include "common/clock.hpp"
#include "gatehouse/connection.hpp"
#include "transport/connection_socket.hpp"
#include "transport/output_queue.hpp"

namespace gatehouse::detail {

// What only a TLS connection's writer holds: the items of the asynchronous write in flight.
template <bool Tls>
struct tls_write_state {};

template <>
struct tls_write_state<true> {
    std::vector<out_item> in_flight_;
    bool writing_ = false;
};

template <class Connection, bool Tls>
class connection_writer : private tls_write_state<Tls> {
public:
    // Bytes queued and not yet written to the socket; from any thread.
    std::size_t buffered() const noexcept { return queue_.buffered(); }

protected:
    // Queues `item` and writes it (now, at the end of the read batch, or on the strand).
    // False when nothing more is written, or when the item would pass the bound (which then
    // ends the stream). From any thread.
    bool enqueue(out_item item) {
        std::lock_guard<std::mutex> lock(out_mutex_);
        if (!admit_locked(item)) return false;
        push_locked(std::move(item));
        flush_locked();
        return true;
    }

    // enqueue() as the newest value of `key` (delivery class `latest`, docs/protocol.md 6.6); with
    // `replace`, the previous value still wholly unwritten is withdrawn first, so its bytes
    // do not count against the bound. From any thread.
    send_status enqueue_keyed(out_item item, std::string_view key, bool replace) {
        std::lock_guard<std::mutex> lock(out_mutex_);
        if (output_closed_ || broken_) return send_status::closed;
        const bool replaced = replace && queue_.withdraw(key);
        if (!admit_locked(item)) return send_status::closed;
        queue_.push_keyed(std::move(item), key);
        flush_locked();
        return replaced ? send_status::coalesced : send_status::queued;
    }

    void push_locked(out_item item) { queue_.push(std::move(item)); }

    // False when nothing more is written, or when `item` would pass the one bound on
    // everything queued (docs/protocol.md 6.6), which then ends the stream.
    bool admit_locked(const out_item& item) {
        if (output_closed_ || broken_) return false;
        const auto bound = self().options().max_queued_bytes;
        if (bound != 0 && self().output_bounded() && queue_.buffered() + item.size() > bound) {
            self().output_overflow_locked();
            return false;
        }
        return true;
    }

    // Nothing more will be queued: the connection ends once what is queued is written.
    void end_output() {
        std::lock_guard<std::mutex> lock(out_mutex_);
        end_output_locked();
    }

    void end_output_locked() {
        if (output_closed_) return;
        output_closed_ = true;
        close_after_flush_locked();
    }

    // Once what is queued is written, the connection lingers and ends (output may still be
    // queued until then: a WebSocket's close frame).
    void close_after_flush() {
        std::lock_guard<std::mutex> lock(out_mutex_);
        close_after_flush_locked();
    }

    void close_after_flush_locked() {
        if (close_after_flush_) return;
        close_after_flush_ = true;
        self().set_deadline(steady_now_ms() + self().options().close_timeout.count());
        if (queue_.empty() && !writing()) post_linger();
    }

    // On the strand: a read batch begins; sends from the strand wait for its end.
    void cork() noexcept { corked_ = true; }

    // The end of a read batch: write what its messages queued.
    void uncork() {
        corked_ = false;
        if (!cork_pending_) return;
        cork_pending_ = false;
        std::lock_guard<std::mutex> lock(out_mutex_);
        if (!write_armed_ && !broken_) write_plain_locked();
    }

    // True (and reading paused) while more than read_pause_bytes wait unwritten. The writer
    // that drains the queue below the mark resumes reading; the exchange on read_paused_
    // makes exactly one of the two sides do it when they race. On the strand.
    bool output_backlogged() {
        const auto mark = self().options().read_pause_bytes;
        if (mark == 0 || queue_.buffered_acquire() < mark) return false;
        read_paused_.store(true, std::memory_order_release);
        if (queue_.buffered_acquire() < mark &&
            read_paused_.exchange(false, std::memory_order_acq_rel)) {
            return false;
        }
        return true;
    }

    // Nothing more will be written: what is queued is dropped and un-counted.
    void drop_output_locked() {
        broken_ = true;
        output_closed_ = true;
        queue_.drop();
    }

    // Writes what is queued, or arranges for it to be written.
    void flush_locked() {
        if constexpr (Tls) {
            if (this->writing_ || flush_posted_ || queue_.empty()) return;
            flush_posted_ = true;
            asio::post(self().strand_,
                       [c = self().shared_from_this()] { c->connection_writer::tls_write(); });
        } else {
            if (write_armed_ || broken_) return;
            if (self().strand_.running_in_this_thread()) {
                // On the connection's own strand: inside a read batch, what its messages
                // provoke (acks, errors, pongs) leaves in one write at the batch's end (a cork,
                // as uWebSockets does); otherwise it goes now.
                if (corked_) {
                    cork_pending_ = true;
                    return;
                }
                write_plain_locked();
                return;
            }
            // From another thread (the update listener's fan-out, a bus callback): one hand-off
            // per batch, not per frame. Everything queued until the strand runs leaves in one
            // gathered write, on the connection's own I/O thread, so a fan-out is spread over
            // the I/O threads instead of being written by the thread that routes it.
            if (flush_posted_) return;
            flush_posted_ = true;
            asio::post(self().strand_,
                       [c = self().shared_from_this()] { c->connection_writer::posted_flush(); });
        }
    }

    // The handshake's burst is being queued: the queue's memory goes once it is written.
    void release_queue_when_written() {
        std::lock_guard<std::mutex> lock(out_mutex_);
        queue_.release_when_written();
    }

    std::mutex out_mutex_;
    output_queue queue_;
    // Nothing more may be queued (a close frame, or a response that ends the connection, is).
    bool output_closed_ = false;

private:
    Connection& self() noexcept { return static_cast<Connection&>(*this); }

    bool writing() const noexcept {
        if constexpr (Tls) {
            return this->writing_;
        } else {
            return false;
        }
    }

    void post_linger() {
        asio::post(self().strand_, [c = self().shared_from_this()] { c->linger(); });
    }

    void posted_flush() {
        std::lock_guard<std::mutex> lock(out_mutex_);
        flush_posted_ = false;
        if (!write_armed_ && !broken_) write_plain_locked();
    }

    // Plain sockets: non-blocking gathered sends until the queue is empty or the kernel's
    // buffer is full.
    void write_plain_locked() {
        constexpr std::size_t max_buffers = 64;
        std::array<iovec, max_buffers> buffers{};
        while (!queue_.all_written()) {
            msghdr message{};
            message.msg_iov = buffers.data();
            message.msg_iovlen = queue_.gather(buffers.data(), max_buffers);
            const ssize_t n = ::sendmsg(self().socket_.native_handle(), &message, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    arm_write_locked();
                } else if (errno != EINTR) {
                    fail_output_locked();
                    return;
                }
                if (errno != EINTR) return;
                continue;
            }
            resume_reading_if_drained(queue_.written(static_cast<std::size_t>(n)));
        }
        queue_.clear_written();
        if (close_after_flush_) post_linger();
    }

    // Bytes were written and `left` remain: resume reading if it was paused for a backlog
    // that has now drained.
    void resume_reading_if_drained(std::size_t left) {
        const auto mark = self().options().read_pause_bytes;
        if (mark != 0 && left < mark && read_paused_.load(std::memory_order_acquire) &&
            read_paused_.exchange(false, std::memory_order_acq_rel)) {
            asio::post(self().strand_, [c = self().shared_from_this()] { c->arm_read(); });
        }
    }

    void arm_write_locked() {
        write_armed_ = true;
        self().lowest_layer().async_wait(
            transport_socket::wait_write,
            asio::bind_executor(self().strand_,
                                [c = self().shared_from_this()](std::error_code ec) {
                                    auto& w = static_cast<connection_writer&>(*c);
                                    std::lock_guard<std::mutex> lock(w.out_mutex_);
                                    w.write_armed_ = false;
                                    if (ec) {
                                        w.fail_output_locked();
                                        return;
                                    }
                                    w.flush_locked();
                                }));
    }

    // TLS: one asio::async_write at a time, on the strand.
    void tls_write() {
        std::vector<asio::const_buffer> buffers;
        std::size_t bytes = 0;
        {
            std::lock_guard<std::mutex> lock(out_mutex_);
            flush_posted_ = false;
            if (this->writing_ || broken_ || self().is_closed()) return;
            if (queue_.empty()) return;
            queue_.take(this->in_flight_);
            for (const auto& item : this->in_flight_) {
                if (item.header_len > 0) {
                    buffers.emplace_back(asio::buffer(item.header, item.header_len));
                }
                buffers.emplace_back(asio::buffer(*item.bytes));
                bytes += item.size();
            }
            this->writing_ = true;
        }
        asio::async_write(
            self().socket_, buffers,
            asio::bind_executor(self().strand_, [c = self().shared_from_this(), bytes](
                                                    std::error_code ec, std::size_t) {
                auto& w = static_cast<connection_writer&>(*c);
                std::lock_guard<std::mutex> lock(w.out_mutex_);
                w.writing_ = false;
                w.in_flight_.clear();
                w.resume_reading_if_drained(w.queue_.uncount(bytes));
                if (ec) {
                    w.fail_output_locked();
                    return;
                }
                if (!w.queue_.empty()) {
                    w.flush_locked();
                } else if (w.close_after_flush_) {
                    w.post_linger();
                }
            }));
    }

    // A write failed: the strand closes the connection.
    void fail_output_locked() {
        drop_output_locked();
        asio::post(self().strand_, [c = self().shared_from_this()] { c->finish(); });
    }

    bool write_armed_ = false;
    bool close_after_flush_ = false;
    bool broken_ = false;
    bool flush_posted_ = false;  // a write is posted to the strand
    bool corked_ = false;        // inside a read batch (strand only)
    bool cork_pending_ = false;  // and something waits for its end
    std::atomic<bool> read_paused_{false};
};

}  // namespace gatehouse::detail
