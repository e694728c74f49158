#include "amqp/url.hpp"

#include <vector>

#include <amqp.h>

#include "common/hex.hpp"

namespace gatehouse::detail::amqp {

std::error_code parse_url(std::string_view text, url& out) {
    const auto invalid = std::make_error_code(std::errc::invalid_argument);
    if (text.substr(0, 7) != "amqp://") return invalid;  // amqps:// (TLS) is not supported
    // amqp_parse_url writes into the text it parses (its fields point into it).
    std::vector<char> copy(text.begin(), text.end());
    copy.push_back('\0');
    amqp_connection_info info{};
    if (amqp_parse_url(copy.data(), &info) != AMQP_STATUS_OK || info.ssl) return invalid;
    if (info.host == nullptr || *info.host == '\0' || info.port <= 0 || info.port > 65535) {
        return invalid;
    }
    url parsed;
    parsed.user = info.user != nullptr ? info.user : "guest";
    parsed.password = info.password != nullptr ? info.password : "guest";
    parsed.host = info.host;
    parsed.port = static_cast<std::uint16_t>(info.port);
    // `amqp://host:5672/` names no vhost: the default one, as pika reads it too.
    parsed.vhost = info.vhost != nullptr && *info.vhost != '\0' ? info.vhost : "/";
    out = std::move(parsed);
    return {};
}

std::string redacted(const url& u) {
    std::string vhost;
    for (const char c : u.vhost) {
        if (c == '/' || c == '%' || c == '@' || c == ':') {
            vhost += '%';
            vhost += detail::hex_digits_lower[(static_cast<unsigned char>(c) >> 4) & 0xF];
            vhost += detail::hex_digits_lower[static_cast<unsigned char>(c) & 0xF];
        } else {
            vhost += c;
        }
    }
    const bool v6 = u.host.find(':') != std::string::npos;
    return "amqp://" + u.user + ":***@" + (v6 ? "[" + u.host + "]" : u.host) + ":" +
           std::to_string(u.port) + "/" + vhost;
}

}  // namespace gatehouse::detail::amqp
