/* pmdeflate.h - permessage-deflate (RFC 7692) without per-connection compressors: the offer, the
 * shared compressor, and an inflater that lives only while one client message arrives. */
#ifndef SB_PMDEFLATE_H
#define SB_PMDEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "msgbuf.h"
#include "rx_buffer.h"

/*
 * Plain C on zlib, with no lws or Python in sight, so that tests and fuzzers can call it.
 *
 * The design (SPEC section 8): every message the server compresses comes from a deflater reset
 * for that message (no context takeover), so one compressed frame is valid for every client
 * whose window allows it, and the server keeps one deflater per window size, not one per
 * connection.  Clients are asked for client_no_context_takeover, so a client message can be
 * inflated by an inflater created at its first fragment and freed at its last.
 */

/* zlib cannot make a raw deflate stream with an 8-bit window (it silently uses 9), so an offer
 * that limits the server to 8 bits is declined: the connection stays uncompressed. */
#define PMD_MIN_WINDOW_BITS 9
#define PMD_MAX_WINDOW_BITS 15
#define PMD_WINDOWS (PMD_MAX_WINDOW_BITS - PMD_MIN_WINDOW_BITS + 1)

/* What the server agreed to for one connection. */
struct pmd_agreement {
    uint8_t window_bits;        /* the window the server compresses with (9..15) */
    uint8_t window_requested;   /* the client sent server_max_window_bits: the reply names it */
};

/*
 * Decide on the index-th permessage-deflate offer (0 = the first) of a Sec-WebSocket-Extensions
 * header value (len bytes, need not be NUL-terminated).  Returns 1 and fills *out when the
 * offer can be honoured, 0 when it cannot (missing, unknown or repeated parameters, bad values,
 * server_max_window_bits=8): the connection then goes without compression.
 */
int pmd_negotiate(const char *header, size_t len, unsigned index, struct pmd_agreement *out);

/*
 * The parameters of the server's reply to an agreed offer, each as "; name[=value]", written to
 * buf (cap bytes, NUL-terminated): no context takeover on either side, and the window when the
 * client limited it.  Returns the length, or -1 when it does not fit.
 */
int pmd_reply_params(const struct pmd_agreement *a, char *buf, size_t cap);

/* One deflater per window size, created on first use and reset for every message. */
struct pmd_compressor {
    void *deflaters[PMD_WINDOWS];  /* z_stream *, indexed by window_bits - PMD_MIN_WINDOW_BITS */
};

/*
 * A complete compressed frame (FIN, RSV1, text opcode, length, then the message deflated with
 * window_bits and a sync flush, without its trailing 00 00 ff ff) for the text message m, in a
 * new msgbuf whose frame_head says where the frame starts.  When compression would not make the
 * message smaller, m itself is returned (with one more reference): RFC 7692 lets each message
 * choose.  Returns NULL when out of memory.  The caller owns the returned reference.
 */
struct msgbuf *pmd_compress(struct pmd_compressor *c, int window_bits, struct msgbuf *m);

/* Free every deflater (the struct may be used again, as if zeroed). */
void pmd_compressor_release(struct pmd_compressor *c);

/* The inflater of one client message; NULL between messages. */
struct pmd_inflater;

/* Statuses of pmd_receive, beyond rx_append's. */
enum pmd_rx_status { PMD_RX_OK, PMD_RX_TOO_LARGE, PMD_RX_NOMEM, PMD_RX_BAD_DATA };

/*
 * One received chunk of a client message into rx, as rx_append does (first, binary, max), and
 * inflated first when the message is compressed (`compressed`: the first frame had RSV1; read
 * on the first chunk only).  final: the chunk ends the message.  *inf is created on the first
 * chunk of a compressed message and freed at its end or on any error, so no inflate state
 * outlives a message.  A message that inflates past max gives PMD_RX_TOO_LARGE as soon as it
 * does (nothing past max is inflated or stored); undecodable data gives PMD_RX_BAD_DATA.
 */
enum pmd_rx_status pmd_receive(struct pmd_inflater **inf, struct rx_buffer *rx, const void *chunk,
                               size_t len, int first, int compressed, int binary, int final,
                               size_t max);

/* Free an inflater left by a message that never finished (NULL is a no-op). */
void pmd_inflater_free(struct pmd_inflater **inf);

/* zlib streams alive in this process (deflaters and inflaters), for tests of the bound above. */
long pmd_live_streams(void);

#endif
