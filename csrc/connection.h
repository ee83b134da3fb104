/* connection.h - the lws reasons about a connection itself, not its HTTP request or its session. */
#ifndef SB_CONNECTION_H
#define SB_CONNECTION_H

#include <libwebsockets.h>
#include <stddef.h>

struct service;

/*
 * The reasons that concern the connection, whether it serves HTTP or WebSocket:
 * SERVER_NEW_CLIENT_INSTANTIATED (pending tracking, the accept back-off), WSI_DESTROY,
 * HTTP_CONFIRM_UPGRADE (the handshake checks, counted and logged) and WS_PEER_INITIATED_CLOSE
 * (in[0..len) the client's close payload, refused 1002 when RFC 6455 forbids it).  Returns
 * what the protocol callback returns for that reason; 0 for any other reason.
 */
int connection_event(struct lws *wsi, enum lws_callback_reasons reason, struct service *svc,
                     const void *in, size_t len);

#endif
