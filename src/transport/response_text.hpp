#pragma once
// An `http_response` as the bytes of an HTTP/1.1 response (RFC 9112 section 4-6), and the
// transport's own answers (101, 408, parser errors).

#include <string>
#include <string_view>

#include "gatehouse/http.hpp"

namespace gatehouse::detail {

struct response_framing {
    bool head = false;            // answering HEAD: headers as for GET, no body
    bool close = false;           // the connection closes after it: `Connection: close`
    bool keep_alive_1_0 = false;  // an HTTP/1.0 client asked to keep it open
};

// Status line, `Server` (no version), `Date`, `Content-Type`, `Content-Length` (none for 1xx,
// 204 and 304, which have no body), `Connection`, the response's own headers, then the body.
std::string response_text(const http_response& response, response_framing framing);

// The current time as an IMF-fixdate (RFC 9110 section 5.6.7), formatted at most once a second
// per thread.
std::string_view http_date_now();

}  // namespace gatehouse::detail
