#pragma once
// The game process's Redis connection: the library's blocking `gatehouse::redis_client`, plus
// the one decision the game makes about a failed connect (try again later, or give up because
// Redis refused our credentials). The game loop and its Redis session store share one.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "gatehouse/redis_client.hpp"

namespace gatehouse_demo::game {

/// What `redis_link::connect` came to.
enum class connect_result : unsigned char {
    connected,  ///< Ready for commands.
    retry,      ///< Redis unreachable, loading, or the link broke: try again later.
    refused,    ///< Redis refused AUTH or SELECT: retrying will not help.
};

/// A connection, re-made on demand.
///
/// Thread safety: as `gatehouse::redis_client` (any thread); the game uses it from one.
/// Lifetime: the connection closes with the object.
class redis_link {
public:
    /// `url` must be a valid `redis://` URL (`gatehouse::parse_redis_url` accepts it);
    /// otherwise throws `std::invalid_argument`.
    explicit redis_link(const std::string& url,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

    /// Connects (with AUTH and SELECT as the URL says) unless connected. On anything but
    /// `connected`, `problem` says why (never quoting the password).
    connect_result connect(std::string& problem);
    bool connected() const { return client_.connected(); }
    /// Drops the connection; the next `connect` makes a new one.
    void reset() { client_.disconnect(); }

    /// Runs one command, binary safe. Empty when not connected or when the connection broke
    /// (it is then dropped, and `last_error()` says why); Redis's own errors are error replies.
    std::optional<gatehouse::redis_reply> command(const std::vector<std::string>& args);
    std::string last_error() const { return client_.last_error(); }

    /// The URL for logs: the password never shown.
    const std::string& redacted_url() const { return client_.redacted_url(); }

private:
    gatehouse::redis_client client_;
};

}  // namespace gatehouse_demo::game
