/* server_graphql.h - ServerBase's GraphQL methods: Python's answers, queued for the service thread. */
#ifndef SB_SERVER_GRAPHQL_H
#define SB_SERVER_GRAPHQL_H

#include "server_type.h"

/*
 * The Python side answers every EV_GQL_OPERATION and EV_GQL_HTTP event with one of these; each
 * builds a gql_command and hands it to the service thread (service_post_command), which drops
 * it when the connection, operation or request has gone meanwhile.  Each returns None, or NULL
 * with RuntimeError when the server is not running, ValueError for a selection that does not
 * parse (gql_selection.h) or a bad argument, MemoryError.
 *
 * gql_subscribe(conn, op_id, skill, selection, since_epoch, since_seq): the operation becomes a
 *   live metricsUpdate subscription (resumed after since_seq when since_epoch is not None).
 * gql_send(conn, op_id, text, done): one whole text frame for the operation; with done it ends.
 * http_reply(request, status, content_type, body): the answer of a /graphql request.
 */
PyObject *sb_server_gql_subscribe(ServerObject *self, PyObject *args);
PyObject *sb_server_gql_send(ServerObject *self, PyObject *args);
PyObject *sb_server_http_reply(ServerObject *self, PyObject *args);

#endif
