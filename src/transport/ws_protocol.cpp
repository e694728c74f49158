#include "transport/ws_protocol.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "client/internal.hpp"
#include "transport/ws_deflate.hpp"

namespace gatehouse::detail {

namespace {

bool is_base64_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

// Heap bytes behind a string: none while it fits the small-string buffer.
std::size_t heap_bytes(const std::string& s) noexcept {
    static const std::size_t inline_capacity = std::string().capacity();
    return s.capacity() > inline_capacity ? s.capacity() + 1 : 0;
}

// Frees a string's heap buffer (clear() keeps it).
void free_buffer(std::string& s) noexcept { std::string().swap(s); }

// XORs n bytes with the masking key (RFC 6455 5.3), starting `offset` bytes into the frame's
// payload; dst may be src. Eight bytes at a time: the key repeats every 4 bytes, so an 8-byte
// key rotated to the offset fits every aligned step.
void unmask(char* dst, const char* src, std::size_t n, const unsigned char (&key)[4],
            std::uint64_t offset) noexcept {
    unsigned char key8[8];
    for (std::size_t i = 0; i < 8; ++i) key8[i] = key[(offset + i) & 3];
    std::uint64_t k;
    std::memcpy(&k, key8, 8);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, src + i, 8);
        w ^= k;
        std::memcpy(dst + i, &w, 8);
    }
    for (; i < n; ++i) dst[i] = static_cast<char>(static_cast<unsigned char>(src[i]) ^ key8[i & 7]);
}

// The length of the longest prefix of s made of whole valid UTF-8 sequences. Sets `invalid`
// when the byte after it cannot start or continue a valid sequence; otherwise the rest (at
// most 3 bytes) is the valid beginning of a sequence that s ends inside.
std::size_t utf8_valid_prefix(std::string_view s, bool& invalid) noexcept {
    invalid = false;
    const auto* const begin = reinterpret_cast<const unsigned char*>(s.data());
    const auto* const end = begin + s.size();
    const auto* p = begin;
    while (p < end) {
        // Text is mostly ASCII: skip it 8 bytes at a time.
        if (end - p >= 8) {
            std::uint64_t w;
            std::memcpy(&w, p, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                p += 8;
                continue;
            }
        }
        if (*p < 0x80) {
            ++p;
            continue;
        }
        const int n = client::detail::utf8_sequence_length(p, end);
        if (n == 0) invalid = true;
        if (n <= 0) break;
        p += n;
    }
    return static_cast<std::size_t>(p - begin);
}

bool is_valid_utf8(std::string_view s) noexcept {
    bool invalid = false;
    return utf8_valid_prefix(s, invalid) == s.size();
}

bool is_control(ws_opcode op) noexcept { return (static_cast<unsigned>(op) & 0x8U) != 0; }

// Compressed bytes buffered for one message. Inflation enforces the real limit; this one only
// bounds the buffer. Real compressors stay within it (zlib's worst case adds about 0.03% and
// a few bytes), with room for a sync flush per fragment.
std::size_t compressed_limit(std::size_t max) noexcept {
    const std::size_t slack = max / 4 + 1024;
    return max > SIZE_MAX - slack ? SIZE_MAX : max + slack;
}

}  // namespace

// --- handshake ---

bool is_valid_websocket_key(std::string_view key) noexcept {
    // 16 bytes are 22 base64 characters and two of padding (RFC 4648 4).
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
    return std::all_of(key.begin(), key.begin() + 22, is_base64_char);
}

std::string websocket_accept(std::string_view key) {
    // RFC 6455 1.3 and 4.2.2 item 5.4.
    static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::string input;
    input.reserve(key.size() + guid.size());
    input.append(key).append(guid);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];  // and EVP_EncodeBlock's NUL
    const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
    return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n));
}

void split_header_tokens(std::string_view value, std::vector<std::string>& out) {
    while (!value.empty()) {
        const std::size_t comma = value.find(',');
        std::string_view item = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        // RFC 9110 5.6.1: OWS around elements, and empty elements, are not tokens.
        const std::size_t first = item.find_first_not_of(" \t");
        if (first == std::string_view::npos) continue;
        item = item.substr(first, item.find_last_not_of(" \t") - first + 1);
        out.emplace_back(item);
    }
}

// --- frames ---

std::size_t encode_frame_header(unsigned char (&out)[14], ws_opcode op, std::uint64_t size,
                                bool fin, bool rsv1) noexcept {
    // RFC 6455 5.2; a server's frames are never masked (5.1).
    out[0] = static_cast<unsigned char>((fin ? 0x80U : 0U) | (rsv1 ? 0x40U : 0U) |
                                        static_cast<unsigned>(op));
    if (size <= 125) {
        out[1] = static_cast<unsigned char>(size);
        return 2;
    }
    if (size <= 0xFFFF) {
        out[1] = 126;
        out[2] = static_cast<unsigned char>(size >> 8);
        out[3] = static_cast<unsigned char>(size);
        return 4;
    }
    out[1] = 127;
    for (std::size_t i = 0; i < 8; ++i)
        out[2 + i] = static_cast<unsigned char>(size >> (56 - 8 * i));
    return 10;
}

std::string encode_client_frame(ws_opcode op, std::string_view payload, std::uint32_t mask_key,
                                bool fin, bool rsv1) {
    unsigned char header[14];
    std::size_t n = encode_frame_header(header, op, payload.size(), fin, rsv1);
    header[1] |= 0x80;  // MASK (RFC 6455 5.3)
    const unsigned char key[4] = {
        static_cast<unsigned char>(mask_key >> 24), static_cast<unsigned char>(mask_key >> 16),
        static_cast<unsigned char>(mask_key >> 8), static_cast<unsigned char>(mask_key)};
    std::memcpy(header + n, key, 4);
    n += 4;
    std::string frame(reinterpret_cast<const char*>(header), n);
    frame.resize(n + payload.size());
    unmask(frame.data() + n, payload.data(), payload.size(), key, 0);
    return frame;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
    // RFC 6455 5.5: a control frame's payload is at most 125 bytes, 2 of them the code.
    constexpr std::size_t max_reason = 123;
    if (reason.size() > max_reason) {
        std::size_t cut = max_reason;
        // Back off to the start of the character the cut would split (never past 3 bytes).
        while (cut > 0 && max_reason - cut < 3 &&
               (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) {
            --cut;
        }
        reason = reason.substr(0, cut);
    }
    std::string out;
    out.reserve(2 + reason.size());
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xFF));
    out.append(reason);
    return out;
}

bool is_valid_close_code(std::uint16_t code) noexcept {
    // RFC 6455 7.4.1: 1004 is reserved, and 1005, 1006 and 1015 must never be sent; 7.4.2:
    // below 1000 is unused, 1016-2999 is for future revisions and extensions.
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

// --- reader ---

ws_reader::ws_reader(ws_reader_options options) noexcept : options_(options) {}

ws_event ws_reader::next(std::string_view data, std::size_t& consumed) {
    return next_impl(data.data(), nullptr, data.size(), consumed);
}

ws_event ws_reader::next(char* data, std::size_t size, std::size_t& consumed) {
    return next_impl(data, data, size, consumed);
}

bool ws_reader::idle() const noexcept {
    return header_len_ == 0 && !in_frame_ && !in_message_ && !release_pending_ &&
           memory_bytes() == 0;
}

std::size_t ws_reader::memory_bytes() const noexcept {
    return heap_bytes(message_) + heap_bytes(control_);
}

void ws_reader::release() noexcept {
    // The last event's payload may live in these buffers; the caller is done with it now.
    if (!release_pending_) return;
    release_pending_ = false;
    free_buffer(control_);
    if (!in_message_) free_buffer(message_);
}

ws_event ws_reader::fail(std::uint16_t code, const char* reason) {
    end_ = end_state::failed;
    release_pending_ = false;
    free_buffer(message_);
    free_buffer(control_);
    in_frame_ = in_message_ = false;
    header_len_ = 0;
    ws_event ev;
    ev.type = ws_event::kind::fail;
    ev.close_code = code;
    ev.reason = reason;
    return ev;
}

ws_event ws_reader::next_impl(const char* in, char* in_place, std::size_t size,
                              std::size_t& consumed) {
    release();
    consumed = size;
    if (end_ != end_state::open) return {};  // RFC 6455 5.5.1: nothing follows a close

    std::size_t pos = 0;
    for (;;) {
        if (!in_frame_) {
            if (pos == size) return {};
            bool ready = false;
            ws_event ev = read_header(in, size, pos, ready);
            if (ev.type == ws_event::kind::fail) return ev;  // consumes everything
            consumed = pos;
            if (!ready) return ev;
        }
        const std::size_t avail = size - pos;
        const std::uint64_t left = frame_len_ - frame_pos_;

        if (is_control(frame_op_)) {
            // Control frames are never fragmented and at most 125 bytes (RFC 6455 5.5), so
            // they are delivered whole; they may come between a message's fragments (5.4).
            if (frame_pos_ == 0 && in_place != nullptr && avail >= left) {
                char* p = in_place + pos;
                unmask(p, p, left, mask_, 0);
                pos += left;
                consumed = pos;
                in_frame_ = false;
                return payload_event(std::string_view(p, left));
            }
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, left));
            const std::size_t old = control_.size();
            control_.resize(old + n);
            unmask(control_.data() + old, in + pos, n, mask_, frame_pos_);
            frame_pos_ += n;
            pos += n;
            consumed = pos;
            if (frame_pos_ < frame_len_) return {};
            in_frame_ = false;
            release_pending_ = true;
            return payload_event(control_);
        }

        // A whole unfragmented message in the caller's buffer: unmask it there, no copy.
        if (frame_fin_ && frame_pos_ == 0 && message_.empty() && in_place != nullptr &&
            avail >= left) {
            char* p = in_place + pos;
            unmask(p, p, left, mask_, 0);
            pos += left;
            consumed = pos;
            in_frame_ = false;
            return finish_message(std::string_view(p, left));
        }

        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, left));
        const std::size_t old = message_.size();
        message_.resize(old + n);
        unmask(message_.data() + old, in + pos, n, mask_, frame_pos_);
        frame_pos_ += n;
        pos += n;
        consumed = pos;
        // Fail fast on invalid UTF-8 (RFC 6455 8.1), across frame and read boundaries;
        // compressed text can only be checked once inflated.
        if (message_text_ && !message_compressed_ && !check_utf8_progress()) {
            return fail(1007, "invalid UTF-8 in a text message");
        }
        if (frame_pos_ < frame_len_) return {};
        in_frame_ = false;
        if (!frame_fin_) continue;
        release_pending_ = true;
        return finish_message(message_);
    }
}

ws_event ws_reader::read_header(const char* in, std::size_t size, std::size_t& pos, bool& ready) {
    ready = false;
    const auto take = [&](std::size_t want) {
        const std::size_t n = std::min(want - header_len_, size - pos);
        std::memcpy(header_ + header_len_, in + pos, n);
        header_len_ = static_cast<std::uint8_t>(header_len_ + n);
        pos += n;
        return header_len_ == want;
    };
    if (header_len_ < 2) {
        if (!take(2)) return {};
        // Everything the first two bytes tell is checked before the rest arrives.
        const unsigned b0 = header_[0];
        const unsigned b1 = header_[1];
        const bool fin = (b0 & 0x80U) != 0;
        const unsigned op = b0 & 0x0FU;
        const auto opcode = static_cast<ws_opcode>(op);
        const unsigned len7 = b1 & 0x7FU;
        // RFC 6455 5.2: opcodes 3-7 and 0xB-0xF are reserved.
        if ((op >= 3 && op <= 7) || op >= 0xB) return fail(1002, "reserved opcode");
        // 5.2: RSV bits are 0 unless an extension defines them; permessage-deflate (RFC 7692
        // 6) defines RSV1, on the first frame of a data message only (6.1).
        if ((b0 & 0x30U) != 0) return fail(1002, "reserved bits set");
        if ((b0 & 0x40U) != 0 &&
            (!options_.deflate || (opcode != ws_opcode::text && opcode != ws_opcode::binary))) {
            return fail(1002, "reserved bits set");
        }
        if (is_control(opcode)) {
            // 5.5: control frames are not fragmented and carry at most 125 bytes.
            if (!fin) return fail(1002, "fragmented control frame");
            if (len7 > 125) return fail(1002, "control frame too long");
        } else if (opcode == ws_opcode::continuation) {
            // 5.4: a continuation continues something.
            if (!in_message_) return fail(1002, "continuation without a message");
        } else if (in_message_) {
            // 5.4: a message's fragments are not interleaved with another message's.
            return fail(1002, "new message before the last one ended");
        }
        // 5.1: a server closes on any unmasked client frame.
        if ((b1 & 0x80U) == 0) return fail(1002, "unmasked client frame");
    }
    const unsigned len7 = header_[1] & 0x7FU;
    const std::size_t extra = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (!take(2 + extra + 4)) return {};

    // 5.2: the length is big-endian in 7, 7+16 or 7+64 bits; the 64-bit form has its most
    // significant bit 0. Longer forms than needed are accepted (5.2 asks for the minimal one,
    // but nothing depends on it).
    std::uint64_t len = len7;
    if (extra != 0) {
        len = 0;
        for (std::size_t i = 0; i < extra; ++i) len = (len << 8) | header_[2 + i];
        if ((len >> 63) != 0) return fail(1002, "frame length has its top bit set");
    }
    const unsigned b0 = header_[0];
    const auto opcode = static_cast<ws_opcode>(b0 & 0x0FU);
    if (!is_control(opcode)) {
        // The limit applies to the whole message (7.4.1: 1009), so a frame that would take it
        // over fails at its header, before any of its payload is buffered.
        const bool compressed =
            opcode == ws_opcode::continuation ? message_compressed_ : (b0 & 0x40U) != 0;
        const std::size_t limit =
            compressed ? compressed_limit(options_.max_message_bytes) : options_.max_message_bytes;
        const std::uint64_t so_far = opcode == ws_opcode::continuation ? message_len_ : 0;
        if (len > limit - so_far) return fail(1009, "message too big");
        if (opcode != ws_opcode::continuation) {
            in_message_ = true;
            message_text_ = opcode == ws_opcode::text;
            message_compressed_ = compressed;
            message_len_ = 0;
            utf8_checked_ = 0;
        }
        message_len_ += len;
    }
    std::memcpy(mask_, header_ + 2 + extra, 4);
    frame_fin_ = (b0 & 0x80U) != 0;
    frame_op_ = opcode;
    frame_len_ = len;
    frame_pos_ = 0;
    in_frame_ = true;
    header_len_ = 0;
    ready = true;
    return {};
}

ws_event ws_reader::payload_event(std::string_view payload) {
    ws_event ev;
    ev.payload = payload;
    switch (frame_op_) {
        case ws_opcode::ping: ev.type = ws_event::kind::ping; return ev;
        case ws_opcode::pong: ev.type = ws_event::kind::pong; return ev;
        default: break;
    }
    // RFC 6455 5.5.1: an empty close has no code (7.1.5: 1005); otherwise 2 bytes of code
    // and a UTF-8 reason.
    if (payload.size() == 1) return fail(1002, "close payload of 1 byte");
    std::uint16_t code = 1005;
    std::string_view reason;
    if (payload.size() >= 2) {
        code = static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                          static_cast<unsigned char>(payload[1]));
        if (!is_valid_close_code(code)) return fail(1002, "invalid close code");
        reason = payload.substr(2);
        if (!is_valid_utf8(reason)) return fail(1007, "invalid UTF-8 in a close reason");
    }
    // The close ends any message in progress; its payload is never in message_.
    end_ = end_state::closed;
    in_message_ = false;
    free_buffer(message_);
    ev.type = ws_event::kind::close;
    ev.close_code = code;
    ev.payload = reason;
    ev.reason = reason;
    return ev;
}

ws_event ws_reader::finish_message(std::string_view whole) {
    // `whole` is the message in the caller's buffer or in message_ (then its end was checked
    // as it arrived, up to a sequence left open).
    const bool assembled = whole.data() == message_.data();
    in_message_ = false;
    if (message_compressed_) {
        std::string inflated;
        switch (message_inflater().inflate(whole, options_.max_message_bytes, inflated)) {
            case message_inflater::status::ok: break;
            case message_inflater::status::too_big: return fail(1009, "message too big");
            case message_inflater::status::corrupt:
                // The data does not match the message's declared encoding (RFC 6455 7.4.1,
                // 1007; RFC 7692 8 leaves the code open).
                return fail(1007, "invalid compressed data");
        }
        message_.swap(inflated);  // frees the compressed bytes
        release_pending_ = true;
        whole = message_;
        if (message_text_ && !is_valid_utf8(whole)) {
            return fail(1007, "invalid UTF-8 in a text message");
        }
    } else if (message_text_) {
        // A text message may not end inside a character (RFC 6455 8.1).
        if (assembled ? utf8_checked_ != message_.size() : !is_valid_utf8(whole)) {
            return fail(1007, "invalid UTF-8 in a text message");
        }
    }
    ws_event ev;
    ev.type = ws_event::kind::message;
    ev.text = message_text_;
    ev.payload = whole;
    return ev;
}

bool ws_reader::check_utf8_progress() noexcept {
    bool invalid = false;
    utf8_checked_ += utf8_valid_prefix(std::string_view(message_).substr(utf8_checked_), invalid);
    return !invalid;
}

}  // namespace gatehouse::detail
