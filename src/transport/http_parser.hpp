#pragma once
// A strict, incremental HTTP/1.1 request parser (RFC 9112) for the gateway's own transport. It
// knows nothing of sockets or of the gateway, so it is unit tested, fuzzed and compared with
// Boost.Beast on its own (tests/unit/http_parser*_test.cpp, tests/fuzz/fuzz_http.cpp).
//
// What it refuses, and how it answers (docs/protocol.md 6.1; every error closes the connection):
// - Line endings are CRLF only. A bare LF or a bare CR anywhere in the request line, a header,
//   a chunk line or a trailer is 400: RFC 9112 2.2 lets a recipient accept a bare LF, but a
//   server that does and a proxy in front that does not frame the message differently, which
//   is the raw material of request smuggling.
// - Empty lines (CRLF) before the request line are skipped (RFC 9112 2.2); they count against
//   max_header_bytes.
// - Request line: method SP request-target SP HTTP-version with exactly one SP between parts
//   (RFC 9112 3). The method is a token, kept as sent (methods are case-sensitive). The target
//   is non-empty visible ASCII (0x21-0x7E) and in origin-form ("/..."), or "*" for OPTIONS;
//   absolute-form and authority-form are 400: the gateway is an origin server, never a proxy,
//   and its routes match on the path (a deliberate departure from RFC 9112 3.2.2's "MUST
//   accept absolute-form"). Longer than max_request_line: 414 (uri_too_long).
// - Version: exactly "HTTP/1.1" or "HTTP/1.0" (case-sensitive, RFC 9112 2.3); any other
//   "HTTP/" DIGIT "." DIGIT is 505, anything else 400.
// - Header fields (RFC 9112 5, RFC 9110 5.5): the name is a token with no whitespace before
//   the colon (400, RFC 9112 5.1); the value has no control character but HTAB (NUL, CR, LF,
//   DEL included: 400); obs-text (0x80-0xFF) is allowed. A line that begins with SP or HTAB
//   (obs-fold, or whitespace between the request line and the first field) is 400, as RFC
//   9112 5.2 and 2.2 allow. Names are kept as sent, values trimmed of OWS.
// - More than max_header_count fields, or more than max_header_bytes from the first byte of
//   the request through the empty line that ends the header section (CRLFs included): 431.
//   Trailer fields count against the same two limits. Both limits are checked as bytes
//   arrive, so an oversized line is never buffered; when one read crosses both the request
//   line and the header limit, the status is the one of the limit crossed first in the byte
//   stream, so it does not depend on how the bytes were split.
// - Host (RFC 9112 3.2): an HTTP/1.1 request without one, any request with more than one, or
//   a Host value that is not a uri-host with an optional port: 400.
// - Content-Length (RFC 9112 6.3): 1*DIGIT and nothing else. A list ("5, 5") or more than one
//   Content-Length field is 400 even when the values agree: RFC 9112 6.3 lets a recipient
//   reject them, and agreeing duplicates still mean that something on the path misframes.
//   A value that overflows 64 bits is 400; one above max_body is 413.
// - Transfer-Encoding (RFC 9112 6.1): only exactly "chunked" (case-insensitive, one field).
//   Any other coding or list ("gzip, chunked", "chunked, chunked", "identity", empty) is 400
//   rather than RFC 9112's 501, as docs/protocol.md 6.1 asks; so are Transfer-Encoding in an
//   HTTP/1.0 request (RFC 9112 6.1 says it is faulty framing there) and Transfer-Encoding
//   together with Content-Length (RFC 9112 6.1 allows rejecting, and we do, as smuggling).
// - Chunked body (RFC 9112 7.1): chunk-size is 1 to 16 hex digits; extensions follow the
//   grammar of RFC 9112 7.1.1 (token names, token or quoted-string values, BWS around ";" and
//   "=") and are skipped; a chunk line longer than max_chunk_line is 400. Chunk data ends in
//   exactly CRLF. Trailer fields follow the header rules above and are then discarded (RFC
//   9110 6.5.1: a recipient may drop them); a Content-Length or Transfer-Encoding trailer is
//   400 (framing fields are prohibited there). A decoded body above max_body is 413, checked
//   against each chunk-size before any of its data is read.
// - A request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3 item 7).
//   Any method may carry a body (a GET with Content-Length is read).
//
// Statuses and problem+json codes: 400 bad_request, 413 payload_too_large, 414 uri_too_long,
// 431 headers_too_large, 505 version_not_supported. 501 is never returned: the only case RFC
// 9112 gives it (an unknown transfer coding) is 400 by docs/protocol.md 6.1.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::detail {

/// The limits one request is held to. Defaults suit the gateway's small JSON requests.
struct http_limits {
    std::size_t max_request_line = 8192;   ///< method SP target SP version, without CRLF (414)
    std::size_t max_header_bytes = 16384;  ///< request line + header lines + CRLFs (431)
    std::size_t max_header_count = 100;    ///< header plus trailer fields (431)
    std::size_t max_body = 65536;          ///< decoded body (413)
    std::size_t max_chunk_line = 1024;     ///< chunk-size + extensions, without CRLF (400)
};

/// One parsed request.
struct parsed_request {
    std::string method;                                        ///< case-sensitive token as sent
    std::string target;                                        ///< origin-form, or "*" for OPTIONS
    int version_minor = 1;                                     ///< 1 for HTTP/1.1, 0 for HTTP/1.0
    std::vector<std::pair<std::string, std::string>> headers;  ///< names as sent, values trimmed
    std::string body;        ///< decoded (chunked framing removed)
    bool keep_alive = true;  ///< HTTP/1.1 unless Connection: close; HTTP/1.0 only with keep-alive

    /// The value of the first field named `name` (ASCII case-insensitive), or an empty view.
    std::string_view header(std::string_view name) const noexcept;
    /// Whether any field named `header_name` lists `token` in its comma-separated value, both
    /// compared ASCII case-insensitively (Connection: keep-alive, Upgrade).
    bool has_token(std::string_view header_name, std::string_view token) const noexcept;
};

/// Parses one HTTP/1.1 request at a time from bytes as they arrive, in any split, in O(n).
///
/// Errors: parse() never throws on bad input; error_status()/error_code() say what to answer.
/// Memory: it holds the current line while it is incomplete and the request as parsed so far;
/// reset() releases all of it, so a parser between requests holds no heap memory.
/// Thread safety: none; one parser belongs to one connection.
class http_request_parser {
public:
    enum class result { need_more, complete, error };

    explicit http_request_parser(http_limits limits = {});

    /// Consumes a prefix of `data` and stores its length in `consumed`.
    /// - complete: request() holds one whole request and no byte after its end was consumed
    ///   (a pipelined request that follows stays with the caller). Further calls return
    ///   complete and consume nothing until reset().
    /// - need_more: all of `data` was consumed (kept inside the parser as needed).
    /// - error: error_status()/error_code() say what to answer before closing the connection;
    ///   further calls return error and consume nothing.
    result parse(std::string_view data, std::size_t& consumed);

    /// The request being parsed; whole once parse() returned complete. The caller may move
    /// from it.
    parsed_request& request() noexcept { return request_; }

    int error_status() const noexcept { return error_status_; }  ///< 0 unless parse() failed
    /// The problem+json code for error_status(), or an empty view.
    std::string_view error_code() const noexcept;
    /// Short human text about the error; never echoes request bytes.
    std::string_view error_detail() const noexcept { return error_detail_; }

    /// Whether some byte of the current request was consumed (empty lines before it included),
    /// for the header timeout.
    bool in_progress() const noexcept { return in_progress_; }
    /// Whether the header section is complete (a caller may answer Expect: 100-continue).
    bool headers_complete() const noexcept { return headers_complete_; }

    /// Readies the parser for the next request and releases every buffer.
    void reset();

    /// Heap bytes the parser holds (0 after reset()).
    std::size_t memory_bytes() const noexcept;

private:
    enum class state : std::uint8_t {
        request_line,
        header_line,
        body_identity,
        chunk_line,
        chunk_data,
        chunk_data_cr,
        chunk_data_lf,
        trailer_line,
        done,
        failed,
    };

    // Reads one CRLF-terminated line from data[pos...]; returns the new position. When the line
    // is complete it is handed to on_line(); otherwise it is kept in line_.
    std::size_t read_line(std::string_view data, std::size_t pos);
    void on_line(std::string_view line);
    void on_request_line(std::string_view line);
    void on_field_line(std::string_view line, bool trailer);
    void on_headers_end();
    void on_chunk_line(std::string_view line);
    void fail(int status, const char* detail) noexcept;

    http_limits limits_;
    parsed_request request_;
    std::string line_;  // the incomplete current line, without its CR
    state state_ = state::request_line;
    bool cr_pending_ = false;  // line_ ended in CR; the next byte must be LF
    bool in_progress_ = false;
    bool headers_complete_ = false;
    std::size_t head_bytes_ = 0;   // counted against max_header_bytes
    std::size_t field_count_ = 0;  // header and trailer fields, against max_header_count
    std::uint64_t remaining_ = 0;  // bytes left of the identity body or the current chunk
    int error_status_ = 0;
    const char* error_detail_ = "";
};

}  // namespace gatehouse::detail
