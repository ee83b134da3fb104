/* pmdeflate.c - permessage-deflate: the offer, the shared compressor, the per-message inflater. */
#include "pmdeflate.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* A sync flush ends in an empty stored block; RFC 7692 7.2.1 has the sender drop it. */
static const unsigned char sync_tail[4] = {0x00, 0x00, 0xff, 0xff};
/* Compression happens once per group and tick, so it can afford zlib's default level. */
#define DEFLATE_LEVEL Z_DEFAULT_COMPRESSION
#define DEFLATE_MEM_LEVEL 8
/* Inflated output goes to the message buffer through this much stack at a time. */
#define INFLATE_CHUNK 4096

static atomic_long live_streams;

long pmd_live_streams(void)
{
    return atomic_load(&live_streams);
}

/* ---- the offer ------------------------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* [*p, end) trimmed of blanks, as (start, length). */
static void trim(const char **p, const char **end)
{
    while (*p < *end && is_space(**p))
        (*p)++;
    while (*end > *p && is_space((*end)[-1]))
        (*end)--;
}

/* A window size value: 1*DIGIT in 8..15, optionally quoted (RFC 7692 7.1.2).  -1 if invalid. */
static int window_value(const char *v, size_t n)
{
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n < 1 || n > 2 || v[0] < '1' || v[0] > '9' || (n == 2 && (v[1] < '0' || v[1] > '9')))
        return -1;
    int bits = n == 1 ? v[0] - '0' : (v[0] - '0') * 10 + (v[1] - '0');
    return bits >= 8 && bits <= 15 ? bits : -1;
}

/* One offer's parameters, [p, end) after its name.  Returns 1 (and fills *out) or 0. */
static int accept_params(const char *p, const char *end, struct pmd_agreement *out)
{
    int seen_snct = 0, seen_cnct = 0, seen_smwb = 0, seen_cmwb = 0;

    out->window_bits = PMD_MAX_WINDOW_BITS;
    out->window_requested = 0;
    while (p < end) {
        const char *next = memchr(p, ';', (size_t)(end - p));
        const char *stop = next ? next : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *name = p, *name_end = eq ? eq : stop;
        const char *val = eq ? eq + 1 : stop, *val_end = stop;
        trim(&name, &name_end);
        trim(&val, &val_end);
        size_t n = (size_t)(name_end - name);
        int bits = eq ? window_value(val, (size_t)(val_end - val)) : 0;

#define IS(lit) (n == sizeof(lit) - 1 && !memcmp(name, lit, n))
        if (IS("server_no_context_takeover")) {
            if (seen_snct++ || eq)
                return 0;
        } else if (IS("client_no_context_takeover")) {
            if (seen_cnct++ || eq)
                return 0;
        } else if (IS("server_max_window_bits")) {
            if (seen_smwb++ || !eq || bits < 0 || bits < PMD_MIN_WINDOW_BITS)
                return 0;
            out->window_bits = (uint8_t)bits;
            out->window_requested = 1;
        } else if (IS("client_max_window_bits")) {
            /* Accepted with or without a value: every client window inflates with 15 bits. */
            if (seen_cmwb++ || bits < 0)
                return 0;
        } else if (n || eq) {
            return 0; /* a parameter we do not know: decline the offer (RFC 7692 5) */
        }
#undef IS
        p = next ? next + 1 : end;
    }
    return 1;
}

int pmd_negotiate(const char *header, size_t len, unsigned index, struct pmd_agreement *out)
{
    static const char name[] = "permessage-deflate";
    const char *p = header, *end = header + len;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *offer_end = comma ? comma : end;
        const char *semi = memchr(p, ';', (size_t)(offer_end - p));
        const char *n0 = p, *n1 = semi ? semi : offer_end;
        trim(&n0, &n1);
        if ((size_t)(n1 - n0) == sizeof(name) - 1 && !memcmp(n0, name, sizeof(name) - 1) &&
            index-- == 0)
            return accept_params(semi ? semi + 1 : offer_end, offer_end, out);
        p = comma ? comma + 1 : end;
    }
    return 0;
}

int pmd_reply_params(const struct pmd_agreement *a, char *buf, size_t cap)
{
    /* No context takeover is what the server does anyway; saying so lets clients free their
     * inflater after each message as well (RFC 7692 7.1.1.1 allows it unasked). */
    static const char base[] = "; server_no_context_takeover; client_no_context_takeover";
    size_t n = sizeof(base) - 1;
    if (cap < n + sizeof("; server_max_window_bits=15"))
        return -1;
    memcpy(buf, base, n + 1);
    if (a->window_requested) {
        memcpy(buf + n, "; server_max_window_bits=", 25);
        n += 25;
        if (a->window_bits >= 10)
            buf[n++] = '1';
        buf[n++] = (char)('0' + a->window_bits % 10);
        buf[n] = '\0';
    }
    return (int)n;
}

/* ---- the shared compressor ------------------------------------------------------------- */

static z_stream *deflater(struct pmd_compressor *c, int window_bits)
{
    z_stream **slot = (z_stream **)&c->deflaters[window_bits - PMD_MIN_WINDOW_BITS];
    if (*slot)
        return deflateReset(*slot) == Z_OK ? *slot : NULL;
    z_stream *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    /* Negative window bits: a raw stream, no zlib header or checksum (RFC 7692 7.2.1). */
    if (deflateInit2(z, DEFLATE_LEVEL, Z_DEFLATED, -window_bits, DEFLATE_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    atomic_fetch_add(&live_streams, 1);
    *slot = z;
    return z;
}

struct msgbuf *pmd_compress(struct pmd_compressor *c, int window_bits, struct msgbuf *m)
{
    z_stream *z = deflater(c, window_bits);
    if (!z)
        return NULL;
    size_t cap = deflateBound(z, m->jb.len) + 16; /* + the sync flush's empty block */
    struct msgbuf *out = msgbuf_new(cap);
    if (!out)
        return NULL;

    z->next_in = (unsigned char *)jb_text(&m->jb);
    z->avail_in = (uInt)m->jb.len;
    z->next_out = (unsigned char *)jb_text(&out->jb);
    z->avail_out = (uInt)cap;
    int rc = deflate(z, Z_SYNC_FLUSH);
    size_t produced = cap - z->avail_out;
    const char *tail = jb_text(&out->jb) + produced - sizeof(sync_tail);
    /* Anything short of a complete flush (which deflateBound's room rules out), or output no
     * smaller than the text: send the text uncompressed, never a doubtful frame. */
    if (rc != Z_OK || z->avail_in || z->avail_out == 0 || produced < sizeof(sync_tail) ||
        memcmp(tail, sync_tail, sizeof(sync_tail)) || produced - sizeof(sync_tail) >= m->jb.len) {
        msgbuf_unref(out);
        msgbuf_ref(m);
        return m;
    }
    out->jb.len = produced - sizeof(sync_tail);
    msgbuf_frame(out, 1);
    return out;
}

void pmd_compressor_release(struct pmd_compressor *c)
{
    for (int i = 0; i < PMD_WINDOWS; i++) {
        z_stream *z = c->deflaters[i];
        if (!z)
            continue;
        deflateEnd(z);
        free(z);
        atomic_fetch_sub(&live_streams, 1);
        c->deflaters[i] = NULL;
    }
}

/* ---- the per-message inflater ---------------------------------------------------------- */

struct pmd_inflater {
    z_stream z;
    int ended;      /* the sender closed the deflate stream (a final block): no more input */
};

void pmd_inflater_free(struct pmd_inflater **inf)
{
    if (!*inf)
        return;
    inflateEnd(&(*inf)->z);
    free(*inf);
    *inf = NULL;
    atomic_fetch_sub(&live_streams, 1);
}

static struct pmd_inflater *inflater_new(void)
{
    struct pmd_inflater *inf = calloc(1, sizeof(*inf));
    if (!inf)
        return NULL;
    /* 15 bits inflates whatever window the client compressed with. */
    if (inflateInit2(&inf->z, -PMD_MAX_WINDOW_BITS) != Z_OK) {
        free(inf);
        return NULL;
    }
    atomic_fetch_add(&live_streams, 1);
    return inf;
}

/* Inflate [in, in+len) into rx, stopping at max. */
static enum pmd_rx_status inflate_into(struct pmd_inflater *inf, struct rx_buffer *rx,
                                       const unsigned char *in, size_t len, size_t max)
{
    unsigned char out[INFLATE_CHUNK];
    z_stream *z = &inf->z;

    if (inf->ended)
        return len ? PMD_RX_BAD_DATA : PMD_RX_OK;
    z->next_in = (unsigned char *)in;
    z->avail_in = (uInt)len;
    do {
        z->next_out = out;
        z->avail_out = sizeof(out);
        int rc = inflate(z, Z_SYNC_FLUSH);
        switch (rc) {
        case Z_OK:
        case Z_BUF_ERROR: /* no progress possible: input used up */
            break;
        case Z_STREAM_END:
            inf->ended = 1;
            break;
        case Z_MEM_ERROR:
            return PMD_RX_NOMEM;
        default: /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
            return PMD_RX_BAD_DATA;
        }
        size_t produced = sizeof(out) - z->avail_out;
        switch (rx_append(rx, out, produced, 0, rx->binary, max)) {
        case RX_OK:
            break;
        case RX_TOO_LARGE:
            return PMD_RX_TOO_LARGE;
        case RX_NOMEM:
            return PMD_RX_NOMEM;
        }
        if (inf->ended)
            return z->avail_in ? PMD_RX_BAD_DATA : PMD_RX_OK;
        if (rc == Z_BUF_ERROR || (z->avail_in == 0 && z->avail_out != 0))
            return PMD_RX_OK;
    } while (1);
}

enum pmd_rx_status pmd_receive(struct pmd_inflater **inf, struct rx_buffer *rx, const void *chunk,
                               size_t len, int first, int compressed, int binary, int final,
                               size_t max)
{
    enum pmd_rx_status st;

    if (first) {
        pmd_inflater_free(inf); /* (a message cut short by a new one cannot happen in lws) */
        if (compressed && !(*inf = inflater_new()))
            return PMD_RX_NOMEM;
    }
    if (!*inf) {
        switch (rx_append(rx, chunk, len, first, binary, max)) {
        case RX_OK:
            return PMD_RX_OK;
        case RX_TOO_LARGE:
            return PMD_RX_TOO_LARGE;
        default:
            return PMD_RX_NOMEM;
        }
    }
    if (first)
        (void)rx_append(rx, NULL, 0, 1, binary, max); /* start the message; cannot fail */
    st = inflate_into(*inf, rx, chunk, len, max);
    /* The sender dropped the sync flush's tail (RFC 7692 7.2.2); a stream closed by a final
     * block needs none. */
    if (st == PMD_RX_OK && final && !(*inf)->ended)
        st = inflate_into(*inf, rx, sync_tail, sizeof(sync_tail), max);
    if (st != PMD_RX_OK || final)
        pmd_inflater_free(inf);
    return st;
}
