/* msgbuf.c - reference-counted messages with LWS_PRE headroom. */
#include "msgbuf.h"

#include <libwebsockets.h>
#include <stdlib.h>

struct msgbuf *msgbuf_new(size_t initial)
{
    struct msgbuf *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (jb_init(&m->jb, LWS_PRE, initial) < 0) {
        free(m);
        return NULL;
    }
    m->refs = 1;
    return m;
}

void msgbuf_ref(struct msgbuf *m)
{
    m->refs++;
}

void msgbuf_unref(struct msgbuf *m)
{
    if (m && --m->refs == 0) {
        jb_free(&m->jb);
        free(m);
    }
}
