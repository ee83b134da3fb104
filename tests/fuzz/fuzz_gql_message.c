/* fuzz_gql_message.c - libFuzzer target for graphql-transport-ws client messages (gql_msg_parse).
 *
 * Besides not crashing: an accepted subscribe or complete carries a non-empty, NUL-free id of at
 * most GQL_MAX_ID_LEN bytes; a refused message keeps nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gql_message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gql_msg msg;
    char err[128];
    int st = gql_msg_parse((const char *)data, size, &msg, err, sizeof(err));
    if (st == GQL_MSG_OK && (msg.type == GQL_MSG_SUBSCRIBE || msg.type == GQL_MSG_COMPLETE) &&
        (!msg.id || !msg.id_len || msg.id_len > GQL_MAX_ID_LEN || strlen(msg.id) != msg.id_len))
        abort();
    if (st == GQL_MSG_OK && msg.token && strlen(msg.token) > msg.token_len)
        abort();
    if (st != GQL_MSG_OK && (msg.id || msg.token))
        abort();
    gql_msg_free(&msg);
    return 0;
}
