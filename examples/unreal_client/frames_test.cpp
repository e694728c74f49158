// The parts of the WebSocket client a real gatehouse-server never exercises, checked on bytes:
// fragmented messages with a ping between the fragments, input split at every byte, the
// server-side rules (no masking, control frames whole and short, no stray continuations), the
// message size limit, and the RFC's own handshake example. Exits 0 when all hold.

#include <array>
#include <cstdio>
#include <string>

#include "handshake_key.hpp"
#include "ws_frames.hpp"

namespace {

using gh_client::frame_reader;
using gh_client::ws_event;

int failures = 0;

void expect(bool ok, const char* what) {
    if (!ok) {
        ++failures;
        std::fprintf(stderr, "FAILED: %s\n", what);
    }
}

// An unmasked server frame.
std::string server_frame(bool fin, unsigned op, const std::string& payload) {
    std::string f;
    f.push_back(static_cast<char>((fin ? 0x80 : 0) | op));
    if (payload.size() < 126) {
        f.push_back(static_cast<char>(payload.size()));
    } else {
        f.push_back(126);
        f.push_back(static_cast<char>(payload.size() >> 8));
        f.push_back(static_cast<char>(payload.size() & 0xFF));
    }
    return f + payload;
}

ws_event::kind first_event(const std::string& bytes, std::size_t limit = 1024) {
    frame_reader r(limit);
    r.feed(bytes.data(), bytes.size());
    return r.next().what;
}

}  // namespace

int main() {
    // RFC 6455 section 1.3's example.
    expect(gh_client::expected_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
           "Sec-WebSocket-Accept of the RFC's example key");
    expect(gh_client::make_websocket_key().size() == 24, "a key is 16 bytes in base64");

    // A binary message in three fragments (the middle one 300 bytes: a 16-bit length), a ping
    // between them, fed one byte at a time.
    const std::string middle(300, 'm');
    const std::string stream = server_frame(false, 0x2, "ab") + server_frame(true, 0x9, "p!") +
                               server_frame(false, 0x0, middle) + server_frame(true, 0x0, "yz");
    frame_reader r(1024);
    std::string events;
    std::string message;
    for (const char c : stream) {
        r.feed(&c, 1);
        for (ws_event e = r.next(); e.what != ws_event::kind::none; e = r.next()) {
            if (e.what == ws_event::kind::ping) events += "ping(" + e.data + ")";
            if (e.what == ws_event::kind::message) {
                events += e.text ? "text" : "binary";
                message = e.data;
            }
        }
    }
    expect(events == "ping(p!)binary", "a ping between fragments, then one binary message");
    expect(message == "ab" + middle + "yz", "fragments joined in order");

    // A close frame's code and reason.
    frame_reader closer(1024);
    const std::string close = server_frame(true, 0x8, std::string("\x03\xe9going away", 12));
    closer.feed(close.data(), close.size());
    const ws_event c = closer.next();
    expect(c.what == ws_event::kind::close && c.close_code == 1001 && c.data == "going away",
           "close 1001 with its reason");

    // What a server must not send.
    std::string masked = server_frame(true, 0x1, "hi");
    masked[1] = static_cast<char>(masked[1] | 0x80);
    expect(first_event(masked) == ws_event::kind::violation, "a masked server frame");
    expect(first_event(server_frame(false, 0x9, "")) == ws_event::kind::violation,
           "a fragmented ping");
    expect(first_event(server_frame(true, 0x9, std::string(126, 'x'))) == ws_event::kind::violation,
           "a ping over 125 bytes");
    expect(first_event(server_frame(true, 0x0, "x")) == ws_event::kind::violation,
           "a continuation with no message");
    expect(first_event(server_frame(false, 0x1, "a") + server_frame(true, 0x1, "b")) ==
               ws_event::kind::violation,
           "a new message inside a fragmented one");
    frame_reader small(8);
    const std::string big = server_frame(false, 0x2, "12345") + server_frame(true, 0x0, "6789");
    small.feed(big.data(), big.size());
    const ws_event too_big = small.next();
    expect(too_big.what == ws_event::kind::violation && too_big.close_code == 1009,
           "fragments over the size limit: 1009");

    // Our own frames: masked, and unmasking gives the payload back.
    std::string out;
    const std::array<unsigned char, 4> mask{0x11, 0x22, 0x33, 0x44};
    gh_client::append_client_frame(gh_client::opcode::binary, middle, mask, out);
    bool unmasked_ok =
        out.size() == 4 + 4 + middle.size() && static_cast<unsigned char>(out[1]) == (0x80 | 126);
    for (std::size_t i = 0; unmasked_ok && i < middle.size(); ++i) {
        unmasked_ok = (static_cast<unsigned char>(out[8 + i]) ^ mask[i % 4]) == 'm';
    }
    expect(unmasked_ok, "a masked client frame with a 16-bit length");

    if (failures == 0) std::printf("frames: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
