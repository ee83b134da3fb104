/* client_list.h - a copy of the admitted connections, taken under the service lock, for Python's `clients`. */
#ifndef SB_CLIENT_LIST_H
#define SB_CLIENT_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "service.h"

/* One admitted connection.  Every string is owned and valid UTF-8 (text_utf8_copy), whatever
 * bytes the peer's subscription or token held. */
struct client_row {
    uint64_t id;
    char *peer;          /* "ip:port" */
    int subscribed;      /* 0 after unsubscribe */
    char *skill;         /* the subscription's skill, NULL for all skills (or unsubscribed) */
    char *user_id;       /* "" when authentication is off or the token named none */
};

/*
 * Copy every admitted session of svc while holding svc->lock, and nothing else: no Python
 * object is made under the lock, so a garbage collection that runs Python code (a gc
 * callback, a __del__ that reads `clients`) can never wait on it while the service thread
 * waits for the GIL.  Returns 0 with *rows (*n entries, NULL when 0) owned by the caller,
 * freed with client_rows_free, or -1 when out of memory (nothing to free).
 */
int client_rows_take(struct service *svc, struct client_row **rows, size_t *n);

/* Free the rows and their strings.  (NULL, 0) is fine. */
void client_rows_free(struct client_row *rows, size_t n);

#endif
