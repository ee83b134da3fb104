/* webhook_stats.h - the per-endpoint webhook figures Python pushes down for /metrics to show. */
#ifndef SB_WEBHOOK_STATS_H
#define SB_WEBHOOK_STATS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Endpoint keys are short hashes of the URLs (never a URL: it may carry a secret). */
#define WEBHOOK_KEY_MAX 32

/* One endpoint's figures, as session_buddy/realtime/webhooks.py counts them. */
struct webhook_stat {
    char key[WEBHOOK_KEY_MAX + 1];
    uint64_t deliveries;      /* events delivered (2xx) */
    uint64_t failures;        /* failed attempts */
    uint64_t retries;         /* attempts after an event's first */
    uint64_t expired;         /* events dropped after retrying for max_age */
    uint64_t overflowed;      /* events dropped past the queue bound */
    uint64_t depth;           /* undelivered events queued now */
    double oldest_created_s;  /* unix time of the oldest queued event; 0 when none */
};

/* The latest figures: written by the asyncio thread, read by the service thread. */
struct webhook_stats {
    pthread_mutex_t lock;
    struct webhook_stat *rows; /* owned */
    size_t n;
};

void webhook_stats_init(struct webhook_stats *ws);
void webhook_stats_destroy(struct webhook_stats *ws);

/* Replace the figures with a copy of rows[0..n).  Returns 0, or -1 when out of memory (the
 * old figures stay). */
int webhook_stats_set(struct webhook_stats *ws, const struct webhook_stat *rows, size_t n);

/* A malloc'd copy of the figures into *rows (NULL when there are none), the count into *n.
 * The caller frees *rows.  Returns 0, or -1 when out of memory. */
int webhook_stats_copy(struct webhook_stats *ws, struct webhook_stat **rows, size_t *n);

#endif
