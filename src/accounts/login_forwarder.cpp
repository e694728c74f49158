#include "accounts/login_forwarder.hpp"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <charconv>
#include <optional>
#include <vector>

#include "gatehouse/accounts.hpp"
#include "http/text.hpp"

namespace gatehouse::detail {
namespace {

// Largest answer relayed: account answers are small JSON documents.
constexpr std::size_t max_answer_bytes = std::size_t{256} * 1024;

using clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

http_response unavailable(std::string_view why) {
    return http_response::problem(502, "login_service_unavailable", why);
}

// One exchange with the login service, on an io_context of its own run by the calling worker
// thread: each step is an asynchronous Asio operation, and all of them share one deadline.
// (The worker waits either way; a private context keeps the exchange off the gateway's I/O
// threads and needs no thread of its own.)
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

// The service's answer as the gateway relays it: status, Content-Type, Retry-After, body.
http_response relayed(const std::string& answer) {
    const auto head_end = answer.find("\r\n\r\n");
    if (head_end == std::string::npos || answer.compare(0, 5, "HTTP/") != 0) {
        return unavailable("the login service's answer is not HTTP");
    }
    http_response out;
    const auto status_at = answer.find(' ');
    int status = 0;
    if (status_at == std::string::npos || status_at + 4 > answer.size() ||
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
    exchange x(clock::now() + timeout_);
    std::vector<tcp::endpoint> endpoints;
    if (resolve(host_, port_, endpoints)) return unavailable("cannot connect to the login service");
    if (x.step([&](auto done) {
            asio::async_connect(x.socket(), endpoints,
                                [done](std::error_code ec, const tcp::endpoint&) { done(ec); });
        })) {
        return unavailable("cannot connect to the login service");
    }

    const std::string authority =
        (host_.find(':') == std::string::npos ? host_ : "[" + host_ + "]") + ":" +
        std::to_string(port_);
    std::string request = "POST " + prefix_ + std::string(path) +
                          " HTTP/1.1\r\nHost: " + authority +
                          "\r\nConnection: close\r\nAccept: application/json\r\nContent-Type: " +
                          std::string(content_type.empty() ? "application/json" : content_type) +
                          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    request.append(body.data(), body.size());
    if (const auto ec = x.step([&](auto done) {
            asio::async_write(x.socket(), asio::buffer(request),
                              [done](std::error_code e, std::size_t) { done(e); });
        })) {
        return unavailable(ec == std::errc::timed_out ? "timed out sending" : "send failed");
    }

    std::string answer;
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
        if (ec == std::errc::timed_out) return unavailable("timed out waiting");
        if (ec) return unavailable("receive failed");
        if (answer.size() > max_answer_bytes) return unavailable("answer too large");
        if (answer_complete(answer)) break;
    }
    if (answer.size() > max_answer_bytes) return unavailable("answer too large");
    return relayed(answer);
}

}  // namespace gatehouse::detail

namespace gatehouse {

bool valid_login_service_url(std::string_view url) {
    return detail::login_forwarder(url, std::chrono::milliseconds(1)).valid();
}

}  // namespace gatehouse
