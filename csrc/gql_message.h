/* gql_message.h - one client message of the graphql-transport-ws protocol, read and checked. */
#ifndef SB_GQL_MESSAGE_H
#define SB_GQL_MESSAGE_H

#include <stddef.h>

/* The subprotocol name a GraphQL client asks for (the protocol of the graphql-ws library). */
#define GQL_PROTOCOL_NAME "graphql-transport-ws"

/* An operation id is at most this many bytes: every `next` frame repeats it. */
#define GQL_MAX_ID_LEN 128

enum gql_msg_type {
    GQL_MSG_CONNECTION_INIT,
    GQL_MSG_PING,
    GQL_MSG_PONG,
    GQL_MSG_SUBSCRIBE,
    GQL_MSG_COMPLETE,
};

/* What a message says that the server acts on in C.  A subscribe's payload (query, variables,
 * operationName) is for the Python side, which gets the whole message text. */
struct gql_msg {
    enum gql_msg_type type;
    char *id;                 /* subscribe, complete: owned, NUL-terminated, id_len bytes */
    size_t id_len;
    char *token;              /* connection_init: owned, the payload's token, or NULL */
    size_t token_len;
};

enum gql_msg_status {
    GQL_MSG_OK = 0,
    GQL_MSG_INVALID,          /* not a message of the protocol: the connection closes 4400 */
    GQL_MSG_NOMEM,
};

/*
 * Read json[0..len) as one graphql-transport-ws message into *out (zeroed here).  Checked as
 * the protocol document asks: `type` is one of the five client types; subscribe and complete
 * have a non-empty string `id` of at most GQL_MAX_ID_LEN bytes; subscribe has a `payload`
 * object whose `query` is a string; a `payload` elsewhere is an object or null.  For
 * connection_init, the token is the payload's `token`, or its `authorization` /
 * `Authorization` with an optional "Bearer " before it.  Returns an enum gql_msg_status, with
 * err (bounded) saying why for GQL_MSG_INVALID.  Free *out with gql_msg_free either way.
 */
int gql_msg_parse(const char *json, size_t len, struct gql_msg *out, char *err, size_t errlen);

void gql_msg_free(struct gql_msg *m);

#endif
