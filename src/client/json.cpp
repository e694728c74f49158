// JSON envelopes: one strict pass over the frame that validates all of it (RFC 8259
// grammar, UTF-8, nesting depth) while picking out `type`, `correlation_id` and the raw
// bytes of `payload`. The payload is never parsed into a tree or rebuilt: it is validated
// in place and handed on as the slice of the frame it came in.

#include "internal.hpp"

namespace gatehouse::client::detail {
namespace {

constexpr std::string_view json_null = "null";

enum class field { type, payload, correlation_id, other };

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

// The first error of the envelope (as opposed to the frame) is remembered and reported
// only once the whole frame has proven well-formed: frame errors take precedence.
void note(status& first, status s) noexcept {
    if (first == status::ok) first = s;
}

int hex_value(unsigned char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

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
    status scan_string(string_sink& sink) noexcept {
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
                if (hex_value(*q) < 0) return status::syntax_error;
            }
            return status::truncated;
        }
        out = 0;
        for (int i = 0; i < 4; ++i) {
            const int h = hex_value(p_[i]);
            if (h < 0) return status::syntax_error;
            out = out * 16 + static_cast<unsigned>(h);
        }
        p_ += 4;
        return status::ok;
    }

    // At a backslash.
    status scan_escape(string_sink& sink) noexcept {
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

    static void put_utf8(string_sink& sink, unsigned cp) noexcept {
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

field classify(const string_sink& key) noexcept {
    if (key.overflow) return field::other;
    const std::string_view k = key.view();
    if (k == "type") return field::type;
    if (k == "payload") return field::payload;
    if (k == "correlation_id") return field::correlation_id;
    return field::other;
}

// Reads the value of `type` (the reader is at its first byte).
status read_type(json_reader& r, envelope& out, status& envelope_error) noexcept {
    if (r.peek() != '"') {
        note(envelope_error, status::invalid_type);
        return r.skip_value(1);
    }
    string_sink sink{envelope_access::type_buffer(out), max_type_length};
    const status st = r.scan_string(sink);
    if (st != status::ok) return st;
    if (sink.n == 0 && !sink.overflow) {
        note(envelope_error, status::missing_type);
    } else if (sink.overflow || !is_valid_type(sink.view())) {
        note(envelope_error, status::invalid_type);
    } else {
        envelope_access::set_type_length(out, sink.n);
    }
    return status::ok;
}

// Reads the value of `correlation_id` (the reader is at its first byte): a string, or
// null for "absent".
status read_correlation_id(json_reader& r, envelope& out, status& envelope_error) noexcept {
    if (r.peek() == 'n') {
        out.clear_correlation_id();
        return r.scan_literal(json_null);  // no other JSON value starts with 'n'
    }
    if (r.peek() != '"') {
        note(envelope_error, status::invalid_correlation_id);
        return r.skip_value(1);
    }
    string_sink sink{envelope_access::corr_buffer(out), max_correlation_id_bytes};
    const status st = r.scan_string(sink);
    if (st != status::ok) return st;
    // The unescaped bytes are valid UTF-8: the input was checked and \u escapes are
    // encoded from whole code points.
    if (sink.overflow || sink.n == 0 || utf8_length(sink.view()) > max_correlation_id_chars) {
        note(envelope_error, status::invalid_correlation_id);
    } else {
        envelope_access::set_corr_length(out, sink.n);
    }
    return status::ok;
}

void put_json_string(output_writer& w, std::string_view s) noexcept {
    static constexpr char hex[] = "0123456789abcdef";
    w.put('"');
    std::size_t run = 0;  // start of the pending run of bytes that need no escaping
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        w.put(s.substr(run, i - run));
        run = i + 1;
        w.put('\\');
        switch (c) {
            case '"': w.put('"'); break;
            case '\\': w.put('\\'); break;
            case '\b': w.put('b'); break;
            case '\f': w.put('f'); break;
            case '\n': w.put('n'); break;
            case '\r': w.put('r'); break;
            case '\t': w.put('t'); break;
            default:
                w.put("u00");
                w.put(hex[c >> 4]);
                w.put(hex[c & 0xF]);
        }
    }
    w.put(s.substr(run));
    w.put('"');
}

}  // namespace

status validate_json_value(std::string_view bytes, std::size_t depth) noexcept {
    json_reader r(bytes);
    const status st = r.skip_value(depth);
    if (st != status::ok) return st;
    r.skip_ws();
    return r.at_end() ? status::ok : status::trailing_bytes;
}

status decode_json(std::string_view frame, envelope& out) noexcept {
    envelope_access::set_type_length(out, 0);
    out.clear_correlation_id();
    out.set_payload(payload_format::json, json_null);

    json_reader r(frame);
    r.skip_ws();
    if (r.at_end()) return status::truncated;
    if (r.peek() != '{') {
        const status st = validate_json_value(frame, 0);
        return st != status::ok ? st : status::not_a_map;
    }
    r.advance();

    status envelope_error = status::ok;
    bool seen_type = false, seen_payload = false, seen_corr = false, corr_ambiguous = false;
    r.skip_ws();
    if (r.at_end()) return status::truncated;
    if (r.peek() == '}') {
        r.advance();
    } else {
        for (;;) {
            if (r.at_end()) return status::truncated;
            if (r.peek() != '"') return status::syntax_error;
            char key_buf[16];
            string_sink key{key_buf, sizeof key_buf};
            status st = r.scan_string(key);
            if (st != status::ok) return st;
            st = r.expect(':');
            if (st != status::ok) return st;
            r.skip_ws();
            if (r.at_end()) return status::truncated;

            const field f = classify(key);
            bool* seen = f == field::type             ? &seen_type
                         : f == field::payload        ? &seen_payload
                         : f == field::correlation_id ? &seen_corr
                                                      : nullptr;
            bool duplicate = false;
            if (seen != nullptr) {
                duplicate = *seen;
                if (duplicate) note(envelope_error, status::duplicate_field);
                *seen = true;
            }
            switch (f) {
                case field::type: st = read_type(r, out, envelope_error); break;
                case field::correlation_id:
                    st = read_correlation_id(r, out, envelope_error);
                    if (duplicate) corr_ambiguous = true;  // which one was meant is unknown
                    break;
                case field::payload: {
                    const char* start = r.position();
                    st = r.skip_value(1);
                    out.set_payload(payload_format::json,
                                    {start, static_cast<std::size_t>(r.position() - start)});
                    break;
                }
                case field::other: st = r.skip_value(1); break;
            }
            if (st != status::ok) return st;

            r.skip_ws();
            if (r.at_end()) return status::truncated;
            if (r.peek() == '}') {
                r.advance();
                break;
            }
            if (r.peek() != ',') return status::syntax_error;
            r.advance();
            r.skip_ws();
        }
    }
    r.skip_ws();
    if (!r.at_end()) return status::trailing_bytes;
    if (corr_ambiguous) out.clear_correlation_id();
    if (envelope_error != status::ok) return envelope_error;
    if (!seen_type) return status::missing_type;
    return status::ok;
}

encode_result encode_json(const envelope& in, char* out, std::size_t capacity) noexcept {
    if (in.format() != payload_format::json) return {status::payload_format_mismatch, 0};
    if (validate_json_value(in.payload(), 1) != status::ok) return {status::invalid_payload, 0};
    output_writer w(out, capacity);
    w.put(R"({"type":")");
    w.put(in.type());  // the type charset needs no escaping
    w.put(R"(","payload":)");
    w.put(in.payload());
    if (in.has_correlation_id()) {
        w.put(R"(,"correlation_id":)");
        put_json_string(w, in.correlation_id());
    }
    w.put('}');
    return w.finish();
}

}  // namespace gatehouse::client::detail
