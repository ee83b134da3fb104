/* history.h - per-skill 10 s buckets of the last 24 h of invocations, answering get_history. */
#ifndef SB_HISTORY_H
#define SB_HISTORY_H

#include <stddef.h>
#include <stdint.h>

/*
 * get_history (docs/realtime/WEBSOCKET_SERVER.md, "History") is answered from memory, never by
 * an SQL scan: every invocation the engine ingests is also counted here, in the 10 s bucket of
 * its invoked_at (rows in any time order), per skill and for all skills together.  A request
 * sums whole base buckets into its steps, so a step must be a multiple of 10 s; a 24 h request
 * reads 8,640 buckets whatever the number of invocations.
 *
 * Storage: per skill, a ring of 146 lazily allocated chunks of 10 minutes (60 buckets), which
 * covers 24 h plus the partial chunks at both ends; a skill quiet for a chunk costs nothing
 * there.  Thread-safe: the ticker thread adds, the service and asyncio threads query, each call
 * under the store's lock.
 */

#define HISTORY_BUCKET_S 10
#define HISTORY_MAX_WINDOW_S 86400
#define HISTORY_DEFAULT_WINDOW_S 3600
#define HISTORY_MIN_STEP_S 10
#define HISTORY_MAX_STEP_S 3600
#define HISTORY_DEFAULT_STEP_S 60
#define HISTORY_MAX_POINTS 1440
/* How far into the future (by the ticker's clock) an invoked_at is still counted. */
#define HISTORY_FUTURE_S 3600
/* The message of an invalid_request for a window or step that is not a number in range. */
#define HISTORY_RANGE_TEXT                                                                     \
    "\"window\" must be an integer 1..86400 and \"step\" an integer 10..3600, a multiple of "   \
    "10, with at most 1440 steps in the window"

struct history;

/* The chunks a store is made of, for copying a store through Redis (state_codec.h): 60 buckets
 * of HISTORY_BUCKET_S, chunk number n covering [n * 600 s, (n + 1) * 600 s). */
#define HISTORY_CHUNK_BUCKETS 60

struct history_cell {
    uint32_t invocations, completed, n_durations;
    double sum_durations;
};

/* One chunk of skill (NULL: the all-skills series), called under the store's lock. */
typedef void (*history_chunk_fn)(void *ctx, const char *skill, size_t len, int64_t number,
                                 const struct history_cell cells[HISTORY_CHUNK_BUCKETS]);

/* One point of a response: the bucket [t_ms, t_ms + step). */
struct history_point {
    int64_t t_ms;
    int64_t invocations;
    int64_t completed;
    int64_t n_durations;    /* completed invocations with a duration */
    double sum_durations;
};

/* An empty store, or NULL when out of memory. */
struct history *history_new(void);

/* Free the store.  NULL is fine. */
void history_free(struct history *h);

/* Forget everything (the engine reloads the DB from scratch). */
void history_clear(struct history *h);

/* The ticker's clock moved to now_ms: rows more than HISTORY_FUTURE_S ahead of it are not
 * counted, and rows older than the ring are dropped. */
void history_advance(struct history *h, int64_t now_ms);

/*
 * Count one invocation of skill (len bytes) at invoked_ms (>= 0), completed or not, with
 * duration (NAN: none; used only when completed).  A row outside the ring (older than its
 * 24 h, or too far in the future) is not counted.  Returns 0, or -1 when out of memory (then
 * nothing was counted).
 */
int history_add(struct history *h, const char *skill, size_t len, int64_t invoked_ms,
                int completed, double duration);

/* 1 when skill has been counted since the last clear, else 0. */
int history_knows(struct history *h, const char *skill, size_t len);

/* 0 when window_s and step_s make a valid request (see HISTORY_RANGE_TEXT), else -1 with err
 * set. */
int history_request_check(long long window_s, long long step_s, char *err, size_t errlen);

/*
 * The points of a valid request for skill (NULL: all skills) as of now_ms into out (room for
 * HISTORY_MAX_POINTS): ceil(window_s / step_s) buckets aligned to step_s in UTC, the last one
 * holding now_ms, oldest first, empty ones included.  Returns the number of points.
 */
size_t history_query(struct history *h, const char *skill, size_t len, int64_t now_ms,
                     long long window_s, long long step_s, struct history_point *out);

/* A number that changes whenever what the store holds may have changed (a row counted, a clear, a
 * swap): a copy of it is only made again when this moved. */
uint64_t history_changes(struct history *h);

/* Call fn for every chunk the store holds that is still in the ring, series by series (the
 * all-skills one first), under the lock: a consistent copy. */
void history_each_chunk(struct history *h, history_chunk_fn fn, void *ctx);

/* Set chunk number of skill (NULL: the all-skills series) to cells.  Returns 0, or -1 when out
 * of memory.  For building a copy (see history_swap), never on a store the ticker feeds. */
int history_put_chunk(struct history *h, const char *skill, size_t len, int64_t number,
                      const struct history_cell cells[HISTORY_CHUNK_BUCKETS]);

/* Exchange the contents of a and b (their clocks too), under both locks: a query on either sees
 * one whole store or the other. */
void history_swap(struct history *a, struct history *b);

/* The heap bytes the store holds (its chunks and names), for benchmarks. */
size_t history_heap_bytes(struct history *h);

#endif
