#pragma once
// The strict JSON scanner under the client codec's JSON envelopes, shared with the gateway's
// parser of update messages: one pass over the bytes that validates the RFC 8259 grammar,
// UTF-8 and nesting depth, unescapes the strings a caller asks for and skips the rest.

#include <cstddef>
#include <cstring>
#include <string_view>

#include "common/hex.hpp"
#include "gatehouse/client/limits.hpp"
#include "gatehouse/client/status.hpp"
#include "internal.hpp"

namespace gatehouse::client::detail {

// Where scan_string() puts the unescaped string: a bounded buffer that notes overflow
// instead of writing past its end. A null buffer only validates.
struct string_sink {
    char* buf = nullptr;
    std::size_t cap = 0;
    std::size_t n = 0;
    bool overflow = false;

    void put(char c) noexcept {
        if (buf == nullptr) return;
        if (n < cap) {
            buf[n++] = c;
        } else {
            overflow = true;
        }
    }
    void put(const unsigned char* p, std::size_t len) noexcept {
        if (buf == nullptr) return;
        if (len <= cap - n) {
            std::memcpy(buf + n, p, len);
            n += len;
        } else {
            overflow = true;
        }
    }
    std::string_view view() const noexcept { return {buf, n}; }
};

class json_reader {
public:
    explicit json_reader(std::string_view s) noexcept
        : p_(reinterpret_cast<const unsigned char*>(s.data())), end_(p_ + s.size()) {}

    bool at_end() const noexcept { return p_ == end_; }
    unsigned char peek() const noexcept { return *p_; }
    void advance() noexcept { ++p_; }
    const char* position() const noexcept { return reinterpret_cast<const char*>(p_); }

    void skip_ws() noexcept {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    }

    // Expects `c` after optional whitespace.
    status expect(unsigned char c) noexcept {
        skip_ws();
        if (p_ == end_) return status::truncated;
        if (*p_ != c) return status::syntax_error;
        ++p_;
        return status::ok;
    }

    // At an opening quote: validates the string and writes its unescaped bytes to `sink`.
    template <class Sink>
    status scan_string(Sink& sink) noexcept {
        ++p_;  // the opening quote
        for (;;) {
            // Fast path: a run of plain ASCII copied in one go.
            const unsigned char* run = p_;
            while (p_ != end_ && *p_ >= 0x20 && *p_ < 0x80 && *p_ != '"' && *p_ != '\\') ++p_;
            sink.put(run, static_cast<std::size_t>(p_ - run));
            if (p_ == end_) return status::truncated;
            const unsigned char c = *p_;
            if (c == '"') {
                ++p_;
                return status::ok;
            }
            if (c == '\\') {
                const status st = scan_escape(sink);
                if (st != status::ok) return st;
            } else if (c < 0x20) {
                return status::syntax_error;  // raw control characters must be escaped
            } else {
                const int n = utf8_sequence_length(p_, end_);
                if (n < 0) return status::truncated;
                if (n == 0) return status::invalid_utf8;
                sink.put(p_, static_cast<std::size_t>(n));
                p_ += n;
            }
        }
    }

    // Validates one value, leaving the reader just past it. `depth` container levels are
    // already open around it. Iterative, so input cannot drive the call stack.
    status skip_value(std::size_t depth) noexcept {
        bool in_object[max_nesting_depth];
        std::size_t open = 0;
        for (;;) {
            // A value starts here.
            skip_ws();
            if (p_ == end_) return status::truncated;
            const unsigned char c = *p_;
            bool value_done = true;
            if (c == '{' || c == '[') {
                if (depth + open + 1 > max_nesting_depth) return status::too_deep;
                ++p_;
                skip_ws();
                if (p_ == end_) return status::truncated;
                if (*p_ == static_cast<unsigned char>(c == '{' ? '}' : ']')) {
                    ++p_;  // empty container: a complete value
                } else {
                    in_object[open++] = c == '{';
                    if (c == '{') {
                        const status st = scan_key();
                        if (st != status::ok) return st;
                    }
                    value_done = false;
                }
            } else {
                const status st = scan_scalar();
                if (st != status::ok) return st;
            }
            if (!value_done) continue;

            // After a complete value: close containers until one wants another element.
            for (;;) {
                if (open == 0) return status::ok;
                skip_ws();
                if (p_ == end_) return status::truncated;
                const bool object = in_object[open - 1];
                if (*p_ == ',') {
                    ++p_;
                    if (object) {
                        const status st = scan_key();
                        if (st != status::ok) return st;
                    }
                    break;
                }
                if (*p_ != static_cast<unsigned char>(object ? '}' : ']')) {
                    return status::syntax_error;
                }
                ++p_;
                --open;
            }
        }
    }

    // `"key" :` inside an object, key validated and discarded.
    status scan_key() noexcept {
        skip_ws();
        if (p_ == end_) return status::truncated;
        if (*p_ != '"') return status::syntax_error;
        string_sink none;
        const status st = scan_string(none);
        if (st != status::ok) return st;
        return expect(':');
    }

    status scan_literal(std::string_view lit) noexcept {
        for (const char ch : lit) {
            if (p_ == end_) return status::truncated;
            if (*p_ != static_cast<unsigned char>(ch)) return status::syntax_error;
            ++p_;
        }
        return status::ok;
    }

private:
    status scan_scalar() noexcept {
        switch (*p_) {
            case '"': {
                string_sink none;
                return scan_string(none);
            }
            case 't': return scan_literal("true");
            case 'f': return scan_literal("false");
            case 'n': return scan_literal("null");
            default: return scan_number();
        }
    }

    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    status scan_number() noexcept {
        if (*p_ == '-') {
            ++p_;
            if (p_ == end_) return status::truncated;
        }
        if (*p_ == '0') {
            ++p_;
        } else if (*p_ >= '1' && *p_ <= '9') {
            skip_digits();
        } else {
            return status::syntax_error;
        }
        if (p_ != end_ && *p_ == '.') {
            ++p_;
            const status st = require_digits();
            if (st != status::ok) return st;
        }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            const status st = require_digits();
            if (st != status::ok) return st;
        }
        return status::ok;
    }

    void skip_digits() noexcept {
        while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }

    status require_digits() noexcept {
        if (p_ == end_) return status::truncated;
        if (*p_ < '0' || *p_ > '9') return status::syntax_error;
        skip_digits();
        return status::ok;
    }

    status read_hex4(unsigned& out) noexcept {
        if (end_ - p_ < 4) {
            for (auto q = p_; q != end_; ++q) {
                if (gatehouse::detail::hex_value(static_cast<char>(*q)) < 0)
                    return status::syntax_error;
            }
            return status::truncated;
        }
        out = 0;
        for (int i = 0; i < 4; ++i) {
            const int h = gatehouse::detail::hex_value(static_cast<char>(p_[i]));
            if (h < 0) return status::syntax_error;
            out = out * 16 + static_cast<unsigned>(h);
        }
        p_ += 4;
        return status::ok;
    }

    // At a backslash.
    template <class Sink>
    status scan_escape(Sink& sink) noexcept {
        ++p_;
        if (p_ == end_) return status::truncated;
        const unsigned char e = *p_++;
        switch (e) {
            case '"': sink.put('"'); return status::ok;
            case '\\': sink.put('\\'); return status::ok;
            case '/': sink.put('/'); return status::ok;
            case 'b': sink.put('\b'); return status::ok;
            case 'f': sink.put('\f'); return status::ok;
            case 'n': sink.put('\n'); return status::ok;
            case 'r': sink.put('\r'); return status::ok;
            case 't': sink.put('\t'); return status::ok;
            case 'u': break;
            default: return status::syntax_error;
        }
        unsigned cp = 0;
        status st = read_hex4(cp);
        if (st != status::ok) return st;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return status::invalid_utf8;  // lone low surrogate
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate must be followed by an escaped low one: anything else
            // cannot become UTF-8.
            if (end_ - p_ < 2) return status::truncated;
            if (p_[0] != '\\' || p_[1] != 'u') return status::invalid_utf8;
            p_ += 2;
            unsigned lo = 0;
            st = read_hex4(lo);
            if (st != status::ok) return st;
            if (lo < 0xDC00 || lo > 0xDFFF) return status::invalid_utf8;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        put_utf8(sink, cp);
        return status::ok;
    }

    template <class Sink>
    static void put_utf8(Sink& sink, unsigned cp) noexcept {
        if (cp < 0x80) {
            sink.put(static_cast<char>(cp));
        } else if (cp < 0x800) {
            sink.put(static_cast<char>(0xC0 | (cp >> 6)));
            sink.put(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            sink.put(static_cast<char>(0xE0 | (cp >> 12)));
            sink.put(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            sink.put(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            sink.put(static_cast<char>(0xF0 | (cp >> 18)));
            sink.put(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            sink.put(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            sink.put(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }

    const unsigned char* p_;
    const unsigned char* end_;
};

}  // namespace gatehouse::client::detail
