// The C ABI over gatehouse::client. Compiled with -fno-exceptions -fno-rtti like the client
// codec itself, so nothing here can throw across the C boundary; every entry point is noexcept
// and checks its pointers before touching them.
#include "gatehouse_c.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>

#include "gatehouse/client/codec.hpp"

namespace gc = gatehouse::client;

struct gatehouse_codec {
    gc::wire_format format;
    gatehouse_allocator allocator;
    // The last decode's envelope: its type and correlation id live inside it, which is what
    // lets gatehouse_decode() hand out views without allocating.
    gc::envelope decoded;
    // gatehouse_encode_owned()'s buffer, kept between calls so a stream of frames reuses it.
    char* buffer;
    std::size_t buffer_capacity;
};

namespace {

// The C enums keep the client codec's numbers, so a status or format converts by value.
static_assert(GATEHOUSE_STATUS_OK == static_cast<int>(gc::status::ok));
static_assert(GATEHOUSE_STATUS_TRUNCATED == static_cast<int>(gc::status::truncated));
static_assert(GATEHOUSE_STATUS_SYNTAX_ERROR == static_cast<int>(gc::status::syntax_error));
static_assert(GATEHOUSE_STATUS_INVALID_UTF8 == static_cast<int>(gc::status::invalid_utf8));
static_assert(GATEHOUSE_STATUS_TOO_DEEP == static_cast<int>(gc::status::too_deep));
static_assert(GATEHOUSE_STATUS_TRAILING_BYTES == static_cast<int>(gc::status::trailing_bytes));
static_assert(GATEHOUSE_STATUS_INVALID_PAYLOAD == static_cast<int>(gc::status::invalid_payload));
static_assert(GATEHOUSE_STATUS_NOT_A_MAP == static_cast<int>(gc::status::not_a_map));
static_assert(GATEHOUSE_STATUS_MISSING_TYPE == static_cast<int>(gc::status::missing_type));
static_assert(GATEHOUSE_STATUS_INVALID_TYPE == static_cast<int>(gc::status::invalid_type));
static_assert(GATEHOUSE_STATUS_INVALID_CORRELATION_ID ==
              static_cast<int>(gc::status::invalid_correlation_id));
static_assert(GATEHOUSE_STATUS_DUPLICATE_FIELD == static_cast<int>(gc::status::duplicate_field));
static_assert(GATEHOUSE_STATUS_INVALID_UPDATE_ID ==
              static_cast<int>(gc::status::invalid_update_id));
static_assert(GATEHOUSE_STATUS_INVALID_TRACEPARENT ==
              static_cast<int>(gc::status::invalid_traceparent));
static_assert(GATEHOUSE_STATUS_BUFFER_TOO_SMALL == static_cast<int>(gc::status::buffer_too_small));
static_assert(GATEHOUSE_STATUS_PAYLOAD_FORMAT_MISMATCH ==
              static_cast<int>(gc::status::payload_format_mismatch));
static_assert(GATEHOUSE_STATUS_INVALID_ARGUMENT == static_cast<int>(gc::status::invalid_argument));
static_assert(GATEHOUSE_PAYLOAD_JSON == static_cast<int>(gc::payload_format::json));
static_assert(GATEHOUSE_PAYLOAD_MSGPACK == static_cast<int>(gc::payload_format::msgpack));
static_assert(GATEHOUSE_PAYLOAD_BYTES == static_cast<int>(gc::payload_format::bytes));

// A C enum object may hold any int, and in C++ reading one outside the enumerators' range is
// undefined (UBSan's -fsanitize=enum reports it), so enum values from C are read as integers.
template <class Enum>
std::underlying_type_t<Enum> raw_value(const Enum& e) noexcept {
    std::underlying_type_t<Enum> v{};
    std::memcpy(&v, &e, sizeof v);
    return v;
}

using raw_status = std::underlying_type_t<gatehouse_status>;

// Only the client codec's own values may become a gc::status.
bool to_client_status(raw_status s, gc::status& out) noexcept {
    switch (s) {
        case GATEHOUSE_STATUS_OK:
        case GATEHOUSE_STATUS_TRUNCATED:
        case GATEHOUSE_STATUS_SYNTAX_ERROR:
        case GATEHOUSE_STATUS_INVALID_UTF8:
        case GATEHOUSE_STATUS_TOO_DEEP:
        case GATEHOUSE_STATUS_TRAILING_BYTES:
        case GATEHOUSE_STATUS_INVALID_PAYLOAD:
        case GATEHOUSE_STATUS_NOT_A_MAP:
        case GATEHOUSE_STATUS_MISSING_TYPE:
        case GATEHOUSE_STATUS_INVALID_TYPE:
        case GATEHOUSE_STATUS_INVALID_CORRELATION_ID:
        case GATEHOUSE_STATUS_DUPLICATE_FIELD:
        case GATEHOUSE_STATUS_INVALID_UPDATE_ID:
        case GATEHOUSE_STATUS_INVALID_TRACEPARENT:
        case GATEHOUSE_STATUS_BUFFER_TOO_SMALL:
        case GATEHOUSE_STATUS_PAYLOAD_FORMAT_MISMATCH:
        case GATEHOUSE_STATUS_INVALID_ARGUMENT: out = static_cast<gc::status>(s); return true;
        default: break;
    }
    return false;
}

gatehouse_status from_client_status(gc::status s) noexcept {
    return static_cast<gatehouse_status>(s);
}

void* default_allocate(void* /*user_data*/, std::size_t size) noexcept { return std::malloc(size); }

void default_deallocate(void* /*user_data*/, void* block, std::size_t /*size*/) noexcept {
    std::free(block);
}

std::string_view view_of(const char* data, std::size_t len) noexcept {
    return len == 0 ? std::string_view{} : std::string_view{data, len};
}

// Fills `out` from the C envelope; the payload stays a view of the caller's bytes.
gatehouse_status to_envelope(const gatehouse_envelope& in, gc::envelope& out) noexcept {
    if ((in.type == nullptr && in.type_len != 0) ||
        (in.payload == nullptr && in.payload_len != 0) ||
        (in.correlation_id == nullptr && in.correlation_id_len != 0) ||
        (in.payload_codec == nullptr && in.payload_codec_len != 0) ||
        (in.update_id == nullptr && in.update_id_len != 0) ||
        (in.traceparent == nullptr && in.traceparent_len != 0)) {
        return GATEHOUSE_STATUS_NULL_ARGUMENT;
    }
    gc::status st = out.set_type(view_of(in.type, in.type_len));
    if (st != gc::status::ok) return from_client_status(st);
    if (in.correlation_id_len != 0) {
        st = out.set_correlation_id({in.correlation_id, in.correlation_id_len});
        if (st != gc::status::ok) return from_client_status(st);
    }
    if (in.update_id_len != 0) {
        st = out.set_update_id({in.update_id, in.update_id_len});
        if (st != gc::status::ok) return from_client_status(st);
    }
    if (in.traceparent_len != 0) {
        st = out.set_traceparent({in.traceparent, in.traceparent_len});
        if (st != gc::status::ok) return from_client_status(st);
    }
    std::string_view payload{static_cast<const char*>(in.payload), in.payload_len};
    const auto format = raw_value(in.payload_format);
    switch (format) {
        case GATEHOUSE_PAYLOAD_JSON:
            if (payload.empty()) payload = "null";
            break;
        case GATEHOUSE_PAYLOAD_MSGPACK:
            if (payload.empty()) payload = "\xc0";  // nil
            break;
        case GATEHOUSE_PAYLOAD_BYTES: break;  // empty: left out of the frame, read as null
        default: return GATEHOUSE_STATUS_INVALID_ARGUMENT;
    }
    out.set_payload(static_cast<gc::payload_format>(format), payload,
                    view_of(in.payload_codec, in.payload_codec_len));
    return GATEHOUSE_STATUS_OK;
}

}  // namespace

extern "C" {

long gatehouse_version(void) noexcept { return GATEHOUSE_C_VERSION; }

const char* gatehouse_version_string(void) noexcept {
#define GATEHOUSE_C_STR2(x) #x
#define GATEHOUSE_C_STR(x) GATEHOUSE_C_STR2(x)
    return GATEHOUSE_C_STR(GATEHOUSE_C_VERSION_MAJOR) "." GATEHOUSE_C_STR(
        GATEHOUSE_C_VERSION_MINOR) "." GATEHOUSE_C_STR(GATEHOUSE_C_VERSION_PATCH);
#undef GATEHOUSE_C_STR
#undef GATEHOUSE_C_STR2
}

const char* gatehouse_status_message(gatehouse_status status) noexcept {
    // Read through raw_value() only: a by-value copy of an out-of-range enum is what UBSan reports.
    const raw_status raw = raw_value(status);
    gc::status s{};
    if (to_client_status(raw, s)) return gc::describe(s);
    switch (raw) {
        case GATEHOUSE_STATUS_UNKNOWN_CODEC:
            return "unknown codec: expected json, msgpack or protobuf";
        case GATEHOUSE_STATUS_NULL_ARGUMENT: return "a required pointer is NULL";
        case GATEHOUSE_STATUS_OUT_OF_MEMORY: return "out of memory";
        default: break;
    }
    return "unknown status";
}

const char* gatehouse_status_name(gatehouse_status status) noexcept {
    switch (raw_value(status)) {
        case GATEHOUSE_STATUS_OK: return "ok";
        case GATEHOUSE_STATUS_TRUNCATED: return "truncated";
        case GATEHOUSE_STATUS_SYNTAX_ERROR: return "syntax_error";
        case GATEHOUSE_STATUS_INVALID_UTF8: return "invalid_utf8";
        case GATEHOUSE_STATUS_TOO_DEEP: return "too_deep";
        case GATEHOUSE_STATUS_TRAILING_BYTES: return "trailing_bytes";
        case GATEHOUSE_STATUS_INVALID_PAYLOAD: return "invalid_payload";
        case GATEHOUSE_STATUS_NOT_A_MAP: return "not_a_map";
        case GATEHOUSE_STATUS_MISSING_TYPE: return "missing_type";
        case GATEHOUSE_STATUS_INVALID_TYPE: return "invalid_type";
        case GATEHOUSE_STATUS_INVALID_CORRELATION_ID: return "invalid_correlation_id";
        case GATEHOUSE_STATUS_DUPLICATE_FIELD: return "duplicate_field";
        case GATEHOUSE_STATUS_INVALID_UPDATE_ID: return "invalid_update_id";
        case GATEHOUSE_STATUS_INVALID_TRACEPARENT: return "invalid_traceparent";
        case GATEHOUSE_STATUS_BUFFER_TOO_SMALL: return "buffer_too_small";
        case GATEHOUSE_STATUS_PAYLOAD_FORMAT_MISMATCH: return "payload_format_mismatch";
        case GATEHOUSE_STATUS_INVALID_ARGUMENT: return "invalid_argument";
        case GATEHOUSE_STATUS_UNKNOWN_CODEC: return "unknown_codec";
        case GATEHOUSE_STATUS_NULL_ARGUMENT: return "null_argument";
        case GATEHOUSE_STATUS_OUT_OF_MEMORY: return "out_of_memory";
    }
    return "unknown";
}

const char* gatehouse_status_protocol_code(gatehouse_status status) noexcept {
    gc::status s{};
    return to_client_status(raw_value(status), s) ? gc::protocol_code(s) : nullptr;
}

gatehouse_status gatehouse_codec_create(const char* name, std::size_t name_len,
                                        const gatehouse_allocator* allocator,
                                        gatehouse_codec** out) noexcept {
    if (out == nullptr) return GATEHOUSE_STATUS_NULL_ARGUMENT;
    *out = nullptr;
    if (name == nullptr) return GATEHOUSE_STATUS_NULL_ARGUMENT;
    gatehouse_allocator alloc{default_allocate, default_deallocate, nullptr};
    if (allocator != nullptr) {
        if (allocator->allocate == nullptr || allocator->deallocate == nullptr) {
            return GATEHOUSE_STATUS_NULL_ARGUMENT;
        }
        alloc = *allocator;
    }
    gc::wire_format format{};
    if (!gc::parse_wire_format({name, name_len}, format)) return GATEHOUSE_STATUS_UNKNOWN_CODEC;
    void* memory = alloc.allocate(alloc.user_data, sizeof(gatehouse_codec));
    if (memory == nullptr) return GATEHOUSE_STATUS_OUT_OF_MEMORY;
    *out = new (memory) gatehouse_codec{format, alloc, gc::envelope{}, nullptr, 0};
    return GATEHOUSE_STATUS_OK;
}

void gatehouse_codec_destroy(gatehouse_codec* codec) noexcept {
    if (codec == nullptr) return;
    const gatehouse_allocator alloc = codec->allocator;
    if (codec->buffer != nullptr) {
        alloc.deallocate(alloc.user_data, codec->buffer, codec->buffer_capacity);
    }
    codec->~gatehouse_codec();
    alloc.deallocate(alloc.user_data, codec, sizeof(gatehouse_codec));
}

const char* gatehouse_codec_name(const gatehouse_codec* codec) noexcept {
    if (codec == nullptr) return nullptr;
    // name_of() returns views of string literals, so they are NUL-terminated.
    return gc::name_of(codec->format).data();
}

const char* gatehouse_codec_subprotocol(const gatehouse_codec* codec) noexcept {
    if (codec == nullptr) return nullptr;
    switch (codec->format) {
        case gc::wire_format::json: return "gatehouse.json";
        case gc::wire_format::msgpack: return "gatehouse.msgpack";
        case gc::wire_format::protobuf: return "gatehouse.protobuf";
    }
    return nullptr;
}

int gatehouse_codec_is_text(const gatehouse_codec* codec) noexcept {
    return codec != nullptr && gc::is_text(codec->format) ? 1 : 0;
}

gatehouse_status gatehouse_encode(const gatehouse_codec* codec, const gatehouse_envelope* envelope,
                                  void* out, std::size_t capacity,
                                  std::size_t* frame_len) noexcept {
    if (frame_len != nullptr) *frame_len = 0;
    if (codec == nullptr || envelope == nullptr || frame_len == nullptr ||
        (out == nullptr && capacity != 0)) {
        return GATEHOUSE_STATUS_NULL_ARGUMENT;
    }
    gc::envelope env;
    const gatehouse_status st = to_envelope(*envelope, env);
    if (st != GATEHOUSE_STATUS_OK) return st;
    const gc::encode_result r = gc::encode(codec->format, env, static_cast<char*>(out), capacity);
    if (r.code == gc::status::ok || r.code == gc::status::buffer_too_small) *frame_len = r.size;
    return from_client_status(r.code);
}

gatehouse_status gatehouse_encode_owned(gatehouse_codec* codec, const gatehouse_envelope* envelope,
                                        const void** frame, std::size_t* frame_len) noexcept {
    if (frame != nullptr) *frame = nullptr;
    if (frame_len != nullptr) *frame_len = 0;
    if (codec == nullptr || envelope == nullptr || frame == nullptr || frame_len == nullptr) {
        return GATEHOUSE_STATUS_NULL_ARGUMENT;
    }
    gc::envelope env;
    const gatehouse_status st = to_envelope(*envelope, env);
    if (st != GATEHOUSE_STATUS_OK) return st;
    gc::encode_result r = gc::encode(codec->format, env, codec->buffer, codec->buffer_capacity);
    if (r.code == gc::status::buffer_too_small) {
        // Grown to at least 256 bytes and by doubling, so small frames settle quickly.
        std::size_t capacity = codec->buffer_capacity < 256 ? 256 : codec->buffer_capacity;
        while (capacity < r.size) capacity *= 2;
        const gatehouse_allocator& alloc = codec->allocator;
        void* grown = alloc.allocate(alloc.user_data, capacity);
        if (grown == nullptr) return GATEHOUSE_STATUS_OUT_OF_MEMORY;
        if (codec->buffer != nullptr) {
            alloc.deallocate(alloc.user_data, codec->buffer, codec->buffer_capacity);
        }
        codec->buffer = static_cast<char*>(grown);
        codec->buffer_capacity = capacity;
        r = gc::encode(codec->format, env, codec->buffer, codec->buffer_capacity);
    }
    if (r.code != gc::status::ok) return from_client_status(r.code);
    *frame = codec->buffer;
    *frame_len = r.size;
    return GATEHOUSE_STATUS_OK;
}

gatehouse_status gatehouse_decode(gatehouse_codec* codec, const void* frame, std::size_t frame_len,
                                  gatehouse_envelope* out) noexcept {
    if (out != nullptr) std::memset(out, 0, sizeof *out);
    if (codec == nullptr || out == nullptr || (frame == nullptr && frame_len != 0)) {
        return GATEHOUSE_STATUS_NULL_ARGUMENT;
    }
    gc::envelope& env = codec->decoded;
    env = gc::envelope{};
    const gc::status st =
        gc::decode(codec->format, view_of(static_cast<const char*>(frame), frame_len), env);
    if (env.has_correlation_id()) {
        out->correlation_id = env.correlation_id().data();
        out->correlation_id_len = env.correlation_id().size();
    }
    if (st != gc::status::ok) return from_client_status(st);
    out->type = env.type().data();
    out->type_len = env.type().size();
    out->payload = env.payload().data();
    out->payload_len = env.payload().size();
    out->payload_format = static_cast<gatehouse_payload_format>(env.format());
    out->payload_codec = env.payload_codec().data();
    out->payload_codec_len = env.payload_codec().size();
    if (env.has_update_id()) {
        out->update_id = env.update_id().data();
        out->update_id_len = env.update_id().size();
    }
    if (env.has_traceparent()) {
        out->traceparent = env.traceparent().data();
        out->traceparent_len = env.traceparent().size();
    }
    return GATEHOUSE_STATUS_OK;
}

gatehouse_status gatehouse_validate_payload(gatehouse_payload_format format, const void* bytes,
                                            std::size_t len) noexcept {
    if (bytes == nullptr && len != 0) return GATEHOUSE_STATUS_NULL_ARGUMENT;
    const auto raw = raw_value(format);
    switch (raw) {
        case GATEHOUSE_PAYLOAD_JSON:
        case GATEHOUSE_PAYLOAD_MSGPACK:
        case GATEHOUSE_PAYLOAD_BYTES:
            return from_client_status(
                gc::validate_payload(static_cast<gc::payload_format>(raw),
                                     view_of(static_cast<const char*>(bytes), len)));
    }
    return GATEHOUSE_STATUS_INVALID_ARGUMENT;
}

const char* gatehouse_payload_format_name(gatehouse_payload_format format) noexcept {
    switch (raw_value(format)) {
        case GATEHOUSE_PAYLOAD_JSON: return "json";
        case GATEHOUSE_PAYLOAD_MSGPACK: return "msgpack";
        case GATEHOUSE_PAYLOAD_BYTES: return "bytes";
    }
    return nullptr;
}

int gatehouse_is_valid_type(const char* type, std::size_t len) noexcept {
    if (type == nullptr) return 0;
    return gc::is_valid_type({type, len}) ? 1 : 0;
}

int gatehouse_is_valid_correlation_id(const char* id, std::size_t len) noexcept {
    if (id == nullptr) return 0;
    return gc::is_valid_correlation_id({id, len}) ? 1 : 0;
}

int gatehouse_is_valid_update_id(const char* id, std::size_t len) noexcept {
    if (id == nullptr) return 0;
    return gc::is_valid_update_id({id, len}) ? 1 : 0;
}

int gatehouse_is_valid_traceparent(const char* value, std::size_t len) noexcept {
    if (value == nullptr) return 0;
    return gc::is_valid_traceparent({value, len}) ? 1 : 0;
}

}  // extern "C"
