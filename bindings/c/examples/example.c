/* Encode a command, decode the server's ack and an update with the gatehouse C API. */
#include <gatehouse_c.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    gatehouse_codec* codec = NULL;
    gatehouse_envelope cmd = {0};
    gatehouse_envelope reply;
    char frame[256];
    size_t frame_len = 0;
    gatehouse_status st;
    const char* ack =
        "{\"type\":\"ack\",\"correlation_id\":\"c-17\","
        "\"payload\":{\"stream_id\":\"1700000-0\"}}";
    const char* update =
        "{\"type\":\"game.state\",\"payload\":{\"coins\":3},"
        "\"update_id\":\"1700000000000-3\"}";
    char resume_from[64 + 1] = ""; /* update ids are at most 64 characters */

    st = gatehouse_codec_create("json", 4, NULL, &codec);
    if (st != GATEHOUSE_STATUS_OK) {
        fprintf(stderr, "create: %s\n", gatehouse_status_message(st));
        return 1;
    }

    /* Sending: every string has an explicit length; the payload is JSON text. */
    cmd.type = "player_action";
    cmd.type_len = strlen(cmd.type);
    cmd.payload = "{\"move\":[1,2]}";
    cmd.payload_len = strlen(cmd.payload);
    cmd.payload_format = GATEHOUSE_PAYLOAD_JSON;
    cmd.correlation_id = "c-17";
    cmd.correlation_id_len = 4;
    st = gatehouse_encode(codec, &cmd, frame, sizeof frame, &frame_len);
    if (st != GATEHOUSE_STATUS_OK) { /* BUFFER_TOO_SMALL: frame_len is the size needed */
        fprintf(stderr, "encode: %s\n", gatehouse_status_message(st));
        gatehouse_codec_destroy(codec);
        return 1;
    }
    printf("send a %s frame: %.*s\n", gatehouse_codec_is_text(codec) ? "text" : "binary",
           (int)frame_len, frame);

    /* Receiving: `reply` views the handle (type, id) and the frame (payload). */
    st = gatehouse_decode(codec, ack, strlen(ack), &reply);
    if (st != GATEHOUSE_STATUS_OK) {
        fprintf(stderr, "decode: %s (%s)\n", gatehouse_status_message(st),
                gatehouse_status_protocol_code(st));
        gatehouse_codec_destroy(codec);
        return 1;
    }
    printf("received %.*s for %.*s: %.*s\n", (int)reply.type_len, reply.type,
           (int)reply.correlation_id_len, reply.correlation_id, (int)reply.payload_len,
           (const char*)reply.payload);

    /* A logged update carries an update_id: keep the last one (a copy: `reply` is a view)
     * and reconnect with ?resume=<it> to get what was missed meanwhile. */
    st = gatehouse_decode(codec, update, strlen(update), &reply);
    if (st == GATEHOUSE_STATUS_OK && reply.update_id_len != 0) {
        memcpy(resume_from, reply.update_id, reply.update_id_len);
        resume_from[reply.update_id_len] = '\0';
    }
    printf("received %.*s, resume from %s\n", (int)reply.type_len, reply.type, resume_from);

    gatehouse_codec_destroy(codec);
    return 0;
}
