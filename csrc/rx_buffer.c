/* rx_buffer.c - reassembly of one client message from WebSocket fragments, bounded in size. */
#include "rx_buffer.h"

#include <stdlib.h>
#include <string.h>

enum rx_status rx_append(struct rx_buffer *rx, const void *chunk, size_t len, int first,
                         int binary, size_t max)
{
    if (first) {
        rx->len = 0;
        rx->binary = binary;
    }
    if (rx->len > max || len > max - rx->len)
        return RX_TOO_LARGE;
    if (rx->len + len > rx->cap) {
        size_t cap = rx->cap ? rx->cap : 1024;
        while (cap < rx->len + len)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *grown = realloc(rx->data, cap);
        if (!grown)
            return RX_NOMEM;
        rx->data = grown;
        rx->cap = cap;
    }
    if (len) /* empty fragments are legal; memcpy from NULL is not */
        memcpy(rx->data + rx->len, chunk, len);
    rx->len += len;
    return RX_OK;
}

void rx_consumed(struct rx_buffer *rx)
{
    rx->len = 0;
    if (rx->cap > RX_KEEP_BYTES) {
        free(rx->data);
        rx->data = NULL;
        rx->cap = 0;
    }
}

void rx_free(struct rx_buffer *rx)
{
    free(rx->data);
    memset(rx, 0, sizeof(*rx));
}
