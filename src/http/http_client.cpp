#include "http/http_client.hpp"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <charconv>
#include <optional>
#include <vector>

#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

using clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

// One exchange, on an io_context of its own run by the calling thread: each step is an
// asynchronous Asio operation, and all of them share one deadline. (The caller waits either
// way; a private context keeps the exchange off the gateway's I/O threads and needs no thread
// of its own.)
class exchange {
public:
    explicit exchange(clock::time_point deadline) : socket_(io_), deadline_(deadline) {}

    tcp::socket& socket() noexcept { return socket_; }

    // Runs the operation `start` begins until it completes or the deadline passes. At the
    // deadline the socket is closed, which completes the operation (operation_aborted), and
    // the step gives `std::errc::timed_out`.
    template <typename Start>
    std::error_code step(Start start) {
        std::optional<std::error_code> result;
        start([&result](std::error_code ec) { result = ec; });
        io_.restart();
        io_.run_until(deadline_);
        if (result) return *result;
        std::error_code ignored;
        socket_.close(ignored);
        io_.restart();
        io_.run();
        return std::make_error_code(std::errc::timed_out);
    }

private:
    asio::io_context io_{1};
    tcp::socket socket_;
    clock::time_point deadline_;
};

// The addresses of `host`: a numeric address as it is, a name through the system resolver
// (which, as getaddrinfo always did here, is not bounded by the deadline).
std::error_code resolve(const std::string& host, std::uint16_t port,
                        std::vector<tcp::endpoint>& out) {
    std::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (!ec) {
        out.emplace_back(address, port);
        return {};
    }
    asio::io_context io{1};
    tcp::resolver resolver(io);
    const auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return ec;
    for (const auto& r : results) out.push_back(r.endpoint());
    return out.empty() ? std::make_error_code(std::errc::host_unreachable) : std::error_code{};
}

// Connection: close: the answer ends where the stream ends, or where its Content-Length says.
bool answer_complete(std::string& answer) {
    const auto head_end = answer.find("\r\n\r\n");
    if (head_end == std::string::npos) return false;
    const auto head = std::string_view(answer).substr(0, head_end);
    const auto at = ascii_lower_copy(head).find("\r\ncontent-length:");
    if (at == std::string::npos) return false;
    std::size_t length = 0;
    auto value = trim(head.substr(at + 17, head.find("\r\n", at + 2) - at - 17));
    std::from_chars(value.data(), value.data() + value.size(), length);
    if (answer.size() < head_end + 4 + length) return false;
    answer.resize(head_end + 4 + length);
    return true;
}

}  // namespace

std::optional<http_target> http_target::parse(std::string_view url) {
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme) return std::nullopt;
    url.remove_prefix(scheme.size());
    http_target out;
    const auto slash = url.find('/');
    auto authority = url.substr(0, slash);
    out.prefix = slash == std::string_view::npos ? "" : std::string(url.substr(slash));
    while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
    if (!authority.empty() && authority.front() == '[') {  // [v6]:port
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        out.host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        if (!authority.empty() && authority.front() != ':') return std::nullopt;
    } else {
        const auto colon = authority.find(':');
        out.host = std::string(authority.substr(0, colon));
        authority = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon);
    }
    if (!authority.empty()) {
        authority.remove_prefix(1);  // ':'
        unsigned value = 0;
        const auto r =
            std::from_chars(authority.data(), authority.data() + authority.size(), value);
        if (r.ec != std::errc{} || r.ptr != authority.data() + authority.size() || value == 0 ||
            value > 65535) {
            return std::nullopt;
        }
        out.port = static_cast<std::uint16_t>(value);
    }
    if (out.host.empty() || out.prefix.find_first_of(" \r\n?#") != std::string::npos) {
        return std::nullopt;
    }
    return out;
}

http_post_error http_post(const http_target& target, std::string_view path,
                          std::string_view content_type, std::string_view body,
                          std::chrono::milliseconds timeout, std::size_t max_answer_bytes,
                          std::string& answer) {
    answer.clear();
    exchange x(clock::now() + timeout);
    std::vector<tcp::endpoint> endpoints;
    if (const auto ec = resolve(target.host, target.port, endpoints)) {
        return {ec, http_stage::connect};
    }
    if (const auto ec = x.step([&](auto done) {
            asio::async_connect(x.socket(), endpoints,
                                [done](std::error_code e, const tcp::endpoint&) { done(e); });
        })) {
        return {ec, http_stage::connect};
    }

    const std::string authority =
        (target.host.find(':') == std::string::npos ? target.host : "[" + target.host + "]") + ":" +
        std::to_string(target.port);
    std::string request = "POST " + target.prefix + std::string(path) +
                          " HTTP/1.1\r\nHost: " + authority +
                          "\r\nConnection: close\r\nAccept: application/json\r\nContent-Type: " +
                          std::string(content_type.empty() ? "application/json" : content_type) +
                          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    request.append(body.data(), body.size());
    if (const auto ec = x.step([&](auto done) {
            asio::async_write(x.socket(), asio::buffer(request),
                              [done](std::error_code e, std::size_t) { done(e); });
        })) {
        return {ec, http_stage::send};
    }

    const auto too_large = std::make_error_code(std::errc::message_size);
    char buffer[8192];
    for (;;) {
        std::size_t n = 0;
        const auto ec = x.step([&](auto done) {
            x.socket().async_read_some(asio::buffer(buffer),
                                       [done, &n](std::error_code e, std::size_t got) {
                                           n = got;
                                           done(e);
                                       });
        });
        answer.append(buffer, n);
        if (ec == asio::error::eof) break;
        if (ec) return {ec, http_stage::receive};
        if (answer.size() > max_answer_bytes) return {too_large, http_stage::receive};
        if (answer_complete(answer)) break;
    }
    if (answer.size() > max_answer_bytes) return {too_large, http_stage::receive};
    return {};
}

int http_answer_status(std::string_view answer) noexcept {
    if (answer.compare(0, 5, "HTTP/") != 0) return 0;
    const auto at = answer.find(' ');
    int status = 0;
    if (at == std::string_view::npos || at + 4 > answer.size() ||
        std::from_chars(answer.data() + at + 1, answer.data() + at + 4, status).ec != std::errc{} ||
        status < 100 || status > 599) {
        return 0;
    }
    return status;
}

}  // namespace gatehouse::detail
