/* pending.h - connections that are not clients yet, bounded in time and in number. */
#ifndef SB_PENDING_H
#define SB_PENDING_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct service;
struct pending_conn;

/*
 * A connection is pending from its accept until it becomes a client: while its HTTP request,
 * WebSocket handshake or authentication is not finished.  An HTTP connection is pending again
 * from the end of each response until its next request is served.  Pending connections are
 * kept oldest first; each one is dropped when it has been pending for PENDING_DEADLINE_MS, and
 * when max_pending are pending, a new one drops the oldest.  Service thread only.
 */
struct pending_list {
    struct pending_conn *head, *tail;  /* oldest first */
    size_t count;
    lws_sorted_usec_list_t scan;       /* the once-a-second deadline check */
    int64_t report_ms;                 /* when drops were last logged */
    uint64_t unreported_full, unreported_late;
};

/* A whole HTTP request (body included) or a WebSocket handshake must finish within this. */
#define PENDING_DEADLINE_MS 10000

/* Start the deadline check (once the context exists). */
void pending_start(struct service *svc);

/* Cancel the deadline check and forget every entry (the connections stay as they are). */
void pending_stop(struct service *svc);

/* Track a newly accepted connection; with max_pending reached, the oldest is dropped first.
 * Returns 0, or -1 when out of memory (the caller refuses the connection). */
int pending_accepted(struct service *svc, struct lws *wsi);

/* The connection is no longer pending (it became a client, or it is being freed). */
void pending_finished(struct service *svc, struct lws *wsi);

/* The connection starts a new pending stage now (a new HTTP request, or authentication). */
void pending_restart(struct service *svc, struct lws *wsi);

/* Drop the oldest pending connection to free its descriptor.  Returns 1 if there was one. */
int pending_drop_oldest(struct service *svc);

#endif
