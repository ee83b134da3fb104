/* connection.h - connection-level lws reasons, shared by the HTTP and WebSocket protocols. */
#ifndef SB_CONNECTION_H
#define SB_CONNECTION_H

#include <libwebsockets.h>

struct service;

/*
 * The reasons that concern a connection whichever protocol it is bound to at the time (lws
 * binds a new connection to the default protocol, and a plain HTTP request to protocols[0]):
 * SERVER_NEW_CLIENT_INSTANTIATED (pending tracking, the accept back-off), WSI_DESTROY and
 * HTTP_CONFIRM_UPGRADE (the handshake checks, counted and logged).  Returns what the protocol
 * callback returns for that reason; 0 for any other reason.
 */
int connection_event(struct lws *wsi, enum lws_callback_reasons reason, struct service *svc);

#endif
