/* ticker.c - the DB thread: reads the skills DB off the network thread and publishes snapshots. */
#include "ticker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "timeutil.h"

int ticker_init(struct ticker *t, const char *db_path, int64_t interval_us, size_t top_n,
                struct event_queue *events, ticker_publish_fn publish, void *publish_ctx)
{
    pthread_condattr_t attr;

    memset(t, 0, sizeof(*t));
    if (dbr_init(&t->reader, db_path) < 0)
        return -1;
    t->interval_us = interval_us;
    t->top_n = top_n;
    t->events = events;
    t->publish = publish;
    t->publish_ctx = publish_ctx;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    return 0;
}

/* Read the DB; on failure reuse the last good figures and mark the tick stale. */
static struct snapshot *build_snapshot(struct ticker *t)
{
    char err[512] = "";
    struct dbr_warnings warn;
    int64_t now = now_unix_ms();
    struct metrics *m = dbr_read(&t->reader, now, &warn, err, sizeof(err));
    int stale = 0;

    if (warn.unparseable_times)
        sb_log(t->events, SB_WARNING,
               "%lld invocation(s) in %s have an invoked_at that is not an ISO 8601 time: "
               "they count in the totals but not in the 1 h / 24 h windows",
               (long long)warn.unparseable_times, t->reader.path);
    if (warn.no_v4)
        sb_log(t->events, SB_WARNING,
               "%s has no skill_anomalies table (pre-V4 schema): anomalies are disabled",
               t->reader.path);
    if (m) {
        if (t->in_outage)
            sb_log(t->events, SB_INFO, "database readable again: %s", t->reader.path);
        t->in_outage = 0;
        metrics_unref(t->last_good);
        t->last_good = m; /* the reference from dbr_read */
    } else {
        if (!t->in_outage)
            sb_log(t->events, SB_ERROR, "database unreadable, serving stale data: %s", err);
        t->in_outage = 1;
        stale = 1;
        if (!t->last_good) {
            t->last_good = metrics_build(NULL, 0, NULL, 0);
            if (!t->last_good)
                return NULL;
        }
    }
    return snapshot_new(t->last_good, ++t->seq, now, stale, t->top_n);
}

static void add_us(struct timespec *ts, int64_t us)
{
    ts->tv_sec += us / 1000000;
    ts->tv_nsec += (us % 1000000) * 1000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static int before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *ticker_main(void *arg)
{
    struct ticker *t = arg;
    struct timespec next;

    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        /* Sleep until the next period, an on-demand request, or stop. */
        while (!t->stop && t->requested_id == t->done_id) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (!before(&now, &next))
                break;
            pthread_cond_timedwait(&t->wake, &t->lock, &next);
        }
        if (t->stop)
            break;
        uint64_t serving = t->requested_id;
        pthread_mutex_unlock(&t->lock);

        struct snapshot *s = build_snapshot(t);
        if (s) {
            pthread_mutex_lock(&t->lock);
            snapshot_unref(t->latest);
            snapshot_ref(s);
            t->latest = s;
            pthread_mutex_unlock(&t->lock);
            t->publish(t->publish_ctx, s); /* hands over the reference from build_snapshot */
            evq_post(t->events, EV_SNAPSHOT, 0, s->seq, NULL);
        }

        /* A steady period: advance the absolute deadline; after a long stall, skip missed ticks. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!before(&now, &next)) {
            add_us(&next, t->interval_us);
            if (before(&next, &now)) {
                next = now;
                add_us(&next, t->interval_us);
            }
        }

        pthread_mutex_lock(&t->lock);
        if (serving != t->done_id) {
            t->done_id = serving;
            evq_post(t->events, EV_TICK_DONE, 0, serving, NULL);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int ticker_start(struct ticker *t)
{
    int rc = pthread_create(&t->thread, NULL, ticker_main, t);
    if (rc == 0)
        t->started = 1;
    return rc;
}

uint64_t ticker_request_tick(struct ticker *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t id = ++t->requested_id;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    return id;
}

struct snapshot *ticker_latest(struct ticker *t)
{
    pthread_mutex_lock(&t->lock);
    struct snapshot *s = t->latest;
    if (s)
        snapshot_ref(s);
    pthread_mutex_unlock(&t->lock);
    return s;
}

void ticker_destroy(struct ticker *t)
{
    if (t->started) {
        pthread_mutex_lock(&t->lock);
        t->stop = 1;
        pthread_cond_signal(&t->wake);
        pthread_mutex_unlock(&t->lock);
        dbr_interrupt(&t->reader);
        pthread_join(t->thread, NULL);
        t->started = 0;
    }
    snapshot_unref(t->latest);
    t->latest = NULL;
    metrics_unref(t->last_good);
    t->last_good = NULL;
    dbr_close(&t->reader);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
}
