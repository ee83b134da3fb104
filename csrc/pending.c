/* pending.c - the list of connections that are not clients yet: deadlines and the max_pending bound. */
#include "pending.h"

#include <stdlib.h>

#include "log.h"
#include "service.h"
#include "timeutil.h"

#define SCAN_INTERVAL_US (1 * LWS_US_PER_SEC)
/* An attack drops thousands of connections: their lines are summed up, one per period. */
#define REPORT_PERIOD_MS 10000

struct pending_conn {
    struct pending_conn *prev, *next;
    struct lws *wsi;
    int64_t since_ms;   /* monotonic */
};

static int64_t now_ms(void)
{
    return mono_us() / 1000;
}

static void link_tail(struct pending_list *pl, struct pending_conn *c)
{
    c->next = NULL;
    c->prev = pl->tail;
    if (pl->tail)
        pl->tail->next = c;
    else
        pl->head = c;
    pl->tail = c;
    pl->count++;
}

static void unlink_conn(struct pending_list *pl, struct pending_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        pl->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        pl->tail = c->prev;
    pl->count--;
}

static void report(struct service *svc, int force)
{
    struct pending_list *pl = &svc->pending_conns;
    int64_t now = now_ms();
    if (!pl->unreported_full && !pl->unreported_late)
        return;
    if (!force && pl->report_ms && now - pl->report_ms < REPORT_PERIOD_MS)
        return;
    if (pl->unreported_full)
        sb_log(svc->events, SB_WARNING,
               "dropped %llu pending connections to stay within max_pending=%zu (oldest first)",
               (unsigned long long)pl->unreported_full, svc->cfg.max_pending);
    if (pl->unreported_late)
        sb_log(svc->events, SB_INFO,
               "dropped %llu connections that did not finish their request, handshake or "
               "authentication in time", (unsigned long long)pl->unreported_late);
    pl->unreported_full = pl->unreported_late = 0;
    pl->report_ms = now;
}

/*
 * Forget c and close its connection now (no close frame: it is not a client yet).  Never called
 * from c's own callbacks.  Synchronously: an asynchronous kill is only a zero timeout, which lws
 * replaces with its own timeout when the next byte of a request body arrives, and the descriptor
 * must be free at once when accept() is starved of them.
 */
static void drop(struct service *svc, struct pending_conn *c)
{
    struct lws *wsi = c->wsi;
    unlink_conn(&svc->pending_conns, c);
    lws_set_opaque_user_data(wsi, NULL);
    free(c);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

static void scan(lws_sorted_usec_list_t *sul)
{
    struct service *svc = lws_container_of(sul, struct service, pending_conns.scan);
    struct pending_list *pl = &svc->pending_conns;
    int64_t now = now_ms();

    /* Oldest first, so the expired ones are a prefix of the list. */
    while (pl->head && now - pl->head->since_ms >= PENDING_DEADLINE_MS) {
        drop(svc, pl->head);
        svc->counters.closed_pending_timeout++;
        pl->unreported_late++;
    }
    report(svc, 0);
    lws_sul_schedule(svc->ctx, 0, &pl->scan, scan, SCAN_INTERVAL_US);
}

void pending_start(struct service *svc)
{
    lws_sul_schedule(svc->ctx, 0, &svc->pending_conns.scan, scan, SCAN_INTERVAL_US);
}

void pending_stop(struct service *svc)
{
    struct pending_list *pl = &svc->pending_conns;
    lws_sul_cancel(&pl->scan);
    report(svc, 1);
    while (pl->head) {
        struct pending_conn *c = pl->head;
        unlink_conn(pl, c);
        lws_set_opaque_user_data(c->wsi, NULL);
        free(c);
    }
}

int pending_drop_oldest(struct service *svc)
{
    if (!svc->pending_conns.head)
        return 0;
    drop(svc, svc->pending_conns.head);
    return 1;
}

int pending_accepted(struct service *svc, struct lws *wsi)
{
    struct pending_list *pl = &svc->pending_conns;
    if (lws_get_opaque_user_data(wsi))
        return 0; /* already tracked */
    struct pending_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    while (svc->cfg.max_pending && pl->count >= svc->cfg.max_pending && pl->head) {
        drop(svc, pl->head);
        svc->counters.rejected_pending_full++;
        pl->unreported_full++;
    }
    report(svc, 0);
    c->wsi = wsi;
    c->since_ms = now_ms();
    link_tail(pl, c);
    lws_set_opaque_user_data(wsi, c);
    return 0;
}

void pending_finished(struct service *svc, struct lws *wsi)
{
    struct pending_conn *c = lws_get_opaque_user_data(wsi);
    if (!c)
        return;
    unlink_conn(&svc->pending_conns, c);
    lws_set_opaque_user_data(wsi, NULL);
    free(c);
}

void pending_restart(struct service *svc, struct lws *wsi)
{
    struct pending_conn *c = lws_get_opaque_user_data(wsi);
    if (!c)
        return;
    unlink_conn(&svc->pending_conns, c);
    c->since_ms = now_ms();
    link_tail(&svc->pending_conns, c);
}
