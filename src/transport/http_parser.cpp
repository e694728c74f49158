#include "transport/http_parser.hpp"

#include <algorithm>
#include <limits>

#include "http/text.hpp"
#include "transport/http_grammar.hpp"

namespace gatehouse::detail {
namespace {

std::size_t heap_bytes(const std::string& s) noexcept {
    // Capacity within the small-string buffer costs no heap memory.
    static const std::size_t inline_capacity = std::string().capacity();
    return s.capacity() > inline_capacity ? s.capacity() + 1 : 0;
}

void release(std::string& s) noexcept { std::string().swap(s); }

constexpr std::size_t max_chunk_size_digits = 16;

}  // namespace

std::string_view parsed_request::header(std::string_view name) const noexcept {
    for (const auto& [n, v] : headers) {
        if (iequals(n, name)) return v;
    }
    return {};
}

bool parsed_request::has_token(std::string_view header_name,
                               std::string_view token) const noexcept {
    // A list may be split over several field lines (RFC 9110 5.3), so look at every one.
    for (const auto& [n, v] : headers) {
        if (!iequals(n, header_name)) continue;
        std::string_view rest = v;
        while (!rest.empty()) {
            const std::size_t comma = rest.find(',');
            const std::string_view element = trim(rest.substr(0, comma));
            if (iequals(element, token)) return true;
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    return false;
}

http_request_parser::http_request_parser(http_limits limits) : limits_(limits) {}

std::string_view http_request_parser::error_code() const noexcept {
    switch (error_status_) {
        case 400: return "bad_request";
        case 413: return "payload_too_large";
        case 414: return "uri_too_long";
        case 431: return "headers_too_large";
        case 505: return "version_not_supported";
        default: return {};
    }
}

void http_request_parser::reset() {
    // swap() with empty objects rather than clear() or move-assignment: both keep capacity
    // (libstdc++ move-assigns a short string by copying into its own buffer), and a keep-alive
    // connection waiting for its next request must hold no buffer.
    release(line_);
    release(request_.method);
    release(request_.target);
    release(request_.body);
    decltype(request_.headers)().swap(request_.headers);
    request_.version_minor = 1;
    request_.keep_alive = true;
    state_ = state::request_line;
    cr_pending_ = false;
    in_progress_ = false;
    headers_complete_ = false;
    head_bytes_ = 0;
    field_count_ = 0;
    remaining_ = 0;
    error_status_ = 0;
    error_detail_ = "";
}

std::size_t http_request_parser::memory_bytes() const noexcept {
    std::size_t n = heap_bytes(line_) + heap_bytes(request_.method) + heap_bytes(request_.target) +
                    heap_bytes(request_.body);
    n += request_.headers.capacity() * sizeof(request_.headers[0]);
    for (const auto& [name, value] : request_.headers) n += heap_bytes(name) + heap_bytes(value);
    return n;
}

void http_request_parser::fail(int status, const char* detail) noexcept {
    state_ = state::failed;
    error_status_ = status;
    error_detail_ = detail;
}

http_request_parser::result http_request_parser::parse(std::string_view data,
                                                       std::size_t& consumed) {
    consumed = 0;
    std::size_t pos = 0;
    while (true) {
        if (state_ == state::done) {
            consumed = pos;
            return result::complete;
        }
        if (state_ == state::failed) {
            consumed = pos;
            return result::error;
        }
        if (pos == data.size()) break;
        in_progress_ = true;
        switch (state_) {
            case state::request_line:
            case state::header_line:
            case state::chunk_line:
            case state::trailer_line: pos = read_line(data, pos); break;
            case state::body_identity:
            case state::chunk_data: {
                const auto n = static_cast<std::size_t>(
                    std::min<std::uint64_t>(remaining_, data.size() - pos));
                request_.body.append(data.data() + pos, n);
                pos += n;
                remaining_ -= n;
                if (remaining_ == 0) {
                    state_ = state_ == state::body_identity ? state::done : state::chunk_data_cr;
                }
                break;
            }
            case state::chunk_data_cr:
                if (data[pos++] == '\r') {
                    state_ = state::chunk_data_lf;
                } else {
                    fail(400, "chunk data not followed by CRLF");
                }
                break;
            case state::chunk_data_lf:
                if (data[pos++] == '\n') {
                    state_ = state::chunk_line;
                } else {
                    fail(400, "chunk data not followed by CRLF");
                }
                break;
            case state::done:
            case state::failed: break;  // handled above
        }
    }
    consumed = pos;
    return result::need_more;
}

std::size_t http_request_parser::read_line(std::string_view data, std::size_t pos) {
    if (cr_pending_) {
        cr_pending_ = false;
        if (data[pos] != '\n') {
            fail(400, "bare CR in a line");
            return pos + 1;
        }
        if (state_ != state::chunk_line) ++head_bytes_;
        // on_line keeps no view of the line, so the buffer is reused for the next one.
        on_line(line_);
        line_.clear();
        return pos + 1;
    }

    // Only the new bytes are scanned: a line that arrives a byte at a time costs O(length).
    std::size_t end = pos;
    while (end < data.size() && data[end] != '\r' && data[end] != '\n') ++end;
    const std::size_t n = end - pos;
    const bool terminated = end < data.size();
    const std::size_t line_length = line_.size() + n;  // without CRLF

    // Limits first, so an oversized line is never buffered.
    if (state_ == state::chunk_line) {
        if (line_length > limits_.max_chunk_line) {
            fail(400, "chunk line too long");
            return end;
        }
    } else {
        // A terminated line brings its CRLF too: both are checked now, the CR is counted now
        // and the LF when it is seen.
        const std::size_t adds = n + (terminated ? 2 : 0);
        const bool head_over = head_bytes_ + adds > limits_.max_header_bytes;
        const bool line_over =
            state_ == state::request_line && line_length > limits_.max_request_line;
        if (line_over || head_over) {
            // When one piece crosses both limits, answer for the one a byte-at-a-time arrival
            // would have crossed first, so the status does not depend on how the bytes came.
            const std::size_t line_at = limits_.max_request_line - (line_length - n);
            const std::size_t head_at = limits_.max_header_bytes - head_bytes_;
            if (line_over && (!head_over || line_at <= head_at)) {
                fail(414, "request line too long");
            } else {
                fail(431, "header section too large");
            }
            return end;
        }
        head_bytes_ += terminated ? n + 1 : n;
    }

    if (!terminated) {
        line_.append(data.data() + pos, n);
        return end;
    }
    if (data[end] == '\n') {
        fail(400, "bare LF line ending");
        return end + 1;
    }
    if (end + 1 == data.size()) {
        line_.append(data.data() + pos, n);
        cr_pending_ = true;
        return end + 1;
    }
    if (data[end + 1] != '\n') {
        fail(400, "bare CR in a line");
        return end + 2;
    }
    if (state_ != state::chunk_line) ++head_bytes_;
    if (line_.empty()) {
        on_line(data.substr(pos, n));  // the common case: the whole line is in data, no copy
    } else {
        line_.append(data.data() + pos, n);
        on_line(line_);
        line_.clear();
    }
    return end + 2;
}

void http_request_parser::on_line(std::string_view line) {
    switch (state_) {
        case state::request_line:
            // RFC 9112 2.2: a server SHOULD ignore empty lines received before the request line.
            if (!line.empty()) on_request_line(line);
            break;
        case state::header_line:
            if (line.empty()) {
                on_headers_end();
            } else {
                on_field_line(line, false);
            }
            break;
        case state::chunk_line: on_chunk_line(line); break;
        case state::trailer_line:
            if (line.empty()) {
                state_ = state::done;
            } else {
                on_field_line(line, true);
            }
            break;
        default: break;
    }
}

void http_request_parser::on_request_line(std::string_view line) {
    // request-line = method SP request-target SP HTTP-version (RFC 9112 3): exactly one SP
    // between the parts, so a second SP makes the target or the version invalid.
    const std::size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return fail(400, "malformed request line");
    const std::size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return fail(400, "malformed request line");
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method)) return fail(400, "invalid method");
    if (target.empty() ||
        !std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
        return fail(400, "invalid request target");
    }

    // HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive (RFC 9112 2.3).
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !digit(version[5]) ||
        version[6] != '.' || !digit(version[7])) {
        return fail(400, "invalid HTTP version");
    }
    if (version == "HTTP/1.1") {
        request_.version_minor = 1;
    } else if (version == "HTTP/1.0") {
        request_.version_minor = 0;
    } else {
        return fail(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    }

    // origin-form, or asterisk-form for OPTIONS (RFC 9112 3.2.1, 3.2.4). The gateway is no
    // proxy: absolute-form and authority-form are refused (see the header).
    if (target.front() != '/' && !(target == "*" && method == "OPTIONS")) {
        return fail(400, "request target must be origin-form");
    }
    request_.method.assign(method);
    request_.target.assign(target);
    state_ = state::header_line;
}

void http_request_parser::on_field_line(std::string_view line, bool trailer) {
    // RFC 9112 5.2: obs-fold may be rejected with 400; RFC 9112 2.2: so may whitespace between
    // the request line and the first field.
    if (is_space(line.front())) return fail(400, "obsolete line folding");
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "header line without a colon");
    const std::string_view name = line.substr(0, colon);
    // RFC 9112 5.1: whitespace between the name and the colon MUST be rejected with 400.
    if (!name.empty() && is_space(name.back()))
        return fail(400, "whitespace before a header colon");
    if (!is_token(name)) return fail(400, "invalid header name");
    const std::string_view value = trim(line.substr(colon + 1));
    if (!is_field_value(value)) return fail(400, "invalid character in a header value");
    if (++field_count_ > limits_.max_header_count) return fail(431, "too many header fields");
    if (trailer) {
        // Parsed, counted, dropped (RFC 9110 6.5.1: a recipient may discard them). Framing
        // fields are refused: they are prohibited there, and an intermediary that merges
        // trailers into the header section would frame the message anew.
        if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) {
            return fail(400, "framing field in the trailer section");
        }
        return;
    }
    if (request_.headers.empty()) request_.headers.reserve(16);
    request_.headers.emplace_back(name, value);
}

void http_request_parser::on_headers_end() {
    const parsed_request& r = request_;
    std::size_t hosts = 0;
    std::size_t content_lengths = 0;
    std::size_t transfer_encodings = 0;
    std::string_view host;
    std::string_view content_length;
    std::string_view transfer_encoding;
    for (const auto& [name, value] : r.headers) {
        if (iequals(name, "host")) {
            ++hosts;
            host = value;
        } else if (iequals(name, "content-length")) {
            ++content_lengths;
            content_length = value;
        } else if (iequals(name, "transfer-encoding")) {
            ++transfer_encodings;
            transfer_encoding = value;
        }
    }

    // RFC 9112 3.2: 400 for an HTTP/1.1 request without Host, for any request with more than
    // one, and for an invalid Host value.
    if (hosts > 1) return fail(400, "more than one Host header");
    if (hosts == 0 && r.version_minor == 1) return fail(400, "missing Host header");
    if (!is_host_value(host)) return fail(400, "invalid Host header");

    if (transfer_encodings > 0) {
        // RFC 9112 6.1: Transfer-Encoding with Content-Length may be smuggling, and in an
        // HTTP/1.0 message it means faulty framing; both may be refused, and are.
        if (content_lengths > 0) return fail(400, "both Content-Length and Transfer-Encoding");
        if (r.version_minor == 0) return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
        // docs/protocol.md 6.1: a transfer coding other than chunked is 400 (not RFC 9112's 501).
        if (transfer_encodings > 1 || !iequals(transfer_encoding, "chunked")) {
            return fail(400, "unsupported Transfer-Encoding");
        }
        headers_complete_ = true;
        state_ = state::chunk_line;
    } else if (content_lengths > 0) {
        // RFC 9112 6.3: duplicates or a list may be rejected even when equal, and are.
        if (content_lengths > 1) return fail(400, "more than one Content-Length");
        if (content_length.empty()) return fail(400, "invalid Content-Length");
        std::uint64_t length = 0;
        for (const char c : content_length) {
            if (c < '0' || c > '9') return fail(400, "invalid Content-Length");
            const auto d = static_cast<std::uint64_t>(c - '0');
            if (length > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
                return fail(400, "invalid Content-Length");
            }
            length = length * 10 + d;
        }
        if (length > limits_.max_body) return fail(413, "request body too large");
        headers_complete_ = true;
        remaining_ = length;
        state_ = length == 0 ? state::done : state::body_identity;
    } else {
        headers_complete_ = true;
        state_ = state::done;  // RFC 9112 6.3 item 7: no framing field, no body
    }

    // RFC 9112 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
    request_.keep_alive = r.version_minor == 1 ? !r.has_token("Connection", "close")
                                               : r.has_token("Connection", "keep-alive") &&
                                                     !r.has_token("Connection", "close");
}

void http_request_parser::on_chunk_line(std::string_view line) {
    // chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; last-chunk = 1*"0" [ chunk-ext ]
    // CRLF (RFC 9112 7.1).
    std::size_t digits = 0;
    std::uint64_t size = 0;
    const std::uint64_t budget = limits_.max_body - request_.body.size();
    while (digits < line.size() && hex_value(line[digits]) >= 0) {
        if (digits == max_chunk_size_digits) return fail(400, "invalid chunk size");
        size = size * 16 + static_cast<std::uint64_t>(hex_value(line[digits]));
        ++digits;
        // Checked per digit, so 16 digits cannot overflow 64 bits.
        if (size > budget) return fail(413, "request body too large");
    }
    if (digits == 0) return fail(400, "invalid chunk size");
    if (!is_chunk_ext(line.substr(digits))) return fail(400, "invalid chunk extension");
    if (size == 0) {
        state_ = state::trailer_line;
    } else {
        remaining_ = size;
        state_ = state::chunk_data;
    }
}

}  // namespace gatehouse::detail
