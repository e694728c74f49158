#pragma once
// The WebSocket protocol (RFC 6455) without any I/O: the opening handshake's key and accept
// values, server frame headers, and an incremental reader that turns a client's byte stream
// into messages and control frames. The Asio connection owns the socket and calls these.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::detail {

// --- handshake (RFC 6455 4.2) ---

/// True when `key` (a Sec-WebSocket-Key value, already trimmed of whitespace) is the base64
/// encoding of exactly 16 bytes: 22 characters of the base64 alphabet and "==" (RFC 6455
/// 4.2.1 item 5). The unused low bits of the last character are not checked.
bool is_valid_websocket_key(std::string_view key) noexcept;

/// The Sec-WebSocket-Accept value for `key`: base64(SHA-1(key + the RFC 6455 GUID)).
std::string websocket_accept(std::string_view key);

/// Appends the tokens of one header value that is a comma-separated list (Sec-WebSocket-Protocol,
/// Connection, Upgrade) to `out`, in order, trimmed of spaces and tabs; empty list elements are
/// skipped (RFC 9110 5.6.1). Call once per header line when a header is repeated.
void split_header_tokens(std::string_view value, std::vector<std::string>& out);

// --- frames ---

/// Frame opcodes (RFC 6455 5.2); the others are reserved.
enum class ws_opcode : std::uint8_t {
    continuation = 0,
    text = 1,
    binary = 2,
    close = 8,
    ping = 9,
    pong = 10
};

/// Writes the header of a server frame (unmasked, RFC 6455 5.2) for a payload of `size` bytes
/// into `out` and returns its length (2, 4 or 10 bytes), always with the shortest length form.
std::size_t encode_frame_header(unsigned char (&out)[14], ws_opcode op, std::uint64_t size,
                                bool fin = true, bool rsv1 = false) noexcept;

/// A whole client frame (masked with `mask_key`, most significant byte first on the wire):
/// header and masked payload. For tests and test clients.
std::string encode_client_frame(ws_opcode op, std::string_view payload, std::uint32_t mask_key,
                                bool fin = true, bool rsv1 = false);

/// A close frame's payload: the 2-byte code and `reason`, cut at a UTF-8 character boundary
/// so that the payload stays within a control frame's 125 bytes (RFC 6455 5.5).
std::string close_payload(std::uint16_t code, std::string_view reason);

/// True for the close codes an endpoint may send (RFC 6455 7.4.1, 7.4.2): 1000-1003,
/// 1007-1011 and 3000-4999. 1012-1014, registered with IANA later, are refused like the
/// Autobahn testsuite does (cases 7.9.x).
bool is_valid_close_code(std::uint16_t code) noexcept;

/// What a ws_reader enforces.
struct ws_reader_options {
    /// The largest data message, measured after reassembly and decompression: N bytes are
    /// accepted, N + 1 fail with 1009.
    std::size_t max_message_bytes = 65536;
    /// permessage-deflate was negotiated (RFC 7692): RSV1 is allowed on the first frame of a
    /// data message and marks it compressed.
    bool deflate = false;
};

/// One thing read from the client's byte stream.
struct ws_event {
    enum class kind : std::uint8_t { none, message, ping, pong, close, fail } type = kind::none;
    /// message: text (else binary).
    bool text = false;
    /// message, ping, pong: the payload; close: the reason. Valid until the next call to
    /// ws_reader::next (it points into the reader's buffer or, in place, into the caller's).
    std::string_view payload;
    /// close: the peer's code, 1005 when its close frame had no payload; fail: the code to
    /// close with (1002 protocol error, 1007 invalid data, 1009 message too big).
    std::uint16_t close_code = 0;
    /// close: the peer's reason (same as payload); fail: a short static reason for the close
    /// frame.
    std::string_view reason;
};

/// Reads client frames (server role, RFC 6455 5-7): unmasks them, reassembles fragmented
/// messages, inflates permessage-deflate messages, validates UTF-8 and close frames, and
/// enforces the size limit.
///
/// Feed it every byte the client sends, in order:
///
///     std::size_t off = 0, used = 0;
///     for (;;) {
///         ws_event ev = reader.next(buf + off, n - off, used);  // or a string_view
///         off += used;
///         if (ev.type == ws_event::kind::none) break;        // all n bytes consumed
///         handle(ev);                                         // stop on close or fail
///     }
///
/// Calling until `none` (the last call may have no bytes at all) also lets the reader free the
/// buffer of the last event, so that an idle connection holds no heap memory here.
///
/// Two ways in. `next(char*, size, consumed)` unmasks in place: a whole frame found in the
/// caller's buffer is unmasked there and its payload points into it (no copy, no allocation,
/// the common case of a small message in one read); the caller's bytes are overwritten.
/// `next(string_view, consumed)` leaves the input alone and unmasks into a buffer of its own.
/// Either way, a frame split across reads, a fragmented message and a compressed message's
/// output are assembled in a reader buffer (one copy), kept while the message is in progress
/// and released once it has been handed out. Cost is linear in the input however it is split.
///
/// After a close or fail event the reader consumes and ignores everything (RFC 6455 5.5.1:
/// nothing may follow a close frame; after a failure the connection is closing) and returns
/// kind::none. Bad input never throws; std::bad_alloc may.
///
/// Thread safety: none; one reader per connection, used by one thread at a time.
class ws_reader {
public:
    explicit ws_reader(ws_reader_options options) noexcept;

    /// Consumes a prefix of `data` (its length in `consumed`) and returns the next event, or
    /// kind::none once all of `data` was consumed without completing one.
    ws_event next(std::string_view data, std::size_t& consumed);
    /// The same, unmasking in place: frames found whole in `data[0, consumed)` are unmasked
    /// there (the rest of it is left alone).
    ws_event next(char* data, std::size_t size, std::size_t& consumed);

    /// True when no partial frame or message is buffered and no event's buffer is held: the
    /// reader then holds no heap memory.
    bool idle() const noexcept;
    /// Heap bytes held by the reader (buffer capacities).
    std::size_t memory_bytes() const noexcept;

private:
    ws_event next_impl(const char* in, char* in_place, std::size_t size, std::size_t& consumed);
    ws_event read_header(const char* in, std::size_t size, std::size_t& pos, bool& ready);
    ws_event payload_event(std::string_view payload);
    ws_event finish_message(std::string_view whole);
    ws_event fail(std::uint16_t code, const char* reason);
    bool check_utf8_progress() noexcept;
    void release() noexcept;

    ws_reader_options options_;

    // The header being read (RFC 6455 5.2: 2 to 14 bytes), kept across calls.
    unsigned char header_[14] = {};
    std::uint8_t header_len_ = 0;

    // The frame whose payload is being read.
    bool in_frame_ = false;
    bool frame_fin_ = false;
    ws_opcode frame_op_ = ws_opcode::continuation;
    unsigned char mask_[4] = {};
    std::uint64_t frame_len_ = 0;
    std::uint64_t frame_pos_ = 0;  // payload bytes already read; also the mask offset

    // The data message in progress (from its first frame's header to its last frame's end).
    bool in_message_ = false;
    bool message_text_ = false;
    bool message_compressed_ = false;
    std::uint64_t message_len_ = 0;  // wire payload bytes of its frames so far, as declared
    std::size_t utf8_checked_ = 0;   // message_ bytes known valid; the rest is an open sequence
    std::string message_;            // unmasked payload (compressed, if so) or inflated output
    std::string control_;            // a control frame's payload when it is not read in place

    bool release_pending_ = false;  // the last event points into message_ or control_
    enum class end_state : std::uint8_t { open, closed, failed } end_ = end_state::open;
};

}  // namespace gatehouse::detail
