#include "ws_frames.hpp"

#include <utility>

namespace gh_client {

void append_client_frame(opcode op, std::string_view payload, std::array<unsigned char, 4> mask,
                         std::string& out) {
    out.push_back(static_cast<char>(0x80 | static_cast<unsigned>(op)));  // FIN + opcode
    const std::size_t n = payload.size();
    if (n < 126) {
        out.push_back(static_cast<char>(0x80 | n));  // MASK bit: clients always mask
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(0x80 | 126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xFF));
    } else {
        out.push_back(static_cast<char>(0x80 | 127));
        for (int shift = 56; shift >= 0; shift -= 8) {
            out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> shift) & 0xFF));
        }
    }
    out.append(reinterpret_cast<const char*>(mask.data()), mask.size());
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i % 4]));
    }
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
    std::string p;
    p.push_back(static_cast<char>(code >> 8));
    p.push_back(static_cast<char>(code & 0xFF));
    p.append(reason.substr(0, 123));  // control frames carry at most 125 bytes
    return p;
}

ws_event frame_reader::violation(std::uint16_t code) {
    broken_ = code;
    ws_event e;
    e.what = ws_event::kind::violation;
    e.close_code = code;
    return e;
}

ws_event frame_reader::next() {
    if (broken_ != 0) return violation(broken_);
    for (;;) {  // each turn consumes one frame; ends when a frame makes an event or is partial
        if (buffer_.size() < 2) return {};
        const auto b0 = static_cast<unsigned char>(buffer_[0]);
        const auto b1 = static_cast<unsigned char>(buffer_[1]);
        const bool fin = (b0 & 0x80) != 0;
        const auto op = static_cast<opcode>(b0 & 0x0F);
        if ((b0 & 0x70) != 0) return violation(1002);  // RSV bits: no extension was agreed
        if ((b1 & 0x80) != 0) return violation(1002);  // servers never mask
        std::size_t header = 2;
        std::uint64_t length = b1 & 0x7F;
        if (length >= 126) {
            const std::size_t extra = length == 126 ? 2 : 8;
            if (buffer_.size() < 2 + extra) return {};
            length = 0;
            for (std::size_t i = 0; i < extra; ++i) {
                length = (length << 8) | static_cast<unsigned char>(buffer_[2 + i]);
            }
            header += extra;
        }
        const bool control = (static_cast<unsigned>(op) & 0x8) != 0;
        if (control && (!fin || length > 125)) return violation(1002);
        // Fragments count together: the joined message is what must fit.
        if (length > max_message_ - (control ? 0 : message_.size())) return violation(1009);
        if (buffer_.size() - header < length) return {};
        std::string payload = buffer_.substr(header, static_cast<std::size_t>(length));
        buffer_.erase(0, header + static_cast<std::size_t>(length));

        ws_event e;
        switch (op) {
            case opcode::ping:
                e.what = ws_event::kind::ping;
                e.data = std::move(payload);
                return e;
            case opcode::pong: e.what = ws_event::kind::pong; return e;
            case opcode::close:
                if (payload.size() == 1) return violation(1002);
                e.what = ws_event::kind::close;
                e.close_code = static_cast<std::uint16_t>(
                    payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) |
                                              static_cast<unsigned char>(payload[1])
                                        : 1005);
                e.data = payload.size() > 2 ? payload.substr(2) : std::string();
                return e;
            case opcode::text:
            case opcode::binary:
                if (in_message_) return violation(1002);  // a new message inside a message
                in_message_ = true;
                message_text_ = op == opcode::text;
                message_ = std::move(payload);
                break;
            case opcode::continuation:
                if (!in_message_) return violation(1002);  // a fragment of nothing
                message_.append(payload);
                break;
            default: return violation(1002);  // reserved opcodes
        }
        if (fin) {
            in_message_ = false;
            e.what = ws_event::kind::message;
            e.text = message_text_;
            e.data = std::move(message_);
            message_.clear();
            return e;
        }
    }
}

}  // namespace gh_client
