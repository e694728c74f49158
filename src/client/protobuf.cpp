// Protobuf envelopes: message gatehouse.v1.Envelope of proto/gatehouse.proto, read and
// written by hand (no libprotobuf in the client codec).
//
//   string type = 1;  bytes payload = 2;  optional string correlation_id = 3;
//   string payload_codec = 4;  optional string update_id = 5;  optional string traceparent = 6;
//
// Decoding follows libprotobuf: unknown fields (and known field numbers with a wire type
// other than length-delimited) are skipped, a repeated field's last occurrence wins, groups
// and wire types 6/7 are malformed, and proto3 strings must be valid UTF-8. Every declared
// length is compared with the bytes that remain, so a length varint up to 2^64-1 fails with
// `truncated` before any pointer is moved.
//
// Anything accepted here is accepted by libprotobuf too (the fuzzers check it): tags are at
// most 5 bytes and 32 bits, lengths at most 5 bytes, as libprotobuf reads them. Where
// libprotobuf is laxer (groups of unknown fields, tag bits beyond 32 and 10th varint bytes
// above 1, which it drops silently) this decoder refuses.

#include <cstdint>
#include <cstring>

#include "internal.hpp"

namespace gatehouse::client::detail {

namespace {

using byte_ptr = const unsigned char*;

enum : std::uint32_t {
    field_type = 1,
    field_payload = 2,
    field_correlation_id = 3,
    field_payload_codec = 4,
    field_update_id = 5,
    field_traceparent = 6,
};

enum : std::uint32_t {
    wire_varint = 0,
    wire_fixed64 = 1,
    wire_len = 2,
    wire_start_group = 3,
    wire_end_group = 4,
    wire_fixed32 = 5,
};

std::size_t remaining(byte_ptr p, byte_ptr end) noexcept {
    return static_cast<std::size_t>(end - p);
}

// A base-128 varint of at most 10 bytes; the 10th may only carry the 64th bit.
status read_varint(byte_ptr& p, byte_ptr end, std::uint64_t& v) noexcept {
    v = 0;
    for (unsigned i = 0; i < 10; ++i) {
        if (p == end) return status::truncated;
        const unsigned char b = *p++;
        if (i == 9 && b > 1) return status::syntax_error;
        v |= static_cast<std::uint64_t>(b & 0x7fu) << (7 * i);
        if (b < 0x80) return status::ok;
    }
    return status::syntax_error;  // unreachable: the 10th byte either ends or fails above
}

// A tag: libprotobuf reads at most 5 bytes, and field numbers end at 2^29-1, so a longer
// tag, or one over 32 bits, is malformed.
status read_tag(byte_ptr& p, byte_ptr end, std::uint32_t& tag) noexcept {
    std::uint64_t v = 0;
    for (unsigned i = 0; i < 5; ++i) {
        if (p == end) return status::truncated;
        const unsigned char b = *p++;
        v |= static_cast<std::uint64_t>(b & 0x7fu) << (7 * i);
        if (b < 0x80) {
            if (v > 0xffffffffu) return status::syntax_error;
            tag = static_cast<std::uint32_t>(v);
            return status::ok;
        }
    }
    return status::syntax_error;
}

// The length of a length-delimited field, checked against the bytes that remain. libprotobuf
// refuses a length varint of more than 5 bytes even when it is only zero-padded; one that
// declares more bytes than remain is `truncated` however it is written.
status read_length(byte_ptr& p, byte_ptr end, std::uint64_t& n) noexcept {
    const byte_ptr start = p;
    const status s = read_varint(p, end, n);
    if (s != status::ok) return s;
    if (n > remaining(p, end)) return status::truncated;
    if (p - start > 5) return status::syntax_error;
    return status::ok;
}

status skip_bytes(byte_ptr& p, byte_ptr end, std::uint64_t n) noexcept {
    if (n > remaining(p, end)) return status::truncated;
    p += n;
    return status::ok;
}

void put_varint(output_writer& w, std::uint64_t v) noexcept {
    while (v >= 0x80) {
        w.put(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    w.put(static_cast<char>(v));
}

void put_field(output_writer& w, std::uint32_t field, std::string_view bytes) noexcept {
    put_varint(w, (static_cast<std::uint64_t>(field) << 3) | wire_len);
    put_varint(w, bytes.size());
    w.put(bytes);
}

constexpr char json_null[] = "null";
constexpr char msgpack_nil[] = "\xc0";
constexpr char no_bytes[] = "";

}  // namespace

status decode_protobuf(std::string_view frame, envelope& out) noexcept {
    auto p = reinterpret_cast<byte_ptr>(frame.data());
    const byte_ptr end = p + frame.size();

    std::string_view type, corr, codec, update_id, traceparent;
    std::string_view payload = no_bytes;  // not null, even when absent
    bool has_corr = false;

    while (p != end) {
        std::uint32_t tag = 0;
        status s = read_tag(p, end, tag);
        if (s != status::ok) return s;
        const std::uint32_t field = tag >> 3;
        const std::uint32_t wire = tag & 7;
        if (field == 0) return status::syntax_error;
        std::uint64_t n = 0;
        switch (wire) {
            case wire_varint:
                s = read_varint(p, end, n);
                if (s != status::ok) return s;
                continue;
            case wire_fixed64:
                s = skip_bytes(p, end, 8);
                if (s != status::ok) return s;
                continue;
            case wire_fixed32:
                s = skip_bytes(p, end, 4);
                if (s != status::ok) return s;
                continue;
            case wire_len: break;
            default: return status::syntax_error;  // groups (3, 4) and the unused 6, 7
        }
        s = read_length(p, end, n);
        if (s != status::ok) return s;
        const std::string_view value(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
        p += n;

        switch (field) {
            case field_payload: payload = value; break;
            case field_type:
            case field_correlation_id:
            case field_payload_codec:
            case field_update_id:
            case field_traceparent:
                // proto3 strings: libprotobuf refuses the message when one is not UTF-8.
                if (!is_valid_utf8(value)) return status::invalid_utf8;
                if (field == field_type) {
                    type = value;
                } else if (field == field_correlation_id) {
                    corr = value;
                    has_corr = true;
                } else if (field == field_payload_codec) {
                    codec = value;
                } else if (field == field_update_id) {
                    update_id = value;
                } else {
                    traceparent = value;
                }
                break;
            default: break;  // unknown field
        }
    }

    // The message was read: from here on, a failure can still name the correlation id.
    const bool corr_known = has_corr && is_valid_correlation_id(corr);
    envelope_access::store_correlation_id(out, corr_known ? corr : std::string_view{});

    // The payload must be what payload_codec says (a frame error: the bytes lie).
    payload_format format = payload_format::bytes;
    if (codec == "json") {
        format = payload_format::json;
        if (payload.empty()) {
            payload = std::string_view(json_null, 4);
        } else if (validate_json_value(payload, 1) != status::ok) {
            return status::invalid_payload;
        }
    } else if (codec == "msgpack") {
        format = payload_format::msgpack;
        if (payload.empty()) {
            payload = std::string_view(msgpack_nil, 1);
        } else if (validate_msgpack_value(payload, 1) != status::ok) {
            return status::invalid_payload;
        }
    }

    if (type.empty()) return status::missing_type;
    if (!is_valid_type(type)) return status::invalid_type;
    if (has_corr && !corr_known) return status::invalid_correlation_id;

    envelope_access::store_ids(out, type, has_corr ? corr : std::string_view{});
    // The optional extras (docs/protocol.md 6) are dropped when malformed, never an envelope
    // error; as for every field, the last occurrence is the one judged.
    envelope_access::store_trace_fields(
        out, is_valid_update_id(update_id) ? update_id : std::string_view{},
        is_valid_traceparent(traceparent) ? traceparent : std::string_view{});
    out.set_payload(format, payload, codec);
    return status::ok;
}

encode_result encode_protobuf(const envelope& in, char* out, std::size_t capacity) noexcept {
    if (in.type().empty()) return {status::missing_type, 0};
    const std::string_view codec = in.payload_codec();
    // Never emit a frame whose payload_codec lies about the payload: whatever is sent as
    // "json" or "msgpack" (the envelope's format, or a bytes payload carrying that codec
    // name) is checked as the receiver will check it.
    // An empty bytes payload is left out of the frame, which the receiver reads as absent,
    // i.e. null: that is no lie whatever the codec name.
    const bool absent = in.format() == payload_format::bytes && in.payload().empty();
    if (codec == "json") {
        if (!absent && validate_json_value(in.payload(), 1) != status::ok) {
            return {status::invalid_payload, 0};
        }
    } else if (codec == "msgpack") {
        if (!absent && validate_msgpack_value(in.payload(), 1) != status::ok) {
            return {status::invalid_payload, 0};
        }
    } else if (!is_valid_utf8(codec)) {
        // payload_codec is a proto3 string: the receiver would refuse the whole frame.
        return {status::invalid_argument, 0};
    }

    output_writer w(out, capacity);
    put_field(w, field_type, in.type());
    if (!in.payload().empty()) put_field(w, field_payload, in.payload());
    if (in.has_correlation_id()) put_field(w, field_correlation_id, in.correlation_id());
    if (!codec.empty()) put_field(w, field_payload_codec, codec);
    if (in.has_update_id()) put_field(w, field_update_id, in.update_id());
    if (in.has_traceparent()) put_field(w, field_traceparent, in.traceparent());
    return w.finish();
}

}  // namespace gatehouse::client::detail
