#pragma once
// Forwards an account request to an external login service over plain HTTP/1.1 and returns its
// answer (accounts_options::login_service_url): an Asio client on a private io_context, run by
// the calling worker thread until the answer is in or the deadline passes.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "gatehouse/http.hpp"

namespace gatehouse::detail {

class login_forwarder {
public:
    // Parses `http://HOST[:PORT][/prefix]`; `valid()` says whether it could.
    explicit login_forwarder(std::string_view url, std::chrono::milliseconds timeout);

    bool valid() const noexcept { return valid_; }

    // POSTs `body` to `<prefix><path>` and returns the service's status, Content-Type,
    // Retry-After and body; a 502 problem `login_service_unavailable` when it cannot be
    // reached, times out, or answers something that is not HTTP. Blocks up to the timeout.
    http_response forward(std::string_view path, std::string_view content_type,
                          std::string_view body) const;

private:
    bool valid_ = false;
    std::string host_;
    std::uint16_t port_ = 80;
    std::string prefix_;
    std::chrono::milliseconds timeout_;
};

}  // namespace gatehouse::detail
