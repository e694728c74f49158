#include "transport/http_parser.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace {

using gatehouse::detail::http_limits;
using gatehouse::detail::http_request_parser;
using gatehouse::detail::parsed_request;
using result = http_request_parser::result;

struct outcome {
    result r = result::need_more;
    std::size_t consumed = 0;
    int status = 0;
    std::string code;
    parsed_request request;
};

bool same_request(const parsed_request& a, const parsed_request& b) {
    return a.method == b.method && a.target == b.target && a.version_minor == b.version_minor &&
           a.headers == b.headers && a.body == b.body && a.keep_alive == b.keep_alive;
}

// Feeds `input` in pieces of at most `step` bytes (0: in one piece), the way a connection does:
// bytes consumed are dropped, bytes not consumed stay for the next request.
outcome parse_in_steps(std::string_view input, std::size_t step, http_limits limits = {}) {
    http_request_parser p(limits);
    outcome o;
    std::size_t offset = 0;
    while (true) {
        const std::size_t n =
            step == 0 ? input.size() - offset : std::min(step, input.size() - offset);
        std::size_t consumed = 0;
        o.r = p.parse(input.substr(offset, n), consumed);
        REQUIRE(consumed <= n);
        offset += consumed;
        if (o.r != result::need_more) break;
        REQUIRE(consumed == n);
        if (offset == input.size()) break;
    }
    o.consumed = offset;
    o.status = p.error_status();
    o.code = std::string(p.error_code());
    if (o.r == result::complete) o.request = p.request();
    return o;
}

outcome parse(std::string_view input, http_limits limits = {}) {
    return parse_in_steps(input, 0, limits);
}

// The one-piece result, checked against byte-at-a-time and every two-piece split.
outcome parse_checked(std::string_view input, http_limits limits = {}) {
    const outcome whole = parse(input, limits);
    const outcome bytes = parse_in_steps(input, 1, limits);
    REQUIRE(bytes.r == whole.r);
    REQUIRE(bytes.status == whole.status);
    // Where a failed parse stopped may depend on the split; that and why it failed may not.
    if (whole.r != result::error) REQUIRE(bytes.consumed == whole.consumed);
    if (whole.r == result::complete) REQUIRE(same_request(bytes.request, whole.request));
    for (std::size_t cut = 1; cut < input.size() && input.size() <= 2048; ++cut) {
        http_request_parser p(limits);
        std::size_t consumed = 0;
        result r = p.parse(input.substr(0, cut), consumed);
        std::size_t total = consumed;
        if (r == result::need_more) {
            r = p.parse(input.substr(cut), consumed);
            total += consumed;
        }
        REQUIRE(r == whole.r);
        REQUIRE(p.error_status() == whole.status);
        if (r != result::error) REQUIRE(total == whole.consumed);
        if (r == result::complete) REQUIRE(same_request(p.request(), whole.request));
    }
    return whole;
}

int status_of(std::string_view input, http_limits limits = {}) {
    const outcome o = parse_checked(input, limits);
    if (o.r == result::complete) return 200;
    if (o.r == result::need_more) return 0;
    return o.status;
}

std::string get_with(std::string_view fields) {
    return "GET / HTTP/1.1\r\nHost: h\r\n" + std::string(fields) + "\r\n";
}

std::string chunked(std::string_view chunks) {
    return "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
           std::string(chunks);
}

}  // namespace

TEST_CASE("a simple GET parses into its parts", "[http_parser]") {
    const outcome o = parse_checked(
        "GET /ws/player/abc?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nX-Empty:\r\nX-Pad: \t padded value \t\r\n\r\n");
    REQUIRE(o.r == result::complete);
    CHECK(o.request.method == "GET");
    CHECK(o.request.target == "/ws/player/abc?x=1");
    CHECK(o.request.version_minor == 1);
    CHECK(o.request.keep_alive);
    CHECK(o.request.body.empty());
    const std::vector<std::pair<std::string, std::string>> expected{
        {"Host", "example.com:8080"}, {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},    {"X-Empty", ""},
        {"X-Pad", "padded value"},
    };
    CHECK(o.request.headers == expected);
    CHECK(o.request.header("host") == "example.com:8080");
    CHECK(o.request.header("UPGRADE") == "websocket");
    CHECK(o.request.header("missing").empty());
    CHECK(o.request.has_token("connection", "upgrade"));
    CHECK_FALSE(o.request.has_token("connection", "close"));
}

TEST_CASE("methods are case-sensitive tokens kept as sent", "[http_parser]") {
    const outcome o = parse_checked("get / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQUIRE(o.r == result::complete);
    CHECK(o.request.method == "get");
    CHECK(status_of("M-SEARCH! / HTTP/1.1\r\nHost: h\r\n\r\n") == 200);
    CHECK(status_of("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of(" / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("the request line has exactly one SP between its parts", "[http_parser]") {
    CHECK(status_of("GET  / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET /  HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1 \r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET /\tHTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET /\r\nHost: h\r\n\r\n") == 400);  // HTTP/0.9
    CHECK(status_of("GET / HTTP/1.1 x\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("the target is origin-form visible ASCII, or * for OPTIONS", "[http_parser]") {
    CHECK(status_of("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n") == 200);
    CHECK(status_of("GET * HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n") == 400);
    CHECK(status_of("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of(std::string("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n", 31)) == 400);
    CHECK(status_of("GET /a%20b?q=\"{|}\"#f HTTP/1.1\r\nHost: h\r\n\r\n") == 200);
}

TEST_CASE("only HTTP/1.0 and HTTP/1.1: other versions 505, junk 400", "[http_parser]") {
    const outcome o = parse_checked("GET / HTTP/1.0\r\n\r\n");
    REQUIRE(o.r == result::complete);
    CHECK(o.request.version_minor == 0);
    CHECK(status_of("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505);
    CHECK(status_of("GET / HTTP/1.2\r\nHost: h\r\n\r\n") == 505);
    CHECK(status_of("GET / HTTP/0.9\r\nHost: h\r\n\r\n") == 505);
    const outcome v = parse("GET / HTTP/3.0\r\n");
    CHECK(v.code == "version_not_supported");
    CHECK(status_of("GET / http/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/11\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.10\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET / FTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(parse("GET / HTTP/x.1\r\n").code == "bad_request");
}

TEST_CASE("line endings are CRLF only; leading empty lines are skipped", "[http_parser]") {
    CHECK(status_of("GET / HTTP/1.1\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\r\nHost: h\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\n\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\rHost: h\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\r\nX: a\rb\r\nHost: h\r\n\r\n") == 400);
    CHECK(status_of("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    const outcome o = parse_checked("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQUIRE(o.r == result::complete);
    CHECK(o.request.target == "/");
}

TEST_CASE("header fields are strict", "[http_parser]") {
    CHECK(status_of(get_with("X-A : b\r\n")) == 400);  // RFC 9112 5.1
    CHECK(status_of(get_with("X-A\t: b\r\n")) == 400);
    CHECK(status_of(get_with("X-A: b\r\n c\r\n")) == 400);  // obs-fold
    CHECK(status_of(get_with("X-A: b\r\n\tc\r\n")) == 400);
    CHECK(status_of("GET / HTTP/1.1\r\n Host: h\r\n\r\n") == 400);
    CHECK(status_of(get_with("no colon\r\n")) == 400);
    CHECK(status_of(get_with(": empty name\r\n")) == 400);
    CHECK(status_of(get_with("X(A): b\r\n")) == 400);
    CHECK(status_of(get_with("X-A: a\x01z\r\n")) == 400);
    CHECK(status_of(get_with("X-A: a\x7fz\r\n")) == 400);
    CHECK(status_of(get_with(std::string("X-A: a\0z\r\n", 10))) == 400);
    const outcome o =
        parse_checked(get_with("x-Obs: caf\xc3\xa9\tand\x80\xff\r\nX-Colon: a:b: c\r\n"));
    REQUIRE(o.r == result::complete);
    REQUIRE(o.request.headers.size() == 3);
    CHECK(o.request.headers[1].first == "x-Obs");
    CHECK(o.request.headers[1].second == "caf\xc3\xa9\tand\x80\xff");
    CHECK(o.request.headers[2].second == "a:b: c");
}

TEST_CASE("Host: exactly one in HTTP/1.1, at most one in HTTP/1.0, a valid value",
          "[http_parser]") {
    CHECK(status_of("GET / HTTP/1.1\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.0\r\n\r\n") == 200);
    CHECK(status_of("GET / HTTP/1.1\r\nHost:\r\n\r\n") == 200);  // RFC 9112 3.2: may be empty
    CHECK(status_of("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") == 200);
    CHECK(status_of("GET / HTTP/1.1\r\nHost: a b\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\r\nHost: user@h\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\r\nHost: h/path\r\n\r\n") == 400);
}

TEST_CASE("Content-Length is one field of digits", "[http_parser]") {
    const outcome o =
        parse_checked("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
    REQUIRE(o.r == result::complete);
    CHECK(o.request.body == "hello");
    const outcome get = parse_checked(get_with("Content-Length: 3\r\n") + "abc");
    REQUIRE(get.r == result::complete);
    CHECK(get.request.body == "abc");
    CHECK(parse_checked(get_with("Content-Length: 007\r\n") + "1234567").request.body == "1234567");
    CHECK(status_of(get_with("Content-Length: 0\r\n")) == 200);
    CHECK(status_of(get_with("Content-Length: +5\r\n") + "hello") == 400);
    CHECK(status_of(get_with("Content-Length: -1\r\n")) == 400);
    CHECK(status_of(get_with("Content-Length: 5 5\r\n") + "hello") == 400);
    CHECK(status_of(get_with("Content-Length: 5, 5\r\n") + "hello") == 400);
    CHECK(status_of(get_with("Content-Length: 5\r\nContent-Length: 5\r\n") + "hello") == 400);
    CHECK(status_of(get_with("Content-Length: 0x5\r\n") + "hello") == 400);
    CHECK(status_of(get_with("Content-Length:\r\n")) == 400);
    CHECK(status_of(get_with("Content-Length: 99999999999999999999\r\n")) == 400);
    CHECK(status_of(get_with("Content-Length: 18446744073709551615\r\n")) == 413);
    CHECK(status_of(get_with("Content-Length: 18446744073709551616\r\n")) == 400);
    const outcome big = parse(get_with("Content-Length: 65537\r\n"));
    CHECK(big.status == 413);
    CHECK(big.code == "payload_too_large");
    CHECK(status_of(get_with("Content-Length: 65536\r\n") + std::string(65536, 'x')) == 200);
    // Incomplete body: everything consumed, more needed.
    const outcome part = parse(get_with("Content-Length: 10\r\n") + "12345");
    CHECK(part.r == result::need_more);
}

TEST_CASE("Transfer-Encoding is exactly chunked, in HTTP/1.1, without Content-Length",
          "[http_parser]") {
    CHECK(status_of(chunked("0\r\n\r\n")) == 200);
    CHECK(status_of(get_with("Transfer-Encoding:  CHUNKED \r\n") + "0\r\n\r\n") == 200);
    for (const char* te : {"gzip", "gzip, chunked", "chunked, chunked", "identity", "",
                           "chunked;q=1", ",chunked", "chunked,"}) {
        INFO(te);
        CHECK(status_of(get_with(std::string("Transfer-Encoding: ") + te + "\r\n") + "0\r\n\r\n") ==
              400);
    }
    CHECK(status_of(get_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n") +
                    "0\r\n\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400);
    CHECK(status_of(get_with("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n") +
                    "0\r\n\r\n") == 400);
    CHECK(status_of(get_with("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n") +
                    "0\r\n\r\n") == 400);
}

TEST_CASE("chunked bodies are decoded", "[http_parser]") {
    const outcome o = parse_checked(chunked("5\r\nhello\r\nA\r\n, world!!!\r\n0\r\n\r\n"));
    REQUIRE(o.r == result::complete);
    CHECK(o.request.body == "hello, world!!!");
    CHECK(o.request.header("transfer-encoding") == "chunked");

    const outcome ext = parse_checked(
        chunked("3;a\r\nabc\r\n3 ; a = b ;c=\"q\\\"x y\"\r\ndef\r\n00000;last\r\nX-Trailer: t\r\n"
                "Other: u\r\n\r\n"));
    REQUIRE(ext.r == result::complete);
    CHECK(ext.request.body == "abcdef");
    CHECK(ext.request.headers.size() == 2);  // trailers are dropped

    CHECK(parse_checked(chunked("a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n"))
              .request.body.size() == 20);
}

TEST_CASE("chunk framing is strict", "[http_parser]") {
    CHECK(status_of(chunked("\r\n")) == 400);  // no size
    CHECK(status_of(chunked("g\r\n")) == 400);
    CHECK(status_of(chunked("-1\r\n")) == 400);
    CHECK(status_of(chunked("0x5\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5 \r\nhello\r\n0\r\n\r\n")) == 400);  // BWS only before ";"
    CHECK(status_of(chunked(" 5\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5\r\nhello\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5\r\nhelloX\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5\r\nhello\r\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5\r\nhello\r\n0\r\n")) == 0);  // trailer section still open
    CHECK(status_of(chunked("5\r\nhello\r\n0\r\n\n")) == 400);
    CHECK(status_of(chunked("5;\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5;=x\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5;a=\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5;a=\"open\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5;a=b c\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5;a=\"x\\\x7f\"\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("5;a\x01\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("0000000000000005\r\nhello\r\n0\r\n\r\n")) == 200);  // 16 digits
    CHECK(status_of(chunked("00000000000000005\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(status_of(chunked("0\r\nX : t\r\n\r\n")) == 400);
    CHECK(status_of(chunked("0\r\nX: t\r\n folded\r\n\r\n")) == 400);
    CHECK(status_of(chunked("0\r\nX: \x01\r\n\r\n")) == 400);
    http_limits small;
    small.max_chunk_line = 16;
    CHECK(status_of(chunked("5;aaaaaaaaaaaaaa\r\nhello\r\n0\r\n\r\n"), small) == 200);
    CHECK(status_of(chunked("5;aaaaaaaaaaaaaaa\r\nhello\r\n0\r\n\r\n"), small) == 400);
}

TEST_CASE("a chunked body over max_body is 413 before its data is read", "[http_parser]") {
    http_limits limits;
    limits.max_body = 10;
    CHECK(status_of(chunked("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"), limits) == 200);
    CHECK(status_of(chunked("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n"), limits) == 413);
    CHECK(status_of(chunked("ffffffffffffffff\r\n"), limits) == 413);
    CHECK(status_of(chunked("ffffffffffffffffffff\r\n")) == 413);
    const std::string head = chunked("");
    const outcome o = parse(head + "B\r\nhello world\r\n0\r\n\r\n", limits);
    CHECK(o.status == 413);
    CHECK(o.consumed <= head.size() + 3);
}

TEST_CASE("limits: request line 414, header bytes and count 431", "[http_parser]") {
    http_limits limits;
    limits.max_request_line = 32;
    const std::string exact = "GET /" + std::string(32 - 14, 'a') + " HTTP/1.1";
    REQUIRE(exact.size() == 32);
    CHECK(status_of(exact + "\r\nHost: h\r\n\r\n", limits) == 200);
    const outcome over = parse("GET /" + std::string(32 - 13, 'a') + " HTTP/1.1\r\n", limits);
    CHECK(over.status == 414);
    CHECK(over.code == "uri_too_long");
    // Refused as soon as the line is too long, without waiting for its end.
    CHECK(parse_in_steps("GET /" + std::string(100, 'a'), 7, limits).status == 414);

    http_limits head;
    head.max_header_bytes = 64;
    const std::string base = "GET / HTTP/1.1\r\nHost: h\r\n";  // 25 bytes
    const std::string fill = "X: " + std::string(64 - 25 - 2 - 5, 'v') + "\r\n";
    REQUIRE(base.size() + fill.size() + 2 == 64);
    CHECK(status_of(base + fill + "\r\n", head) == 200);
    const outcome big = parse(base + "X: " + std::string(64 - 25 - 2 - 4, 'v') + "\r\n\r\n", head);
    CHECK(big.status == 431);
    CHECK(big.code == "headers_too_large");
    CHECK(parse_in_steps(base + "X: " + std::string(1000, 'v'), 3, head).status == 431);
    CHECK(parse(std::string(64, '\r') + "\n", head).status == 400);  // bare CR, not a size

    http_limits count;
    count.max_header_count = 3;
    CHECK(status_of(get_with("A: 1\r\nB: 2\r\n"), count) == 200);
    CHECK(status_of(get_with("A: 1\r\nB: 2\r\nC: 3\r\n"), count) == 431);
    // Trailer fields count too.
    CHECK(status_of(chunked("0\r\nA: 1\r\nB: 2\r\n\r\n"), count) == 431);
    CHECK(status_of(chunked("0\r\nA: 1\r\n\r\n"), count) == 200);
}

TEST_CASE("empty lines before the request line count against the header limit", "[http_parser]") {
    http_limits head;
    head.max_header_bytes = 64;
    std::string crlfs;
    for (int i = 0; i < 40; ++i) crlfs += "\r\n";
    CHECK(parse(crlfs, head).status == 431);
}

TEST_CASE("keep-alive follows the version and Connection", "[http_parser]") {
    const auto keep = [](std::string_view input) {
        const outcome o = parse_checked(input);
        REQUIRE(o.r == result::complete);
        return o.request.keep_alive;
    };
    CHECK(keep("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    CHECK_FALSE(keep("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    CHECK_FALSE(keep("GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n"));
    CHECK_FALSE(keep("GET / HTTP/1.1\r\nHost: h\r\nConnection: a\r\nconnection: close\r\n\r\n"));
    CHECK(keep("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"));
    CHECK_FALSE(keep("GET / HTTP/1.0\r\n\r\n"));
    CHECK(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    CHECK(keep("GET / HTTP/1.0\r\nConnection: foo ,, Keep-Alive\r\n\r\n"));
    CHECK_FALSE(keep("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
}

TEST_CASE("pipelined requests: nothing past the end of a request is consumed", "[http_parser]") {
    const std::string first = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi";
    const std::string second = chunked("2\r\nyo\r\n0\r\n\r\n");
    const std::string third = "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::string all = first + second + third;
    http_request_parser p;
    std::size_t consumed = 0;
    REQUIRE(p.parse(all, consumed) == result::complete);
    CHECK(consumed == first.size());
    CHECK(p.request().body == "hi");
    std::size_t again = 1;
    CHECK(p.parse(std::string_view(all).substr(consumed), again) == result::complete);
    CHECK(again == 0);
    p.reset();
    std::size_t offset = consumed;
    REQUIRE(p.parse(std::string_view(all).substr(offset), consumed) == result::complete);
    CHECK(consumed == second.size());
    CHECK(p.request().body == "yo");
    p.reset();
    offset += consumed;
    REQUIRE(p.parse(std::string_view(all).substr(offset), consumed) == result::complete);
    CHECK(consumed == third.size());
    CHECK(p.request().target == "/c");
}

TEST_CASE("after an error the parser stays failed and consumes nothing", "[http_parser]") {
    http_request_parser p;
    std::size_t consumed = 0;
    REQUIRE(p.parse("GET / HTTP/1.1\nHost: h\r\n\r\n", consumed) == result::error);
    CHECK(consumed <= 26);
    CHECK(p.error_status() == 400);
    CHECK(p.error_code() == "bad_request");
    CHECK_FALSE(p.error_detail().empty());
    CHECK(p.parse("GET / HTTP/1.1\r\n", consumed) == result::error);
    CHECK(consumed == 0);
    p.reset();
    CHECK(p.error_status() == 0);
    CHECK(p.error_code().empty());
    CHECK(p.parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", consumed) == result::complete);
}

TEST_CASE("error details never echo request bytes", "[http_parser]") {
    const std::string marker = "ZQXJ";
    for (const std::string& bad :
         {"G" + marker + "( / HTTP/1.1\r\n", "GET /" + marker + "\x01 HTTP/1.1\r\n",
          "GET / HTTP/" + marker + "\r\n", get_with(marker + " : x\r\n"),
          get_with("Content-Length: " + marker + "\r\n"),
          get_with("Transfer-Encoding: " + marker + "\r\n"), chunked(marker + "\r\n")}) {
        http_request_parser p;
        std::size_t consumed = 0;
        REQUIRE(p.parse(bad, consumed) == result::error);
        CHECK(p.error_detail().find(marker) == std::string_view::npos);
    }
}

TEST_CASE("in_progress, headers_complete and reset's memory", "[http_parser]") {
    http_request_parser p;
    CHECK_FALSE(p.in_progress());
    CHECK(p.memory_bytes() == 0);
    std::size_t consumed = 0;
    REQUIRE(p.parse("\r", consumed) == result::need_more);
    CHECK(p.in_progress());
    p.reset();
    CHECK_FALSE(p.in_progress());

    const std::string big_value(4000, 'v');
    const std::string head = "POST /" + std::string(300, 'p') +
                             " HTTP/1.1\r\nHost: h\r\nX-Big: " + big_value +
                             "\r\nContent-Length: 20000\r\n\r\n";
    // Byte by byte, so the lines go through the parser's own buffer.
    for (const char c : head) {
        REQUIRE(p.parse(std::string_view(&c, 1), consumed) == result::need_more);
    }
    CHECK(p.headers_complete());
    const std::string body(20000, 'b');
    REQUIRE(p.parse(body, consumed) == result::complete);
    CHECK(p.memory_bytes() >= 24000);
    p.reset();
    CHECK(p.memory_bytes() == 0);
    CHECK_FALSE(p.headers_complete());
    CHECK(p.request().headers.capacity() == 0);

    // Even a request that failed in its middle leaves nothing behind.
    REQUIRE(p.parse("GET /" + std::string(1000, 'a'), consumed) == result::need_more);
    CHECK(p.memory_bytes() > 1000);
    p.reset();
    CHECK(p.memory_bytes() == 0);
}

TEST_CASE("a typical request parses without buffering its lines", "[http_parser]") {
    http_request_parser p;
    std::size_t consumed = 0;
    const std::string request =
        "POST /commands HTTP/1.1\r\nHost: gatehouse.example:8080\r\nUser-Agent: bot/1\r\n"
        "Authorization: Bearer abc.def.ghi\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}";
    REQUIRE(p.parse(request, consumed) == result::complete);
    // Only the parsed request itself: the method and target fit in the small-string buffer,
    // the header vector is one allocation of 16 slots, the longer values one each.
    CHECK(p.memory_bytes() < 16 * 2 * sizeof(std::string) + 4 * 64);
}

TEST_CASE("a long header section fed byte by byte is parsed in linear time", "[http_parser]") {
    // With a rescan of the buffered line on every call this takes minutes; linear, milliseconds.
    http_limits limits;
    limits.max_header_bytes = 1 << 20;
    http_request_parser p(limits);
    const std::string request =
        "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + std::string(400000, 'x') + "\r\n\r\n";
    std::size_t consumed = 0;
    result r = result::need_more;
    for (std::size_t i = 0; i < request.size(); ++i) {
        r = p.parse(std::string_view(request).substr(i, 1), consumed);
        if (r != result::need_more) break;
    }
    REQUIRE(r == result::complete);
    CHECK(p.request().header("x-long").size() == 400000);
}

TEST_CASE("every prefix of a valid request needs more, never errs", "[http_parser]") {
    const std::string request = chunked("5;x=\"y\"\r\nhello\r\n0\r\nT: v\r\n\r\n");
    for (std::size_t n = 0; n < request.size(); ++n) {
        INFO(n);
        CHECK(parse(std::string_view(request).substr(0, n)).r == result::need_more);
    }
    CHECK(parse(request).r == result::complete);
}

TEST_CASE("framing fields in the trailer section are refused", "[http_parser]") {
    CHECK(status_of(chunked("0\r\nContent-Length: 3\r\n\r\n")) == 400);
    CHECK(status_of(chunked("0\r\ntransfer-encoding: chunked\r\n\r\n")) == 400);
    CHECK(status_of(chunked("0\r\nHost: other\r\n\r\n")) == 200);
}

TEST_CASE("a piece over both head limits gets the status of the one crossed first",
          "[http_parser]") {
    http_limits limits;
    limits.max_request_line = 32;
    limits.max_header_bytes = 40;
    // 20 bytes of empty lines leave 20 for the request line: the header limit is crossed first.
    std::string crlfs;
    for (int i = 0; i < 10; ++i) crlfs += "\r\n";
    CHECK(status_of(crlfs + "GET /" + std::string(40, 'a') + " HTTP/1.1\r\n", limits) == 431);
    // Without them, the request line limit is crossed first.
    CHECK(status_of("GET /" + std::string(40, 'a') + " HTTP/1.1\r\n", limits) == 414);
}
