/* fuzz_deflate.c - libFuzzer target for permessage-deflate's offer parser and per-message inflater.
 *
 * Input: [header length:1][Sec-WebSocket-Extensions value][compressed message].  Every offer of
 * the header is decided on (an accepted one must name a window the server can compress with);
 * the rest is inflated in chunks sized by its own bytes, with a 4 KiB limit that must hold, and
 * no inflater may outlive the message. */
#include <stdint.h>
#include <stdlib.h>

#include "pmdeflate.h"

#define MAX_MESSAGE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || (size_t)data[0] + 1 > size)
        return 0;
    const char *header = (const char *)data + 1;
    size_t header_len = data[0];
    const uint8_t *msg = data + 1 + header_len;
    size_t msg_len = size - 1 - header_len;

    for (unsigned i = 0; i < 4; i++) {
        struct pmd_agreement a;
        char reply[96];
        if (pmd_negotiate(header, header_len, i, &a) &&
            (a.window_bits < PMD_MIN_WINDOW_BITS || a.window_bits > PMD_MAX_WINDOW_BITS ||
             pmd_reply_params(&a, reply, sizeof(reply)) < 0))
            abort();
    }

    struct rx_buffer rx = {0};
    struct pmd_inflater *inf = NULL;
    size_t off = 0;
    enum pmd_rx_status st = PMD_RX_OK;
    do {
        size_t piece = msg_len - off ? 1 + msg[off] % 97 : 0;
        if (piece > msg_len - off)
            piece = msg_len - off;
        st = pmd_receive(&inf, &rx, msg + off, piece, off == 0, 1, 0, off + piece == msg_len, MAX_MESSAGE);
        off += piece;
        if (rx.len > MAX_MESSAGE)
            abort();
    } while (st == PMD_RX_OK && off < msg_len);
    if (inf)
        abort(); /* the message ended, or failed: its inflater must be gone */
    rx_free(&rx);
    return pmd_live_streams() == 0 ? 0 : (abort(), 0);
}
