#include "ws_connection.hpp"

#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gatehouse_load {
namespace {

constexpr std::uint8_t op_continuation = 0x0;
constexpr std::uint8_t op_text = 0x1;
constexpr std::uint8_t op_binary = 0x2;
constexpr std::uint8_t op_close = 0x8;
constexpr std::uint8_t op_ping = 0x9;
constexpr std::uint8_t op_pong = 0xA;

// Larger than any upgrade answer a server sends; a longer header block is a broken server.
constexpr std::size_t max_upgrade_bytes = 16384;
// A message larger than this is a broken server for our purposes (updates are ~100 bytes).
constexpr std::uint64_t max_message_bytes = 16u << 20;

// One read buffer for every connection: the loop is single-threaded and a read is parsed
// before the next one starts, so nothing is copied unless a frame straddles two reads.
char read_buffer[1 << 16];

std::uint32_t next_mask(std::uint32_t& seed) {
    // xorshift32: masks only have to vary (RFC 6455 asks for unpredictability against
    // proxies' cache poisoning, which a loopback benchmark has no part in).
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
}

}  // namespace

ws_connection::ws_connection(event_loop& loop, ws_listener& listener, std::size_t index)
    : loop_(loop),
      listener_(listener),
      index_(index),
      mask_seed_(static_cast<std::uint32_t>(index * 2654435761u + 12345u) | 1u) {}

ws_connection::~ws_connection() {
    if (fd_ >= 0) {
        loop_.remove(fd_);
        ::close(fd_);
    }
}

bool ws_connection::start(const sockaddr_in& addr, const std::string& host_header,
                          const std::string& path, const in_addr* source) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (source != nullptr) {
        // The port is chosen at connect(), for the whole 4-tuple, rather than reserved here
        // for the address alone.
        setsockopt(fd_, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in local{};
        local.sin_family = AF_INET;
        local.sin_addr = *source;
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
            ::close(fd_);
            fd_ = -1;
            state_ = state::closed;
            return false;
        }
    }
    started_at_ = now_ns();
    state_ = state::connecting;
    const int rc = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno != EINPROGRESS) {
        ::close(fd_);
        fd_ = -1;
        state_ = state::closed;
        return false;
    }
    // The key is fixed: the server's Sec-WebSocket-Accept is not checked either, only the 101.
    out_ = "GET " + path + " HTTP/1.1\r\nHost: " + host_header +
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    want_out_ = true;
    if (!loop_.add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this)) {
        fail("epoll_ctl failed");
    }
    return true;
}

void ws_connection::send_text(std::string_view payload) {
    if (state_ != state::open) return;
    queue_frame(op_text, payload);
}

void ws_connection::queue_frame(std::uint8_t opcode, std::string_view payload) {
    char header[14];
    std::size_t h = 0;
    header[h++] = static_cast<char>(0x80 | opcode);
    const std::size_t n = payload.size();
    if (n < 126) {
        header[h++] = static_cast<char>(0x80 | n);
    } else if (n <= 0xFFFF) {
        header[h++] = static_cast<char>(0x80 | 126);
        header[h++] = static_cast<char>((n >> 8) & 0xFF);
        header[h++] = static_cast<char>(n & 0xFF);
    } else {
        header[h++] = static_cast<char>(0x80 | 127);
        for (int shift = 56; shift >= 0; shift -= 8) {
            header[h++] = static_cast<char>((static_cast<std::uint64_t>(n) >> shift) & 0xFF);
        }
    }
    const std::uint32_t mask = next_mask(mask_seed_);
    char key[4];
    std::memcpy(key, &mask, 4);
    std::memcpy(header + h, key, 4);
    h += 4;
    out_.append(header, h);
    const std::size_t at = out_.size();
    out_.append(payload.data(), n);
    char* p = out_.data() + at;
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<char>(p[i] ^ key[i & 3]);
    request_flush();
}

void ws_connection::request_flush() {
    if (!flush_queued_ && !want_out_) {
        flush_queued_ = true;
        loop_.want_flush(this);
    }
}

void ws_connection::flush() {
    flush_queued_ = false;
    if (fd_ < 0 || state_ == state::connecting) return;
    while (out_begin_ < out_.size()) {
        const ssize_t n = ::send(fd_, out_.data() + out_begin_, out_.size() - out_begin_,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            out_begin_ += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!want_out_) {
                want_out_ = true;
                loop_.modify(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
            }
            return;
        }
        fail("send failed");
        return;
    }
    out_.clear();
    out_begin_ = 0;
    if (want_out_) {
        want_out_ = false;
        loop_.modify(fd_, EPOLLIN | EPOLLRDHUP, this);
    }
}

void ws_connection::on_io(std::uint32_t events) {
    if (fd_ < 0) return;
    if (state_ == state::connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            fail("connect failed");
            return;
        }
        state_ = state::upgrading;
    }
    if ((events & EPOLLOUT) != 0 && state_ != state::connecting) flush();
    if (fd_ >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
        read_available();
    }
}

void ws_connection::read_available() {
    // Bounded: a connection yields after 16 reads so one busy socket cannot starve the rest.
    for (int reads = 0; reads < 16 && fd_ >= 0; ++reads) {
        const ssize_t n = ::recv(fd_, read_buffer, sizeof read_buffer, MSG_DONTWAIT);
        if (n == 0) {
            fail("connection closed by peer");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            fail("recv failed");
            return;
        }
        in_.append(read_buffer, static_cast<std::size_t>(n));
        if (state_ == state::upgrading && !parse_upgrade()) return;
        if (state_ == state::open && !parse_frames()) return;
        if (in_begin_ == in_.size()) {
            in_.clear();
            in_begin_ = 0;
        } else if (in_begin_ > (1u << 16)) {
            in_.erase(0, in_begin_);
            in_begin_ = 0;
        }
        if (static_cast<std::size_t>(n) < sizeof read_buffer) return;
    }
}

bool ws_connection::parse_upgrade() {
    const auto end = in_.find("\r\n\r\n", in_begin_);
    if (end == std::string::npos) {
        if (in_.size() - in_begin_ > max_upgrade_bytes) fail("upgrade answer too long");
        return false;
    }
    const std::string_view status(in_.data() + in_begin_, end - in_begin_);
    if (status.size() < 12 || status.substr(0, 9) != "HTTP/1.1 " || status.substr(9, 3) != "101") {
        fail("upgrade refused");
        return false;
    }
    in_begin_ = end + 4;
    state_ = state::open;
    listener_.on_open(*this);
    return state_ == state::open;
}

bool ws_connection::parse_frames() {
    while (state_ == state::open) {
        const std::size_t avail = in_.size() - in_begin_;
        if (avail < 2) return true;
        auto* p = reinterpret_cast<unsigned char*>(in_.data() + in_begin_);
        const bool fin = (p[0] & 0x80) != 0;
        const std::uint8_t opcode = p[0] & 0x0F;
        const bool masked = (p[1] & 0x80) != 0;
        std::uint64_t len = p[1] & 0x7F;
        std::size_t h = 2;
        if (len == 126) {
            if (avail < 4) return true;
            len = (std::uint64_t{p[2]} << 8) | p[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10) return true;
            len = 0;
            for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
            h = 10;
        }
        if (len > max_message_bytes) {
            fail("frame too large");
            return false;
        }
        const std::size_t mask_at = h;
        if (masked) h += 4;
        if (avail < h + len) return true;
        char* payload = in_.data() + in_begin_ + h;
        if (masked) {
            for (std::size_t i = 0; i < len; ++i) {
                payload[i] =
                    static_cast<char>(payload[i] ^ static_cast<char>(p[mask_at + (i & 3)]));
            }
        }
        const std::string_view body(payload, static_cast<std::size_t>(len));
        in_begin_ += h + static_cast<std::size_t>(len);
        switch (opcode) {
            case op_text:
            case op_binary:
                if (fin) {
                    listener_.on_message(*this, body, opcode == op_text);
                } else {
                    fragment_opcode_ = opcode;
                    fragments_.assign(body);
                }
                break;
            case op_continuation:
                fragments_.append(body);
                if (fin) {
                    listener_.on_message(*this, fragments_, fragment_opcode_ == op_text);
                    fragments_.clear();
                }
                break;
            case op_ping: queue_frame(op_pong, body); break;
            case op_pong: break;
            case op_close: fail("close frame from server"); return false;
            default: fail("unknown opcode"); return false;
        }
    }
    return false;
}

void ws_connection::fail(const char* why) {
    if (state_ == state::closed) return;
    state_ = state::closed;
    if (fd_ >= 0) {
        loop_.remove(fd_);
        ::close(fd_);
        fd_ = -1;
    }
    listener_.on_closed(*this, why);
}

void ws_connection::close_now() {
    if (state_ == state::closed) return;
    state_ = state::closed;
    if (fd_ >= 0) {
        loop_.remove(fd_);
        ::close(fd_);
        fd_ = -1;
    }
}

}  // namespace gatehouse_load
