// libFuzzer target: the WebSocket protocol layer (src/transport/ws_protocol, ws_deflate), which
// reads every byte a client sends after the upgrade.
//
// Input: byte 0 picks the reader's options (bit 0: permessage-deflate; bits 1-3: the message
// size limit), byte 1 seeds where the stream is cut, the rest is the client's byte stream.
// Beyond "does not crash":
// - the stream read whole (copy mode), cut at pseudo-random offsets (in place) and byte by byte
//   gives the same events;
// - every call consumes a prefix and `none` means all of it; nothing follows a close or fail;
// - messages are within the size limit, text is UTF-8 (checked by an independent decoder),
//   control payloads are at most 125 bytes, close codes are valid, failures carry 1002, 1007
//   or 1009 and a reason;
// - the reader's heap stays within a bound of the limit, and is none after a close or fail;
// - the same bytes as a compressed message inflate within the limit, and as a
//   Sec-WebSocket-Extensions value negotiate to an answer of the fixed shape or none.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "transport/ws_deflate.hpp"
#include "transport/ws_protocol.hpp"

namespace {

using gatehouse::detail::ws_event;
using gatehouse::detail::ws_reader;
using gatehouse::detail::ws_reader_options;
using kind = ws_event::kind;

constexpr std::size_t limits[8] = {0, 1, 16, 125, 300, 1024, 4096, 65536};

// Deliberately not the library's validator (RFC 3629 section 4, by code point).
bool is_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if ((c >> 5) == 0x6) {
            len = 2;
            cp = c & 0x1FU;
        } else if ((c >> 4) == 0xE) {
            len = 3;
            cp = c & 0x0FU;
        } else if ((c >> 3) == 0x1E) {
            len = 4;
            cp = c & 0x07U;
        } else {
            return false;
        }
        if (s.size() - i < len) return false;
        for (std::size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (b & 0x3FU);
        }
        const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

struct seen {
    kind type;
    bool text;
    std::string payload;
    std::uint16_t code;
    std::string reason;
    bool operator==(const seen& o) const {
        return type == o.type && text == o.text && payload == o.payload && code == o.code &&
               reason == o.reason;
    }
};

class run {
public:
    explicit run(ws_reader_options o) : options_(o), reader_(o) {}

    // One read's worth of bytes, as the connection feeds them: next() until none.
    void feed(std::string piece, bool in_place) {
        std::size_t off = 0;
        for (;;) {
            std::size_t used = 0;
            const std::size_t left = piece.size() - off;
            const ws_event ev = in_place ? reader_.next(piece.data() + off, left, used)
                                         : reader_.next(std::string_view(piece).substr(off), used);
            fuzz::require(used <= left, "consumed more than given");
            off += used;
            check_memory();
            if (ev.type == kind::none) {
                fuzz::require(off == piece.size(), "none before all bytes were consumed");
                return;
            }
            fuzz::require(used > 0, "an event without consuming a byte");
            check(ev);
            events_.push_back(
                {ev.type, ev.text, std::string(ev.payload), ev.close_code, std::string(ev.reason)});
        }
    }

    const std::vector<seen>& events() const { return events_; }
    const ws_reader& reader() const { return reader_; }

private:
    void check_memory() const {
        // The compressed bytes of a message (at most the limit, a quarter more and 1 KiB),
        // then its output, each in a string that may double, and a control frame.
        const std::size_t max = options_.max_message_bytes;
        const std::size_t bound = 3 * (max + max / 4 + 1024) + 512;
        fuzz::require(reader_.memory_bytes() <= bound, "reader holds too much memory");
    }

    void check(const ws_event& ev) {
        fuzz::require(!ended_, "an event after close or fail");
        switch (ev.type) {
            case kind::message:
                fuzz::require(ev.payload.size() <= options_.max_message_bytes,
                              "message over the limit");
                fuzz::require(!ev.text || is_utf8(ev.payload), "text message is not UTF-8");
                break;
            case kind::ping:
            case kind::pong:
                fuzz::require(ev.payload.size() <= 125, "control payload over 125 bytes");
                break;
            case kind::close:
                ended_ = true;
                fuzz::require(ev.payload.size() <= 123 && ev.payload == ev.reason, "close reason");
                fuzz::require(is_utf8(ev.reason), "close reason is not UTF-8");
                fuzz::require(ev.close_code == 1005
                                  ? ev.reason.empty()
                                  : gatehouse::detail::is_valid_close_code(ev.close_code),
                              "invalid close code accepted");
                break;
            case kind::fail:
                ended_ = true;
                fuzz::require(
                    ev.close_code == 1002 || ev.close_code == 1007 || ev.close_code == 1009,
                    "failure code");
                fuzz::require(!ev.reason.empty() && ev.reason.size() <= 123, "failure reason");
                break;
            case kind::none: fuzz::require(false, "none is not an event"); break;
        }
    }

    ws_reader_options options_;
    ws_reader reader_;
    std::vector<seen> events_;
    bool ended_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    ws_reader_options options;
    options.deflate = (data[0] & 1U) != 0;
    options.max_message_bytes = limits[(data[0] >> 1) & 7U];
    std::uint32_t seed = data[1] * 2654435761U + 1;
    const std::string stream(reinterpret_cast<const char*>(data) + 2, size - 2);

    run whole(options);
    whole.feed(stream, false);

    // Cut at up to 8 pseudo-random offsets, unmasking in place.
    run cut(options);
    std::size_t from = 0;
    for (int i = 0; i < 8 && from < stream.size(); ++i) {
        seed = seed * 1103515245U + 12345U;
        const std::size_t to = from + (seed >> 8) % (stream.size() - from + 1);
        cut.feed(stream.substr(from, to - from), true);
        from = to;
    }
    cut.feed(stream.substr(from), true);
    fuzz::require(cut.events() == whole.events(), "cutting the stream changed its events");

    if (stream.size() <= 2048) {
        run bytes(options);
        for (const char c : stream) bytes.feed(std::string(1, c), (seed & 1U) != 0);
        fuzz::require(bytes.events() == whole.events(), "byte by byte changed the events");
    }
    // After a close or fail, or at a frame boundary, the reader holds nothing.
    if (!whole.events().empty() &&
        (whole.events().back().type == kind::close || whole.events().back().type == kind::fail)) {
        fuzz::require(whole.reader().idle(), "a closed reader is not idle");
    }

    // The stream as one compressed message.
    const gatehouse::detail::message_inflater inflater;
    std::string out = "x";
    const auto st = inflater.inflate(stream, options.max_message_bytes, out);
    if (st == gatehouse::detail::message_inflater::status::ok) {
        fuzz::require(out.size() - 1 <= options.max_message_bytes, "inflated over the limit");
    } else {
        fuzz::require(out == "x", "a failed inflation changed its output");
    }

    // The stream as Sec-WebSocket-Extensions values, one per line.
    std::vector<std::string_view> headers;
    std::string_view rest(stream);
    while (!rest.empty()) {
        const std::size_t nl = rest.find('\n');
        headers.push_back(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
    const auto offer = gatehouse::detail::negotiate_deflate(headers);
    constexpr std::string_view answer =
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    if (offer.accepted) {
        fuzz::require(offer.response == answer ||
                          (offer.response.size() > answer.size() &&
                           offer.response.compare(0, answer.size(), answer) == 0 &&
                           offer.response.find("; server_max_window_bits=") == answer.size()),
                      "negotiated answer");
    } else {
        fuzz::require(offer.response.empty(), "declined with an answer");
    }
    return 0;
}
