#pragma once
// An `amqp://` URL taken apart (rabbitmq-c's parser), and its form for logs.

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace gatehouse::detail::amqp {

struct url {
    std::string user = "guest";
    std::string password = "guest";
    std::string host = "127.0.0.1";
    std::uint16_t port = 5672;
    std::string vhost = "/";
};

/// Parses `amqp://[user[:password]@]host[:port][/vhost]` (percent-decoded; an empty vhost is
/// `/`). `amqps://` and anything else is `std::errc::invalid_argument`.
std::error_code parse_url(std::string_view text, url& out);

/// `amqp://user:***@host:port/vhost`: the URL without its password, for logs.
std::string redacted(const url& u);

}  // namespace gatehouse::detail::amqp
