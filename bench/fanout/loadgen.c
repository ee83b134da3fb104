/* loadgen.c - epoll WebSocket client load generator for the fan-out benchmark.
 *
 * Opens N connections to one server (loopback only), spreading their source addresses over
 * 127.0.0.x so N can exceed one address's ephemeral ports, completes a hand-written RFC 6455
 * handshake on each, sends {"type":"subscribe","skill_name":null}, then timestamps the last
 * byte of every metrics_update and reads its "seq" with a streaming scan (no buffering of
 * messages, no allocation per message).
 *
 * Phases: setup (connect + handshake, at most --inflight at once), warm-up (until every
 * connection has had an update), then a measurement window of --duration seconds that starts
 * half an interval after a tick's first arrival, so the window's edges fall between ticks.
 * With --marks, "MARK start" / "MARK end" lines on stdout let a harness sample the server's
 * /proc counters at the window's edges.
 *
 * --coordinated (used by run_fanout.py, which runs several of these as shards): after the
 * warm-up, print "READY {json}" and wait for "GO <start_ns> <end_ns>" (CLOCK_MONOTONIC, which
 * is system-wide) on stdin, so every shard measures the same window; the result then lists
 * each tick's first/last arrival and count so the harness can merge shards by seq.
 *
 * --deflate offers permessage-deflate (client_no_context_takeover, client_max_window_bits, and
 * server_no_context_takeover unless --deflate-takeover) and inflates every compressed message
 * (zlib) before the same scan.  When the server agreed to server_no_context_takeover, every
 * message stands alone and one inflater per process serves all connections, reset per message
 * (a message split across reads is gathered in its connection first); otherwise each
 * connection keeps its own inflater, fed as bytes arrive.  Inflating costs this process CPU,
 * and the arrival times of a wake-up's later reads wait for it: under
 * server_no_context_takeover inflating stops once `seq` was read, except on one connection in
 * VERIFY_EVERY (all with --verify-all), which inflates every message to its end, so bad
 * compressed data still shows.  "bytes" counts bytes on the wire
 * (frames as received), "inflated_bytes" what was inflated.
 *
 * --graphql speaks graphql-transport-ws (the graphql-ws library's protocol) in place of the plain
 * protocol: the handshake asks for that subprotocol, the client sends connection_init, waits for
 * connection_ack, then subscribes once (a random UUID as the operation id, as graphql-ws does)
 * to Subscription.metricsUpdate with every field of a metrics_update selected, and reads "seq"
 * from each `next` message with the same streaming scan (the message's type is read from
 * `"type":"`; `error` and `complete` messages are counted, not taken for updates).
 *
 * --timeline FILE writes one line per update received inside the window, "seq conn t_ns"
 * (connections in the order they were opened), for per-tick arrival timelines.
 *
 * An arrival's time is when this process read the data (one clock read per epoll wake-up), or
 * with --kernel-ts when the kernel received it (SO_TIMESTAMPNS; on loopback, when the server
 * wrote it), which leaves out the time the load generator waited for a CPU before reading.
 *
 * The last stdout line is one JSON object.  Messages lost = gaps in a connection's seq
 * sequence; dropped = connections the server closed after the handshake; failed = never
 * established.  Pings are answered with pongs.
 *
 * Build: gcc -O2 -Wall -Wextra -o loadgen loadgen.c -lcrypto -lz
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define HS_CAP 2048            /* handshake response buffer, freed once open */
#define TICK_RING 16384        /* per-seq arrival stats, indexed by seq % TICK_RING */
#define READ_BUF (256 * 1024)  /* one shared read buffer: messages are scanned, not kept */
#define INFLATE_OUT (64 * 1024) /* inflated bytes are scanned from here, then overwritten */
#define MAX_ZMSG (16 * 1024 * 1024) /* a compressed message larger than this is an error */
#define VERIFY_EVERY 32        /* connections that inflate whole messages (see above) */

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };
enum gphase { G_NONE, G_INIT_SENT, G_SUBSCRIBED };

struct conn {
    int fd;
    uint8_t state;
    /* frame parser */
    uint8_t hdr[14];
    uint8_t hdr_len, hdr_need;
    uint8_t in_payload;
    uint8_t opcode;            /* of the current frame */
    uint8_t fin;
    uint8_t msg_is_data;       /* a data message (text/binary) is in progress */
    uint8_t scan;              /* 0: seek P_TYPE/P_GQL_TYPE, 1: seek `"seq":`, 2: digits, 3: done */
    uint8_t kind_next;         /* --graphql: the next byte is the first of the message's type */
    uint8_t kind;              /* --graphql: that byte ('n' next, 'c' connection_ack/complete...) */
    uint8_t gql_phase;         /* --graphql: G_INIT_SENT until connection_ack, then G_SUBSCRIBED */
    uint8_t match;
    uint8_t got_seq;
    uint8_t ctl_len;
    uint8_t got_update;
    uint8_t pmd;               /* permessage-deflate was agreed */
    uint8_t pmd_nct;           /* ... with server_no_context_takeover: messages stand alone */
    uint8_t msg_compressed;    /* the data message in progress has RSV1 set */
    uint8_t verify;            /* inflate whole messages, not only up to seq */
    uint64_t payload_left;
    uint64_t seq_acc;
    uint64_t last_seq;
    int64_t last_arrival;
    int64_t max_gap;           /* largest gap ending inside the measurement window */
    uint32_t window_msgs;
    char *hs;                  /* handshake response so far (C_HANDSHAKE only) */
    z_stream *zs;              /* own inflater (pmd without server_no_context_takeover) */
    uint8_t *zbuf;             /* a compressed message gathered across reads (pmd_nct) */
    size_t zbuf_len, zbuf_cap;
    uint16_t hs_len;
    char key[25];              /* Sec-WebSocket-Key sent */
    uint8_t ctl[125];          /* control frame payload (ping -> pong) */
};

struct tick {
    uint64_t seq;
    int64_t first, last;
    uint32_t count;
};

static struct {
    const char *host;
    int port;
    int n;
    double duration;
    double interval;
    int sources;
    int source_base;
    int inflight;
    double setup_timeout;
    double warmup_timeout;
    double grace;
    int marks;
    int coordinated;
    const char *label;
    int deflate;               /* 0 plain, 1 deflate (server_no_context_takeover), 2 takeover */
    const char *timeline;
    int verify_all;
    int graphql;
    int kernel_ts;             /* arrival = the kernel's receive time of the data (SO_TIMESTAMPNS) */
} opt = {"127.0.0.1", 0, 100, 10.0, 1.0, 0, 1, 100, 180.0, 30.0, 2.0, 0, 0, "", 0, NULL, 0, 0, 0};

/* CLOCK_REALTIME minus CLOCK_MONOTONIC, taken once: kernel receive timestamps are realtime. */
static int64_t realtime_offset_ns;

static struct conn *conns;
static struct tick ticks[TICK_RING];
static int epfd;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* counters */
static int n_open, n_failed, n_dropped, n_inflight, next_to_open;
static int64_t t_setup_start, t_last_established;
static int64_t t_win_start = INT64_MAX, t_win_end = INT64_MAX;
static uint64_t msgs_total, msgs_window, bytes_window, lost_window, lost_total, dup_total;
static uint64_t proto_errors, pings_answered, pongs_failed;
static uint64_t inflated_window, inflate_errors, compressed_msgs, n_pmd, n_pmd_nct;
static uint64_t gql_acked, gql_errors, gql_completes;
static z_stream shared_zs;     /* for connections whose messages stand alone */
static uint8_t zout[INFLATE_OUT];
struct arrival {
    uint32_t conn;
    uint32_t seq;
    int64_t t;
};
static struct arrival *timeline;
static size_t timeline_len, timeline_cap;
static uint64_t max_seq_seen;
static char fail_reason[160];
static int go_received;        /* --coordinated: the harness sent the window */
static char stdin_line[128];
static size_t stdin_len;
#define STDIN_TAG UINT32_MAX

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void note_failure(const char *what, int err)
{
    if (fail_reason[0])
        return;
    snprintf(fail_reason, sizeof(fail_reason), "%s: %s", what, err ? strerror(err) : "-");
    for (char *q = fail_reason; *q; q++) /* it is printed inside a JSON string */
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
            *q = '\'';
}

static void conn_kill(struct conn *c, int was_open)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->hs);
    c->hs = NULL;
    if (c->zs) {
        inflateEnd(c->zs);
        free(c->zs);
        c->zs = NULL;
    }
    free(c->zbuf);
    c->zbuf = NULL;
    c->zbuf_len = c->zbuf_cap = 0;
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
        n_inflight--;
        n_failed++;
    } else if (was_open) {
        n_open--;
        n_dropped++;
    }
    c->state = C_DEAD;
}

#define FRAME_MAX 1024 /* the longest client message: the GraphQL subscribe */

/* Write a small masked client frame in one go; returns 0, or -1 if the kernel did not take it. */
static int send_frame(struct conn *c, int opcode, const uint8_t *payload, size_t len)
{
    uint8_t buf[4 + 4 + FRAME_MAX];
    uint32_t mask = (uint32_t)rnd();
    size_t h = 2;
    if (len > FRAME_MAX)
        return -1;
    buf[0] = (uint8_t)(0x80 | opcode);
    if (len <= 125) {
        buf[1] = (uint8_t)(0x80 | len);
    } else { /* RFC 6455 5.2: 126, then a 16-bit length */
        buf[1] = 0x80 | 126;
        buf[2] = (uint8_t)(len >> 8);
        buf[3] = (uint8_t)len;
        h = 4;
    }
    memcpy(buf + h, &mask, 4);
    for (size_t i = 0; i < len; i++)
        buf[h + 4 + i] = payload[i] ^ buf[h + (i & 3)];
    ssize_t w = write(c->fd, buf, h + 4 + len);
    return w == (ssize_t)(h + 4 + len) ? 0 : -1;
}

/* --timeline: one arrival, kept in memory until the run ends. */
static void timeline_add(uint32_t conn, uint64_t seq, int64_t t)
{
    if (timeline_len == timeline_cap) {
        size_t cap = timeline_cap ? timeline_cap * 2 : 65536;
        struct arrival *a = realloc(timeline, cap * sizeof(*a));
        if (!a)
            return; /* the timeline is a diagnostic: a short one is still one */
        timeline = a;
        timeline_cap = cap;
    }
    timeline[timeline_len++] = (struct arrival){conn, (uint32_t)seq, t};
}

static void record_update(struct conn *c, uint64_t seq, int64_t t)
{
    msgs_total++;
    if (!c->got_update) {
        c->got_update = 1;
    } else if (seq > c->last_seq + 1) {
        lost_total += seq - c->last_seq - 1;
        if (t >= t_win_start)
            lost_window += seq - c->last_seq - 1;
    } else if (seq <= c->last_seq) {
        dup_total++;
    }
    if (t >= t_win_start && c->last_arrival && t - c->last_arrival > c->max_gap)
        c->max_gap = t - c->last_arrival;
    c->last_seq = seq;
    c->last_arrival = t;
    if (seq > max_seq_seen)
        max_seq_seen = seq;
    if (t >= t_win_start && t < t_win_end) {
        msgs_window++;
        c->window_msgs++;
        if (opt.timeline)
            timeline_add((uint32_t)(c - conns), seq, t);
    }
    struct tick *k = &ticks[seq % TICK_RING];
    if (k->seq != seq) {
        k->seq = seq;
        k->first = k->last = t;
        k->count = 0;
    }
    if (t < k->first)
        k->first = t;
    if (t > k->last)
        k->last = t;
    k->count++;
}

static const char P_TYPE[] = "metrics_update\"";
static const char P_GQL_TYPE[] = "\"type\":\"";
static const char P_SEQ[] = "\"seq\":";

/* Streaming scan of a data message: `metrics_update"` (with --graphql `"type":"` and the type's
 * first byte, which must be the n of next), then `"seq":`, then its digits.  In both protocols
 * the type comes before the payload, and seq is the payload's first field. */
static void scan_payload(struct conn *c, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && c->scan < 3; i++) {
        uint8_t b = p[i];
        if (c->kind_next) {
            c->kind_next = 0;
            c->kind = b;
            if (b != 'n')
                c->scan = 3;
        } else if (c->scan == 0 || c->scan == 1) {
            const char *pat = c->scan == 1 ? P_SEQ : opt.graphql ? P_GQL_TYPE : P_TYPE;
            size_t plen = c->scan == 1   ? sizeof(P_SEQ) - 1
                          : opt.graphql ? sizeof(P_GQL_TYPE) - 1
                                        : sizeof(P_TYPE) - 1;
            if (b == (uint8_t)pat[c->match]) {
                if (++c->match == plen) {
                    c->kind_next = opt.graphql && c->scan == 0;
                    c->scan++;
                    c->match = 0;
                    c->seq_acc = 0;
                }
            } else {
                c->match = b == (uint8_t)pat[0] ? 1 : 0;
            }
        } else if (b >= '0' && b <= '9') {
            c->seq_acc = c->seq_acc * 10 + (b - '0');
            c->got_seq = 1;
        } else if (b != ' ' || c->got_seq) {
            c->scan = 3;
        }
    }
}

/* Inflate len bytes of a compressed message through zs and scan what comes out.  Returns 0, or
 * -1 on bad compressed data. */
static int inflate_scan(struct conn *c, z_stream *zs, const uint8_t *in, size_t len, int64_t t)
{
    zs->next_in = (Bytef *)in;
    zs->avail_in = (uInt)len;
    for (;;) {
        /* in small steps while only seq is wanted: it comes early in a metrics_update */
        uInt room = c->pmd_nct && !c->verify && c->scan < 3 ? 256 : sizeof(zout);
        zs->next_out = zout;
        zs->avail_out = room;
        int r = inflate(zs, Z_SYNC_FLUSH);
        size_t produced = room - zs->avail_out;
        if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) {
            inflate_errors++;
            note_failure(zs->msg ? zs->msg : "inflate failed", 0);
            return -1;
        }
        if (t >= t_win_start && t < t_win_end)
            inflated_window += produced;
        if (c->scan < 3)
            scan_payload(c, zout, produced);
        if (r == Z_STREAM_END) { /* a final deflate block: nothing may follow in this message */
            inflateReset(zs);
            return 0;
        }
        if (c->scan == 3 && c->pmd_nct && !c->verify)
            return 0; /* seq is read; the shared inflater starts over with the next message */
        if (zs->avail_out || (!zs->avail_in && !produced))
            return 0;
    }
}

/* RFC 7692 7.2.2: the sender removed this empty block's tail from the end of every message. */
static const uint8_t DEFLATE_TAIL[4] = {0x00, 0x00, 0xff, 0xff};

/* One whole compressed message through the shared inflater, which starts fresh each time. */
static int inflate_message(struct conn *c, const uint8_t *in, size_t len, int64_t t)
{
    inflateReset(&shared_zs);
    if (inflate_scan(c, &shared_zs, in, len, t) < 0)
        return -1;
    if (shared_zs.avail_in) /* stopped at seq */
        return 0;
    return inflate_scan(c, &shared_zs, DEFLATE_TAIL, sizeof(DEFLATE_TAIL), t);
}

/* Keep a piece of a compressed message that did not arrive in one read (pmd_nct only). */
static int gather(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->zbuf_len + n > c->zbuf_cap) {
        size_t cap = c->zbuf_cap ? c->zbuf_cap : 4096;
        while (cap < c->zbuf_len + n)
            cap *= 2;
        uint8_t *b = cap <= MAX_ZMSG ? realloc(c->zbuf, cap) : NULL;
        if (!b) {
            note_failure("compressed message too large", 0);
            return -1;
        }
        c->zbuf = b;
        c->zbuf_cap = cap;
    }
    memcpy(c->zbuf + c->zbuf_len, p, n);
    c->zbuf_len += n;
    return 0;
}

/* take payload bytes of a compressed message's frame; last: they end the message. */
static int compressed_payload(struct conn *c, const uint8_t *p, size_t take, int last, int64_t t)
{
    if (!c->pmd_nct) { /* context takeover: the connection's own inflater, fed as bytes come */
        if (inflate_scan(c, c->zs, p, take, t) < 0)
            return -1;
        return last ? inflate_scan(c, c->zs, DEFLATE_TAIL, sizeof(DEFLATE_TAIL), t) : 0;
    }
    if (last && !c->zbuf_len) /* the usual case: the whole message is in this read */
        return inflate_message(c, p, take, t);
    if (gather(c, p, take) < 0)
        return -1;
    if (!last)
        return 0;
    int r = inflate_message(c, c->zbuf, c->zbuf_len, t);
    free(c->zbuf); /* rare: memory stays small at tens of thousands of connections */
    c->zbuf = NULL;
    c->zbuf_len = c->zbuf_cap = 0;
    return r;
}

/* Every field of the plain protocol's metrics_update, in GraphQL form (the contract's schema). */
static const char GQL_QUERY[] =
    "subscription{metricsUpdate{seq epoch timestamp stale"
    " topSkills{skillName lastInvocationAt invocationCount completedCount avgDuration"
    " totalInvocations completedInvocations completionRate avgDurationSeconds invocationCount1h"
    " invocationCount24h isAnomalous}"
    " anomalies{skillName anomalyType baselineValue observedValue deviationScore detectedAt}}}";

/* --graphql, after connection_ack: one subscribe whose id is a random (version 4) UUID, the id
 * graphql-ws clients use, so the server sees distinct ids as it would from real dashboards. */
static int gql_subscribe(struct conn *c)
{
    char msg[FRAME_MAX];
    uint64_t a = rnd(), b = rnd();
    int len = snprintf(msg, sizeof(msg),
                       "{\"id\":\"%08x-%04x-4%03x-%04x-%012llx\",\"type\":\"subscribe\","
                       "\"payload\":{\"query\":\"%s\"}}",
                       (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
                       0x8000 | ((unsigned)(b >> 48) & 0x3fff),
                       (unsigned long long)(b & 0xffffffffffffull), GQL_QUERY);
    if (len < 0 || (size_t)len >= sizeof(msg))
        return -1;
    return send_frame(c, 0x1, (const uint8_t *)msg, (size_t)len);
}

/* --graphql: a whole text message has arrived.  Returns -1 to drop the connection. */
static int gql_message_done(struct conn *c, int64_t t)
{
    if (c->gql_phase == G_INIT_SENT) {
        if (c->kind != 'c') /* anything else before connection_ack breaks the protocol */
            return 0;
        gql_acked++;
        c->gql_phase = G_SUBSCRIBED;
        if (gql_subscribe(c) < 0) {
            note_failure("subscribe write", errno);
            return -1;
        }
        return 0;
    }
    if (c->kind == 'n' && c->scan >= 2 && c->got_seq) {
        record_update(c, c->seq_acc, t);
    } else if (c->kind == 'e') {
        gql_errors++;
        note_failure("graphql error message for the subscription", 0);
    } else if (c->kind == 'c') {
        gql_completes++;
        note_failure("graphql complete for the subscription", 0);
    }
    return 0;
}

/* A whole frame has arrived (header and payload).  Returns -1 to drop the connection. */
static int frame_done(struct conn *c, int64_t t)
{
    switch (c->opcode) {
    case 0x9: /* ping: answer with the same payload */
        if (send_frame(c, 0xA, c->ctl, c->ctl_len) < 0)
            pongs_failed++;
        else
            pings_answered++;
        return 0;
    case 0xA:
        return 0;
    case 0x8: /* server closed us: echo and count as a drop */
        send_frame(c, 0x8, c->ctl, c->ctl_len >= 2 ? 2 : 0);
        if (c->ctl_len >= 2) {
            char what[64];
            snprintf(what, sizeof(what), "server close %d", (c->ctl[0] << 8) | c->ctl[1]);
            note_failure(what, 0);
        } else {
            note_failure("server close", 0);
        }
        return -1;
    default:
        if (c->fin && c->msg_is_data) {
            c->msg_is_data = 0;
            if (c->gql_phase != G_NONE)
                return gql_message_done(c, t);
            if (c->scan >= 2 && c->got_seq)
                record_update(c, c->seq_acc, t);
        }
        return 0;
    }
}

/* Feed received bytes through the frame parser.  Returns -1 to drop the connection. */
static int feed(struct conn *c, const uint8_t *p, size_t n, int64_t t)
{
    while (n) {
        if (!c->in_payload) {
            c->hdr[c->hdr_len++] = *p++;
            n--;
            if (c->hdr_len == 2) {
                uint8_t len7 = c->hdr[1] & 0x7f;
                if (c->hdr[1] & 0x80) { /* servers never mask (RFC 6455 5.1) */
                    proto_errors++;
                    return -1;
                }
                c->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
            }
            if (c->hdr_len < 2 || c->hdr_len < c->hdr_need)
                continue;
            uint8_t len7 = c->hdr[1] & 0x7f;
            uint64_t len = len7;
            if (len7 == 126)
                len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            else if (len7 == 127)
                for (int i = 0; i < 8; i++)
                    len = (i ? len << 8 : 0) | c->hdr[2 + i];
            c->fin = c->hdr[0] >> 7;
            c->opcode = c->hdr[0] & 0x0f;
            uint8_t rsv = c->hdr[0] & 0x70;
            /* RSV1 = compressed: only with permessage-deflate, on a message's first frame */
            if (rsv && (rsv != 0x40 || !c->pmd || (c->opcode != 0x1 && c->opcode != 0x2))) {
                proto_errors++;
                note_failure("unexpected RSV bits", 0);
                return -1;
            }
            c->hdr_len = 0;
            c->payload_left = len;
            if (c->opcode >= 0x8) {
                if (len > 125 || !c->fin) {
                    proto_errors++;
                    return -1;
                }
                c->ctl_len = 0;
            } else if (c->opcode == 0x1 || c->opcode == 0x2) {
                c->msg_is_data = 1;
                c->msg_compressed = rsv != 0;
                compressed_msgs += rsv != 0;
                c->scan = 0;
                c->match = 0;
                c->got_seq = 0;
                c->kind_next = 0;
                c->kind = 0;
            } else if (c->opcode != 0x0 || !c->msg_is_data) {
                proto_errors++;
                return -1;
            }
            if (len == 0) {
                if (c->opcode < 0x8 && c->msg_compressed && c->fin &&
                    compressed_payload(c, p, 0, 1, t) < 0)
                    return -1;
                if (frame_done(c, t) < 0)
                    return -1;
            } else {
                c->in_payload = 1;
            }
            continue;
        }
        size_t take = n < c->payload_left ? n : (size_t)c->payload_left;
        if (c->opcode >= 0x8) {
            memcpy(c->ctl + c->ctl_len, p, take);
            c->ctl_len += (uint8_t)take;
        } else if (c->msg_compressed) {
            if (compressed_payload(c, p, take, c->fin && take == c->payload_left, t) < 0)
                return -1;
        } else if (c->scan < 3) {
            scan_payload(c, p, take);
        }
        p += take;
        n -= take;
        c->payload_left -= take;
        if (!c->payload_left) {
            c->in_payload = 0;
            if (frame_done(c, t) < 0)
                return -1;
        }
    }
    return 0;
}

static void make_key(struct conn *c)
{
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rnd();
        memcpy(raw + i, &r, 8);
    }
    EVP_EncodeBlock((unsigned char *)c->key, raw, 16);
}

static int accept_matches(const struct conn *c, const char *value, size_t vlen)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[24 + sizeof(guid)];
    unsigned char digest[SHA_DIGEST_LENGTH];
    char expect[32];
    memcpy(cat, c->key, 24);
    memcpy(cat + 24, guid, sizeof(guid) - 1);
    SHA1((unsigned char *)cat, 24 + sizeof(guid) - 1, digest);
    EVP_EncodeBlock((unsigned char *)expect, digest, SHA_DIGEST_LENGTH);
    return vlen == 28 && !memcmp(expect, value, 28);
}

static void start_connect(int i)
{
    struct conn *c = &conns[i];
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note_failure("socket", errno);
        n_failed++;
        c->state = C_DEAD;
        return;
    }
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (opt.kernel_ts)
        setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    src.sin_addr.s_addr = htonl(0x7f000000u + (uint32_t)(opt.source_base + i % opt.sources));
    inet_pton(AF_INET, opt.host, &dst.sin_addr);
    dst.sin_port = htons((uint16_t)opt.port);
    c->state = C_CONNECTING;
    n_inflight++;
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        note_failure("bind", errno);
        conn_kill(c, 0);
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
        note_failure("connect", errno);
        conn_kill(c, 0);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        note_failure("epoll_ctl", errno);
        conn_kill(c, 0);
    }
}

static const char GQL_SUBPROTOCOL[] = "graphql-transport-ws";

/* The extra handshake header: none, or permessage-deflate with the receive
 * side's wishes (it never sends compressed messages itself); with --graphql the subprotocol. */
static const char *handshake_extra(void)
{
    if (opt.graphql)
        return "Sec-WebSocket-Protocol: graphql-transport-ws\r\n";
    switch (opt.deflate) {
    case 1:
        return "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
               "server_no_context_takeover; client_max_window_bits\r\n";
    case 2:
        return "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
               "client_max_window_bits\r\n";
    default:
        return "";
    }
}

static void on_connected(int i)
{
    struct conn *c = &conns[i];
    int err = 0;
    socklen_t elen = sizeof(err);
    char req[640];

    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err) {
        note_failure("connect", err);
        conn_kill(c, 0);
        return;
    }
    make_key(c);
    int len = snprintf(req, sizeof(req),
                       "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n%s\r\n",
                       opt.host, opt.port, c->key, handshake_extra());
    if (write(c->fd, req, (size_t)len) != len) {
        note_failure("handshake write", errno);
        conn_kill(c, 0);
        return;
    }
    c->hs = malloc(HS_CAP);
    if (!c->hs) {
        note_failure("malloc", ENOMEM);
        conn_kill(c, 0);
        return;
    }
    c->hs_len = 0;
    c->state = C_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Case-insensitive search for a header line; returns its value (trimmed) or NULL. */
static const char *find_header(const char *h, size_t hlen, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *end = h + hlen;
    for (const char *line = h; line < end;) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' && !strncasecmp(line, name, nlen)) {
            const char *v = line + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol + 2;
    }
    return NULL;
}

/* What the server's response agreed to.  Returns 0, or -1 when it agreed to what was not offered
 * or the inflater cannot be set up. */
static int accept_extensions(struct conn *c, const char *hs, size_t hlen)
{
    size_t vlen = 0;
    const char *ext = find_header(hs, hlen, "Sec-WebSocket-Extensions", &vlen);
    if (!ext || !vlen)
        return 0;
    if (!opt.deflate || !memmem(ext, vlen, "permessage-deflate", 18)) {
        note_failure("server agreed to an extension that was not offered", 0);
        return -1;
    }
    c->pmd = 1;
    c->verify = opt.verify_all || (c - conns) % VERIFY_EVERY == 0;
    n_pmd++;
    c->pmd_nct = memmem(ext, vlen, "server_no_context_takeover", 26) != NULL;
    n_pmd_nct += c->pmd_nct;
    if (c->pmd_nct)
        return 0;
    c->zs = calloc(1, sizeof(*c->zs));
    if (!c->zs || inflateInit2(c->zs, -15) != Z_OK) { /* -15: raw, any window up to 32 KiB */
        free(c->zs);
        c->zs = NULL;
        note_failure("inflateInit2", ENOMEM);
        return -1;
    }
    return 0;
}

static void on_handshake_data(int i, int64_t t)
{
    struct conn *c = &conns[i];
    ssize_t r = read(c->fd, c->hs + c->hs_len, HS_CAP - 1 - c->hs_len);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN)
            return;
        note_failure("handshake read", r == 0 ? ECONNRESET : errno);
        conn_kill(c, 0);
        return;
    }
    c->hs_len += (uint16_t)r;
    c->hs[c->hs_len] = '\0';
    char *end = memmem(c->hs, c->hs_len, "\r\n\r\n", 4);
    if (!end) {
        if (c->hs_len >= HS_CAP - 1) {
            note_failure("handshake too long", 0);
            conn_kill(c, 0);
        }
        return;
    }
    size_t hlen = (size_t)(end - c->hs) + 2; /* keep the last header's CRLF */
    size_t vlen = 0;
    const char *accept = find_header(c->hs, hlen, "Sec-WebSocket-Accept", &vlen);
    if (strncmp(c->hs, "HTTP/1.1 101", 12) || !accept || !accept_matches(c, accept, vlen)) {
        char what[80];
        snprintf(what, sizeof(what), "bad handshake: %.40s", c->hs);
        for (char *q = what; *q; q++)
            if (*q == '\r' || *q == '\n')
                *q = ' ';
        note_failure(what, 0);
        conn_kill(c, 0);
        return;
    }
    if (accept_extensions(c, c->hs, hlen) < 0) {
        conn_kill(c, 0);
        return;
    }
    const char *proto = find_header(c->hs, hlen, "Sec-WebSocket-Protocol", &vlen);
    if (opt.graphql && (!proto || vlen != sizeof(GQL_SUBPROTOCOL) - 1 ||
                        memcmp(proto, GQL_SUBPROTOCOL, vlen))) {
        note_failure("the server did not agree to graphql-transport-ws", 0);
        conn_kill(c, 0);
        return;
    }
    size_t rest = c->hs_len - (hlen + 2);
    char *hs = c->hs;
    c->hs = NULL;
    c->state = C_OPEN;
    n_inflight--;
    n_open++;
    t_last_established = t;
    static const char sub[] = "{\"type\":\"subscribe\",\"skill_name\":null}";
    static const char init[] = "{\"type\":\"connection_init\"}";
    const char *first = opt.graphql ? init : sub; /* graphql: subscribe once acked */
    size_t first_len = opt.graphql ? sizeof(init) - 1 : sizeof(sub) - 1;
    c->gql_phase = opt.graphql ? G_INIT_SENT : G_NONE;
    if (send_frame(c, 0x1, (const uint8_t *)first, first_len) < 0) {
        note_failure("subscribe write", errno);
        free(hs);
        conn_kill(c, 1);
        return;
    }
    if (rest && feed(c, (const uint8_t *)hs + hlen + 2, rest, t) < 0)
        conn_kill(c, 1);
    free(hs);
}

static uint8_t rbuf[READ_BUF];

/* read(), or with --kernel-ts recvmsg(), whose SCM_TIMESTAMPNS replaces *t with the time the
 * kernel received the data (on loopback: when the server wrote it), so that an arrival does not
 * include the time this process waited for a CPU before reading. */
static ssize_t read_data(int fd, int64_t *t)
{
    if (!opt.kernel_ts)
        return read(fd, rbuf, sizeof(rbuf));
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {rbuf, sizeof(rbuf)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    ssize_t r = recvmsg(fd, &msg, 0);
    for (struct cmsghdr *cm = r > 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            *t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - realtime_offset_ns;
        }
    }
    return r;
}

static void on_readable(int i, int64_t t)
{
    struct conn *c = &conns[i];
    ssize_t r = read_data(c->fd, &t);
    if (r > 0) {
        if (t >= t_win_start && t < t_win_end)
            bytes_window += (uint64_t)r;
        if (feed(c, rbuf, (size_t)r, t) < 0)
            conn_kill(c, 1);
        return;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    note_failure(r == 0 ? "server closed the TCP connection" : "read", r == 0 ? 0 : errno);
    conn_kill(c, 1);
}

/* --coordinated: "GO <start_ns> <end_ns>" (CLOCK_MONOTONIC) sets the measurement window. */
static void read_stdin(void)
{
    ssize_t r = read(0, stdin_line + stdin_len, sizeof(stdin_line) - 1 - stdin_len);
    if (r <= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
        return;
    }
    stdin_len += (size_t)r;
    stdin_line[stdin_len] = '\0';
    char *nl = strchr(stdin_line, '\n');
    if (!nl) {
        if (stdin_len >= sizeof(stdin_line) - 1)
            stdin_len = 0;
        return;
    }
    long long a, b;
    if (sscanf(stdin_line, "GO %lld %lld", &a, &b) == 2 && b > a) {
        t_win_start = a;
        t_win_end = b;
        go_received = 1;
    }
    stdin_len = 0;
}

static void poll_once(int timeout_ms)
{
    static struct epoll_event evs[1024];
    int k = epoll_wait(epfd, evs, 1024, timeout_ms);
    if (k <= 0)
        return;
    int64_t t = now_ns(); /* one clock read per wake-up, shared by the reads that follow */
    for (int j = 0; j < k; j++) {
        if (evs[j].data.u32 == STDIN_TAG) {
            read_stdin();
            continue;
        }
        int i = (int)evs[j].data.u32;
        struct conn *c = &conns[i];
        switch (c->state) {
        case C_CONNECTING:
            on_connected(i);
            break;
        case C_HANDSHAKE:
            on_handshake_data(i, t);
            break;
        case C_OPEN:
            if (evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(i, t);
            break;
        default:
            break;
        }
    }
}

static int ms_until(int64_t deadline)
{
    int64_t d = deadline - now_ns();
    if (d <= 0)
        return 0;
    return (int)((d + 999999) / 1000000);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
    if (!n)
        return -1;
    size_t idx = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)v[idx] / 1e6;
}

static void mark(const char *what, int64_t t)
{
    if (opt.marks) {
        printf("MARK %s %.6f\n", what, (double)t / 1e9);
        fflush(stdout);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--clients N] [--duration S]\n"
            "               [--interval S] [--sources K] [--inflight M] [--setup-timeout S]\n"
            "               [--warmup-timeout S] [--grace S] [--marks] [--label TEXT]\n"
            "               [--deflate | --deflate-takeover | --graphql] [--verify-all]\n"
            "               [--timeline FILE] [--kernel-ts]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},         {"port", required_argument, 0, 'p'},
        {"clients", required_argument, 0, 'n'},      {"duration", required_argument, 0, 'd'},
        {"interval", required_argument, 0, 'i'},     {"sources", required_argument, 0, 's'},
        {"inflight", required_argument, 0, 'f'},     {"setup-timeout", required_argument, 0, 'S'},
        {"warmup-timeout", required_argument, 0, 'W'}, {"grace", required_argument, 0, 'g'},
        {"marks", no_argument, 0, 'm'},              {"label", required_argument, 0, 'l'},
        {"coordinated", no_argument, 0, 'c'},        {"source-base", required_argument, 0, 'b'},
        {"deflate", no_argument, 0, 'z'},            {"deflate-takeover", no_argument, 0, 'Z'},
        {"timeline", required_argument, 0, 't'},       {"verify-all", no_argument, 0, 'V'},
        {"graphql", no_argument, 0, 'G'},          {"kernel-ts", no_argument, 0, 'K'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'n': opt.n = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'i': opt.interval = atof(optarg); break;
        case 's': opt.sources = atoi(optarg); break;
        case 'f': opt.inflight = atoi(optarg); break;
        case 'S': opt.setup_timeout = atof(optarg); break;
        case 'W': opt.warmup_timeout = atof(optarg); break;
        case 'g': opt.grace = atof(optarg); break;
        case 'm': opt.marks = 1; break;
        case 'l': opt.label = optarg; break;
        case 'c': opt.coordinated = 1; break;
        case 'b': opt.source_base = atoi(optarg); break;
        case 'z': opt.deflate = 1; break;
        case 'Z': opt.deflate = 2; break;
        case 't': opt.timeline = optarg; break;
        case 'V': opt.verify_all = 1; break;
        case 'G': opt.graphql = 1; break;
        case 'K': opt.kernel_ts = 1; break;
        default: usage();
        }
    }
    struct in_addr a;
    if (opt.port <= 0 || opt.n <= 0 || opt.duration <= 0 || opt.interval <= 0 ||
        inet_pton(AF_INET, opt.host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: need --port, positive counts, and a 127.x.x.x --host\n");
        usage();
    }
    if (opt.graphql && opt.deflate) { /* GraphQL frames are sent uncompressed (GRAPHQL.md) */
        fprintf(stderr, "loadgen: --graphql takes no --deflate\n");
        usage();
    }
    struct timespec rt, mono;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    realtime_offset_ns = ((int64_t)rt.tv_sec - mono.tv_sec) * 1000000000 + (rt.tv_nsec - mono.tv_nsec);
    if (opt.sources <= 0)
        opt.sources = opt.n / 20000 + 1; /* < 28k ephemeral ports per source address */
    if (opt.source_base < 1 || opt.source_base > 254)
        opt.source_base = 1;
    if (opt.source_base + opt.sources > 255)
        opt.sources = 255 - opt.source_base;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    struct rlimit rl = {(rlim_t)opt.n + 1024, (rlim_t)opt.n + 1024};
    struct rlimit cur;
    getrlimit(RLIMIT_NOFILE, &cur);
    if (cur.rlim_cur < rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "loadgen: cannot raise RLIMIT_NOFILE to %d: %s\n", opt.n + 1024,
                strerror(errno));
        return 1;
    }
    rng_state ^= (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
    conns = calloc((size_t)opt.n, sizeof(*conns));
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epfd < 0) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    for (int i = 0; i < opt.n; i++)
        conns[i].fd = -1;
    if (inflateInit2(&shared_zs, -15) != Z_OK) {
        fprintf(stderr, "loadgen: inflateInit2 failed\n");
        return 1;
    }

    /* setup: connect + handshake, at most opt.inflight at once */
    t_setup_start = now_ns();
    int64_t setup_deadline = t_setup_start + (int64_t)(opt.setup_timeout * 1e9);
    while (n_open + n_failed + n_dropped < opt.n && now_ns() < setup_deadline) {
        while (n_inflight < opt.inflight && next_to_open < opt.n)
            start_connect(next_to_open++);
        poll_once(ms_until(setup_deadline) < 100 ? ms_until(setup_deadline) : 100);
    }
    for (int i = 0; i < opt.n; i++) /* whatever is still connecting has failed */
        if (conns[i].state == C_CONNECTING || conns[i].state == C_HANDSHAKE ||
            conns[i].state == C_IDLE) {
            if (conns[i].state == C_IDLE) {
                n_failed++;
                conns[i].state = C_DEAD;
            } else {
                note_failure("setup timeout", ETIMEDOUT);
                conn_kill(&conns[i], 0);
            }
        }
    int established = n_open + n_dropped;
    double connect_s = established ? (double)(t_last_established - t_setup_start) / 1e9 : 0;
    int64_t t_setup_end = now_ns();

    /* warm-up: every open connection has had an update (or the timeout passed) */
    int64_t warm_deadline = t_setup_end + (int64_t)(opt.warmup_timeout * 1e9);
    int warmed = 0;
    while (now_ns() < warm_deadline && n_open) {
        int all = 1;
        for (int i = 0; i < opt.n && all; i++)
            if (conns[i].state == C_OPEN && !conns[i].got_update)
                all = 0;
        if (all) {
            warmed = 1;
            break;
        }
        poll_once(50);
    }
    double warmup_s = (double)(now_ns() - t_setup_end) / 1e9;

    if (opt.coordinated) {
        /* Tell the harness where the ticks fall; it picks one window for every shard. */
        int64_t last_first = max_seq_seen ? ticks[max_seq_seen % TICK_RING].first : 0;
        printf("READY {\"established\":%d,\"failed\":%d,\"setup_start_ns\":%lld,"
               "\"last_established_ns\":%lld,\"last_tick_first_ns\":%lld,\"max_seq\":%llu,"
               "\"warmed\":%s,\"first_failure\":\"%s\"}\n",
               n_open + n_dropped, n_failed, (long long)t_setup_start,
               (long long)t_last_established, (long long)last_first,
               (unsigned long long)max_seq_seen, warmed ? "true" : "false", fail_reason);
        fflush(stdout);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
        int64_t go_deadline = now_ns() + (int64_t)600e9;
        while (!go_received && now_ns() < go_deadline)
            poll_once(100);
        if (!go_received) {
            fprintf(stderr, "loadgen: no GO line on stdin\n");
            return 1;
        }
        while (now_ns() < t_win_end)
            poll_once(ms_until(t_win_end));
    } else {
        /* the window starts half an interval after the next tick's first arrival */
        uint64_t seen = max_seq_seen;
        int64_t align_deadline = now_ns() + (int64_t)((opt.interval * 3 + 10) * 1e9);
        while (n_open && max_seq_seen == seen && now_ns() < align_deadline)
            poll_once(ms_until(align_deadline));
        int64_t first_of_tick =
            max_seq_seen != seen ? ticks[max_seq_seen % TICK_RING].first : now_ns();
        int64_t start = first_of_tick + (int64_t)(opt.interval * 0.5e9);
        while (now_ns() < start)
            poll_once(ms_until(start));
        t_win_start = now_ns();
        t_win_end = t_win_start + (int64_t)(opt.duration * 1e9);
        mark("start", t_win_start);
        while (now_ns() < t_win_end)
            poll_once(ms_until(t_win_end));
        mark("end", now_ns());
    }
    int64_t grace_end = t_win_end + (int64_t)(opt.grace * 1e9);
    while (now_ns() < grace_end)
        poll_once(ms_until(grace_end));

    /* per-tick spread over ticks whose first arrival fell inside the window */
    static int64_t spreads[TICK_RING];
    size_t n_ticks = 0, incomplete = 0;
    uint64_t deliveries = 0;
    for (size_t i = 0; i < TICK_RING; i++) {
        struct tick *k = &ticks[i];
        if (!k->seq || k->first < t_win_start || k->first >= t_win_end)
            continue;
        spreads[n_ticks++] = k->last - k->first;
        deliveries += k->count;
        if (k->count < (uint32_t)n_open)
            incomplete++;
    }
    qsort(spreads, n_ticks, sizeof(spreads[0]), cmp_i64);

    int64_t max_gap = 0;
    size_t starved = 0;
    for (int i = 0; i < opt.n; i++) {
        struct conn *c = &conns[i];
        if (c->state != C_OPEN)
            continue;
        if (!c->window_msgs)
            starved++;
        if (c->max_gap > max_gap)
            max_gap = c->max_gap;
    }

    /* the timeline first: a harness may stop this process once it has the JSON line */
    if (opt.timeline) {
        FILE *f = fopen(opt.timeline, "w");
        if (!f) {
            fprintf(stderr, "loadgen: %s: %s\n", opt.timeline, strerror(errno));
            return 1;
        }
        for (size_t i = 0; i < timeline_len; i++)
            fprintf(f, "%u %u %lld\n", timeline[i].seq, timeline[i].conn, (long long)timeline[i].t);
        fclose(f);
    }
    double win_s = (double)(t_win_end - t_win_start) / 1e9;
    printf("{\"label\":\"%s\",\"clients\":%d,\"established\":%d,\"failed\":%d,\"dropped\":%d,"
           "\"open_at_end\":%d,\"sources\":%d,\"connect_s\":%.3f,\"connect_rate\":%.0f,"
           "\"setup_start_ns\":%lld,\"last_established_ns\":%lld,"
           "\"warmed\":%s,\"warmup_s\":%.2f,\"window_s\":%.3f,\"ticks\":%zu,"
           "\"incomplete_ticks\":%zu,\"tick_deliveries\":%llu,\"messages\":%llu,"
           "\"bytes\":%llu,\"lost\":%llu,\"lost_total\":%llu,\"dups\":%llu,\"starved\":%zu,"
           "\"spread_p50_ms\":%.3f,\"spread_p99_ms\":%.3f,\"spread_max_ms\":%.3f,"
           "\"max_gap_ms\":%.3f,\"pings_answered\":%llu,"
           "\"pongs_failed\":%llu,\"protocol_errors\":%llu,\"deflate_agreed\":%llu,"
           "\"deflate_no_takeover\":%llu,\"compressed_messages\":%llu,\"inflated_bytes\":%llu,"
           "\"inflate_errors\":%llu,\"graphql\":%s,\"gql_acked\":%llu,\"gql_errors\":%llu,"
           "\"gql_completes\":%llu,\"first_failure\":\"%s\"",
           opt.label, opt.n, established, n_failed, n_dropped, n_open, opt.sources, connect_s,
           connect_s > 0 ? established / connect_s : 0.0, (long long)t_setup_start,
           (long long)t_last_established, warmed ? "true" : "false", warmup_s,
           win_s, n_ticks, incomplete, (unsigned long long)deliveries,
           (unsigned long long)msgs_window, (unsigned long long)bytes_window,
           (unsigned long long)lost_window, (unsigned long long)lost_total,
           (unsigned long long)dup_total, starved, pct_ms(spreads, n_ticks, 50),
           pct_ms(spreads, n_ticks, 99), n_ticks ? (double)spreads[n_ticks - 1] / 1e6 : -1.0,
           (double)max_gap / 1e6, (unsigned long long)pings_answered,
           (unsigned long long)pongs_failed, (unsigned long long)proto_errors,
           (unsigned long long)n_pmd, (unsigned long long)n_pmd_nct,
           (unsigned long long)compressed_msgs, (unsigned long long)inflated_window,
           (unsigned long long)inflate_errors, opt.graphql ? "true" : "false",
           (unsigned long long)gql_acked, (unsigned long long)gql_errors,
           (unsigned long long)gql_completes, fail_reason);
    /* Raw per-tick arrivals near the window, so a harness can merge shards by seq. */
    printf(",\"tick_list\":[");
    int first = 1;
    for (size_t i = 0; i < TICK_RING; i++) {
        struct tick *k = &ticks[i];
        if (!k->seq || k->last < t_win_start - (int64_t)(opt.interval * 2e9) ||
            k->first > t_win_end)
            continue;
        printf("%s[%llu,%lld,%lld,%u]", first ? "" : ",", (unsigned long long)k->seq,
               (long long)k->first, (long long)k->last, k->count);
        first = 0;
    }
    printf("]}\n");
    fflush(stdout);
    return 0;
}
