/* history.c - the bucket rings of get_history: sorted series of lazily allocated 10-minute chunks. */
#include "history.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKET_MS (HISTORY_BUCKET_S * 1000LL)
#define CHUNK_BUCKETS HISTORY_CHUNK_BUCKETS
#define N_CHUNKS 146 /* 24 h of chunks, plus one partial chunk at each end of a 24 h request */

_Static_assert(N_CHUNKS * CHUNK_BUCKETS * HISTORY_BUCKET_S >=
                   HISTORY_MAX_WINDOW_S + 2 * CHUNK_BUCKETS * HISTORY_BUCKET_S,
               "the ring must hold every bucket a request can read");

#define cell history_cell

struct chunk {
    int64_t number;                 /* absolute: invoked_ms / (bucket * CHUNK_BUCKETS) */
    struct cell cells[CHUNK_BUCKETS];
};

struct series {
    char *name;                     /* NULL for the all-skills series */
    size_t len;
    struct chunk *chunks[N_CHUNKS]; /* slot number % N_CHUNKS, or NULL */
};

struct history {
    pthread_mutex_t lock;
    struct series all;
    struct series **skills;         /* sorted by name */
    size_t n_skills, cap_skills;
    int64_t now_ms;                 /* the ticker's clock; 0 before the first advance */
    uint64_t changes;               /* see history_changes */
};

struct history *history_new(void)
{
    struct history *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

static void series_clear(struct series *s)
{
    for (size_t i = 0; i < N_CHUNKS; i++) {
        free(s->chunks[i]);
        s->chunks[i] = NULL;
    }
}

/* The caller holds the lock. */
static void clear_locked(struct history *h)
{
    h->changes++;
    series_clear(&h->all);
    for (size_t i = 0; i < h->n_skills; i++) {
        series_clear(h->skills[i]);
        free(h->skills[i]->name);
        free(h->skills[i]);
    }
    free(h->skills);
    h->skills = NULL;
    h->n_skills = h->cap_skills = 0;
}

void history_free(struct history *h)
{
    if (!h)
        return;
    clear_locked(h);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void history_clear(struct history *h)
{
    pthread_mutex_lock(&h->lock);
    clear_locked(h);
    pthread_mutex_unlock(&h->lock);
}

void history_advance(struct history *h, int64_t now_ms)
{
    pthread_mutex_lock(&h->lock);
    if (now_ms > h->now_ms)
        h->now_ms = now_ms;
    pthread_mutex_unlock(&h->lock);
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* Where skill is, or would be inserted, in the sorted list; *found tells which. */
static size_t find_slot(const struct history *h, const char *skill, size_t len, int *found)
{
    size_t lo = 0, hi = h->n_skills;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(skill, len, h->skills[mid]->name, h->skills[mid]->len);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* The series of skill, created when missing; NULL when out of memory.  Lock held. */
static struct series *series_for(struct history *h, const char *skill, size_t len)
{
    int found;
    size_t at = find_slot(h, skill, len, &found);
    if (found)
        return h->skills[at];
    if (h->n_skills == h->cap_skills) {
        size_t cap = h->cap_skills ? h->cap_skills * 2 : 32;
        struct series **grown = realloc(h->skills, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        h->skills = grown;
        h->cap_skills = cap;
    }
    struct series *s = calloc(1, sizeof(*s));
    char *name = malloc(len + 1);
    if (!s || !name) {
        free(s);
        free(name);
        return NULL;
    }
    memcpy(name, skill, len);
    name[len] = '\0';
    s->name = name;
    s->len = len;
    memmove(&h->skills[at + 1], &h->skills[at], (h->n_skills - at) * sizeof(*h->skills));
    h->skills[at] = s;
    h->n_skills++;
    return s;
}

/* 1 when the slot of chunk number n holds a newer chunk: n is older than the ring. */
static int left_the_ring(const struct series *s, int64_t n)
{
    const struct chunk *c = s->chunks[n % N_CHUNKS];
    return c && c->number > n;
}

/* The chunk holding chunk number n, or NULL when it is not held. */
static const struct chunk *chunk_held(const struct series *s, int64_t n)
{
    const struct chunk *c = s->chunks[n % N_CHUNKS];
    return c && c->number == n ? c : NULL;
}

/* Chunk number n, made current in its slot (an older chunk there, whose data has left the
 * ring, is recycled); NULL when out of memory.  Not for a chunk that left_the_ring. */
static struct chunk *chunk_make(struct series *s, int64_t n)
{
    struct chunk **slot = &s->chunks[n % N_CHUNKS];
    if (*slot && (*slot)->number == n)
        return *slot;
    if (!*slot && !(*slot = malloc(sizeof(**slot))))
        return NULL;
    memset(*slot, 0, sizeof(**slot));
    (*slot)->number = n;
    return *slot;
}

static void count(struct cell *c, int completed, double duration)
{
    c->invocations++;
    c->completed += completed != 0;
    if (completed && !isnan(duration)) {
        c->n_durations++;
        c->sum_durations += duration;
    }
}

int history_add(struct history *h, const char *skill, size_t len, int64_t invoked_ms,
                int completed, double duration)
{
    int64_t bucket = invoked_ms / BUCKET_MS, n = bucket / CHUNK_BUCKETS;
    int rc = 0;

    if (invoked_ms < 0)
        return 0;
    pthread_mutex_lock(&h->lock);
    if (h->now_ms > 0) {
        int64_t now_chunk = h->now_ms / BUCKET_MS / CHUNK_BUCKETS;
        if (invoked_ms > h->now_ms + HISTORY_FUTURE_S * 1000LL || n <= now_chunk - N_CHUNKS)
            goto out; /* it could only push out what a request reads */
    }
    struct series *s = series_for(h, skill, len);
    if (!s) {
        rc = -1;
        goto out;
    }
    if (left_the_ring(s, n) || left_the_ring(&h->all, n))
        goto out;
    /* Both chunks first, so that out of memory counts the row nowhere. */
    struct chunk *mine = chunk_make(s, n);
    struct chunk *all = mine ? chunk_make(&h->all, n) : NULL;
    if (!all) {
        rc = -1;
        goto out;
    }
    count(&mine->cells[bucket % CHUNK_BUCKETS], completed, duration);
    count(&all->cells[bucket % CHUNK_BUCKETS], completed, duration);
    h->changes++;
out:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int history_knows(struct history *h, const char *skill, size_t len)
{
    int found;
    pthread_mutex_lock(&h->lock);
    find_slot(h, skill, len, &found);
    pthread_mutex_unlock(&h->lock);
    return found;
}

int history_request_check(long long window_s, long long step_s, char *err, size_t errlen)
{
    if (window_s < 1 || window_s > HISTORY_MAX_WINDOW_S || step_s < HISTORY_MIN_STEP_S ||
        step_s > HISTORY_MAX_STEP_S || step_s % HISTORY_BUCKET_S != 0 ||
        (window_s + step_s - 1) / step_s > HISTORY_MAX_POINTS) {
        snprintf(err, errlen, "%s", HISTORY_RANGE_TEXT);
        return -1;
    }
    return 0;
}

size_t history_query(struct history *h, const char *skill, size_t len, int64_t now_ms,
                     long long window_s, long long step_s, struct history_point *out)
{
    size_t n = (size_t)((window_s + step_s - 1) / step_s);
    int64_t step_ms = step_s * 1000LL, per_step = step_s / HISTORY_BUCKET_S;
    int64_t last = now_ms / step_ms * step_ms, first = last - (int64_t)(n - 1) * step_ms;

    memset(out, 0, n * sizeof(*out));
    pthread_mutex_lock(&h->lock);
    int found = 1;
    struct series *s = &h->all;
    if (skill) {
        size_t at = find_slot(h, skill, len, &found);
        s = found ? h->skills[at] : NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct history_point *p = &out[i];
        p->t_ms = first + (int64_t)i * step_ms;
        int64_t b0 = p->t_ms / BUCKET_MS;
        for (int64_t b = b0; s && b < b0 + per_step; b++) {
            const struct chunk *c = chunk_held(s, b / CHUNK_BUCKETS);
            if (!c)
                continue;
            const struct cell *cell = &c->cells[b % CHUNK_BUCKETS];
            p->invocations += cell->invocations;
            p->completed += cell->completed;
            p->n_durations += cell->n_durations;
            p->sum_durations += cell->sum_durations;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}

static size_t series_bytes(const struct series *s)
{
    size_t bytes = s->name ? malloc_usable_size(s->name) + malloc_usable_size((void *)s) : 0;
    for (size_t i = 0; i < N_CHUNKS; i++)
        bytes += s->chunks[i] ? malloc_usable_size(s->chunks[i]) : 0;
    return bytes;
}

size_t history_heap_bytes(struct history *h)
{
    pthread_mutex_lock(&h->lock);
    size_t bytes = series_bytes(&h->all) + (h->skills ? malloc_usable_size(h->skills) : 0);
    for (size_t i = 0; i < h->n_skills; i++)
        bytes += series_bytes(h->skills[i]);
    pthread_mutex_unlock(&h->lock);
    return bytes;
}

/* The lock is held. */
static void each_in_series(const struct history *h, const struct series *s, history_chunk_fn fn,
                           void *ctx)
{
    int64_t oldest = h->now_ms / BUCKET_MS / CHUNK_BUCKETS - N_CHUNKS;
    for (size_t i = 0; i < N_CHUNKS; i++)
        if (s->chunks[i] && s->chunks[i]->number > oldest)
            fn(ctx, s->name, s->len, s->chunks[i]->number, s->chunks[i]->cells);
}

uint64_t history_changes(struct history *h)
{
    pthread_mutex_lock(&h->lock);
    uint64_t n = h->changes;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void history_each_chunk(struct history *h, history_chunk_fn fn, void *ctx)
{
    pthread_mutex_lock(&h->lock);
    each_in_series(h, &h->all, fn, ctx);
    for (size_t i = 0; i < h->n_skills; i++)
        each_in_series(h, h->skills[i], fn, ctx);
    pthread_mutex_unlock(&h->lock);
}

int history_put_chunk(struct history *h, const char *skill, size_t len, int64_t number,
                      const struct history_cell cells[HISTORY_CHUNK_BUCKETS])
{
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    struct series *s = skill ? series_for(h, skill, len) : &h->all;
    if (!s) {
        rc = -1;
    } else if (number >= 0 && !left_the_ring(s, number)) {
        struct chunk *c = chunk_make(s, number);
        if (c)
            memcpy(c->cells, cells, sizeof(c->cells));
        else
            rc = -1;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void history_swap(struct history *a, struct history *b)
{
    /* Always the same order (by address), so two swaps cannot deadlock. */
    struct history *first = a < b ? a : b, *second = a < b ? b : a;
    pthread_mutex_lock(&first->lock);
    pthread_mutex_lock(&second->lock);
    struct series all = a->all;
    a->all = b->all;
    b->all = all;
    struct series **skills = a->skills;
    a->skills = b->skills;
    b->skills = skills;
    size_t n = a->n_skills, cap = a->cap_skills;
    a->n_skills = b->n_skills;
    a->cap_skills = b->cap_skills;
    b->n_skills = n;
    b->cap_skills = cap;
    int64_t now = a->now_ms;
    a->now_ms = b->now_ms;
    b->now_ms = now;
    a->changes++;
    b->changes++;
    pthread_mutex_unlock(&second->lock);
    pthread_mutex_unlock(&first->lock);
}
