#pragma once
// RFC 6455 framing for a client: masked frames out, unmasked server frames in, fragmented
// messages joined, control frames (ping, pong, close) surfaced between fragments.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gh_client {

enum class opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

/// Appends one masked client frame (FIN set) carrying `payload` to `out`.
void append_client_frame(opcode op, std::string_view payload, std::array<unsigned char, 4> mask,
                         std::string& out);

/// The payload of a close frame: the code, big-endian, then the reason.
std::string close_payload(std::uint16_t code, std::string_view reason);

/// One thing the server said.
struct ws_event {
    enum class kind : std::uint8_t {
        none,     ///< No complete frame buffered yet.
        message,  ///< A whole text or binary message (fragments joined).
        ping,     ///< Answer with a pong carrying `data`.
        pong,
        close,     ///< The server's close frame: `close_code` (1005 when it gave none).
        violation  ///< The server broke RFC 6455: close with `close_code` (1002 or 1009).
    };
    kind what = kind::none;
    bool text = false;
    std::string data;
    std::uint16_t close_code = 0;
};

/// Turns the bytes a server sends into events.
///
/// Thread safety: none; one object per connection.
class frame_reader {
public:
    /// Messages larger than `max_message_bytes` are a violation (1009), so a server cannot
    /// make the client buffer without bound.
    explicit frame_reader(std::size_t max_message_bytes) : max_message_(max_message_bytes) {}

    /// Buffers bytes as they arrive, in any split.
    void feed(const char* data, std::size_t size) { buffer_.append(data, size); }

    /// The next event, or `kind::none` until more bytes arrive. After a violation the reader
    /// stays broken: every later call returns the violation again.
    ws_event next();

private:
    ws_event violation(std::uint16_t code);

    std::size_t max_message_;
    std::string buffer_;
    std::string message_;  // fragments so far
    bool in_message_ = false;
    bool message_text_ = false;
    std::uint16_t broken_ = 0;
};

}  // namespace gh_client
