/* gql_command.h - what the Python side tells the service thread about GraphQL operations. */
#ifndef SB_GQL_COMMAND_H
#define SB_GQL_COMMAND_H

#include <stddef.h>
#include <stdint.h>

struct gql_selection;
struct msgbuf;

enum gql_command_kind {
    GQC_SUBSCRIBE,            /* an operation becomes a live metricsUpdate subscription */
    GQC_SEND,                 /* a whole frame for an operation (next, error, complete) */
    GQC_HTTP_REPLY,           /* the answer to a POST/GET /graphql request */
};

/*
 * One command, built by the thread that holds the GIL and owned by the queue until the service
 * thread applies and frees it.  A command whose connection, operation or request is gone by
 * then is dropped: the client left while Python was working.
 */
struct gql_command {
    struct gql_command *next;
    enum gql_command_kind kind;
    uint64_t target;              /* the connection id, or the HTTP request id */
    char *op_id;                  /* SUBSCRIBE, SEND: owned, op_id_len bytes, NUL-terminated */
    size_t op_id_len;
    char *skill;                  /* SUBSCRIBE: owned, or NULL for all skills */
    size_t skill_len;
    struct gql_selection *sel;    /* SUBSCRIBE: owned */
    char *since_epoch;            /* SUBSCRIBE: owned, or NULL for no recovery */
    uint64_t since_seq;
    int done;                     /* SEND: the operation ends with this frame */
    struct msgbuf *body;          /* SEND: the frame's text; HTTP_REPLY: the body; owned */
    int status;                   /* HTTP_REPLY */
    char *content_type;           /* HTTP_REPLY: owned */
};

/* Free cmd and everything it owns (NULL is a no-op). */
void gql_command_free(struct gql_command *cmd);

#endif
