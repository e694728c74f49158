#include "accounts/login_forwarder.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

// Largest answer relayed: account answers are small JSON documents.
constexpr std::size_t max_answer_bytes = std::size_t{256} * 1024;

http_response unavailable(std::string_view why) {
    return http_response::problem(502, "login_service_unavailable", why);
}

class socket_guard {
public:
    explicit socket_guard(int fd) : fd_(fd) {}
    ~socket_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    socket_guard(const socket_guard&) = delete;
    socket_guard& operator=(const socket_guard&) = delete;
    int get() const noexcept { return fd_; }

private:
    int fd_;
};

using clock = std::chrono::steady_clock;

int remaining_ms(clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    return static_cast<int>(std::max<long long>(0, left));
}

bool wait_for(int fd, short events, clock::time_point deadline) {
    pollfd p{fd, events, 0};
    for (;;) {
        const int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r > 0) return true;
        if (r == 0 || errno != EINTR) return false;
    }
}

// A non-blocking connect bounded by the deadline, trying each resolved address in turn.
int connect_to(const std::string& host, std::uint16_t port, clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return -1;
    int fd = -1;
    for (auto* a = found; a != nullptr && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        int error = 0;
        socklen_t len = sizeof error;
        if (errno == EINPROGRESS && wait_for(fd, POLLOUT, deadline) &&
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0) {
            break;
        }
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(found);
    return fd;
}

}  // namespace

login_forwarder::login_forwarder(std::string_view url, std::chrono::milliseconds timeout)
    : timeout_(timeout) {
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme) return;
    url.remove_prefix(scheme.size());
    const auto slash = url.find('/');
    auto authority = url.substr(0, slash);
    prefix_ = slash == std::string_view::npos ? "" : std::string(url.substr(slash));
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    if (!authority.empty() && authority.front() == '[') {  // [v6]:port
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return;
        host_ = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        if (!authority.empty() && authority.front() != ':') return;
    } else {
        const auto colon = authority.find(':');
        host_ = std::string(authority.substr(0, colon));
        authority = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon);
    }
    if (!authority.empty()) {
        authority.remove_prefix(1);  // ':'
        unsigned value = 0;
        const auto r =
            std::from_chars(authority.data(), authority.data() + authority.size(), value);
        if (r.ec != std::errc{} || r.ptr != authority.data() + authority.size() || value == 0 ||
            value > 65535) {
            return;
        }
        port_ = static_cast<std::uint16_t>(value);
    }
    valid_ = !host_.empty() && timeout_.count() > 0 &&
             prefix_.find_first_of(" \r\n?#") == std::string::npos;
}

http_response login_forwarder::forward(std::string_view path, std::string_view content_type,
                                       std::string_view body) const {
    const auto deadline = clock::now() + timeout_;
    socket_guard fd(connect_to(host_, port_, deadline));
    if (fd.get() < 0) return unavailable("cannot connect to the login service");

    std::string request = "POST " + prefix_ + std::string(path) + " HTTP/1.1\r\nHost: " + host_ +
                          ":" + std::to_string(port_) +
                          "\r\nConnection: close\r\nAccept: application/json\r\nContent-Type: " +
                          std::string(content_type.empty() ? "application/json" : content_type) +
                          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    request.append(body.data(), body.size());
    for (std::size_t sent = 0; sent < request.size();) {
        if (!wait_for(fd.get(), POLLOUT, deadline)) return unavailable("timed out sending");
        const auto n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) return unavailable("send failed");
        if (n > 0) sent += static_cast<std::size_t>(n);
    }

    // Connection: close: the answer ends where the stream ends (or at Content-Length).
    std::string answer;
    char buffer[8192];
    for (;;) {
        if (!wait_for(fd.get(), POLLIN, deadline)) return unavailable("timed out waiting");
        const auto n = ::recv(fd.get(), buffer, sizeof buffer, 0);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            return unavailable("receive failed");
        }
        answer.append(buffer, static_cast<std::size_t>(n));
        if (answer.size() > max_answer_bytes) return unavailable("answer too large");
        const auto head_end = answer.find("\r\n\r\n");
        if (head_end == std::string::npos) continue;
        // Stop early once a Content-Length body is complete.
        const auto head = std::string_view(answer).substr(0, head_end);
        const auto at = ascii_lower_copy(head).find("\r\ncontent-length:");
        if (at != std::string::npos) {
            std::size_t length = 0;
            auto value = trim(head.substr(at + 17, head.find("\r\n", at + 2) - at - 17));
            std::from_chars(value.data(), value.data() + value.size(), length);
            if (answer.size() >= head_end + 4 + length) {
                answer.resize(head_end + 4 + length);
                break;
            }
        }
    }

    const auto head_end = answer.find("\r\n\r\n");
    if (head_end == std::string::npos || answer.compare(0, 5, "HTTP/") != 0) {
        return unavailable("the login service's answer is not HTTP");
    }
    http_response out;
    const auto status_at = answer.find(' ');
    int status = 0;
    if (status_at == std::string::npos ||
        std::from_chars(answer.data() + status_at + 1, answer.data() + status_at + 4, status).ec !=
            std::errc{} ||
        status < 100 || status > 599) {
        return unavailable("the login service's answer has no status");
    }
    out.status = status;
    out.content_type.clear();
    std::string_view headers = std::string_view(answer).substr(0, head_end);
    while (!headers.empty()) {
        const auto eol = headers.find("\r\n");
        const auto line = headers.substr(0, eol);
        headers = eol == std::string_view::npos ? std::string_view{} : headers.substr(eol + 2);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        const auto name = line.substr(0, colon);
        const auto value = trim(line.substr(colon + 1));
        if (iequals(name, "Content-Type")) out.content_type = std::string(value);
        if (iequals(name, "Retry-After"))
            out.headers.emplace_back("Retry-After", std::string(value));
    }
    if (out.content_type.empty()) out.content_type = "application/json";
    out.body = answer.substr(head_end + 4);
    return out;
}

}  // namespace gatehouse::detail
