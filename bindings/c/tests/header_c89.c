/* gatehouse_c.h must compile as strict C89 and as C++: bindings.c_installed compiles this file
 * both ways with -pedantic -Werror against the installed header. */
#include <gatehouse_c.h>
#include <string.h>

int header_c89_check(void);

int header_c89_check(void) {
    gatehouse_envelope env;
    gatehouse_allocator alloc;
    gatehouse_codec* codec = 0;
    gatehouse_status st;
    memset(&env, 0, sizeof env);
    memset(&alloc, 0, sizeof alloc);
    st = gatehouse_codec_create("json", 4, &alloc, &codec);
    env.payload_format = GATEHOUSE_PAYLOAD_BYTES;
    return (int)st + (int)env.payload_format + (GATEHOUSE_C_VERSION > 0);
}
