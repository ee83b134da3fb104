/* recovery.c - a ring of lean snapshot envelopes over the recovery window, under one lock. */
#include "recovery.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct recovery {
    pthread_mutex_t lock;
    int64_t window_ms;
    size_t cap;                 /* max_snapshots */
    struct snapshot **ring;     /* cap slots; [head, head + n) in seq order */
    size_t head, n;
    char epoch[SB_EPOCH_LEN + 1]; /* of what is kept; "" before the first */
};

struct recovery *recovery_new(int64_t window_ms, size_t max_snapshots)
{
    struct recovery *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->window_ms = window_ms;
    r->cap = window_ms > 0 ? (max_snapshots ? max_snapshots : 1) : 0;
    if (r->cap) {
        r->ring = calloc(r->cap, sizeof(*r->ring));
        if (!r->ring) {
            free(r);
            return NULL;
        }
    }
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

static struct snapshot *at(const struct recovery *r, size_t i)
{
    return r->ring[(r->head + i) % r->cap];
}

/* Drop the oldest snapshot; the caller holds the lock. */
static void drop_oldest(struct recovery *r)
{
    snapshot_unref(r->ring[r->head]);
    r->ring[r->head] = NULL;
    r->head = (r->head + 1) % r->cap;
    r->n--;
}

void recovery_free(struct recovery *r)
{
    if (!r)
        return;
    while (r->n)
        drop_oldest(r);
    free(r->ring);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int recovery_retain(struct recovery *r, const struct snapshot *s)
{
    if (!r->cap)
        return 0;
    /* The envelope without the Prometheus view: a replay needs only the figures. */
    struct snapshot *kept = snapshot_new(s->metrics, s->epoch, s->seq, s->taken_ms, s->stale,
                                         s->top_n);
    pthread_mutex_lock(&r->lock);
    if (!kept) {
        while (r->n)
            drop_oldest(r);
        pthread_mutex_unlock(&r->lock);
        return -1;
    }
    if (strcmp(r->epoch, s->epoch) != 0) {
        while (r->n)
            drop_oldest(r);
        memcpy(r->epoch, s->epoch, sizeof(r->epoch));
    }
    if (r->n == r->cap)
        drop_oldest(r);
    r->ring[(r->head + r->n) % r->cap] = kept;
    r->n++;
    while (r->n > 1 && at(r, 0)->taken_ms < s->taken_ms - r->window_ms)
        drop_oldest(r);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

/* Index of the first kept snapshot with a seq above seq (n when none); the caller holds the
 * lock. */
static size_t first_after(const struct recovery *r, uint64_t seq)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(r, mid)->seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int recovery_can_resume(struct recovery *r, const char *epoch, uint64_t seq)
{
    int ok = 0;
    pthread_mutex_lock(&r->lock);
    if (r->n && strcmp(epoch, r->epoch) == 0) {
        uint64_t oldest = at(r, 0)->seq, newest = at(r, r->n - 1)->seq;
        ok = seq <= newest && seq + 1 >= oldest;
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

struct snapshot *recovery_next(struct recovery *r, uint64_t seq, int *gap)
{
    struct snapshot *s = NULL;
    *gap = 0;
    pthread_mutex_lock(&r->lock);
    size_t i = r->n ? first_after(r, seq) : 0;
    if (i < r->n) {
        s = at(r, i);
        snapshot_ref(s);
        *gap = s->seq != seq + 1;
    }
    pthread_mutex_unlock(&r->lock);
    return s;
}

void recovery_get_stats(struct recovery *r, struct recovery_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&r->lock);
    out->snapshots = r->n;
    if (r->n) {
        out->oldest_seq = at(r, 0)->seq;
        out->newest_seq = at(r, r->n - 1)->seq;
    }
    const struct metrics *last = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const struct snapshot *s = at(r, i);
        out->metrics_bytes += snapshot_heap_bytes(s, s->metrics != last);
        last = s->metrics; /* stale ticks share the figures of the last good one */
    }
    pthread_mutex_unlock(&r->lock);
}
