/* anomaly_watch.c - posts the active anomaly set to Python whenever its keys change. */
#include "anomaly_watch.h"

#include <stdlib.h>
#include <string.h>

#include "json_writer.h"

static int key_cmp(const void *pa, const void *pb)
{
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

void anomaly_watch_clear(struct anomaly_watch *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->keys[i]);
    free(w->keys);
    w->keys = NULL;
    w->n = 0;
}

static void free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* The sorted keys of list, or NULL when out of memory.  A skill name is data that may hold
 * any byte but NUL (the DB's names are text); the type comes first so the separator cannot be
 * confused with a name's content. */
static char **make_keys(const struct anomaly *list, size_t n)
{
    char **keys = calloc(n ? n : 1, sizeof(*keys));
    if (!keys)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *type = anomaly_type_name(list[i].type);
        size_t tlen = strlen(type);
        keys[i] = malloc(tlen + 1 + list[i].skill_len + 1);
        if (!keys[i]) {
            free_keys(keys, i);
            return NULL;
        }
        memcpy(keys[i], type, tlen);
        keys[i][tlen] = '\n';
        memcpy(keys[i] + tlen + 1, list[i].skill_name, list[i].skill_len);
        keys[i][tlen + 1 + list[i].skill_len] = '\0';
    }
    if (n)
        qsort(keys, n, sizeof(*keys), key_cmp);
    return keys;
}

static int same_keys(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]))
            return 0;
    return 1;
}

int anomaly_watch_update(struct anomaly_watch *w, const struct anomaly *list, size_t n,
                         uint64_t seq, struct event_queue *events)
{
    char **keys = make_keys(list, n);
    jbuf out;

    if (!keys)
        return -1;
    if (w->reported && same_keys(keys, n, w->keys, w->n)) {
        free_keys(keys, n);
        return 0;
    }
    if (jb_init(&out, 0, 256) < 0) {
        free_keys(keys, n);
        return -1;
    }
    jb_lit(&out, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            jb_lit(&out, ",");
        snapshot_write_anomaly(&out, &list[i]);
    }
    jb_lit(&out, "]");
    if (out.failed || evq_post(events, EV_ANOMALIES, 0, seq, jb_text(&out)) < 0) {
        jb_free(&out);
        free_keys(keys, n);
        return -1;
    }
    jb_free(&out);
    anomaly_watch_clear(w);
    w->keys = keys;
    w->n = n;
    w->reported = 1;
    return 0;
}
