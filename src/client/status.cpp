#include "gatehouse/client/status.hpp"

namespace gatehouse::client {

const char* describe(status s) noexcept {
    switch (s) {
        case status::ok: return "ok";
        case status::truncated: return "frame is truncated";
        case status::syntax_error: return "frame is not well-formed";
        case status::invalid_utf8: return "text is not valid UTF-8";
        case status::too_deep: return "frame is nested too deeply";
        case status::trailing_bytes: return "bytes follow the envelope";
        case status::invalid_payload: return "payload is not what payload_codec says";
        case status::not_a_map: return "envelope is not a map";
        case status::missing_type: return "envelope has no type";
        case status::invalid_type:
            return "type must be a string of 1-64 characters of [A-Za-z0-9_.:-]";
        case status::invalid_correlation_id:
            return "correlation_id must be a string of 1-128 characters, or null";
        case status::duplicate_field: return "envelope field given twice";
        case status::invalid_update_id:
            return "update_id must be a string of 1-64 visible ASCII characters";
        case status::invalid_traceparent:
            return "traceparent must be a W3C traceparent of 55 characters: 00-<32 hex>-<16 "
                   "hex>-<2 hex>";
        case status::buffer_too_small: return "output buffer too small";
        case status::payload_format_mismatch: return "payload format does not fit the wire format";
        case status::invalid_argument: return "invalid argument";
    }
    return "unknown status";
}

const char* protocol_code(status s) noexcept {
    if (is_frame_error(s)) return "invalid_frame";
    if (is_envelope_error(s)) return "invalid_envelope";
    return nullptr;
}

}  // namespace gatehouse::client
