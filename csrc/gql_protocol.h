/* gql_protocol.h - GraphQL over WebSocket (graphql-transport-ws) on the server's port. */
#ifndef SB_GQL_PROTOCOL_H
#define SB_GQL_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "fanout.h"

struct session;
struct service;
struct gql_command;

/* Operations a connection may have at once, live or waiting for the Python side. */
#define GQL_MAX_OPERATIONS 16
/* Operations the whole server lets wait for the Python side: each holds its subscribe message
 * in the event queue until then, so this bounds that memory while Python is busy. */
#define GQL_MAX_WAITING 1024

/* One operation of a connection: waiting for the Python side, then (a subscription) live. */
struct gql_op {
    struct gql_op *next;
    int waiting;              /* handed to Python, not answered yet (counts in GQL_MAX_WAITING) */
    int live;                 /* subscribed: owed updates through sub */
    struct fanout_sub sub;    /* its group holds the (skill, selection); valid while live */
    size_t id_len;
    char id[];                /* the client's id, NUL-terminated */
};

/* A graphql-transport-ws connection's protocol state (inside its session). */
struct gql_conn {
    int init_seen;            /* connection_init came */
    int acked;                /* connection_ack went: operations are allowed */
    unsigned n_ops;
    struct gql_op *ops;
};

/*
 * The protocol's side of a connection, called by ws_protocol.c for sessions with a gql state;
 * service thread only.  gql_receive: one whole client message (in the session's rx buffer):
 * connection_init (auth, then connection_ack), ping (pong), subscribe (checked, then handed to
 * Python as EV_GQL_OPERATION), complete (the operation ends); a protocol violation closes the
 * connection with the graphql-ws code.  gql_updates_pending: 1 when a live operation is owed
 * an update.  gql_write_update: WRITEABLE: one owed `next` frame; returns 0, or -1 when the
 * connection failed.  gql_deliver_updates: a tick: the owed frames written at once where the
 * socket allows (session_can_push), else a WRITEABLE asked for.  gql_closed: CLOSED: every
 * operation ends and the state is freed.
 */
void gql_receive(struct session *s);
int gql_updates_pending(const struct session *s);
int gql_write_update(struct session *s);
void gql_deliver_updates(struct session *s);
void gql_closed(struct session *s);

/* Apply one command from the Python side (GQC_SUBSCRIBE or GQC_SEND) and free it. */
void gql_apply_command(struct service *svc, struct gql_command *cmd);

#endif
