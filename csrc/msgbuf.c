/* msgbuf.c - reference-counted messages with LWS_PRE headroom. */
#include "msgbuf.h"

#include <libwebsockets.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FIN, opcode and the longest length encoding (RFC 6455 5.2): 2 + 8 bytes. */
#define FRAME_HEAD_MAX 10
_Static_assert(FRAME_HEAD_MAX <= LWS_PRE, "the headroom holds a frame header");

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

void msgbuf_frame(struct msgbuf *m, int compressed)
{
    size_t len = m->jb.len;
    unsigned char head[FRAME_HEAD_MAX];
    unsigned n;
    head[0] = 0x80 | (compressed ? 0x40 : 0) | 0x1; /* FIN, RSV1, text */
    if (len < 126) {
        head[1] = (unsigned char)len;
        n = 2;
    } else if (len <= 0xffff) {
        head[1] = 126;
        head[2] = (unsigned char)(len >> 8);
        head[3] = (unsigned char)len;
        n = 4;
    } else {
        head[1] = 127;
        for (int i = 0; i < 8; i++)
            head[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(jb_text(&m->jb) - n, head, n);
    m->frame_head = n;
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
