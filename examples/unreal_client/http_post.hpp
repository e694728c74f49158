#pragma once
// http_post_json: one HTTP/1.1 POST with a JSON body on a `transport`, for the account routes
// of docs/protocol.md section 2 (POST /register, POST /login). In Unreal, FHttpModule does this;
// here it shows that logging in needs nothing beyond the same socket code.

#include <cstdint>
#include <string>
#include <string_view>

#include "transport.hpp"

namespace gh_client {

struct http_result {
    int status = 0;  ///< 0 when no complete answer came (connection failed, timed out).
    std::string body;
};

/// Connects `t` to `host:port`, POSTs `body` to `path` and reads the answer, all within
/// `timeout_ms`. Blocks the calling thread for that long at most: run it where a login may
/// wait (a loading screen, a worker), not inside a frame.
http_result http_post_json(transport& t, const std::string& host, std::uint16_t port,
                           std::string_view path, std::string_view body, int timeout_ms);

}  // namespace gh_client
