#include "redis_link.hpp"

#include <system_error>

namespace gatehouse_demo::game {
namespace {

gatehouse::redis_client_options client_options(const std::string& url,
                                               std::chrono::milliseconds timeout) {
    gatehouse::redis_client_options o;
    o.url = url;
    o.timeout = timeout;
    return o;
}

}  // namespace

redis_link::redis_link(const std::string& url, std::chrono::milliseconds timeout)
    : client_(client_options(url, timeout)) {}

connect_result redis_link::connect(std::string& problem) {
    const auto ec = client_.connect();
    if (!ec) return connect_result::connected;
    problem = client_.last_error() + " (" + client_.redacted_url() + ")";
    // A refused AUTH or SELECT is ours to fix; anything else (unreachable, LOADING while Redis
    // starts, a failover) is worth a retry.
    if (ec == std::errc::permission_denied || ec == std::errc::invalid_argument) {
        return connect_result::refused;
    }
    return connect_result::retry;
}

std::optional<gatehouse::redis_reply> redis_link::command(const std::vector<std::string>& args) {
    if (!client_.connected()) return std::nullopt;  // connect() first: no hidden reconnects
    gatehouse::redis_reply reply;
    if (client_.command(args, reply)) return std::nullopt;
    return reply;
}

}  // namespace gatehouse_demo::game
