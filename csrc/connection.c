/* connection.c - accept, upgrade checks and destroy: the lws reasons about a connection itself. */
#include "connection.h"

#include <string.h>

#include "handshake.h"
#include "log.h"
#include "pending.h"
#include "protocol_codes.h"
#include "service.h"

/* The upgrade request's checks, in order: RFC 6455, Host, Origin.  Returns what
 * HTTP_CONFIRM_UPGRADE returns: 0 to go on, 1 when refused (the answer is written). */
static int confirm_upgrade(struct lws *wsi, struct service *svc)
{
    char shown[128], peer[64];

    if (handshake_refuse_invalid_upgrade(wsi)) {
        svc->counters.rejected_handshake++;
        return 1;
    }
    if (!handshake_host_allowed(wsi, svc->cfg.allowed_hosts, svc->cfg.n_allowed_hosts)) {
        svc->counters.rejected_host++;
        return handshake_refuse(wsi, "403 Forbidden", "", "host not allowed\n");
    }
    /* An Origin the policy refuses gets a real HTTP 403 (returning nonzero from
     * FILTER_PROTOCOL_CONNECTION would only drop the TCP connection), so that a web page the
     * user happens to visit cannot read the stream. */
    if (handshake_origin_allowed(wsi, svc->cfg.allowed_origins, svc->cfg.n_allowed_origins, shown,
                                 sizeof(shown)))
        return 0;
    handshake_peer(wsi, peer, sizeof(peer));
    svc->counters.rejected_origin++;
    sb_log(svc->events, SB_WARNING, "rejecting %s: Origin %s not allowed", peer, shown);
    return handshake_refuse(wsi, "403 Forbidden", "", "origin not allowed\n");
}

/* lws 4.1.6 answers most invalid close codes with 1002 itself, but echoes a 1-byte payload and
 * codes from 5000 up (RFC 6455 5.5.1, 7.4).  Returns what the callback returns. */
static int peer_close(struct lws *wsi, const void *in, size_t len)
{
    if (close_payload_valid(in, len))
        return 0;
    const struct sb_close_code *c = &sb_close_codes[SB_CLOSE_BAD_CLOSE_FRAME];
    lws_close_reason(wsi, (enum lws_close_status)c->code, (unsigned char *)c->reason,
                     strlen(c->reason));
    return -1;
}

int connection_event(struct lws *wsi, enum lws_callback_reasons reason, struct service *svc,
                     const void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(wsi, svc);
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        service_accept_ok(svc);
        return pending_accepted(svc, wsi) < 0 ? -1 : 0;
    case LWS_CALLBACK_WSI_DESTROY:
        pending_finished(svc, wsi);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return peer_close(wsi, in, len);
    default:
        return 0;
    }
}

