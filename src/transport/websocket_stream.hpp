#pragma once
// The WebSocket side of one connection (RFC 6455), once the upgrade is answered: the client's
// frames in (messages to the handler, pings answered, the close handshake) and this side's
// frames out (data frames, pings, its one close frame). The frame rules themselves are in
// ws_protocol.hpp, without I/O.
//
// A base of server_connection (CRTP): `Connection` gives it the stream's handler, the
// options, whether the connection is still open, and its writer (connection_writer.hpp).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "gatehouse/connection.hpp"
#include "transport/output_queue.hpp"
#include "transport/ws_protocol.hpp"

namespace gatehouse::detail {

template <class Connection>
class websocket_stream {
protected:
    // The queue item of a data frame: its header beside the shared payload.
    static out_item data_frame(const shared_frame& frame) {
        out_item item;
        item.bytes = frame.bytes;
        item.header_len = static_cast<std::uint8_t>(encode_frame_header(
            item.header, frame.type == frame_type::text ? ws_opcode::text : ws_opcode::binary,
            frame.bytes->size()));
        return item;
    }

    // Reads frames from `input` until it is used up; false when reading must stop (the
    // stream is closing). On the strand.
    bool consume_frames(std::string_view input) {
        // Every buffer the connection reads into is this thread's read buffer or the
        // connection's own, never a caller's constant: the reader may unmask in place (no copy
        // for a whole frame that arrived in one read).
        char* data = const_cast<char*>(input.data());
        std::size_t size = input.size();
        // Until `none`, even with no bytes left, so the reader frees its last event's buffer.
        while (self().is_open()) {
            std::size_t used = 0;
            if (!reader_) {
                ws_reader_options reader_options;
                reader_options.max_message_bytes = self().options().max_message_bytes;
                reader_options.deflate = deflate_;
                reader_ = std::make_unique<ws_reader>(reader_options);
            }
            const ws_event event = reader_->next(data, size, used);
            data += used;
            size -= used;
            auto* handler = self().handler_.get();
            switch (event.type) {
                case ws_event::kind::none:
                    // Between messages an idle connection keeps no reader (it is made again
                    // when the next bytes arrive): about 150 bytes per idle connection.
                    if (reader_->idle()) reader_.reset();
                    return true;
                case ws_event::kind::message:
                    // After this side sent its close frame, data is read and dropped
                    // (RFC 6455 section 5.5.1) until the peer's close arrives.
                    if (!close_sent_.load(std::memory_order_acquire) && handler) {
                        handler->on_message(event.text, event.payload);
                    }
                    break;
                case ws_event::kind::ping:
                    send_control(ws_opcode::pong, event.payload);
                    if (handler) handler->on_activity();
                    break;
                case ws_event::kind::pong:
                    if (handler) handler->on_activity();
                    break;
                case ws_event::kind::close:
                    // Echo the peer's code (RFC 6455 section 5.5.1), none when it sent none.
                    send_close_frame(event.close_code == 1005 ? 0 : event.close_code, {});
                    self().close_after_flush();
                    return false;
                case ws_event::kind::fail:
                    send_close_frame(event.close_code, event.reason);
                    self().close_after_flush();
                    return false;
            }
        }
        return false;
    }

    bool send_control(ws_opcode op, std::string_view payload) {
        out_item item;
        item.bytes = std::make_shared<const std::string>(payload);
        item.header_len =
            static_cast<std::uint8_t>(encode_frame_header(item.header, op, payload.size()));
        return self().enqueue(std::move(item));
    }

    // Queues this side's close frame once (code 0: an empty close payload). From any thread.
    void send_close_frame(std::uint16_t code, std::string_view reason) {
        std::lock_guard<std::mutex> lock(self().out_mutex_);
        send_close_frame_locked(code, reason);
    }

    void send_close_frame_locked(std::uint16_t code, std::string_view reason) {
        auto& c = self();
        if (close_sent_.load(std::memory_order_relaxed) || c.output_closed_) return;
        close_sent_.store(true, std::memory_order_release);
        close_code_sent_.store(code == 0 ? 1005 : code, std::memory_order_relaxed);
        out_item item;
        item.bytes = std::make_shared<const std::string>(code == 0 ? std::string()
                                                                   : close_payload(code, reason));
        item.header_len = static_cast<std::uint8_t>(
            encode_frame_header(item.header, ws_opcode::close, item.bytes->size()));
        c.push_locked(std::move(item));
        // Nothing may follow a close frame.
        c.output_closed_ = true;
        // The peer has close_timeout to answer with its own.
        c.set_deadline(steady_now_ms() + c.options().close_timeout.count());
        c.flush_locked();
    }

    // The close code for the handler: the one this side sent or echoed; 1006 without a
    // closing handshake.
    std::uint16_t close_code_for_handler() const noexcept {
        return close_sent_.load(std::memory_order_acquire)
                   ? close_code_sent_.load(std::memory_order_relaxed)
                   : std::uint16_t{1006};
    }

    std::unique_ptr<ws_reader> reader_;  // while a frame or message is partial
    bool deflate_ = false;               // permessage-deflate was negotiated

private:
    Connection& self() noexcept { return static_cast<Connection&>(*this); }

    std::atomic<bool> close_sent_{false};
    std::atomic<std::uint16_t> close_code_sent_{0};
};

}  // namespace gatehouse::detail
