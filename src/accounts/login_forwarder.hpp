#pragma once
// Forwards an account request to an external login service over plain HTTP/1.1 and returns its
// answer (accounts_options::login_service_url), through the library's HTTP client
// (http/http_client.hpp) run by the calling worker thread until the answer is in or the
// deadline passes.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "gatehouse/http.hpp"
#include "http/http_client.hpp"

namespace gatehouse::detail {

class login_forwarder {
public:
    // Parses `http://HOST[:PORT][/prefix]`; `valid()` says whether it could.
    explicit login_forwarder(std::string_view url, std::chrono::milliseconds timeout);

    bool valid() const noexcept { return target_.has_value() && timeout_.count() > 0; }

    // POSTs `body` to `<prefix><path>` and returns the service's status, Content-Type,
    // Retry-After and body; a 502 problem `login_service_unavailable` when it cannot be
    // reached, times out, or answers something that is not HTTP. Blocks up to the timeout.
    http_response forward(std::string_view path, std::string_view content_type,
                          std::string_view body) const;

private:
    std::optional<http_target> target_;
    std::chrono::milliseconds timeout_;
};

}  // namespace gatehouse::detail
