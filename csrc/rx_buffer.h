/* rx_buffer.h - reassembly of one client message from WebSocket fragments, bounded in size. */
#ifndef SB_RX_BUFFER_H
#define SB_RX_BUFFER_H

#include <stddef.h>

/* Capacity above which the buffer is given back after a message. */
#define RX_KEEP_BYTES (16 * 1024)

struct rx_buffer {
    char *data;
    size_t len, cap;
    int binary;       /* the message started in a binary frame */
};

enum rx_status { RX_OK, RX_TOO_LARGE, RX_NOMEM };

/*
 * Append one received chunk.  first: the chunk starts a new message (its
 * binary flag is recorded and anything left over is discarded).  A message
 * longer than max after reassembly gives RX_TOO_LARGE; nothing beyond max is
 * ever allocated.
 */
enum rx_status rx_append(struct rx_buffer *rx, const void *chunk, size_t len, int first,
                         int binary, size_t max);

/* The message was handled: forget it, and give back unusually large buffers. */
void rx_consumed(struct rx_buffer *rx);

/* Free the buffer; the struct may be used again afterwards, as if zeroed. */
void rx_free(struct rx_buffer *rx);

#endif
