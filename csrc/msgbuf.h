/* msgbuf.h - a serialised message with LWS_PRE headroom, shared by reference count. */
#ifndef SB_MSGBUF_H
#define SB_MSGBUF_H

#include <stddef.h>

#include "json_writer.h"

/*
 * One message ready for lws_write: a group's metrics_update is shared by every client of the
 * group (one reference each while it is queued or in flight), a reply or an HTTP body belongs
 * to one connection.  Only the service thread touches these, so refs is a plain int.
 */
struct msgbuf {
    struct msgbuf *next;      /* a session's reply queue link */
    int refs;
    unsigned frame_head;      /* 0: jb is a text message for lws_write to frame; else jb is the
                               * payload of a frame built in full (msgbuf_frame), whose header is
                               * the frame_head bytes before it: it goes out as it is */
    jbuf jb;                  /* the text, LWS_PRE bytes after the start of its allocation */
};

/* A new message with room for `initial` bytes of text and one reference, owned by the caller.
 * Returns NULL when out of memory. */
struct msgbuf *msgbuf_new(size_t initial);

/* Frame m's text whole: write the header of one final text frame (RSV1 set when `compressed`,
 * RFC 7692) into the headroom just before it and set frame_head.  Such a frame can be written
 * to the socket unchanged, by any number of connections (no masking server-side). */
void msgbuf_frame(struct msgbuf *m, int compressed);

/* Take one more reference to m. */
void msgbuf_ref(struct msgbuf *m);

/* Drop one reference (m may be NULL); the last one frees the message. */
void msgbuf_unref(struct msgbuf *m);

#endif
