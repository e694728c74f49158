#include "websocket_client.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <utility>

#include "handshake_key.hpp"

namespace gh_client {

namespace {

constexpr std::size_t max_handshake_bytes = 16384;
constexpr int max_reads_per_tick = 64;  // bounds one tick's work however fast bytes arrive

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

void websocket_client::open(std::string_view host, std::string_view path,
                            std::string_view subprotocol) {
    key_ = make_websocket_key();
    subprotocol_ = std::string(subprotocol);
    out_ = "GET " + std::string(path) + " HTTP/1.1\r\nHost: " + std::string(host) +
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: " +
           key_ + "\r\n";
    if (!subprotocol_.empty()) out_ += "Sec-WebSocket-Protocol: " + subprotocol_ + "\r\n";
    out_ += "\r\n";
    state_ = state::handshaking;
    flush();
}

void websocket_client::tick() {
    if (state_ == state::idle || state_ == state::closed) return;
    flush();
    char buffer[16384];
    for (int i = 0; i < max_reads_per_tick && state_ != state::closed; ++i) {
        std::size_t n = 0;
        const io_result r = transport_.receive(buffer, sizeof buffer, n);
        if (r == io_result::would_block) break;
        if (r != io_result::ok) {
            finish(1006, "the connection was lost");
            return;
        }
        on_bytes(buffer, n);
    }
    flush();
    if (state_ == state::closing && std::chrono::steady_clock::now() > close_deadline_) {
        finish(1006, "no close frame from the server");
    }
}

bool websocket_client::send(bool text, std::string_view data) {
    if (state_ != state::open) return false;
    send_frame(text ? opcode::text : opcode::binary, data);
    return true;
}

void websocket_client::close(std::uint16_t code, std::string_view reason) {
    if (state_ == state::handshaking || state_ == state::idle) {
        finish(code, "closed before the handshake completed");
        return;
    }
    if (state_ != state::open) return;
    send_frame(opcode::close, close_payload(code, reason));
    state_ = state::closing;
    close_deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(2);
}

void websocket_client::on_bytes(const char* data, std::size_t size) {
    if (state_ != state::handshaking) {
        reader_.feed(data, size);
        process_events();
        return;
    }
    handshake_.append(data, size);
    read_handshake();
}

void websocket_client::read_handshake() {
    const auto end = handshake_.find("\r\n\r\n");
    if (end == std::string::npos) {
        if (handshake_.size() > max_handshake_bytes) finish(1006, "oversized upgrade answer");
        return;
    }
    const std::string_view head(handshake_.data(), end);
    // "HTTP/1.1 101 Switching Protocols"
    const auto space = head.find(' ');
    handshake_status_ = space == std::string_view::npos ? 0 : std::atoi(head.data() + space + 1);
    bool upgrade = false, connection = false, accept = false, protocol = subprotocol_.empty();
    std::string chosen;
    std::size_t line_start = head.find("\r\n");
    while (line_start != std::string_view::npos) {
        line_start += 2;
        const auto line_end = std::min(head.find("\r\n", line_start), head.size());
        const auto line = head.substr(line_start, line_end - line_start);
        const auto colon = line.find(':');
        if (colon != std::string_view::npos) {
            const std::string name = lower(trim(line.substr(0, colon)));
            const std::string_view value = trim(line.substr(colon + 1));
            if (name == "upgrade") upgrade = lower(value) == "websocket";
            if (name == "connection")
                connection = lower(value).find("upgrade") != std::string::npos;
            if (name == "sec-websocket-accept") accept = value == expected_accept(key_);
            if (name == "sec-websocket-protocol") {
                chosen = std::string(value);
                protocol = chosen == subprotocol_;
            }
        }
        line_start = line_end == head.size() ? std::string_view::npos : line_end;
    }
    if (handshake_status_ != 101) {
        finish(1006, "upgrade refused with HTTP " + std::to_string(handshake_status_));
        return;
    }
    if (!upgrade || !connection || !accept || !protocol) {
        finish(1006, "invalid upgrade answer (Upgrade, Connection, Accept or subprotocol)");
        return;
    }
    // Frames may have come in the same read as the answer's last line.
    const std::string rest = handshake_.substr(end + 4);
    handshake_.clear();
    state_ = state::open;
    if (callbacks_.on_open) callbacks_.on_open(chosen);
    if (!rest.empty() && state_ != state::closed) on_bytes(rest.data(), rest.size());
}

void websocket_client::process_events() {
    while (state_ == state::open || state_ == state::closing) {
        ws_event e = reader_.next();
        switch (e.what) {
            case ws_event::kind::none: return;
            case ws_event::kind::message:
                // After our close frame nothing more is delivered (RFC 6455 section 5.5.1).
                if (state_ == state::open && callbacks_.on_message) {
                    callbacks_.on_message(e.text, e.data);
                }
                break;
            case ws_event::kind::ping:
                send_frame(opcode::pong, e.data);
                ++pings_answered_;
                break;
            case ws_event::kind::pong: break;
            case ws_event::kind::close:
                // The server closed first: echo its code, as the closing handshake asks.
                if (state_ == state::open) {
                    send_frame(opcode::close, e.close_code == 1005
                                                  ? std::string()
                                                  : close_payload(e.close_code, {}));
                    flush();
                }
                finish(e.close_code, e.data);
                return;
            case ws_event::kind::violation:
                send_frame(opcode::close, close_payload(e.close_code, "protocol error"));
                flush();
                finish(e.close_code, "the server broke RFC 6455");
                return;
        }
    }
}

void websocket_client::send_frame(opcode op, std::string_view payload) {
    append_client_frame(op, payload, make_mask(), out_);
    flush();
}

void websocket_client::flush() {
    while (!out_.empty() && state_ != state::closed) {
        std::size_t n = 0;
        const io_result r = transport_.send(out_.data(), out_.size(), n);
        if (r == io_result::would_block) return;
        if (r != io_result::ok) {
            finish(1006, "the connection was lost");
            return;
        }
        out_.erase(0, n);
    }
}

void websocket_client::finish(std::uint16_t code, std::string_view why) {
    if (state_ == state::closed) return;
    state_ = state::closed;
    out_.clear();
    transport_.close();
    if (callbacks_.on_closed) callbacks_.on_closed(code, why);
}

}  // namespace gh_client
