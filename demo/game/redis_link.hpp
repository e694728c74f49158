#pragma once
// One synchronous hiredis connection to the Redis a `redis://` URL names: connect (AUTH,
// SELECT), run a command, drop the connection when it breaks. The game process and its Redis
// session store share one, from one thread.

#include <hiredis/hiredis.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "redis/url.hpp"

namespace gatehouse_demo::game {

struct reply_deleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
/// A hiredis reply, freed when it goes.
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

/// The text of a string, status or error reply; empty for other replies and null.
std::string reply_text(const redisReply* r);
/// True for an error reply starting with `prefix` (any error for an empty prefix).
bool is_error_reply(const redisReply* r, std::string_view prefix = {});

/// What `redis_link::connect` came to.
enum class connect_result : unsigned char {
    connected,  ///< Ready for commands.
    retry,      ///< Redis unreachable, loading, or the link broke: try again later.
    refused,    ///< Redis refused AUTH or SELECT: retrying will not help.
};

/// A synchronous connection, re-made on demand.
///
/// Thread safety: none; one thread uses it. Lifetime: the connection closes with the object.
class redis_link {
public:
    explicit redis_link(gatehouse::detail::redis::url url,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

    /// Connects (with AUTH and SELECT as the URL says) unless connected. On anything but
    /// `connected`, `problem` says why (never quoting the password).
    connect_result connect(std::string& problem);
    bool connected() const { return ctx_ != nullptr; }
    /// Drops the connection; the next `connect` makes a new one.
    void reset() { ctx_.reset(); }

    /// Runs one command, binary safe. Null when not connected or when the connection broke
    /// (it is then dropped, and `last_error()` says why); Redis's own errors are error replies.
    reply_ptr command(const std::vector<std::string>& args);
    const std::string& last_error() const { return last_error_; }

    /// The URL for logs: the password never shown.
    std::string redacted_url() const { return gatehouse::detail::redis::redacted(url_); }

private:
    struct context_deleter {
        void operator()(redisContext* c) const { redisFree(c); }
    };

    gatehouse::detail::redis::url url_;
    std::chrono::milliseconds timeout_;
    std::unique_ptr<redisContext, context_deleter> ctx_;
    std::string last_error_;
};

}  // namespace gatehouse_demo::game
