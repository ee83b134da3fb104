/* client_list.c - copies the admitted sessions out from under the service lock. */
#include "client_list.h"

#include <stdlib.h>
#include <string.h>

#include "text_sanitize.h"

/* A valid UTF-8 copy of s[0..len), or NULL when out of memory. */
static char *utf8_dup(const char *s, size_t len)
{
    char *out = malloc(TEXT_UTF8_COPY_CAP(len));
    if (out)
        text_utf8_copy(out, TEXT_UTF8_COPY_CAP(len), s, len);
    return out;
}

static int fill_row(struct client_row *row, const struct session *s)
{
    const char *skill = NULL;
    size_t skill_len = 0;
    const char *peer = session_peer(s), *user = session_user_id(s);

    memset(row, 0, sizeof(*row));
    row->id = session_id(s);
    row->subscribed = session_subscription(s, &skill, &skill_len);
    row->peer = utf8_dup(peer, strlen(peer));
    row->user_id = utf8_dup(user, strlen(user));
    if (skill)
        row->skill = utf8_dup(skill, skill_len);
    return row->peer && row->user_id && (!skill || row->skill) ? 0 : -1;
}

int client_rows_take(struct service *svc, struct client_row **rows, size_t *n)
{
    struct client_row *out = NULL;
    size_t count = 0;
    int rc = 0;

    *rows = NULL;
    *n = 0;
    pthread_mutex_lock(&svc->lock);
    size_t cap = svc->n_sessions;
    if (cap) {
        out = calloc(cap, sizeof(*out));
        rc = out ? 0 : -1;
    }
    for (const struct session *s = svc->sessions; s && rc == 0 && count < cap; s = session_next(s)) {
        if (!session_admitted(s))
            continue;
        rc = fill_row(&out[count], s);
        count++; /* a half-filled row is freed with the rest */
    }
    pthread_mutex_unlock(&svc->lock);
    if (rc < 0) {
        client_rows_free(out, count);
        return -1;
    }
    *rows = out;
    *n = count;
    return 0;
}

void client_rows_free(struct client_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].peer);
        free(rows[i].skill);
        free(rows[i].user_id);
    }
    free(rows);
}
