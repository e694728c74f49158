#include "posix_transport.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace gh_client {

namespace {

// Connects `fd` to `address` without blocking longer than `timeout_ms`.
bool connect_within(int fd, const addrinfo& address, int timeout_ms) {
    if (::connect(fd, address.ai_addr, address.ai_addrlen) == 0) return true;
    if (errno != EINPROGRESS) return false;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return false;
    int error = 0;
    socklen_t length = sizeof error;
    return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0;
}

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

}  // namespace

bool posix_transport::connect(const std::string& host, std::uint16_t port, int timeout_ms) {
    close();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
        return false;
    }
    for (const addrinfo* a = found; a != nullptr && fd_ < 0; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        // Non-blocking from the start: the connect is bounded, and every later call returns at
        // once, as a game thread needs.
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small frames, no delay
        if (connect_within(fd, *a, timeout_ms)) {
            fd_ = fd;
        } else {
            ::close(fd);
        }
    }
    ::freeaddrinfo(found);
    return fd_ >= 0;
}

io_result posix_transport::send(const char* data, std::size_t size, std::size_t& moved) {
    moved = 0;
    if (fd_ < 0) return io_result::error;
    // MSG_NOSIGNAL: a peer that went away is an error here, not a SIGPIPE for the whole game.
    const ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
    if (n > 0) {
        moved = static_cast<std::size_t>(n);
        return io_result::ok;
    }
    return n < 0 && would_block(errno) ? io_result::would_block : io_result::error;
}

io_result posix_transport::receive(char* data, std::size_t capacity, std::size_t& moved) {
    moved = 0;
    if (fd_ < 0) return io_result::error;
    const ssize_t n = ::recv(fd_, data, capacity, 0);
    if (n > 0) {
        moved = static_cast<std::size_t>(n);
        return io_result::ok;
    }
    if (n == 0) return io_result::closed;
    return would_block(errno) ? io_result::would_block : io_result::error;
}

void posix_transport::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

}  // namespace gh_client
