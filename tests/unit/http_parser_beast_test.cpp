#include "transport/http_parser.hpp"

#include <catch2/catch.hpp>

#define BOOST_BEAST_USE_STD_STRING_VIEW
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace http = boost::beast::http;
using gatehouse::detail::http_limits;
using gatehouse::detail::http_request_parser;

enum class verdict { need_more, complete, error };

struct outcome {
    verdict v = verdict::need_more;
    std::size_t consumed = 0;
    std::string detail;  // ours only: error_detail()
    std::string method;
    std::string target;
    int version = 0;  // 10 or 11 for Beast's numbering
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

constexpr std::size_t max_body = 4096;

outcome run_ours(std::string_view input) {
    http_limits limits;
    limits.max_body = max_body;
    http_request_parser p(limits);
    outcome o;
    std::size_t consumed = 0;
    const auto r = p.parse(input, consumed);
    o.consumed = consumed;
    if (r == http_request_parser::result::error) {
        o.v = verdict::error;
        o.detail = std::string(p.error_detail());
    } else if (r == http_request_parser::result::complete) {
        o.v = verdict::complete;
        const auto& q = p.request();
        o.method = q.method;
        o.target = q.target;
        o.version = 10 + q.version_minor;
        o.headers = q.headers;
        o.body = q.body;
    }
    return o;
}

outcome run_beast(std::string_view input) {
    http::request_parser<http::string_body> p;
    p.eager(true);
    p.header_limit(1U << 20);
    p.body_limit(max_body);
    outcome o;
    boost::system::error_code ec;
    std::size_t offset = 0;
    while (!p.is_done() && offset < input.size()) {
        const std::size_t n =
            p.put(boost::asio::const_buffer(input.data() + offset, input.size() - offset), ec);
        offset += n;
        if (ec == http::error::need_more) break;
        if (ec) {
            o.v = verdict::error;
            o.consumed = offset;
            return o;
        }
        if (n == 0) break;
    }
    o.consumed = offset;
    if (!p.is_done()) return o;
    o.v = verdict::complete;
    const auto& m = p.get();
    o.method = std::string(m.method_string());
    o.target = std::string(m.target());
    o.version = static_cast<int>(m.version());
    for (const auto& f : m) o.headers.emplace_back(f.name_string(), f.value());
    o.body = m.body();
    return o;
}

std::string printable(std::string_view s) {
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20 || c >= 0x7f || c == '\\') {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

const char* name(verdict v) {
    switch (v) {
        case verdict::need_more: return "need_more";
        case verdict::complete: return "complete";
        case verdict::error: return "error";
    }
    return "?";
}

// ---------------------------------------------------------------------------------------------
// The corpus: a valid base request varied one part at a time, systematically.

struct request_parts {
    std::string lead;  // before the request line
    std::string request_line = "POST /a/b?c=d HTTP/1.1";
    std::string eol = "\r\n";
    std::vector<std::string> fields{"Host: example.com"};
    std::string body_fields;  // framing, already terminated
    std::string body;         // as sent

    std::string str() const {
        std::string s = lead + request_line + eol;
        for (const auto& f : fields) s += f + eol;
        s += body_fields + eol + body;
        return s;
    }
};

std::vector<std::string> corpus() {
    std::vector<std::string> out;
    const request_parts base;
    out.push_back(base.str());

    // Request lines.
    for (const char* line : {"GET / HTTP/1.1",
                             "get / HTTP/1.1",
                             "M-SEARCH! / HTTP/1.1",
                             "GE(T / HTTP/1.1",
                             "GET  / HTTP/1.1",
                             "GET /  HTTP/1.1",
                             "GET / HTTP/1.1 ",
                             " GET / HTTP/1.1",
                             "GET\t/ HTTP/1.1",
                             "GET /\tHTTP/1.1",
                             "GET /",
                             "GET / HTTP/1.0",
                             "GET / HTTP/2.0",
                             "GET / HTTP/1.2",
                             "GET / HTTP/0.9",
                             "GET / http/1.1",
                             "GET / HTTP/11",
                             "GET / HTTP/1.10",
                             "GET / HTTP/1",
                             "GET / HTTP/x.1",
                             "OPTIONS * HTTP/1.1",
                             "GET * HTTP/1.1",
                             "GET http://example.com/ HTTP/1.1",
                             "CONNECT example.com:443 HTTP/1.1",
                             "GET /a\x7f HTTP/1.1",
                             "GET /a\x01 HTTP/1.1",
                             "GET /caf\xc3\xa9 HTTP/1.1",
                             "GET /a%20b?q=\"{|}\"#f HTTP/1.1",
                             "GET /a b HTTP/1.1",
                             "GET /?a=b&c=%zz HTTP/1.1",
                             "GET / HTTP/1.1 x"}) {
        request_parts p;
        p.request_line = line;
        out.push_back(p.str());
    }
    {
        request_parts p;
        p.request_line = std::string("GET /a\0b HTTP/1.1", 17);
        out.push_back(p.str());
    }

    // Line endings and empty lines before the request.
    for (const char* lead : {"\r\n", "\r\n\r\n", "\n", "\r"}) {
        request_parts p;
        p.lead = lead;
        out.push_back(p.str());
    }
    for (const char* eol : {"\n", "\r", "\r\r\n", "\n\r"}) {
        request_parts p;
        p.eol = eol;
        out.push_back(p.str());
    }
    out.push_back("GET / HTTP/1.1\nHost: h\r\n\r\n");
    out.push_back("GET / HTTP/1.1\r\nHost: h\n\r\n");
    out.push_back("GET / HTTP/1.1\r\nHost: h\r\n\n");
    out.push_back("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n");

    // Header shapes: each after Host, then also as the first field.
    const std::vector<std::string> shapes{"X: v",        "X:v",
                                          "X:  v  ",     "X:\tv\t",
                                          "X:",          "X: ",
                                          "X : v",       "X\t: v",
                                          "X: v\r\n w",  "X: v\r\n\tw",
                                          "X: a, b,, c", "X-Y_Z.~!#$%&'*+^`|: v",
                                          "X(: v",       "X/: v",
                                          "X@: v",       ": v",
                                          "X",           "X v",
                                          "X: a\x01z",   "X: a\x7fz",
                                          "X: a\x08z",   "X: caf\xc3\xa9\x80\xff",
                                          "X: a:b: c",   "X: \"quoted\"",
                                          "X: a\tb",     std::string("X: a\0z", 6),
                                          "X\x80: v",    "x-lower: v",
                                          "X-UPPER: V"};
    for (const auto& shape : shapes) {
        request_parts p;
        p.fields.push_back(shape);
        out.push_back(p.str());
        request_parts q;
        q.fields.insert(q.fields.begin(), shape);
        out.push_back(q.str());
    }
    {
        request_parts p;
        p.fields.insert(p.fields.begin(), " X: leading");
        out.push_back(p.str());
    }

    // Host.
    for (const std::vector<std::string>& hosts :
         std::vector<std::vector<std::string>>{{},
                                               {"Host: a", "Host: a"},
                                               {"Host: a", "host: b"},
                                               {"Host:"},
                                               {"Host: [::1]:80"},
                                               {"Host: a b"},
                                               {"Host: user@h"},
                                               {"Host: h/path"},
                                               {"Host: h:80"},
                                               {"HOST: h"}}) {
        request_parts p;
        p.fields = hosts;
        out.push_back(p.str());
        p.request_line = "GET / HTTP/1.0";
        out.push_back(p.str());
    }

    // Content-Length shapes, with a body that matches the digits when there are any.
    for (const auto& [cl, body] : std::vector<std::pair<std::string, std::string>>{
             {"Content-Length: 5\r\n", "hello"},
             {"Content-Length: 0\r\n", ""},
             {"Content-Length: 007\r\n", "1234567"},
             {"Content-Length: +5\r\n", "hello"},
             {"Content-Length: -1\r\n", ""},
             {"Content-Length: 5 5\r\n", "hello"},
             {"Content-Length: 5,5\r\n", "hello"},
             {"Content-Length: 5, 5\r\n", "hello"},
             {"Content-Length: 5\r\nContent-Length: 5\r\n", "hello"},
             {"Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"},
             {"Content-Length: 0x5\r\n", "hello"},
             {"Content-Length:\r\n", ""},
             {"Content-Length: 5 \r\n", "hello"},
             {"Content-Length:\t5\r\n", "hello"},
             {"Content-Length: 99999999999999999999\r\n", ""},
             {"Content-Length: 18446744073709551616\r\n", ""},
             {"Content-Length: 4096\r\n", std::string(4096, 'x')},
             {"Content-Length: 4097\r\n", std::string(4097, 'x')},
             {"Content-Length: 5\r\n", "hel"},
             {"Content-Length: 5\r\n", "hello, extra"},
             {"content-length: 5\r\n", "hello"}}) {
        request_parts p;
        p.body_fields = cl;
        p.body = body;
        out.push_back(p.str());
        p.request_line = "GET / HTTP/1.0";
        out.push_back(p.str());
    }

    // Transfer-Encoding shapes and combinations with Content-Length.
    const std::string chunks = "5\r\nhello\r\n0\r\n\r\n";
    for (const char* te :
         {"Transfer-Encoding: chunked\r\n", "Transfer-Encoding: CHUNKED\r\n",
          "Transfer-Encoding:  chunked \r\n", "Transfer-Encoding: gzip\r\n",
          "Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding: chunked, chunked\r\n",
          "Transfer-Encoding: identity\r\n", "Transfer-Encoding:\r\n",
          "Transfer-Encoding: chunked;q=1\r\n", "Transfer-Encoding: ,chunked\r\n",
          "Transfer-Encoding: chunked,\r\n", "Transfer-Encoding: chunked, gzip\r\n",
          "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
          "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
          "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
          "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "Transfer-Encoding: xchunked\r\n",
          "Transfer-Encoding: chunked x\r\n", "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n"}) {
        request_parts p;
        p.body_fields = te;
        p.body = chunks;
        out.push_back(p.str());
        p.request_line = "POST / HTTP/1.0";
        out.push_back(p.str());
    }

    // Chunked bodies.
    for (const std::string& body :
         std::vector<std::string>{"0\r\n\r\n",
                                  "5\r\nhello\r\n0\r\n\r\n",
                                  "5\r\nhello\r\nA\r\n, world!!!\r\n0\r\n\r\n",
                                  "a\r\n0123456789\r\n0\r\n\r\n",
                                  "3;a\r\nabc\r\n0\r\n\r\n",
                                  "3 ; a = b ;c=\"q\\\"x y\"\r\nabc\r\n0\r\n\r\n",
                                  "3;a=b;c\r\nabc\r\n0;d\r\n\r\n",
                                  "00000\r\n\r\n",
                                  "0000000000000005\r\nhello\r\n0\r\n\r\n",
                                  "00000000000000005\r\nhello\r\n0\r\n\r\n",
                                  "\r\n",
                                  "g\r\n",
                                  "-1\r\n",
                                  "0x5\r\nhello\r\n0\r\n\r\n",
                                  "5 \r\nhello\r\n0\r\n\r\n",
                                  " 5\r\nhello\r\n0\r\n\r\n",
                                  "5\nhello\r\n0\r\n\r\n",
                                  "5\r\nhello\n0\r\n\r\n",
                                  "5\r\nhelloX\r\n0\r\n\r\n",
                                  "5\r\nhello\r\r\n0\r\n\r\n",
                                  "5\r\nhello\r\n0\r\n",
                                  "5\r\nhello\r\n0\r\n\n",
                                  "5;\r\nhello\r\n0\r\n\r\n",
                                  "5;=x\r\nhello\r\n0\r\n\r\n",
                                  "5;a=\r\nhello\r\n0\r\n\r\n",
                                  "5;a=\"open\r\nhello\r\n0\r\n\r\n",
                                  "5;a=b c\r\nhello\r\n0\r\n\r\n",
                                  "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n",
                                  "5;a\x01\r\nhello\r\n0\r\n\r\n",
                                  "5;a=b \r\nhello\r\n0\r\n\r\n",
                                  "5 ;a\r\nhello\r\n0\r\n\r\n",
                                  "5;a=\"x\\\x7f\"\r\nhello\r\n0\r\n\r\n",
                                  "0\r\nX-Trailer: t\r\nOther: u\r\n\r\n",
                                  "0\r\nX : t\r\n\r\n",
                                  "0\r\nX: t\r\n folded\r\n\r\n",
                                  "0\r\nX: \x01\r\n\r\n",
                                  "0\r\nX\r\n\r\n",
                                  "0\r\nX: t\n\r\n",
                                  "1000\r\n" + std::string(4096, 'x') + "\r\n0\r\n\r\n",
                                  "1001\r\n" + std::string(4097, 'x') + "\r\n0\r\n\r\n",
                                  "800\r\n" + std::string(2048, 'x') + "\r\n801\r\n" +
                                      std::string(2049, 'x') + "\r\n0\r\n\r\n",
                                  "ffffffffffffffffffff\r\n",
                                  "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"}) {
        request_parts p;
        p.body_fields = "Transfer-Encoding: chunked\r\n";
        p.body = body;
        out.push_back(p.str());
    }

    // Pipelining: the second request must be left alone by both.
    out.push_back(base.str() + base.str());
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::vector<std::string> values_of(const outcome& o, std::string_view name) {
    std::vector<std::string> out;
    for (const auto& [n, v] : o.headers) {
        if (iequals(n, name)) out.push_back(v);
    }
    return out;
}

bool same_parse(const outcome& ours, const outcome& beast) {
    if (ours.consumed != beast.consumed || ours.method != beast.method ||
        ours.target != beast.target || ours.version != beast.version || ours.body != beast.body ||
        beast.headers.size() < ours.headers.size()) {
        return false;
    }
    // Beast groups fields of one name together (a repeated name goes after its first) and keeps
    // trailer fields after the header fields of their name, where we keep the order as sent
    // and drop trailers: so, per name, our values must begin Beast's.
    for (const auto& [n, v] : ours.headers) {
        const auto a = values_of(ours, n);
        const auto b = values_of(beast, n);
        if (b.size() < a.size() || !std::equal(a.begin(), a.end(), b.begin())) return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Where we are deliberately stricter than Beast. Each entry is keyed by our error_detail() and
// has a predicate on the raw input that says, independently of our parser, that the input
// really has the defect we named: a wrong reason is caught even when the verdict is allowed.

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The request line and the header lines, split on CRLF, leading empty lines skipped.
struct head_view {
    std::string_view request_line;
    std::vector<std::string_view> lines;
    std::string_view rest;  // after the empty line, or empty when there is none

    std::vector<std::string_view> values(std::string_view field) const {
        std::vector<std::string_view> out;
        for (const auto line : lines) {
            const std::size_t colon = line.find(':');
            if (colon != std::string_view::npos && iequals(line.substr(0, colon), field)) {
                out.push_back(trim(line.substr(colon + 1)));
            }
        }
        return out;
    }
    std::string_view target() const {
        const std::size_t sp1 = request_line.find(' ');
        if (sp1 == std::string_view::npos) return {};
        return request_line.substr(sp1 + 1, request_line.find(' ', sp1 + 1) - sp1 - 1);
    }
};

head_view split_head(std::string_view in) {
    head_view h;
    while (in.substr(0, 2) == "\r\n") in.remove_prefix(2);
    bool first = true;
    while (!in.empty()) {
        const std::size_t eol = in.find("\r\n");
        const std::string_view line = in.substr(0, eol);
        in.remove_prefix(eol == std::string_view::npos ? in.size() : eol + 2);
        if (first) {
            h.request_line = line;
            first = false;
        } else if (line.empty()) {
            h.rest = in;
            break;
        } else {
            h.lines.push_back(line);
        }
    }
    return h;
}

bool has_byte_outside(std::string_view s, unsigned char lo, unsigned char hi) {
    return std::any_of(s.begin(), s.end(), [&](char c) {
        return static_cast<unsigned char>(c) < lo || static_cast<unsigned char>(c) > hi;
    });
}

bool is_tchar(char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) != 0 ||
           std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
}

bool is_ctl(char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

struct stricter_case {
    const char* detail;
    bool (*applies)(std::string_view input, const head_view& head);
};

const std::vector<stricter_case>& stricter_than_beast() {
    static const std::vector<stricter_case> cases{
        // RFC 9112 3.2.2 says a server MUST accept absolute-form; the gateway is an origin
        // server that routes on the path, so absolute- and authority-form (and "*" outside
        // OPTIONS, RFC 9112 3.2.4) are 400. Beast accepts any target.
        {"request target must be origin-form",
         [](std::string_view, const head_view& h) { return h.target().substr(0, 1) != "/"; }},
        // RFC 9112 3.2 / RFC 3986 2: a request-target is ASCII; Beast lets obs-text through.
        {"invalid request target",
         [](std::string_view, const head_view& h) {
             return has_byte_outside(h.target(), 0x21, 0x7e);
         }},
        // RFC 9112 5.2: a server MAY reject obs-fold with 400 (Beast unfolds it); RFC 9112 2.2:
        // so may whitespace before the first field.
        {"obsolete line folding",
         [](std::string_view in, const head_view&) {
             return in.find("\r\n ") != std::string_view::npos ||
                    in.find("\r\n\t") != std::string_view::npos;
         }},
        // RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, to any
        // request with more than one, and to an invalid Host value. Beast does not check.
        {"missing Host header",
         [](std::string_view, const head_view& h) { return h.values("host").empty(); }},
        {"more than one Host header",
         [](std::string_view, const head_view& h) { return h.values("host").size() > 1; }},
        {"invalid Host header",
         [](std::string_view, const head_view& h) {
             const auto v = h.values("host");
             // RFC 3986 3.2.2: reg-name, IP-literal and port characters only.
             static constexpr std::string_view allowed = "-._~%!$&'()*+,;=:[]";
             return v.size() == 1 && std::any_of(v[0].begin(), v[0].end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) == 0 &&
                               allowed.find(c) == std::string_view::npos;
                    });
         }},
        // RFC 9110 8.6: a recipient MAY reject a Content-Length list or repeated field even when
        // the values agree (Beast takes the value); we do, as docs/protocol.md 6.1 asks.
        {"invalid Content-Length",
         [](std::string_view, const head_view& h) {
             const auto v = h.values("content-length");
             return v.size() == 1 && v[0].find(',') != std::string_view::npos;
         }},
        {"more than one Content-Length",
         [](std::string_view, const head_view& h) {
             return h.values("content-length").size() > 1;
         }},
        // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; Beast decodes it.
        {"Transfer-Encoding in an HTTP/1.0 request",
         [](std::string_view, const head_view& h) {
             return h.request_line.substr(h.request_line.size() -
                                          std::min<std::size_t>(8, h.request_line.size())) ==
                        "HTTP/1.0" &&
                    !h.values("transfer-encoding").empty();
         }},
        // docs/protocol.md 6.1: only "chunked" (RFC 9112 6.1 would answer 501 to codings we do not
        // implement). Beast accepts any list ending in chunked and leaves the codings applied.
        {"unsupported Transfer-Encoding",
         [](std::string_view, const head_view& h) {
             const auto v = h.values("transfer-encoding");
             return v.size() > 1 || (v.size() == 1 && !iequals(v[0], "chunked"));
         }},
        // RFC 9112 6.1: Transfer-Encoding with Content-Length "ought to be handled as an error"
        // (smuggling); Beast refuses it only when chunked is the final coding, and otherwise
        // frames by Content-Length.
        {"both Content-Length and Transfer-Encoding",
         [](std::string_view, const head_view& h) {
             return !h.values("content-length").empty() && !h.values("transfer-encoding").empty();
         }},
        // RFC 9112 7.1: recipients must guard against large chunk-size numerals; we take at
        // most 16 hex digits, where Beast skips any number of leading zeros.
        {"invalid chunk size",
         [](std::string_view, const head_view& h) {
             std::size_t run = 0;
             for (const char c : h.rest) {
                 run = std::isxdigit(static_cast<unsigned char>(c)) != 0 ? run + 1 : 0;
                 if (run > 16) return true;
             }
             return false;
         }},
        // RFC 9110 5.6.4: qdtext and quoted-pair exclude CTLs; Beast's quoted-string in a chunk
        // extension lets them through.
        {"invalid chunk extension",
         [](std::string_view, const head_view& h) {
             return std::any_of(h.rest.begin(), h.rest.end(), is_ctl);
         }},
        // RFC 9112 2.2 lets a recipient take a bare LF for a line end; we refuse it anywhere (a
        // proxy that does not would frame the request differently). Beast takes one inside a
        // chunk extension's quoted-string.
        {"bare LF line ending",
         [](std::string_view in, const head_view&) {
             for (std::size_t i = 0; i < in.size(); ++i) {
                 if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) return true;
             }
             return false;
         }},
        // RFC 9112 2.2: a bare CR must be refused or replaced with SP; we refuse it.
        {"bare CR in a line",
         [](std::string_view in, const head_view&) {
             for (std::size_t i = 0; i < in.size(); ++i) {
                 if (in[i] == '\r' && (i + 1 == in.size() || in[i + 1] != '\n')) return true;
             }
             return false;
         }},
    };
    return cases;
}

void dump(std::string_view input, const outcome& ours, const outcome& beast) {
    std::printf("ours=%s(%s) beast=%s: %s\n", name(ours.v), ours.detail.c_str(), name(beast.v),
                printable(input).c_str());
}

// Checks one input; returns an empty string when ours and Beast agree or the disagreement is
// on the allowlist, else a description of the problem.
std::string compare(std::string_view input) {
    const outcome ours = run_ours(input);
    const outcome beast = run_beast(input);
    if (ours.v == verdict::complete && beast.v == verdict::complete) {
        if (same_parse(ours, beast)) return {};
        return "both accept but parse differently";
    }
    if (ours.v == verdict::error && beast.v == verdict::complete) {
        const head_view head = split_head(input);
        for (const auto& c : stricter_than_beast()) {
            if (ours.detail == c.detail) {
                if (c.applies(input, head)) return {};
                return "refused as '" + ours.detail + "' but the input has no such defect";
            }
        }
        return "refused ('" + ours.detail + "') where Beast accepts, not on the allowlist";
    }
    if (ours.v == verdict::complete && beast.v != verdict::complete) {
        // Where we accept what Beast refuses. RFC 9112 2.2: a server SHOULD ignore at least one
        // empty line before the request line, which Beast refuses; without them Beast must
        // parse the same request.
        std::string_view stripped = input;
        const std::size_t before = stripped.size();
        while (stripped.substr(0, 2) == "\r\n") stripped.remove_prefix(2);
        if (stripped.size() != before) {
            outcome again = run_beast(stripped);
            again.consumed += before - stripped.size();
            if (again.v == verdict::complete && same_parse(ours, again)) return {};
        }
        // Connection = #connection-option (RFC 9110 7.6.1): Beast refuses a value that is not a
        // token list, where we only look for the tokens we know (close, keep-alive, upgrade); a
        // malformed option names none of them and changes no framing.
        // Trailer fields too: Beast reads a Connection trailer the same way.
        head_view all_lines;
        for (std::string_view rest = input; !rest.empty();) {
            const std::size_t eol = rest.find("\r\n");
            all_lines.lines.push_back(rest.substr(0, eol));
            rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
        }
        for (const auto value : all_lines.values("connection")) {
            std::string_view rest = value;
            while (!rest.empty()) {
                const std::size_t comma = rest.find(',');
                const std::string_view element = trim(rest.substr(0, comma));
                if (!element.empty() && !std::all_of(element.begin(), element.end(), is_tchar)) {
                    return {};
                }
                if (comma == std::string_view::npos) break;
                rest.remove_prefix(comma + 1);
            }
        }
        return std::string("accepted where Beast says ") + name(beast.v);
    }
    if (ours.v == verdict::need_more && beast.v == verdict::complete) {
        return "waits for more where Beast has a whole request";
    }
    // Neither accepts: an error where the other still waits is a matter of when, not whether
    // (we check each line as it ends, Beast the whole header section at once).
    return {};
}
}  // namespace

// Hidden: prints every corpus input on which we and Beast differ, for reviewing the allowlist
// (run with '[.http_parser_beast_dump]').
TEST_CASE("dump disagreements with Beast", "[.http_parser_beast_dump]") {
    std::printf("corpus: %zu inputs\n", corpus().size());
    for (const auto& input : corpus()) {
        const outcome ours = run_ours(input);
        const outcome beast = run_beast(input);
        if (ours.v != beast.v || (ours.v == verdict::complete && !same_parse(ours, beast))) {
            dump(input, ours, beast);
        }
    }
}

TEST_CASE(
    "the systematic corpus: where Beast and we both accept we agree, other differences are "
    "deliberate",
    "[http_parser_beast]") {
    std::size_t both_accept = 0;
    std::size_t both_refuse = 0;
    std::size_t allowed = 0;
    for (const auto& input : corpus()) {
        INFO(printable(input));
        CHECK(compare(input).empty());
        const outcome ours = run_ours(input);
        const outcome beast = run_beast(input);
        if (ours.v == verdict::complete && beast.v == verdict::complete) {
            ++both_accept;
        } else if (ours.v != verdict::complete && beast.v != verdict::complete) {
            ++both_refuse;
        } else {
            ++allowed;
        }
    }
    // The corpus exercises all three outcomes (and so cannot silently degenerate).
    CHECK(both_accept >= 40);
    CHECK(both_refuse >= 40);
    CHECK(allowed >= 20);
}

TEST_CASE("mutations of the valid corpus: same verdicts and parses as Beast, or deliberate",
          "[http_parser_beast]") {
    std::vector<std::string> seeds;
    for (auto& input : corpus()) {
        if (run_ours(input).v == verdict::complete) seeds.push_back(std::move(input));
    }
    REQUIRE(seeds.size() >= 40);
    static const std::string alphabet =
        std::string("\r\n \t:;=\",\\/*0159afgxHTP.%@?#") + std::string("\0\x01\x7f\x80\xff", 5);
    static const std::vector<std::string> tokens{"\r\n",
                                                 "\r\n ",
                                                 "\r\n\r\n",
                                                 "Host: x\r\n",
                                                 "Content-Length: 3\r\n",
                                                 "Transfer-Encoding: chunked\r\n",
                                                 "chunked",
                                                 ", ",
                                                 "HTTP/1.0",
                                                 "0\r\n\r\n",
                                                 ";a=b",
                                                 ";a=\"b\"",
                                                 "ffff",
                                                 "\n",
                                                 "Connection: close\r\n"};
    // A fixed seed and the engine's raw output (distributions differ between standard
    // libraries), so every run and every platform tries the same inputs.
    std::mt19937 rng(20240607);
    const auto pick = [&](std::size_t n) {
        return n == 0 ? 0 : static_cast<std::size_t>(rng() % n);
    };
    std::size_t both_accept = 0;
    std::size_t only_beast_accepts = 0;
    constexpr std::size_t iterations = 100000;
    for (std::size_t i = 0; i < iterations; ++i) {
        std::string input = seeds[pick(seeds.size())];
        const std::size_t mutations = 1 + pick(3);
        for (std::size_t m = 0; m < mutations; ++m) {
            const std::size_t at = pick(input.size() + 1);
            switch (pick(6)) {
                case 0:
                    if (at < input.size()) input[at] = alphabet[pick(alphabet.size())];
                    break;
                case 1: input.insert(at, 1, alphabet[pick(alphabet.size())]); break;
                case 2:
                    if (at < input.size()) input.erase(at, 1 + pick(4));
                    break;
                case 3: input.insert(at, tokens[pick(tokens.size())]); break;
                case 4: {
                    const std::size_t from = pick(input.size());
                    const std::string piece = input.substr(from, 1 + pick(16));
                    input.insert(pick(input.size() + 1), piece);
                    break;
                }
                default:
                    if (at < input.size()) input[at] = static_cast<char>(rng() & 0xff);
                    break;
            }
        }
        const std::string problem = compare(input);
        if (!problem.empty()) {
            INFO(problem);
            INFO(printable(input));
            CHECK(problem.empty());
        }
        const bool ours_accept = run_ours(input).v == verdict::complete;
        const bool beast_accepts = run_beast(input).v == verdict::complete;
        both_accept += ours_accept && beast_accepts ? 1 : 0;
        only_beast_accepts += !ours_accept && beast_accepts ? 1 : 0;
    }
    // Both outcomes are common enough that the loop tests something.
    CHECK(only_beast_accepts >= iterations / 100);
    CHECK(both_accept >= iterations / 20);
}
