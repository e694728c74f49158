/*
 * gatehouse_c.h: the C ABI over gatehouse's client codec (docs/protocol.md section 3).
 *
 * Encodes and decodes gatehouse envelopes in the three wire formats (json, msgpack,
 * protobuf) for C programs and game engines. C89/C99 compatible; usable from C++ too.
 *
 * Conventions, for every function here:
 * - Bytes are passed as a pointer and an explicit length; nothing is NUL-terminated unless a
 *   function says so. A NULL pointer with a non-zero length is GATEHOUSE_STATUS_NULL_ARGUMENT.
 * - Every fallible function returns a gatehouse_status; gatehouse_status_message() describes
 *   it. Nothing aborts, throws or longjmps on bad input.
 * - Memory: only gatehouse_codec_create() allocates (the handle) and gatehouse_encode_owned()
 *   (the handle's frame buffer); gatehouse_codec_destroy() frees both. Pass a
 *   gatehouse_allocator to use the engine's allocator instead of malloc/free.
 * - Thread safety: a gatehouse_codec is not synchronised; distinct handles may be used from
 *   distinct threads at once. The functions that take no handle are reentrant.
 *
 * Full reference: docs/bindings.md.
 */
#ifndef GATEHOUSE_C_H
#define GATEHOUSE_C_H

#include <stddef.h>

#define GATEHOUSE_C_VERSION_MAJOR 0
#define GATEHOUSE_C_VERSION_MINOR 1
#define GATEHOUSE_C_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH: compare with gatehouse_version() at run time. */
#define GATEHOUSE_C_VERSION                                                  \
    (GATEHOUSE_C_VERSION_MAJOR * 10000L + GATEHOUSE_C_VERSION_MINOR * 100L + \
     GATEHOUSE_C_VERSION_PATCH)

/* Symbol visibility: the shared library exports exactly the functions below. */
#if defined(_WIN32) && defined(GATEHOUSE_C_BUILDING_SHARED)
#define GATEHOUSE_C_API __declspec(dllexport)
#elif defined(_WIN32) && defined(GATEHOUSE_C_USING_SHARED)
#define GATEHOUSE_C_API __declspec(dllimport)
#elif defined(__GNUC__) && defined(GATEHOUSE_C_BUILDING_SHARED)
#define GATEHOUSE_C_API __attribute__((visibility("default")))
#else
#define GATEHOUSE_C_API
#endif

#ifdef __cplusplus
#define GATEHOUSE_C_NOEXCEPT noexcept
extern "C" {
#else
#define GATEHOUSE_C_NOEXCEPT
#endif

/* NOLINTBEGIN(modernize-use-using): this is C, which has typedef only. */

/* What a call came to. The values up to 42 are gatehouse::client::status's, unchanged;
 * 60 and above belong to this binding. */
typedef enum gatehouse_status {
    GATEHOUSE_STATUS_OK = 0,

    /* Decode, protocol code "invalid_frame": the bytes cannot be decoded. */
    GATEHOUSE_STATUS_TRUNCATED = 1,       /* the input ends inside a value (or is empty) */
    GATEHOUSE_STATUS_SYNTAX_ERROR = 2,    /* not valid JSON / MessagePack / Protobuf */
    GATEHOUSE_STATUS_INVALID_UTF8 = 3,    /* text that is not valid UTF-8 */
    GATEHOUSE_STATUS_TOO_DEEP = 4,        /* maps/arrays nested deeper than 64 levels */
    GATEHOUSE_STATUS_TRAILING_BYTES = 5,  /* bytes after the single top-level value */
    GATEHOUSE_STATUS_INVALID_PAYLOAD = 6, /* a payload that is not what its format says */

    /* Decode, protocol code "invalid_envelope": decodable, but not a valid envelope. */
    GATEHOUSE_STATUS_NOT_A_MAP = 20,
    GATEHOUSE_STATUS_MISSING_TYPE = 21,
    GATEHOUSE_STATUS_INVALID_TYPE = 22,
    GATEHOUSE_STATUS_INVALID_CORRELATION_ID = 23,
    GATEHOUSE_STATUS_DUPLICATE_FIELD = 24,
    /* Encode only (decoding drops a malformed one instead): */
    GATEHOUSE_STATUS_INVALID_UPDATE_ID = 25,   /* not 1-64 characters of visible ASCII */
    GATEHOUSE_STATUS_INVALID_TRACEPARENT = 26, /* not a 55-character W3C traceparent */

    /* Encode. */
    GATEHOUSE_STATUS_BUFFER_TOO_SMALL = 40,        /* *frame_len says how many bytes are needed */
    GATEHOUSE_STATUS_PAYLOAD_FORMAT_MISMATCH = 41, /* this wire format cannot carry the payload */
    GATEHOUSE_STATUS_INVALID_ARGUMENT = 42,        /* an unknown payload format value, say */

    /* This binding. */
    GATEHOUSE_STATUS_UNKNOWN_CODEC = 60, /* a codec name other than json, msgpack, protobuf */
    GATEHOUSE_STATUS_NULL_ARGUMENT = 61, /* a required pointer was NULL */
    GATEHOUSE_STATUS_OUT_OF_MEMORY = 62  /* the allocator returned NULL */
} gatehouse_status;

/* What payload bytes hold. */
typedef enum gatehouse_payload_format {
    GATEHOUSE_PAYLOAD_JSON = 0,    /* JSON text */
    GATEHOUSE_PAYLOAD_MSGPACK = 1, /* one MessagePack value */
    GATEHOUSE_PAYLOAD_BYTES = 2    /* opaque bytes named by payload_codec (protobuf wire only) */
} gatehouse_payload_format;

/* An envelope, as given to the encoders and as filled in by gatehouse_decode().
 *
 * Encoding reads it:
 * - type/type_len: required, 1-64 characters of [A-Za-z0-9_.:-].
 * - payload/payload_len in payload_format. payload_len 0 means null: JSON `null` for
 *   GATEHOUSE_PAYLOAD_JSON, MessagePack nil for GATEHOUSE_PAYLOAD_MSGPACK, an absent
 *   payload for GATEHOUSE_PAYLOAD_BYTES.
 * - payload_codec/payload_codec_len: read only with GATEHOUSE_PAYLOAD_BYTES (the name the
 *   protobuf frame gives the bytes, e.g. a message name); the other formats name themselves.
 * - correlation_id/correlation_id_len: correlation_id_len 0 means absent (the gateway then
 *   assigns one); otherwise valid UTF-8, 1-128 characters.
 * - update_id/update_id_len (docs/protocol.md 6.4): length 0 means absent; otherwise 1-64
 *   characters of visible ASCII. The gateway sets it on logged updates; keep the last one
 *   and hand it back as `?resume=` when reconnecting. A command's is ignored by the gateway.
 * - traceparent/traceparent_len (docs/protocol.md 6.8): length 0 means absent; otherwise a W3C
 *   Trace Context traceparent of 55 characters, `00-<32 hex>-<16 hex>-<2 hex>` (lower-case
 *   hex, ids not all zeros, version not ff).
 *
 * gatehouse_decode() fills every field; see its lifetime rules. Initialise with
 * `gatehouse_envelope env = {0};` and set what you need. */
typedef struct gatehouse_envelope {
    const char* type;
    size_t type_len;
    const void* payload;
    size_t payload_len;
    gatehouse_payload_format payload_format;
    const char* payload_codec;
    size_t payload_codec_len;
    const char* correlation_id;
    size_t correlation_id_len;
    /* Added with docs/protocol.md section 6: the struct grew, so recompile against this header.
     * Zero-initialised, both are absent. */
    const char* update_id;
    size_t update_id_len;
    const char* traceparent;
    size_t traceparent_len;
} gatehouse_envelope;

/* An allocator the handle uses instead of malloc/free. allocate returns NULL on failure and
 * otherwise memory aligned as malloc's is; deallocate gets the size that was asked for. */
typedef struct gatehouse_allocator {
    void* (*allocate)(void* user_data, size_t size);
    void (*deallocate)(void* user_data, void* block, size_t size);
    void* user_data;
} gatehouse_allocator;

/* A codec handle: one wire format, plus the storage of the last decoded envelope's type and
 * correlation id and an optional frame buffer (gatehouse_encode_owned). Opaque. */
typedef struct gatehouse_codec gatehouse_codec;

/* NOLINTEND(modernize-use-using) */

/* ---- version and status ---------------------------------------------------------------- */

/* The library's version, as GATEHOUSE_C_VERSION computes it. */
GATEHOUSE_C_API long gatehouse_version(void) GATEHOUSE_C_NOEXCEPT;

/* The library's version as static NUL-terminated text, e.g. "0.1.0". */
GATEHOUSE_C_API const char* gatehouse_version_string(void) GATEHOUSE_C_NOEXCEPT;

/* A short English description of `status`: static, NUL-terminated, never NULL (an unknown
 * value gives "unknown status"). */
GATEHOUSE_C_API const char* gatehouse_status_message(gatehouse_status status) GATEHOUSE_C_NOEXCEPT;

/* The status's name as the C++ API spells it ("truncated", "buffer_too_small", ...):
 * static, NUL-terminated, never NULL ("unknown" for an unknown value). */
GATEHOUSE_C_API const char* gatehouse_status_name(gatehouse_status status) GATEHOUSE_C_NOEXCEPT;

/* The docs/protocol.md error code a decode failure maps to: "invalid_frame" or
 * "invalid_envelope"; NULL for GATEHOUSE_STATUS_OK and every non-decode status. */
GATEHOUSE_C_API const char* gatehouse_status_protocol_code(gatehouse_status status)
    GATEHOUSE_C_NOEXCEPT;

/* ---- codec handles ----------------------------------------------------------------------- */

/* Creates a handle for the codec `name` ("json", "msgpack" or "protobuf", name_len bytes).
 * `allocator` may be NULL (malloc/free); it is copied, and must stay usable until the handle
 * is destroyed. On success *out is the handle; otherwise *out is NULL and the result is
 * GATEHOUSE_STATUS_UNKNOWN_CODEC, _NULL_ARGUMENT (name or out NULL, or an allocator with a
 * NULL function) or _OUT_OF_MEMORY. */
GATEHOUSE_C_API gatehouse_status gatehouse_codec_create(const char* name, size_t name_len,
                                                        const gatehouse_allocator* allocator,
                                                        gatehouse_codec** out) GATEHOUSE_C_NOEXCEPT;

/* Frees the handle and its frame buffer. NULL is ignored. Every view that points into the
 * handle (decoded type and correlation id, the owned frame) ends with it. */
GATEHOUSE_C_API void gatehouse_codec_destroy(gatehouse_codec* codec) GATEHOUSE_C_NOEXCEPT;

/* The codec's name ("json", "msgpack", "protobuf"): static, NUL-terminated. NULL for NULL. */
GATEHOUSE_C_API const char* gatehouse_codec_name(const gatehouse_codec* codec) GATEHOUSE_C_NOEXCEPT;

/* The WebSocket subprotocol to offer for this codec ("gatehouse.json", ...): static,
 * NUL-terminated. NULL for NULL. */
GATEHOUSE_C_API const char* gatehouse_codec_subprotocol(const gatehouse_codec* codec)
    GATEHOUSE_C_NOEXCEPT;

/* 1 when the codec's frames travel as WebSocket text frames (json), 0 for binary frames
 * (msgpack, protobuf) and for NULL. */
GATEHOUSE_C_API int gatehouse_codec_is_text(const gatehouse_codec* codec) GATEHOUSE_C_NOEXCEPT;

/* ---- encoding ---------------------------------------------------------------------------- */

/* Encodes `envelope` into out[0, capacity). On GATEHOUSE_STATUS_OK *frame_len is the bytes
 * written; on GATEHOUSE_STATUS_BUFFER_TOO_SMALL it is the bytes needed (call with out NULL
 * and capacity 0 to learn the size); otherwise 0. Nothing past `capacity` is written.
 *
 * The client codec never converts a payload: JSON payloads travel on json and protobuf
 * wires, MessagePack payloads on msgpack and protobuf wires, opaque bytes on protobuf only;
 * any other pairing is GATEHOUSE_STATUS_PAYLOAD_FORMAT_MISMATCH. A payload that is not valid
 * in its stated format is GATEHOUSE_STATUS_INVALID_PAYLOAD. */
GATEHOUSE_C_API gatehouse_status gatehouse_encode(const gatehouse_codec* codec,
                                                  const gatehouse_envelope* envelope, void* out,
                                                  size_t capacity,
                                                  size_t* frame_len) GATEHOUSE_C_NOEXCEPT;

/* As gatehouse_encode(), into a buffer the handle owns and grows as needed. On success
 * *frame points at *frame_len bytes that stay valid until the next gatehouse_encode_owned()
 * on this handle or gatehouse_codec_destroy(); on failure *frame is NULL and *frame_len 0.
 * The buffer is kept for reuse, so a steady stream of frames allocates once. */
GATEHOUSE_C_API gatehouse_status gatehouse_encode_owned(gatehouse_codec* codec,
                                                        const gatehouse_envelope* envelope,
                                                        const void** frame,
                                                        size_t* frame_len) GATEHOUSE_C_NOEXCEPT;

/* ---- decoding ---------------------------------------------------------------------------- */

/* Decodes one whole frame (one WebSocket message) into *out, a view:
 * - out->type, out->correlation_id, out->update_id and out->traceparent point into the
 *   handle: valid until the next gatehouse_decode() on this handle or
 *   gatehouse_codec_destroy().
 * - out->payload (and, for GATEHOUSE_PAYLOAD_BYTES, out->payload_codec) point into `frame`:
 *   valid as long as the frame's bytes are. For json/msgpack payload_codec is static text.
 * - An absent payload reads as JSON `null` (MessagePack nil on msgpack frames).
 * - correlation_id, update_id and traceparent are NULL with length 0 when absent. An
 *   update_id or traceparent that is malformed (or, in JSON and MessagePack, given twice)
 *   is dropped: it reads as absent and the envelope is still valid.
 * None of the strings is NUL-terminated: use the lengths.
 *
 * On failure every field is cleared (update_id and traceparent included) except the
 * correlation id, which is kept when the frame named one validly (so that an error reply
 * can carry it, as docs/protocol.md asks). */
GATEHOUSE_C_API gatehouse_status gatehouse_decode(gatehouse_codec* codec, const void* frame,
                                                  size_t frame_len,
                                                  gatehouse_envelope* out) GATEHOUSE_C_NOEXCEPT;

/* ---- checks ------------------------------------------------------------------------------ */

/* Checks that bytes[0, len) is exactly one well-formed value of `format` (JSON validated for
 * UTF-8 too) nested at most 63 levels deep. GATEHOUSE_PAYLOAD_BYTES is always valid. */
GATEHOUSE_C_API gatehouse_status gatehouse_validate_payload(gatehouse_payload_format format,
                                                            const void* bytes,
                                                            size_t len) GATEHOUSE_C_NOEXCEPT;

/* "json", "msgpack" or "bytes": static, NUL-terminated; NULL for an unknown value. */
GATEHOUSE_C_API const char* gatehouse_payload_format_name(gatehouse_payload_format format)
    GATEHOUSE_C_NOEXCEPT;

/* 1 when type[0, len) is a valid envelope type (1-64 characters of [A-Za-z0-9_.:-]). */
GATEHOUSE_C_API int gatehouse_is_valid_type(const char* type, size_t len) GATEHOUSE_C_NOEXCEPT;

/* 1 when id[0, len) is a valid correlation id (valid UTF-8, 1-128 characters). */
GATEHOUSE_C_API int gatehouse_is_valid_correlation_id(const char* id,
                                                      size_t len) GATEHOUSE_C_NOEXCEPT;

/* 1 when id[0, len) is a valid update id (1-64 characters of visible ASCII). */
GATEHOUSE_C_API int gatehouse_is_valid_update_id(const char* id, size_t len) GATEHOUSE_C_NOEXCEPT;

/* 1 when value[0, len) is a valid 55-character W3C traceparent. */
GATEHOUSE_C_API int gatehouse_is_valid_traceparent(const char* value,
                                                   size_t len) GATEHOUSE_C_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* GATEHOUSE_C_H */
