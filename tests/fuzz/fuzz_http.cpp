// libFuzzer target: the transport's HTTP/1.1 request parser. Beyond "does not crash", on every
// input (read as a stream of pipelined requests):
// - the outcome does not depend on how the bytes are split: one piece, a byte at a time and
//   pieces of pseudo-random sizes give the same requests and the same error;
// - consumed never exceeds what was given, and need_more always consumes everything;
// - a complete request obeys the rules it was checked against (tokens, values without CR, LF,
//   NUL or surrounding OWS, one Host in HTTP/1.1, not both framings, the body within its limit
//   and of the announced length, keep-alive as the version and Connection say);
// - it serializes back into bytes that parse to the same request;
// - an error has one of the documented statuses and codes;
// - reset() leaves the parser holding no memory.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "transport/http_parser.hpp"

namespace {

using gatehouse::detail::http_limits;
using gatehouse::detail::http_request_parser;
using gatehouse::detail::parsed_request;
using result = http_request_parser::result;

// Small limits, so that every limit is within reach of a 4 KiB input.
http_limits fuzz_limits() {
    http_limits l;
    l.max_request_line = 256;
    l.max_header_bytes = 1024;
    l.max_header_count = 16;
    l.max_body = 512;
    l.max_chunk_line = 64;
    return l;
}

struct event {
    result r = result::need_more;
    int status = 0;
    std::size_t end = 0;  // input offset just past the request or where it stopped
    parsed_request request;
};

bool same(const parsed_request& a, const parsed_request& b) {
    return a.method == b.method && a.target == b.target && a.version_minor == b.version_minor &&
           a.headers == b.headers && a.body == b.body && a.keep_alive == b.keep_alive;
}

// Parses `input` as pipelined requests, handing the parser pieces whose sizes `next_size`
// chooses. Stops at the first error or when the input runs out.
template <class NextSize>
std::vector<event> run(std::string_view input, NextSize next_size) {
    std::vector<event> events;
    http_request_parser p(fuzz_limits());
    std::size_t offset = 0;
    std::size_t start = 0;  // where the current request began
    while (true) {
        const std::size_t n = std::min(next_size(), input.size() - offset);
        std::size_t consumed = 0;
        const result r = p.parse(input.substr(offset, n), consumed);
        fuzz::require(consumed <= n, "consumed more than was given");
        offset += consumed;
        if (consumed > 0) fuzz::require(p.in_progress(), "consumed bytes but not in progress");
        if (r == result::need_more) {
            fuzz::require(consumed == n, "need_more without consuming everything");
            if (offset < input.size()) continue;
            events.push_back({r, 0, offset, {}});
            return events;
        }
        event e{r, p.error_status(), offset, {}};
        if (r == result::error) {
            const int st = p.error_status();
            fuzz::require(st == 400 || st == 413 || st == 414 || st == 431 || st == 505,
                          "undocumented error status");
            fuzz::require(!p.error_code().empty() && !p.error_detail().empty(),
                          "an error without code or detail");
            std::size_t again = 1;
            fuzz::require(p.parse(input.substr(offset), again) == result::error && again == 0,
                          "a failed parser took more bytes");
            events.push_back(std::move(e));
            return events;
        }
        fuzz::require(p.headers_complete(), "complete without complete headers");
        fuzz::require(offset > start, "complete request of no bytes");
        e.request = std::move(p.request());
        events.push_back(std::move(e));
        p.reset();
        fuzz::require(p.memory_bytes() == 0, "reset kept memory");
        fuzz::require(!p.in_progress() && !p.headers_complete(), "reset kept state");
        start = offset;
        if (offset == input.size()) return events;
    }
}

bool is_tchar(char ch) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (const char c : s) {
        if (!is_tchar(c)) return false;
    }
    return true;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto x = static_cast<unsigned char>(a[i]);
        auto y = static_cast<unsigned char>(b[i]);
        if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x + 32);
        if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y + 32);
        if (x != y) return false;
    }
    return true;
}

void check_request(const parsed_request& r) {
    const http_limits limits = fuzz_limits();
    fuzz::require(is_token(r.method), "method is not a token");
    fuzz::require(!r.target.empty() && (r.target[0] == '/' || r.target == "*"),
                  "target is not origin-form or *");
    for (const char c : r.target) {
        fuzz::require(c > 0x20 && c < 0x7f, "target has a byte outside visible ASCII");
    }
    fuzz::require(r.version_minor == 0 || r.version_minor == 1, "unknown version");
    fuzz::require(r.headers.size() <= limits.max_header_count, "more fields than the limit");
    fuzz::require(r.body.size() <= limits.max_body, "body over the limit");
    std::size_t hosts = 0;
    std::size_t content_lengths = 0;
    std::uint64_t content_length = 0;
    bool chunked = false;
    for (const auto& [name, value] : r.headers) {
        fuzz::require(is_token(name), "field name is not a token");
        for (const char c : value) {
            const auto u = static_cast<unsigned char>(c);
            fuzz::require(u == '\t' || (u >= 0x20 && u != 0x7f), "control character in a value");
        }
        fuzz::require(value.empty() || (value.front() != ' ' && value.front() != '\t' &&
                                        value.back() != ' ' && value.back() != '\t'),
                      "value not trimmed");
        if (iequals(name, "host")) ++hosts;
        if (iequals(name, "content-length")) {
            ++content_lengths;
            // Digits only, and no more of them than a value within max_body needs past zeros.
            for (const char c : value) {
                fuzz::require(c >= '0' && c <= '9', "Content-Length is not digits");
                if (content_length <= limits.max_body) {
                    content_length = content_length * 10 + static_cast<std::uint64_t>(c - '0');
                }
            }
        }
        if (iequals(name, "transfer-encoding")) {
            fuzz::require(!chunked && iequals(value, "chunked"), "a coding other than chunked");
            chunked = true;
        }
    }
    fuzz::require(hosts <= 1 && (hosts == 1 || r.version_minor == 0), "Host rule broken");
    fuzz::require(content_lengths <= 1, "more than one Content-Length");
    fuzz::require(!(chunked && content_lengths > 0), "both framings");
    fuzz::require(!chunked || r.version_minor == 1, "chunked in HTTP/1.0");
    if (content_lengths > 0) {
        fuzz::require(content_length == r.body.size(), "body length differs from Content-Length");
    } else if (!chunked) {
        fuzz::require(r.body.empty(), "a body without framing");
    }
    const bool keep = r.version_minor == 1 ? !r.has_token("connection", "close")
                                           : r.has_token("connection", "keep-alive") &&
                                                 !r.has_token("connection", "close");
    fuzz::require(r.keep_alive == keep, "keep_alive against the rule");
}

// The request as a client would send it, framing included.
std::string serialize(const parsed_request& r) {
    std::string out =
        r.method + " " + r.target + (r.version_minor == 1 ? " HTTP/1.1" : " HTTP/1.0");
    out += "\r\n";
    bool chunked = false;
    for (const auto& [name, value] : r.headers) {
        out += name + ": " + value + "\r\n";
        chunked = chunked || iequals(name, "transfer-encoding");
    }
    out += "\r\n";
    if (!chunked) return out + r.body;
    if (!r.body.empty()) {
        static const char hex[] = "0123456789abcdef";
        std::string size;
        for (std::size_t n = r.body.size(); n > 0; n /= 16) size.insert(size.begin(), hex[n % 16]);
        out += size + "\r\n" + r.body + "\r\n";
    }
    return out + "0\r\n\r\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    const std::vector<event> whole = run(input, [&] { return input.size(); });
    const std::vector<event> bytes = run(input, [] { return std::size_t{1}; });
    // Pseudo-random piece sizes from a hash of the input, so a crash reproduces.
    std::uint64_t state = 1469598103934665603ULL;
    for (const char c : input) state = (state ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    const std::vector<event> pieces = run(input, [&] {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<std::size_t>(1 + (state >> 33) % 64);
    });

    for (const auto* other : {&bytes, &pieces}) {
        fuzz::require(other->size() == whole.size(), "splitting changed the number of requests");
        for (std::size_t i = 0; i < whole.size(); ++i) {
            const event& a = whole[i];
            const event& b = (*other)[i];
            // Where a failed parse stopped may depend on the split, not that or why it failed.
            fuzz::require(
                a.r == b.r && a.status == b.status && (a.r == result::error || a.end == b.end),
                "splitting changed an outcome");
            fuzz::require(same(a.request, b.request), "splitting changed a request");
        }
    }

    for (const event& e : whole) {
        if (e.r != result::complete) continue;
        check_request(e.request);
        // Round trip: the request as sent again parses to the same request, in one piece.
        const std::string again = serialize(e.request);
        http_request_parser p(fuzz_limits());
        std::size_t consumed = 0;
        const result r = p.parse(again, consumed);
        // Only the header limit can refuse it: the serialized header section may be longer
        // than the original (a ": " per field).
        if (r == result::error) {
            fuzz::require(p.error_status() == 431, "a parsed request does not parse again");
            continue;
        }
        fuzz::require(r == result::complete && consumed == again.size(),
                      "a serialized request is not one whole request");
        fuzz::require(same(p.request(), e.request), "round trip changed the request");
    }
    return 0;
}
