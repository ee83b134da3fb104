/* connection.c - what concerns a connection whichever lws protocol it is bound to at the time. */
#include "connection.h"

#include "handshake.h"
#include "log.h"
#include "pending.h"
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

int connection_event(struct lws *wsi, enum lws_callback_reasons reason, struct service *svc)
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
    default:
        return 0;
    }
}

