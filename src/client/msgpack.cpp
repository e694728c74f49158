// MessagePack envelopes (docs/protocol.md sections 3 and 6): a map with the keys "type",
// "payload", "correlation_id", "update_id" and "traceparent".
//
// The decoder makes one pass over the frame. Every value is checked against the
// MessagePack specification (all formats, 0xc1 refused), nesting is bounded by
// `max_nesting_depth` with a fixed-size stack (no recursion driven by input), and every
// declared str/bin/ext length is compared with the bytes that remain before anything is read,
// so a str32/bin32/ext32 claiming 2^32-1 bytes fails at once with `truncated`. An
// array32/map32 claiming 2^32-1 values costs no more: each value takes at least a byte, so
// the parse ends (normally with `truncated`) once the input runs out.
// Frame errors (`truncated`, `syntax_error`, `too_deep`, `trailing_bytes`) win over envelope
// errors: the first envelope error is remembered and returned only once the whole frame has
// proved well-formed.

#include <cstdint>
#include <cstring>

#include "internal.hpp"

namespace gatehouse::client::detail {

namespace {

using byte_ptr = const unsigned char*;

// What a value's first bytes announce.
enum class kind : std::uint8_t { scalar, str, bin, ext, array, map };

struct header {
    kind k = kind::scalar;
    // Bytes of data that follow the header (str/bin/ext bodies, fixed-size scalars), or the
    // number of elements (array) or entries (map).
    std::uint64_t n = 0;
};

std::size_t remaining(byte_ptr p, byte_ptr end) noexcept {
    return static_cast<std::size_t>(end - p);
}

// Big-endian unsigned integer of `width` bytes; the caller has checked they are there.
std::uint64_t read_be(byte_ptr p, std::size_t width) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i) v = (v << 8) | p[i];
    return v;
}

// Reads a length field of `width` bytes at p (advancing p).
status read_length(byte_ptr& p, byte_ptr end, std::size_t width, std::uint64_t& n) noexcept {
    if (remaining(p, end) < width) return status::truncated;
    n = read_be(p, width);
    p += width;
    return status::ok;
}

// Reads the header of the value at p (p < end is not required) and advances p past it.
status read_header(byte_ptr& p, byte_ptr end, header& h) noexcept {
    if (p == end) return status::truncated;
    const unsigned char b = *p++;
    h = header{};
    if (b <= 0x7f || b >= 0xe0) return status::ok;  // positive / negative fixint
    if (b <= 0x8f) {
        h.k = kind::map;
        h.n = b & 0x0fu;
        return status::ok;
    }
    if (b <= 0x9f) {
        h.k = kind::array;
        h.n = b & 0x0fu;
        return status::ok;
    }
    if (b <= 0xbf) {
        h.k = kind::str;
        h.n = b & 0x1fu;
        return status::ok;
    }
    switch (b) {
        case 0xc0:  // nil
        case 0xc2:  // false
        case 0xc3:  // true
            return status::ok;
        case 0xc1: return status::syntax_error;  // never used
        case 0xc4: h.k = kind::bin; return read_length(p, end, 1, h.n);
        case 0xc5: h.k = kind::bin; return read_length(p, end, 2, h.n);
        case 0xc6: h.k = kind::bin; return read_length(p, end, 4, h.n);
        case 0xc7:
        case 0xc8:
        case 0xc9: {
            // ext 8/16/32: length, then a type byte, then the data.
            h.k = kind::ext;
            const std::size_t width = b == 0xc7 ? 1u : b == 0xc8 ? 2u : 4u;
            const status s = read_length(p, end, width, h.n);
            h.n += 1;  // the type byte
            return s;
        }
        case 0xca: h.n = 4; return status::ok;  // float 32
        case 0xcb: h.n = 8; return status::ok;  // float 64
        case 0xcc: h.n = 1; return status::ok;  // uint 8
        case 0xcd: h.n = 2; return status::ok;  // uint 16
        case 0xce: h.n = 4; return status::ok;  // uint 32
        case 0xcf: h.n = 8; return status::ok;  // uint 64
        case 0xd0: h.n = 1; return status::ok;  // int 8
        case 0xd1: h.n = 2; return status::ok;  // int 16
        case 0xd2: h.n = 4; return status::ok;  // int 32
        case 0xd3: h.n = 8; return status::ok;  // int 64
        case 0xd4:
            h.k = kind::ext;
            h.n = 1 + 1;
            return status::ok;  // fixext 1
        case 0xd5:
            h.k = kind::ext;
            h.n = 1 + 2;
            return status::ok;  // fixext 2
        case 0xd6:
            h.k = kind::ext;
            h.n = 1 + 4;
            return status::ok;  // fixext 4
        case 0xd7:
            h.k = kind::ext;
            h.n = 1 + 8;
            return status::ok;  // fixext 8
        case 0xd8:
            h.k = kind::ext;
            h.n = 1 + 16;
            return status::ok;  // fixext 16
        case 0xd9: h.k = kind::str; return read_length(p, end, 1, h.n);
        case 0xda: h.k = kind::str; return read_length(p, end, 2, h.n);
        case 0xdb: h.k = kind::str; return read_length(p, end, 4, h.n);
        case 0xdc: h.k = kind::array; return read_length(p, end, 2, h.n);
        case 0xdd: h.k = kind::array; return read_length(p, end, 4, h.n);
        case 0xde: h.k = kind::map; return read_length(p, end, 2, h.n);
        case 0xdf: h.k = kind::map; return read_length(p, end, 4, h.n);
        default: break;
    }
    return status::syntax_error;  // unreachable: every byte is covered above
}

// The values a container holds: its elements, or a key and a value per map entry.
std::uint64_t values_in(const header& h) noexcept {
    return h.k == kind::map ? 2 * h.n : h.n;  // n < 2^32: no overflow
}

// Parses exactly one value starting at p and advances p past it. Containers opened here
// sit at nesting levels depth+1, depth+2, ...; none may exceed max_nesting_depth.
// Iterative: `pending[i]` counts the values still to read in the i-th open container.
status skip_value(byte_ptr& p, byte_ptr end, std::size_t depth) noexcept {
    std::uint64_t pending[max_nesting_depth + 1];
    std::size_t top = 0;
    pending[0] = 1;
    for (;;) {
        header h;
        const status s = read_header(p, end, h);
        if (s != status::ok) return s;
        --pending[top];
        if (h.k == kind::array || h.k == kind::map) {
            if (depth >= max_nesting_depth || top >= max_nesting_depth - depth) {
                return status::too_deep;
            }
            // No check of the count against the bytes left: every value takes at least one
            // byte, so a count the input cannot hold ends in `truncated` after at most
            // `end - p` values, and an error met before then is reported as what it is.
            pending[++top] = values_in(h);
        } else {
            if (h.n > remaining(p, end)) return status::truncated;
            p += h.n;
        }
        while (pending[top] == 0) {
            if (top == 0) return status::ok;
            --top;
        }
    }
}

// The contents of a validated str value, or false when `raw` is not a str.
bool str_contents(std::string_view raw, std::string_view& out) noexcept {
    auto p = reinterpret_cast<byte_ptr>(raw.data());
    const byte_ptr end = p + raw.size();
    header h;
    if (read_header(p, end, h) != status::ok || h.k != kind::str) return false;
    out = std::string_view(reinterpret_cast<const char*>(p), remaining(p, end));
    return true;
}

// Parses one value at p (at nesting depth `depth`) and returns its raw bytes in `raw`.
status take_value(byte_ptr& p, byte_ptr end, std::size_t depth, std::string_view& raw) noexcept {
    const byte_ptr start = p;
    const status s = skip_value(p, end, depth);
    if (s == status::ok)
        raw = std::string_view(reinterpret_cast<const char*>(start), remaining(start, p));
    return s;
}

// `type`: a str of 1-64 characters of [A-Za-z0-9_.:-]. Sets `type` only when valid.
status read_type(std::string_view raw, std::string_view& type) noexcept {
    std::string_view v;
    if (!str_contents(raw, v)) return status::invalid_type;
    if (v.empty()) return status::missing_type;
    if (!is_valid_type(v)) return status::invalid_type;
    type = v;
    return status::ok;
}

// `correlation_id`: nil (absent) or a valid str. Sets the outputs only when valid.
status read_correlation_id(std::string_view raw, std::string_view& id, bool& present) noexcept {
    if (raw.size() == 1 && static_cast<unsigned char>(raw[0]) == 0xc0) {
        present = false;
        return status::ok;
    }
    std::string_view v;
    if (!str_contents(raw, v) || !is_valid_correlation_id(v)) {
        return status::invalid_correlation_id;
    }
    id = v;
    present = true;
    return status::ok;
}

// `update_id` / `traceparent`: kept when a str that `valid` accepts, else dropped (these
// optional extras are never an envelope error). A key given twice drops the field.
void read_optional_string(std::string_view raw, bool (*valid)(std::string_view) noexcept,
                          bool& seen, std::string_view& out) noexcept {
    std::string_view v;
    if (seen || !str_contents(raw, v) || !valid(v)) v = {};
    seen = true;
    out = v;
}

constexpr char nil_payload[] = "\xc0";

void put_str(output_writer& w, std::string_view s) noexcept {
    const std::size_t n = s.size();
    if (n < 32) {
        w.put(static_cast<char>(0xa0 | n));
    } else if (n <= 0xff) {
        w.put(static_cast<char>(0xd9));
        w.put(static_cast<char>(n));
    } else if (n <= 0xffff) {
        w.put(static_cast<char>(0xda));
        w.put(static_cast<char>((n >> 8) & 0xff));
        w.put(static_cast<char>(n & 0xff));
    } else {
        w.put(static_cast<char>(0xdb));
        for (int shift = 24; shift >= 0; shift -= 8) {
            w.put(static_cast<char>((n >> shift) & 0xff));
        }
    }
    w.put(s);
}

}  // namespace

status validate_msgpack_value(std::string_view bytes, std::size_t depth) noexcept {
    auto p = reinterpret_cast<byte_ptr>(bytes.data());
    const byte_ptr end = p + bytes.size();
    const status s = skip_value(p, end, depth);
    if (s != status::ok) return s;
    return p == end ? status::ok : status::trailing_bytes;
}

status decode_msgpack(std::string_view frame, envelope& out) noexcept {
    const auto begin = reinterpret_cast<byte_ptr>(frame.data());
    const byte_ptr end = begin + frame.size();
    byte_ptr p = begin;

    header top;
    status s = read_header(p, end, top);
    if (s != status::ok) return s;
    if (top.k != kind::map) {
        // Not an envelope, but the frame must still be one well-formed value.
        p = begin;
        s = skip_value(p, end, 0);
        if (s != status::ok) return s;
        return p == end ? status::not_a_map : status::trailing_bytes;
    }

    status envelope_error = status::ok;
    auto note = [&envelope_error](status e) {  // remembers the first envelope error
        if (envelope_error == status::ok) envelope_error = e;
    };
    bool seen_type = false, seen_payload = false, seen_corr = false;
    std::string_view type, corr, payload(nil_payload, 1);
    bool has_corr = false;
    bool seen_update_id = false, seen_traceparent = false;
    std::string_view update_id, traceparent;

    for (std::uint64_t i = 0; i < top.n; ++i) {
        std::string_view key_raw, value_raw;
        s = take_value(p, end, 1, key_raw);
        if (s != status::ok) return s;
        s = take_value(p, end, 1, value_raw);
        if (s != status::ok) return s;

        std::string_view key;
        if (!str_contents(key_raw, key)) continue;  // a non-str key: ignored
        if (key == "type") {
            if (seen_type) {
                note(status::duplicate_field);
                continue;
            }
            seen_type = true;
            note(read_type(value_raw, type));
        } else if (key == "payload") {
            if (seen_payload) {
                note(status::duplicate_field);
                continue;
            }
            seen_payload = true;
            payload = value_raw;
        } else if (key == "correlation_id") {
            if (seen_corr) {
                note(status::duplicate_field);
                has_corr = false;  // which one the client meant is unknown
                continue;
            }
            seen_corr = true;
            note(read_correlation_id(value_raw, corr, has_corr));
        } else if (key == "update_id") {
            read_optional_string(value_raw, is_valid_update_id, seen_update_id, update_id);
        } else if (key == "traceparent") {
            read_optional_string(value_raw, is_valid_traceparent, seen_traceparent, traceparent);
        }
    }
    if (p != end) return status::trailing_bytes;
    if (envelope_error == status::ok && type.empty()) envelope_error = status::missing_type;
    if (envelope_error != status::ok) {
        // Well-formed but invalid: the error reply can still name the correlation id.
        envelope_access::store_correlation_id(out, has_corr ? corr : std::string_view{});
        return envelope_error;
    }

    // Valid: only now is `out` touched. is_valid_type / is_valid_correlation_id bound the
    // sizes by the inline buffers.
    envelope_access::store_ids(out, type, has_corr ? corr : std::string_view{});
    envelope_access::store_trace_fields(out, update_id, traceparent);
    out.set_payload(payload_format::msgpack, payload);
    return status::ok;
}

encode_result encode_msgpack(const envelope& in, char* out, std::size_t capacity) noexcept {
    if (in.type().empty()) return {status::missing_type, 0};
    if (in.format() != payload_format::msgpack) return {status::payload_format_mismatch, 0};
    if (validate_msgpack_value(in.payload(), 1) != status::ok) {
        return {status::invalid_payload, 0};
    }
    output_writer w(out, capacity);
    const unsigned entries = 2u + (in.has_correlation_id() ? 1u : 0u) +
                             (in.has_update_id() ? 1u : 0u) + (in.has_traceparent() ? 1u : 0u);
    w.put(static_cast<char>(0x80 | entries));  // fixmap
    put_str(w, "type");
    put_str(w, in.type());
    put_str(w, "payload");
    w.put(in.payload());
    if (in.has_correlation_id()) {
        put_str(w, "correlation_id");
        put_str(w, in.correlation_id());
    }
    if (in.has_update_id()) {
        put_str(w, "update_id");
        put_str(w, in.update_id());
    }
    if (in.has_traceparent()) {
        put_str(w, "traceparent");
        put_str(w, in.traceparent());
    }
    return w.finish();
}

}  // namespace gatehouse::client::detail
