#include "gatehouse/client/codec.hpp"

#include "internal.hpp"

namespace gatehouse::client {

std::string_view name_of(wire_format format) noexcept {
    switch (format) {
        case wire_format::json: return "json";
        case wire_format::msgpack: return "msgpack";
        case wire_format::protobuf: return "protobuf";
    }
    return {};
}

bool parse_wire_format(std::string_view name, wire_format& out) noexcept {
    for (const auto f : {wire_format::json, wire_format::msgpack, wire_format::protobuf}) {
        if (name == name_of(f)) {
            out = f;
            return true;
        }
    }
    return false;
}

status decode(wire_format format, std::string_view frame, envelope& out) noexcept {
    status st = status::invalid_argument;
    switch (format) {
        case wire_format::json: st = detail::decode_json(frame, out); break;
        case wire_format::msgpack: st = detail::decode_msgpack(frame, out); break;
        case wire_format::protobuf: st = detail::decode_protobuf(frame, out); break;
    }
    // Bytes that could not be read name no correlation id, whatever a decoder stored before
    // it found out. (A Protobuf payload that is not what payload_codec says is a frame error
    // in a message that was read, so its correlation id is known.)
    if (st != status::ok && st != status::invalid_payload && is_frame_error(st)) {
        out.clear_correlation_id();
    }
    // The extras are never reported with an error: no error reply carries them.
    if (st != status::ok) {
        out.clear_update_id();
        out.clear_traceparent();
    }
    return st;
}

encode_result encode(wire_format format, const envelope& in, char* out,
                     std::size_t capacity) noexcept {
    if (in.type().empty()) return {status::missing_type, 0};
    switch (format) {
        case wire_format::json: return detail::encode_json(in, out, capacity);
        case wire_format::msgpack: return detail::encode_msgpack(in, out, capacity);
        case wire_format::protobuf: return detail::encode_protobuf(in, out, capacity);
    }
    return {status::invalid_argument, 0};
}

status validate_payload(payload_format format, std::string_view bytes) noexcept {
    switch (format) {
        case payload_format::json: return detail::validate_json_value(bytes, 1);
        case payload_format::msgpack: return detail::validate_msgpack_value(bytes, 1);
        case payload_format::bytes: return status::ok;
    }
    return status::invalid_argument;
}

}  // namespace gatehouse::client
