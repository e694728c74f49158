/* The C ABI's test, compiled as C99 with -Wall -Wextra -Werror: every function, every status,
 * a round trip through each codec, and frames checked byte for byte against encodings
 * written out by hand from docs/protocol.md section 3 and proto/gatehouse.proto. */
#include "gatehouse_c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        ++checks;                                                                    \
        if (!(cond)) {                                                               \
            ++failures;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* Every status the API can return; each must be produced by some call below. */
static const gatehouse_status all_statuses[] = {
    GATEHOUSE_STATUS_OK,
    GATEHOUSE_STATUS_TRUNCATED,
    GATEHOUSE_STATUS_SYNTAX_ERROR,
    GATEHOUSE_STATUS_INVALID_UTF8,
    GATEHOUSE_STATUS_TOO_DEEP,
    GATEHOUSE_STATUS_TRAILING_BYTES,
    GATEHOUSE_STATUS_INVALID_PAYLOAD,
    GATEHOUSE_STATUS_NOT_A_MAP,
    GATEHOUSE_STATUS_MISSING_TYPE,
    GATEHOUSE_STATUS_INVALID_TYPE,
    GATEHOUSE_STATUS_INVALID_CORRELATION_ID,
    GATEHOUSE_STATUS_DUPLICATE_FIELD,
    GATEHOUSE_STATUS_INVALID_UPDATE_ID,
    GATEHOUSE_STATUS_INVALID_TRACEPARENT,
    GATEHOUSE_STATUS_BUFFER_TOO_SMALL,
    GATEHOUSE_STATUS_PAYLOAD_FORMAT_MISMATCH,
    GATEHOUSE_STATUS_INVALID_ARGUMENT,
    GATEHOUSE_STATUS_UNKNOWN_CODEC,
    GATEHOUSE_STATUS_NULL_ARGUMENT,
    GATEHOUSE_STATUS_OUT_OF_MEMORY,
};
#define STATUS_COUNT (sizeof all_statuses / sizeof all_statuses[0])
static int seen[100];

/* Records the status a call returned, then compares it with the one expected. */
static int expect_status(gatehouse_status got, gatehouse_status want, const char* what, int line) {
    ++checks;
    if ((int)got >= 0 && (int)got < 100) seen[(int)got] = 1;
    if (got != want) {
        ++failures;
        fprintf(stderr, "%s:%d: %s returned %s (%s), want %s\n", __FILE__, line, what,
                gatehouse_status_name(got), gatehouse_status_message(got),
                gatehouse_status_name(want));
        return 0;
    }
    return 1;
}
#define EXPECT(call, want) expect_status((call), (want), #call, __LINE__)

static int bytes_equal(const void* a, size_t a_len, const void* b, size_t b_len) {
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static int text_equal(const char* a, size_t a_len, const char* text) {
    return bytes_equal(a, a_len, text, strlen(text));
}

/* ---- a counting allocator, and one that fails on demand --------------------------------- */

struct counting {
    int allocations;
    int deallocations;
    size_t live_bytes;
    int fail_after; /* allocations left before allocate() returns NULL; -1: never fails */
};

static void* counting_allocate(void* user_data, size_t size) {
    struct counting* c = (struct counting*)user_data;
    if (c->fail_after == 0) return NULL;
    if (c->fail_after > 0) --c->fail_after;
    ++c->allocations;
    c->live_bytes += size;
    return malloc(size);
}

static void counting_deallocate(void* user_data, void* block, size_t size) {
    struct counting* c = (struct counting*)user_data;
    ++c->deallocations;
    c->live_bytes -= size;
    free(block);
}

/* ---- the hand-written frames ------------------------------------------------------------ */

/* type "player_action", payload {"move":[1,2]}, correlation_id "c-17" in each wire format. */
static const char json_frame[] =
    "{\"type\":\"player_action\",\"payload\":{\"move\":[1,2]},\"correlation_id\":\"c-17\"}";
static const unsigned char msgpack_payload[] = {0x81, 0xa4, 'm', 'o', 'v', 'e', 0x92, 0x01, 0x02};
static const unsigned char msgpack_frame[] = {
    0x83,                                                                      /* fixmap, 3 */
    0xa4, 't',  'y', 'p', 'e',                                                 /* "type" */
    0xad, 'p',  'l', 'a', 'y', 'e', 'r',  '_',  'a',  'c', 't', 'i', 'o', 'n', /* 13 chars */
    0xa7, 'p',  'a', 'y', 'l', 'o', 'a',  'd',                                 /* "payload" */
    0x81, 0xa4, 'm', 'o', 'v', 'e', 0x92, 0x01, 0x02,                          /* {"move":[1,2]} */
    0xae, 'c',  'o', 'r', 'r', 'e', 'l',  'a',  't',  'i', 'o', 'n', '_', 'i', 'd', /* 14 chars */
    0xa4, 'c',  '-', '1', '7'};
static const unsigned char protobuf_frame[] = {
    0x0a, 0x0d, 'p', 'l', 'a', 'y', 'e', 'r', '_', 'a', 'c', 't', 'i', 'o', 'n',      /* 1: type */
    0x12, 0x0e, '{', '"', 'm', 'o', 'v', 'e', '"', ':', '[', '1', ',', '2', ']', '}', /* 2 */
    0x1a, 0x04, 'c', '-', '1', '7',                                                   /* 3: corr */
    0x22, 0x04, 'j', 's', 'o', 'n'};                                                  /* 4: codec */
/* payload bytes 08 01 10 02 named "game.Move", no correlation id. */
static const unsigned char protobuf_bytes_frame[] = {
    0x0a, 0x0d, 'p',  'l',  'a',  'y',  'e',  'r', '_', 'a', 'c', 't', 'i', 'o', 'n', 0x12,
    0x04, 0x08, 0x01, 0x10, 0x02, 0x22, 0x09, 'g', 'a', 'm', 'e', '.', 'M', 'o', 'v', 'e'};

static const char move_json[] = "{\"move\":[1,2]}";

static gatehouse_envelope player_action(gatehouse_payload_format format) {
    gatehouse_envelope env = {0};
    env.type = "player_action";
    env.type_len = strlen(env.type);
    env.payload_format = format;
    if (format == GATEHOUSE_PAYLOAD_MSGPACK) {
        env.payload = msgpack_payload;
        env.payload_len = sizeof msgpack_payload;
    } else {
        env.payload = move_json;
        env.payload_len = strlen(move_json);
    }
    env.correlation_id = "c-17";
    env.correlation_id_len = 4;
    return env;
}

static gatehouse_codec* make_codec(const char* name) {
    gatehouse_codec* codec = NULL;
    EXPECT(gatehouse_codec_create(name, strlen(name), NULL, &codec), GATEHOUSE_STATUS_OK);
    return codec;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_version(void) {
    char expected[32];
    CHECK(gatehouse_version() == GATEHOUSE_C_VERSION);
    CHECK(gatehouse_version() == 100L); /* 0.1.0, the project's version */
    sprintf(expected, "%d.%d.%d", GATEHOUSE_C_VERSION_MAJOR, GATEHOUSE_C_VERSION_MINOR,
            GATEHOUSE_C_VERSION_PATCH);
    CHECK(strcmp(gatehouse_version_string(), expected) == 0);
}

static void test_status_tables(void) {
    static const char* const names[] = {"ok",
                                        "truncated",
                                        "syntax_error",
                                        "invalid_utf8",
                                        "too_deep",
                                        "trailing_bytes",
                                        "invalid_payload",
                                        "not_a_map",
                                        "missing_type",
                                        "invalid_type",
                                        "invalid_correlation_id",
                                        "duplicate_field",
                                        "invalid_update_id",
                                        "invalid_traceparent",
                                        "buffer_too_small",
                                        "payload_format_mismatch",
                                        "invalid_argument",
                                        "unknown_codec",
                                        "null_argument",
                                        "out_of_memory"};
    size_t i, j;
    CHECK(sizeof names / sizeof names[0] == STATUS_COUNT);
    for (i = 0; i < STATUS_COUNT; ++i) {
        const gatehouse_status s = all_statuses[i];
        const char* message = gatehouse_status_message(s);
        const char* code = gatehouse_status_protocol_code(s);
        CHECK(message != NULL && message[0] != '\0');
        CHECK(strcmp(message, "unknown status") != 0);
        CHECK(strcmp(gatehouse_status_name(s), names[i]) == 0);
        if ((int)s >= 1 && (int)s <= 6) {
            CHECK(code != NULL && strcmp(code, "invalid_frame") == 0);
        } else if ((int)s >= 20 && (int)s <= 26) {
            CHECK(code != NULL && strcmp(code, "invalid_envelope") == 0);
        } else {
            CHECK(code == NULL);
        }
        for (j = 0; j < i; ++j) CHECK(strcmp(message, gatehouse_status_message(all_statuses[j])));
    }
    CHECK(strcmp(gatehouse_status_message((gatehouse_status)7), "unknown status") == 0);
    CHECK(strcmp(gatehouse_status_message((gatehouse_status)99), "unknown status") == 0);
    CHECK(strcmp(gatehouse_status_message((gatehouse_status)-1), "unknown status") == 0);
    CHECK(strcmp(gatehouse_status_name((gatehouse_status)43), "unknown") == 0);
    CHECK(gatehouse_status_protocol_code((gatehouse_status)99) == NULL);
    CHECK(strcmp(gatehouse_status_message(GATEHOUSE_STATUS_BUFFER_TOO_SMALL),
                 "output buffer too small") == 0);
}

static void test_codec_handles(void) {
    static const char* const names[] = {"json", "msgpack", "protobuf"};
    static const char* const subprotocols[] = {"gatehouse.json", "gatehouse.msgpack",
                                               "gatehouse.protobuf"};
    struct counting counter = {0, 0, 0, -1};
    gatehouse_allocator alloc;
    gatehouse_allocator broken = {NULL, NULL, NULL};
    gatehouse_codec* codec = (gatehouse_codec*)&counter; /* must be reset to NULL on failure */
    size_t i;

    alloc.allocate = counting_allocate;
    alloc.deallocate = counting_deallocate;
    alloc.user_data = &counter;

    for (i = 0; i < 3; ++i) {
        codec = make_codec(names[i]);
        CHECK(codec != NULL);
        CHECK(strcmp(gatehouse_codec_name(codec), names[i]) == 0);
        CHECK(strcmp(gatehouse_codec_subprotocol(codec), subprotocols[i]) == 0);
        CHECK(gatehouse_codec_is_text(codec) == (i == 0));
        gatehouse_codec_destroy(codec);
    }

    codec = (gatehouse_codec*)&counter;
    EXPECT(gatehouse_codec_create("xml", 3, NULL, &codec), GATEHOUSE_STATUS_UNKNOWN_CODEC);
    CHECK(codec == NULL);
    EXPECT(gatehouse_codec_create("json", 3, NULL, &codec), GATEHOUSE_STATUS_UNKNOWN_CODEC);
    EXPECT(gatehouse_codec_create("JSON", 4, NULL, &codec), GATEHOUSE_STATUS_UNKNOWN_CODEC);
    EXPECT(gatehouse_codec_create("jsonx", 5, NULL, &codec), GATEHOUSE_STATUS_UNKNOWN_CODEC);
    EXPECT(gatehouse_codec_create("", 0, NULL, &codec), GATEHOUSE_STATUS_UNKNOWN_CODEC);
    EXPECT(gatehouse_codec_create("json", 4, NULL, NULL), GATEHOUSE_STATUS_NULL_ARGUMENT);
    codec = (gatehouse_codec*)&counter;
    EXPECT(gatehouse_codec_create(NULL, 4, NULL, &codec), GATEHOUSE_STATUS_NULL_ARGUMENT);
    CHECK(codec == NULL);
    EXPECT(gatehouse_codec_create("json", 4, &broken, &codec), GATEHOUSE_STATUS_NULL_ARGUMENT);
    CHECK(codec == NULL);

    /* The handle is allocated through the allocator and freed by destroy. */
    EXPECT(gatehouse_codec_create("msgpack", 7, &alloc, &codec), GATEHOUSE_STATUS_OK);
    CHECK(counter.allocations == 1 && counter.deallocations == 0 && counter.live_bytes > 0);
    gatehouse_codec_destroy(codec);
    CHECK(counter.allocations == 1 && counter.deallocations == 1 && counter.live_bytes == 0);

    counter.fail_after = 0;
    codec = (gatehouse_codec*)&counter;
    EXPECT(gatehouse_codec_create("json", 4, &alloc, &codec), GATEHOUSE_STATUS_OUT_OF_MEMORY);
    CHECK(codec == NULL);
    CHECK(counter.allocations == 1);

    gatehouse_codec_destroy(NULL);
    CHECK(gatehouse_codec_name(NULL) == NULL);
    CHECK(gatehouse_codec_subprotocol(NULL) == NULL);
    CHECK(gatehouse_codec_is_text(NULL) == 0);
}

/* Encodes `env` with both encoders and checks the frame is exactly `want`. */
static void check_encodes_to(const char* codec_name, const gatehouse_envelope* env,
                             const void* want, size_t want_len) {
    gatehouse_codec* codec = make_codec(codec_name);
    unsigned char buffer[256];
    size_t len = 12345;
    const void* owned = NULL;
    size_t owned_len = 0;

    /* Size query, then too small by one (nothing written past capacity), then exact. */
    EXPECT(gatehouse_encode(codec, env, NULL, 0, &len), GATEHOUSE_STATUS_BUFFER_TOO_SMALL);
    CHECK(len == want_len);
    memset(buffer, 0xee, sizeof buffer);
    len = 0;
    EXPECT(gatehouse_encode(codec, env, buffer, want_len - 1, &len),
           GATEHOUSE_STATUS_BUFFER_TOO_SMALL);
    CHECK(len == want_len);
    CHECK(buffer[want_len - 1] == 0xee && buffer[want_len] == 0xee);
    len = 0;
    EXPECT(gatehouse_encode(codec, env, buffer, want_len, &len), GATEHOUSE_STATUS_OK);
    CHECK(bytes_equal(buffer, len, want, want_len));
    CHECK(buffer[want_len] == 0xee);

    EXPECT(gatehouse_encode_owned(codec, env, &owned, &owned_len), GATEHOUSE_STATUS_OK);
    CHECK(owned != NULL && bytes_equal(owned, owned_len, want, want_len));
    gatehouse_codec_destroy(codec);
}

/* Decodes `frame` and re-encodes the view: the same bytes must come out. */
static void check_round_trip(const char* codec_name, const void* frame, size_t frame_len) {
    gatehouse_codec* codec = make_codec(codec_name);
    gatehouse_envelope view;
    unsigned char buffer[256];
    size_t len = 0;
    EXPECT(gatehouse_decode(codec, frame, frame_len, &view), GATEHOUSE_STATUS_OK);
    EXPECT(gatehouse_encode(codec, &view, buffer, sizeof buffer, &len), GATEHOUSE_STATUS_OK);
    CHECK(bytes_equal(buffer, len, frame, frame_len));
    gatehouse_codec_destroy(codec);
}

static void test_known_encodings(void) {
    gatehouse_envelope env = player_action(GATEHOUSE_PAYLOAD_JSON);
    static const unsigned char move_bytes[] = {0x08, 0x01, 0x10, 0x02};

    check_encodes_to("json", &env, json_frame, strlen(json_frame));
    check_encodes_to("protobuf", &env, protobuf_frame, sizeof protobuf_frame);
    env = player_action(GATEHOUSE_PAYLOAD_MSGPACK);
    check_encodes_to("msgpack", &env, msgpack_frame, sizeof msgpack_frame);

    env.payload_format = GATEHOUSE_PAYLOAD_BYTES;
    env.payload = move_bytes;
    env.payload_len = sizeof move_bytes;
    env.payload_codec = "game.Move";
    env.payload_codec_len = 9;
    env.correlation_id = NULL;
    env.correlation_id_len = 0;
    check_encodes_to("protobuf", &env, protobuf_bytes_frame, sizeof protobuf_bytes_frame);

    check_round_trip("json", json_frame, strlen(json_frame));
    check_round_trip("msgpack", msgpack_frame, sizeof msgpack_frame);
    check_round_trip("protobuf", protobuf_frame, sizeof protobuf_frame);
    check_round_trip("protobuf", protobuf_bytes_frame, sizeof protobuf_bytes_frame);
}

static void test_null_payloads(void) {
    gatehouse_envelope env = {0};
    static const char json_null[] = "{\"type\":\"ping\",\"payload\":null}";
    static const unsigned char msgpack_nil[] = {0x82, 0xa4, 't', 'y', 'p',  'e', 0xa4,
                                                'p',  'i',  'n', 'g', 0xa7, 'p', 'a',
                                                'y',  'l',  'o', 'a', 'd',  0xc0};
    static const unsigned char protobuf_absent[] = {0x0a, 0x04, 'p', 'i', 'n', 'g',
                                                    0x22, 0x04, 'j', 's', 'o', 'n'};
    static const unsigned char protobuf_null[] = {0x0a, 0x04, 'p', 'i', 'n', 'g',
                                                  0x12, 0x04, 'n', 'u', 'l', 'l',
                                                  0x22, 0x04, 'j', 's', 'o', 'n'};
    static const unsigned char protobuf_bytes_absent[] = {0x0a, 0x04, 'p', 'i', 'n', 'g'};
    env.type = "ping";
    env.type_len = 4;
    check_encodes_to("json", &env, json_null, strlen(json_null));
    env.payload_format = GATEHOUSE_PAYLOAD_MSGPACK;
    check_encodes_to("msgpack", &env, msgpack_nil, sizeof msgpack_nil);
    /* JSON null on protobuf: the payload field carries "null"; empty bytes are left out. */
    env.payload_format = GATEHOUSE_PAYLOAD_JSON;
    check_encodes_to("protobuf", &env, protobuf_null, sizeof protobuf_null);
    env.payload_format = GATEHOUSE_PAYLOAD_BYTES;
    check_encodes_to("protobuf", &env, protobuf_bytes_absent, sizeof protobuf_bytes_absent);
    {
        /* A protobuf frame without a payload field reads as JSON null. */
        gatehouse_codec* codec = make_codec("protobuf");
        gatehouse_envelope view;
        EXPECT(gatehouse_decode(codec, protobuf_absent, sizeof protobuf_absent, &view),
               GATEHOUSE_STATUS_OK);
        CHECK(text_equal((const char*)view.payload, view.payload_len, "null"));
        CHECK(view.payload_format == GATEHOUSE_PAYLOAD_JSON);
        gatehouse_codec_destroy(codec);
    }
}

static void test_decode_views(void) {
    gatehouse_codec* json = make_codec("json");
    gatehouse_codec* msgpack = make_codec("msgpack");
    gatehouse_codec* protobuf = make_codec("protobuf");
    gatehouse_envelope view;
    char frame[128];
    /* The server's ack on a protobuf connection (examples/client_codec). */
    static const char ack[] =
        "\x0a\x03"
        "ack"
        "\x12\x19"
        "{\"stream_id\":\"1700000-0\"}"
        "\x1a\x04"
        "c-17"
        "\x22\x04"
        "json";

    EXPECT(gatehouse_decode(json, json_frame, strlen(json_frame), &view), GATEHOUSE_STATUS_OK);
    CHECK(text_equal(view.type, view.type_len, "player_action"));
    CHECK(text_equal((const char*)view.payload, view.payload_len, move_json));
    CHECK(view.payload_format == GATEHOUSE_PAYLOAD_JSON);
    CHECK(text_equal(view.payload_codec, view.payload_codec_len, "json"));
    CHECK(text_equal(view.correlation_id, view.correlation_id_len, "c-17"));
    /* The payload is a view into the frame, not a copy. */
    CHECK((const char*)view.payload > json_frame &&
          (const char*)view.payload < json_frame + strlen(json_frame));

    EXPECT(gatehouse_decode(msgpack, msgpack_frame, sizeof msgpack_frame, &view),
           GATEHOUSE_STATUS_OK);
    CHECK(text_equal(view.type, view.type_len, "player_action"));
    CHECK(bytes_equal(view.payload, view.payload_len, msgpack_payload, sizeof msgpack_payload));
    CHECK(view.payload_format == GATEHOUSE_PAYLOAD_MSGPACK);
    CHECK(text_equal(view.payload_codec, view.payload_codec_len, "msgpack"));
    CHECK(text_equal(view.correlation_id, view.correlation_id_len, "c-17"));

    EXPECT(gatehouse_decode(protobuf, ack, sizeof ack - 1, &view), GATEHOUSE_STATUS_OK);
    CHECK(text_equal(view.type, view.type_len, "ack"));
    CHECK(text_equal((const char*)view.payload, view.payload_len, "{\"stream_id\":\"1700000-0\"}"));
    CHECK(text_equal(view.correlation_id, view.correlation_id_len, "c-17"));

    EXPECT(gatehouse_decode(protobuf, protobuf_bytes_frame, sizeof protobuf_bytes_frame, &view),
           GATEHOUSE_STATUS_OK);
    CHECK(view.payload_format == GATEHOUSE_PAYLOAD_BYTES);
    CHECK(text_equal(view.payload_codec, view.payload_codec_len, "game.Move"));
    CHECK(view.correlation_id == NULL && view.correlation_id_len == 0);

    /* type and correlation_id live in the handle: the frame can go away, they stay. */
    strcpy(frame, "{\"type\":\"moved\",\"correlation_id\":\"k-1\"}");
    EXPECT(gatehouse_decode(json, frame, strlen(frame), &view), GATEHOUSE_STATUS_OK);
    memset(frame, 'x', sizeof frame);
    CHECK(text_equal(view.type, view.type_len, "moved"));
    CHECK(text_equal(view.correlation_id, view.correlation_id_len, "k-1"));
    CHECK(text_equal((const char*)view.payload, view.payload_len, "null"));

    /* A frame whose payload is JSON text with a non-ASCII correlation id (é é). */
    strcpy(frame, "{\"type\":\"t\",\"correlation_id\":\"\xc3\xa9\xc3\xa9\"}");
    EXPECT(gatehouse_decode(json, frame, strlen(frame), &view), GATEHOUSE_STATUS_OK);
    CHECK(text_equal(view.correlation_id, view.correlation_id_len, "\xc3\xa9\xc3\xa9"));

    EXPECT(gatehouse_decode(NULL, frame, 1, &view), GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_decode(json, frame, 1, NULL), GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_decode(json, NULL, 1, &view), GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_decode(json, NULL, 0, &view), GATEHOUSE_STATUS_TRUNCATED);

    gatehouse_codec_destroy(json);
    gatehouse_codec_destroy(msgpack);
    gatehouse_codec_destroy(protobuf);
}

struct bad_frame {
    const char* codec;
    const char* frame;
    size_t len; /* 0: strlen(frame) */
    gatehouse_status want;
    const char* correlation_id; /* what the failed decode must still name, or NULL */
};

static void test_decode_errors(void) {
    static const struct bad_frame cases[] = {
        {"json", "{\"type\":\"a\"", 0, GATEHOUSE_STATUS_TRUNCATED, NULL},
        {"json", "{\"type\":]", 0, GATEHOUSE_STATUS_SYNTAX_ERROR, NULL},
        {"json", "{\"type\":\"a\",\"payload\":\"\xff\"}", 0, GATEHOUSE_STATUS_INVALID_UTF8, NULL},
        {"json", "{\"type\":\"a\"} x", 0, GATEHOUSE_STATUS_TRAILING_BYTES, NULL},
        {"json", "[1]", 0, GATEHOUSE_STATUS_NOT_A_MAP, NULL},
        {"json", "{\"payload\":1}", 0, GATEHOUSE_STATUS_MISSING_TYPE, NULL},
        {"json", "{\"type\":\"a b\",\"correlation_id\":\"c-9\"}", 0, GATEHOUSE_STATUS_INVALID_TYPE,
         "c-9"},
        {"json", "{\"type\":\"a\",\"correlation_id\":\"\"}", 0,
         GATEHOUSE_STATUS_INVALID_CORRELATION_ID, NULL},
        {"json", "{\"type\":\"a\",\"type\":\"b\"}", 0, GATEHOUSE_STATUS_DUPLICATE_FIELD, NULL},
        {"msgpack", "\x81\xa4type", 0, GATEHOUSE_STATUS_TRUNCATED, NULL},
        {"msgpack", "\xc1", 0, GATEHOUSE_STATUS_SYNTAX_ERROR, NULL},
        {"msgpack", "\x91\x01", 0, GATEHOUSE_STATUS_NOT_A_MAP, NULL},
        /* protobuf: payload_codec "json" but the payload is not JSON; the id is still known. */
        {"protobuf", "\x0a\x01t\x12\x01{\x1a\x02id\x22\x04json", 0,
         GATEHOUSE_STATUS_INVALID_PAYLOAD, "id"},
        {"protobuf", "\x0a\x05", 0, GATEHOUSE_STATUS_TRUNCATED, NULL},
    };
    gatehouse_envelope view;
    size_t i;
    char deep[200];

    for (i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        gatehouse_codec* codec = make_codec(cases[i].codec);
        const size_t len = cases[i].len ? cases[i].len : strlen(cases[i].frame);
        if (!EXPECT(gatehouse_decode(codec, cases[i].frame, len, &view), cases[i].want)) {
            fprintf(stderr, "  (case %u: %s frame)\n", (unsigned)i, cases[i].codec);
        }
        CHECK(view.type == NULL && view.type_len == 0);
        CHECK(view.payload == NULL && view.payload_len == 0);
        if (cases[i].correlation_id) {
            CHECK(
                text_equal(view.correlation_id, view.correlation_id_len, cases[i].correlation_id));
        } else {
            CHECK(view.correlation_id == NULL && view.correlation_id_len == 0);
        }
        gatehouse_codec_destroy(codec);
    }

    /* 70 nested arrays: deeper than the 64 levels allowed. */
    {
        gatehouse_codec* codec = make_codec("json");
        size_t n = 0;
        const char* head = "{\"type\":\"a\",\"payload\":";
        memcpy(deep, head, strlen(head));
        n = strlen(head);
        for (i = 0; i < 70; ++i) deep[n++] = '[';
        for (i = 0; i < 70; ++i) deep[n++] = ']';
        deep[n++] = '}';
        EXPECT(gatehouse_decode(codec, deep, n, &view), GATEHOUSE_STATUS_TOO_DEEP);
        gatehouse_codec_destroy(codec);
    }
}

static void test_encode_errors(void) {
    gatehouse_codec* json = make_codec("json");
    gatehouse_codec* msgpack = make_codec("msgpack");
    gatehouse_codec* protobuf = make_codec("protobuf");
    gatehouse_envelope env;
    unsigned char buffer[256];
    size_t len = 99;
    const void* owned = buffer;
    int raw_format = 7;

    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    env.type_len = 0;
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_MISSING_TYPE);
    CHECK(len == 0);
    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    env.type = "bad type";
    env.type_len = 8;
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_INVALID_TYPE);
    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    env.correlation_id = "\xff";
    env.correlation_id_len = 1;
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_INVALID_CORRELATION_ID);

    /* No conversion: each payload format travels only where the wire format carries it. */
    env = player_action(GATEHOUSE_PAYLOAD_MSGPACK);
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_PAYLOAD_FORMAT_MISMATCH);
    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    EXPECT(gatehouse_encode(msgpack, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_PAYLOAD_FORMAT_MISMATCH);
    env.payload_format = GATEHOUSE_PAYLOAD_BYTES;
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_PAYLOAD_FORMAT_MISMATCH);
    env = player_action(GATEHOUSE_PAYLOAD_MSGPACK);
    EXPECT(gatehouse_encode(protobuf, &env, buffer, sizeof buffer, &len), GATEHOUSE_STATUS_OK);

    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    env.payload = "{\"move\":";
    env.payload_len = 8;
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_INVALID_PAYLOAD);
    EXPECT(gatehouse_encode(protobuf, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_INVALID_PAYLOAD);
    EXPECT(gatehouse_encode_owned(json, &env, &owned, &len), GATEHOUSE_STATUS_INVALID_PAYLOAD);
    CHECK(owned == NULL && len == 0);

    /* An enum value C allows but the API does not know. */
    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    memcpy(&env.payload_format, &raw_format, sizeof raw_format);
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_INVALID_ARGUMENT);
    /* A payload_codec protobuf would refuse (not UTF-8). */
    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    env.payload_format = GATEHOUSE_PAYLOAD_BYTES;
    env.payload_codec = "\xff";
    env.payload_codec_len = 1;
    EXPECT(gatehouse_encode(protobuf, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_INVALID_ARGUMENT);

    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    EXPECT(gatehouse_encode(NULL, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_encode(json, NULL, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, NULL),
           GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_encode(json, &env, NULL, 10, &len), GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_encode_owned(NULL, &env, &owned, &len), GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_encode_owned(json, NULL, &owned, &len), GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_encode_owned(json, &env, NULL, &len), GATEHOUSE_STATUS_NULL_ARGUMENT);
    EXPECT(gatehouse_encode_owned(json, &env, &owned, NULL), GATEHOUSE_STATUS_NULL_ARGUMENT);
    env.payload = NULL;
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_NULL_ARGUMENT);
    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    env.type = NULL;
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_NULL_ARGUMENT);
    env = player_action(GATEHOUSE_PAYLOAD_JSON);
    env.correlation_id = NULL;
    EXPECT(gatehouse_encode(json, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_NULL_ARGUMENT);
    env = player_action(GATEHOUSE_PAYLOAD_BYTES);
    env.payload_codec_len = 3;
    EXPECT(gatehouse_encode(protobuf, &env, buffer, sizeof buffer, &len),
           GATEHOUSE_STATUS_NULL_ARGUMENT);

    gatehouse_codec_destroy(json);
    gatehouse_codec_destroy(msgpack);
    gatehouse_codec_destroy(protobuf);
}

static void test_owned_buffer(void) {
    struct counting counter = {0, 0, 0, -1};
    gatehouse_allocator alloc;
    gatehouse_codec* codec = NULL;
    gatehouse_envelope env = player_action(GATEHOUSE_PAYLOAD_JSON);
    const void* frame = NULL;
    const void* first = NULL;
    size_t len = 0;
    char big[2000];
    const char* prefix = "{\"type\":\"player_action\",\"payload\":";
    size_t i;

    alloc.allocate = counting_allocate;
    alloc.deallocate = counting_deallocate;
    alloc.user_data = &counter;
    EXPECT(gatehouse_codec_create("json", 4, &alloc, &codec), GATEHOUSE_STATUS_OK);

    /* The first frame allocates the buffer; the next ones of similar size reuse it. */
    EXPECT(gatehouse_encode_owned(codec, &env, &first, &len), GATEHOUSE_STATUS_OK);
    CHECK(bytes_equal(first, len, json_frame, strlen(json_frame)));
    CHECK(counter.allocations == 2);
    for (i = 0; i < 10; ++i) {
        EXPECT(gatehouse_encode_owned(codec, &env, &frame, &len), GATEHOUSE_STATUS_OK);
    }
    CHECK(frame == first && counter.allocations == 2);

    /* A bigger payload grows it (old buffer freed), a failing allocator reports it. */
    big[0] = '"';
    for (i = 1; i + 1 < sizeof big; ++i) big[i] = 'a';
    big[sizeof big - 1] = '"';
    env.payload = big;
    env.payload_len = sizeof big;
    counter.fail_after = 0;
    EXPECT(gatehouse_encode_owned(codec, &env, &frame, &len), GATEHOUSE_STATUS_OUT_OF_MEMORY);
    CHECK(frame == NULL && len == 0);
    counter.fail_after = -1;
    EXPECT(gatehouse_encode_owned(codec, &env, &frame, &len), GATEHOUSE_STATUS_OK);
    CHECK(len > sizeof big && counter.allocations == 3 && counter.deallocations == 1);
    CHECK(memcmp((const char*)frame + strlen(prefix), big, sizeof big) == 0);

    gatehouse_codec_destroy(codec);
    CHECK(counter.allocations == counter.deallocations && counter.live_bytes == 0);
}

static void test_payload_checks(void) {
    static const unsigned char map[] = {0x81, 0xa1, 'a', 0x01};
    int raw_format = 9;
    gatehouse_payload_format unknown;
    memcpy(&unknown, &raw_format, sizeof raw_format);

    EXPECT(gatehouse_validate_payload(GATEHOUSE_PAYLOAD_JSON, "{\"a\":[1,2.5,null]}", 18),
           GATEHOUSE_STATUS_OK);
    EXPECT(gatehouse_validate_payload(GATEHOUSE_PAYLOAD_JSON, "{\"a\":", 5),
           GATEHOUSE_STATUS_TRUNCATED);
    EXPECT(gatehouse_validate_payload(GATEHOUSE_PAYLOAD_JSON, "1 2", 3),
           GATEHOUSE_STATUS_TRAILING_BYTES);
    EXPECT(gatehouse_validate_payload(GATEHOUSE_PAYLOAD_MSGPACK, map, sizeof map),
           GATEHOUSE_STATUS_OK);
    EXPECT(gatehouse_validate_payload(GATEHOUSE_PAYLOAD_MSGPACK, map, 3),
           GATEHOUSE_STATUS_TRUNCATED);
    EXPECT(gatehouse_validate_payload(GATEHOUSE_PAYLOAD_BYTES, "\xff\x00", 2), GATEHOUSE_STATUS_OK);
    EXPECT(gatehouse_validate_payload(unknown, "1", 1), GATEHOUSE_STATUS_INVALID_ARGUMENT);
    EXPECT(gatehouse_validate_payload(GATEHOUSE_PAYLOAD_JSON, NULL, 1),
           GATEHOUSE_STATUS_NULL_ARGUMENT);

    CHECK(strcmp(gatehouse_payload_format_name(GATEHOUSE_PAYLOAD_JSON), "json") == 0);
    CHECK(strcmp(gatehouse_payload_format_name(GATEHOUSE_PAYLOAD_MSGPACK), "msgpack") == 0);
    CHECK(strcmp(gatehouse_payload_format_name(GATEHOUSE_PAYLOAD_BYTES), "bytes") == 0);
    CHECK(gatehouse_payload_format_name(unknown) == NULL);

    CHECK(gatehouse_is_valid_type("game.state", 10) == 1);
    CHECK(gatehouse_is_valid_type("a b", 3) == 0);
    CHECK(gatehouse_is_valid_type("", 0) == 0);
    CHECK(gatehouse_is_valid_type(NULL, 0) == 0);
    CHECK(gatehouse_is_valid_correlation_id("c-1", 3) == 1);
    CHECK(gatehouse_is_valid_correlation_id("\xc3\xa9", 2) == 1);
    CHECK(gatehouse_is_valid_correlation_id("\xc3", 1) == 0);
    CHECK(gatehouse_is_valid_correlation_id("", 0) == 0);
    CHECK(gatehouse_is_valid_correlation_id(NULL, 3) == 0);
}

/* update_id and traceparent (docs/protocol.md section 6): encoded byte for byte as the contract
 * and proto/gatehouse.proto (fields 5 and 6) say, decoded back, refused on encode when
 * malformed, dropped on decode. */
static void test_trace_fields(void) {
    static const char trace[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    static const char json_want[] =
        "{\"type\":\"t\",\"payload\":null,\"update_id\":\"17-3\","
        "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}";
    unsigned char msgpack_want[128];
    unsigned char protobuf_want[128];
    size_t m = 0, p = 0;
    gatehouse_envelope env = {0};
    gatehouse_envelope view;
    gatehouse_codec* codec;
    size_t len = 0;
    char frame[256];

    /* {"type":"t","payload":nil,"update_id":"17-3","traceparent":trace} */
    msgpack_want[m++] = 0x84;
    memcpy(msgpack_want + m,
           "\xa4type\xa1t\xa7payload\xc0\xa9update_id\xa4"
           "17-3",
           31);
    m += 31;
    memcpy(msgpack_want + m, "\xabtraceparent\xd9\x37", 14);
    m += 14;
    memcpy(msgpack_want + m, trace, 55);
    m += 55;
    /* type = 1, payload = 2 ("null"), payload_codec = 4 ("json"), update_id = 5, traceparent = 6 */
    memcpy(protobuf_want + p,
           "\x0a\x01t\x12\x04null\x22\x04json\x2a\x04"
           "17-3\x32\x37",
           23);
    p += 23;
    memcpy(protobuf_want + p, trace, 55);
    p += 55;

    env.type = "t";
    env.type_len = 1;
    env.update_id = "17-3";
    env.update_id_len = 4;
    env.traceparent = trace;
    env.traceparent_len = 55;
    check_encodes_to("json", &env, json_want, strlen(json_want));
    check_round_trip("json", json_want, strlen(json_want));
    env.payload_format = GATEHOUSE_PAYLOAD_JSON;
    check_encodes_to("protobuf", &env, protobuf_want, p);
    check_round_trip("protobuf", protobuf_want, p);
    env.payload_format = GATEHOUSE_PAYLOAD_MSGPACK;
    check_encodes_to("msgpack", &env, msgpack_want, m);
    check_round_trip("msgpack", msgpack_want, m);

    codec = make_codec("msgpack");
    EXPECT(gatehouse_decode(codec, msgpack_want, m, &view), GATEHOUSE_STATUS_OK);
    CHECK(text_equal(view.update_id, view.update_id_len, "17-3"));
    CHECK(text_equal(view.traceparent, view.traceparent_len, trace));
    /* Malformed on encode: refused, with its own status. */
    env.update_id_len = 3;
    env.update_id = "1 2";
    EXPECT(gatehouse_encode(codec, &env, frame, sizeof frame, &len),
           GATEHOUSE_STATUS_INVALID_UPDATE_ID);
    CHECK(len == 0);
    env.update_id = "17-3";
    env.traceparent_len = 54;
    EXPECT(gatehouse_encode(codec, &env, frame, sizeof frame, &len),
           GATEHOUSE_STATUS_INVALID_TRACEPARENT);
    env.traceparent = NULL;
    EXPECT(gatehouse_encode(codec, &env, frame, sizeof frame, &len),
           GATEHOUSE_STATUS_NULL_ARGUMENT);
    gatehouse_codec_destroy(codec);

    /* Malformed on decode: dropped; absent: NULL and 0; a failed decode clears them. */
    codec = make_codec("json");
    strcpy(frame, "{\"type\":\"t\",\"update_id\":7,\"traceparent\":\"00-00\"}");
    EXPECT(gatehouse_decode(codec, frame, strlen(frame), &view), GATEHOUSE_STATUS_OK);
    CHECK(view.update_id == NULL && view.update_id_len == 0);
    CHECK(view.traceparent == NULL && view.traceparent_len == 0);
    EXPECT(gatehouse_decode(codec, json_want, strlen(json_want) - 1, &view),
           GATEHOUSE_STATUS_TRUNCATED);
    CHECK(view.update_id == NULL && view.update_id_len == 0);
    CHECK(view.traceparent == NULL && view.traceparent_len == 0);
    gatehouse_codec_destroy(codec);

    CHECK(gatehouse_is_valid_update_id("1733529600000-0", 15) == 1);
    CHECK(gatehouse_is_valid_update_id("", 0) == 0);
    CHECK(gatehouse_is_valid_update_id("a b", 3) == 0);
    CHECK(gatehouse_is_valid_update_id(NULL, 3) == 0);
    CHECK(gatehouse_is_valid_traceparent(trace, 55) == 1);
    CHECK(gatehouse_is_valid_traceparent(trace, 54) == 0);
    CHECK(gatehouse_is_valid_traceparent(NULL, 55) == 0);
}

int main(void) {
    size_t i;
    test_version();
    test_status_tables();
    test_codec_handles();
    test_known_encodings();
    test_null_payloads();
    test_decode_views();
    test_decode_errors();
    test_encode_errors();
    test_owned_buffer();
    test_payload_checks();
    test_trace_fields();

    for (i = 0; i < STATUS_COUNT; ++i) {
        if (!seen[(int)all_statuses[i]]) {
            ++failures;
            fprintf(stderr, "no call returned %s\n", gatehouse_status_name(all_statuses[i]));
        }
    }
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
