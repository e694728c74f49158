// JSON envelopes: one strict pass over the frame that validates all of it (RFC 8259
// grammar, UTF-8, nesting depth) while picking out `type`, `correlation_id`, `update_id`,
// `traceparent` and the raw bytes of `payload`. The payload is never parsed into a tree or rebuilt:
// it is validated in place and handed on as the slice of the frame it came in.

#include "internal.hpp"
#include "json_reader.hpp"

namespace gatehouse::client::detail {
namespace {

constexpr std::string_view json_null = "null";

enum class field { type, payload, correlation_id, update_id, traceparent, other };

// The first error of the envelope (as opposed to the frame) is remembered and reported
// only once the whole frame has proven well-formed: frame errors take precedence.
void note(status& first, status s) noexcept {
    if (first == status::ok) first = s;
}

field classify(const string_sink& key) noexcept {
    if (key.overflow) return field::other;
    const std::string_view k = key.view();
    if (k == "type") return field::type;
    if (k == "payload") return field::payload;
    if (k == "correlation_id") return field::correlation_id;
    if (k == "update_id") return field::update_id;
    if (k == "traceparent") return field::traceparent;
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

// Reads the value of `update_id` or `traceparent` (the reader is at its first byte) into
// `buf`, and returns its length when it is a string that `valid` accepts, else 0. These
// fields are optional extras (docs/protocol.md 6): one that is not valid is dropped, never an
// envelope error, so a v1 client that happened to send such a key keeps working.
template <bool (*valid)(std::string_view) noexcept>
status read_optional_string(json_reader& r, char* buf, std::size_t cap, std::size_t& len) noexcept {
    len = 0;
    if (r.peek() != '"') return r.skip_value(1);
    string_sink sink{buf, cap};
    const status st = r.scan_string(sink);
    if (st == status::ok && !sink.overflow && valid(sink.view())) len = sink.n;
    return st;
}

void put_json_string(output_writer& w, std::string_view s) noexcept {
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
                w.put(gatehouse::detail::hex_digits_lower[c >> 4]);
                w.put(gatehouse::detail::hex_digits_lower[c & 0xF]);
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
    out.clear_update_id();
    out.clear_traceparent();
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
    // update_id and traceparent given twice are dropped: which one was meant is unknown.
    bool seen_update_id = false, seen_traceparent = false;
    bool update_id_ambiguous = false, traceparent_ambiguous = false;
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
                case field::update_id: {
                    std::size_t n = 0;
                    st = read_optional_string<is_valid_update_id>(
                        r, envelope_access::update_id_buffer(out), max_update_id_length, n);
                    envelope_access::set_update_id_length(out, n);
                    if (seen_update_id) update_id_ambiguous = true;
                    seen_update_id = true;
                    break;
                }
                case field::traceparent: {
                    std::size_t n = 0;
                    st = read_optional_string<is_valid_traceparent>(
                        r, envelope_access::traceparent_buffer(out), traceparent_length, n);
                    envelope_access::set_traceparent_length(out, n);
                    if (seen_traceparent) traceparent_ambiguous = true;
                    seen_traceparent = true;
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
    if (update_id_ambiguous) out.clear_update_id();
    if (traceparent_ambiguous) out.clear_traceparent();
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
    if (in.has_update_id()) {
        w.put(R"(,"update_id":)");
        put_json_string(w, in.update_id());  // visible ASCII may hold '"' and '\'
    }
    if (in.has_traceparent()) {
        w.put(R"(,"traceparent":")");
        w.put(in.traceparent());  // lower-case hex and '-': nothing to escape
        w.put('"');
    }
    w.put('}');
    return w.finish();
}

}  // namespace gatehouse::client::detail
