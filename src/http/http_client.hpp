#pragma once
// The library's one outgoing HTTP client: a POST over plain HTTP/1.1 (`Connection: close`) to
// an `http://HOST[:PORT][/prefix]` URL, run on a private io_context by the calling thread until
// the answer is in or the deadline passes. Used where the gateway talks to another service
// from a thread that may wait: the login forwarder (a worker thread) and the trace exporter
// (its own thread). No TLS: both talk to a neighbour on a private network.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace gatehouse::detail {

// An `http://HOST[:PORT][/prefix]` URL taken apart; HOST may be a name, an IPv4 address or a
// bracketed IPv6 one; the prefix loses its trailing slashes.
struct http_target {
    std::string host;
    std::uint16_t port = 80;
    std::string prefix;

    // Empty for anything else (another scheme, a bad port, a prefix with spaces, `?` or `#`).
    static std::optional<http_target> parse(std::string_view url);
};

// Where an exchange failed, so that a caller can say so in its own words.
enum class http_stage { connect, send, receive };

struct http_post_error {
    std::error_code error;  // empty when the whole answer was read
    http_stage stage = http_stage::connect;
    explicit operator bool() const noexcept { return static_cast<bool>(error); }
};

// POSTs `body` to `<target.prefix><path>` and puts the whole answer (status line, headers and
// body, at most `max_answer_bytes`) in `answer`. Errors: the resolver's or the socket's,
// `std::errc::timed_out` when `timeout` passed, `std::errc::message_size` for a longer answer.
// Blocks the calling thread up to `timeout` (name resolution aside, which getaddrinfo bounds).
http_post_error http_post(const http_target& target, std::string_view path,
                          std::string_view content_type, std::string_view body,
                          std::chrono::milliseconds timeout, std::size_t max_answer_bytes,
                          std::string& answer);

// The status code of an answer http_post read (`HTTP/1.1 204 ...`), or 0 when it is not HTTP.
int http_answer_status(std::string_view answer) noexcept;

}  // namespace gatehouse::detail
