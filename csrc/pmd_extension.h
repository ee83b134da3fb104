/* pmd_extension.h - permessage-deflate's negotiation inside lws, with no compressor of lws's. */
#ifndef SB_PMD_EXTENSION_H
#define SB_PMD_EXTENSION_H

#include <libwebsockets.h>
#include <stdint.h>

#include "pmdeflate.h"

/*
 * lws 4.1.6 accepts compressed (RSV1) frames only on a connection with an active extension,
 * and its own permessage-deflate keeps a deflater of about 256 KiB per connection, compresses
 * every message once per client and ignores the window sizes a client asks for.  This room
 * registers an extension of the same name that lws negotiates but that leaves every frame as it
 * is: the server writes its compressed frames whole (LWS_WRITE_RAW, built once per group by
 * fanout.c) and inflates client messages itself (pmd_receive), so lws never runs zlib.
 */

/* One connection's permessage-deflate state, inside its session (zeroed by lws). */
struct pmd_conn {
    uint8_t offers_seen;          /* offers lws has asked about: it tries them in order */
    uint8_t agreed;               /* the handshake reply accepts an offer, with `terms` */
    uint8_t replied;              /* the reply carries the parameters of `terms` */
    struct pmd_agreement terms;
    struct pmd_inflater *inflating;  /* while a compressed client message arrives */
};

/* The vhost's extension table (info.extensions): permessage-deflate, and its terminator. */
extern const struct lws_extension pmd_extensions[];

/*
 * LWS_CALLBACK_ADD_HEADERS of a WebSocket handshake: lws can only echo parameters without a
 * value, so the agreed parameters are appended here to the Sec-WebSocket-Extensions line lws has
 * just written.  Returns 0, or -1 (the handshake fails) when that line is not where lws 4.1.6
 * writes it: a reply without the parameters would let the client use context takeover.
 */
int pmd_extension_add_headers(struct pmd_conn *c, struct lws_process_html_args *args);

#endif
