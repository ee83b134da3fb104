/* webhook_stats.c - a mutex-guarded copy of the webhook figures, handed from Python to /metrics. */
#include "webhook_stats.h"

#include <stdlib.h>
#include <string.h>

void webhook_stats_init(struct webhook_stats *ws)
{
    memset(ws, 0, sizeof(*ws));
    pthread_mutex_init(&ws->lock, NULL);
}

void webhook_stats_destroy(struct webhook_stats *ws)
{
    free(ws->rows);
    ws->rows = NULL;
    ws->n = 0;
    pthread_mutex_destroy(&ws->lock);
}

static struct webhook_stat *dup_rows(const struct webhook_stat *rows, size_t n)
{
    struct webhook_stat *copy = malloc(n * sizeof(*copy));
    if (copy)
        memcpy(copy, rows, n * sizeof(*copy));
    return copy;
}

int webhook_stats_set(struct webhook_stats *ws, const struct webhook_stat *rows, size_t n)
{
    struct webhook_stat *copy = NULL;
    if (n && !(copy = dup_rows(rows, n)))
        return -1;
    pthread_mutex_lock(&ws->lock);
    struct webhook_stat *old = ws->rows;
    ws->rows = copy;
    ws->n = n;
    pthread_mutex_unlock(&ws->lock);
    free(old);
    return 0;
}

int webhook_stats_copy(struct webhook_stats *ws, struct webhook_stat **rows, size_t *n)
{
    int rc = 0;
    pthread_mutex_lock(&ws->lock);
    *rows = NULL;
    *n = ws->n;
    if (ws->n && !(*rows = dup_rows(ws->rows, ws->n))) {
        *n = 0;
        rc = -1;
    }
    pthread_mutex_unlock(&ws->lock);
    return rc;
}
