/* floor_server.c - the syscall floor for fan-out: one pre-framed snapshot, one send() per client.
 *
 * A minimal single-threaded epoll WebSocket server.  It accepts connections, answers the
 * RFC 6455 handshake (SHA-1 + base64 of the key through libcrypto), reads and discards what
 * clients send, and every interval frames the given snapshot once, with the tick's seq and
 * timestamp patched in, then writes those same bytes to every client with one non-blocking
 * send().  A client whose socket did not take the whole frame keeps the rest in its own
 * buffer (flushed on EPOLLOUT) and skips ticks until it has drained: the least any
 * latest-snapshot server must do.  There is no protocol beyond that: no pings, no replies.
 *
 * A client that offers permessage-deflate (RFC 7692) gets it, with server_no_context_takeover,
 * unless it limits the server's window: each tick also compresses the payload once (zlib,
 * raw deflate, a fresh stream per message) into a second frame with RSV1 set, and every
 * deflate client is sent those same bytes.  That is the floor for compressed fan-out.
 *
 *   floor_server --port P --snapshot FILE [--host 127.0.0.1] [--interval 1] [--max-fds N]
 *
 * Prints "LISTENING <port>" once ready.  SIGTERM/SIGINT stop it.
 * Build: gcc -O2 -Wall -Wextra -o floor_server floor_server.c -lcrypto -lz
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define HS_CAP 4096

enum { S_FREE, S_HANDSHAKE, S_OPEN };

struct client {
    uint8_t state;
    uint8_t deflate;     /* permessage-deflate agreed: gets the compressed frame */
    int open_idx;        /* position in open_fds */
    char *hs;            /* request headers so far (S_HANDSHAKE) */
    uint32_t hs_len;
    char *pending;       /* unsent tail of a frame */
    uint32_t pending_len, pending_off;
};

static struct client *clients;
static int max_fds;
static int *open_fds, n_open;
static int epfd, lfd, tfd;
static volatile sig_atomic_t stop;
static uint64_t ticks, sends, partial, conflated, closed_by_peer;

/* snapshot split around its seq digits; the timestamp is patched in place */
static char *snap_pre, *snap_post;
static size_t pre_len, post_len;
static long ts_off = -1; /* offset of the timestamp's value within snap_post, or -1 */
static uint8_t *frame;
static size_t frame_cap, frame_len;
/* the same message compressed once per tick, framed with RSV1 */
static z_stream zs;
static uint8_t *zframe;
static size_t zframe_cap, zframe_len;
static int any_deflate; /* compress only once a deflate client has come */

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "floor_server: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void load_snapshot(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    if (!text || fread(text, 1, (size_t)len, f) != (size_t)len)
        die("read snapshot");
    fclose(f);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    text[len] = '\0';
    char *seq = strstr(text, "\"seq\":");
    if (!seq) {
        fprintf(stderr, "floor_server: the snapshot has no \"seq\":\n");
        exit(1);
    }
    seq += 6;
    char *digits_end = seq;
    while (*digits_end >= '0' && *digits_end <= '9')
        digits_end++;
    pre_len = (size_t)(seq - text);
    snap_pre = text;
    snap_post = digits_end;
    post_len = (size_t)(text + len - digits_end);
    char *ts = strstr(digits_end, "\"timestamp\":\"");
    if (ts && ts - digits_end < 64) { /* the message's own timestamp follows seq */
        ts_off = (long)(ts + 13 - digits_end);
    }
    frame_cap = 14 + pre_len + 20 + post_len;
    frame = malloc(frame_cap);
    zframe_cap = 14 + deflateBound(&zs, frame_cap) + 16;
    zframe = malloc(zframe_cap);
    if (!frame || !zframe)
        die("malloc");
}

/* "2026-02-10T12:00:00.123Z": same width as the snapshot's own stamp. */
static void patch_timestamp(void)
{
    if (ts_off < 0 || (size_t)ts_off + 24 > post_len)
        return;
    struct timespec now;
    struct tm tm;
    char buf[96];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(now.tv_nsec / 1000000));
    memcpy(snap_post + ts_off, buf, 24);
}

/* Length field of a server frame (no mask) after its first byte; returns the header size. */
static size_t frame_header(uint8_t *h, uint8_t first, size_t payload)
{
    size_t n = 0;
    h[n++] = first;
    if (payload < 126) {
        h[n++] = (uint8_t)payload;
    } else if (payload < 65536) {
        h[n++] = 126;
        h[n++] = (uint8_t)(payload >> 8);
        h[n++] = (uint8_t)payload;
    } else {
        h[n++] = 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)((uint64_t)payload >> (8 * i));
    }
    return n;
}

/* The tick's payload (frame's payload) deflated once, the RFC 7692 way: a fresh raw stream, sync
 * flush, without the trailing 00 00 ff ff; framed as FIN + RSV1 + text. */
static void build_zframe(const uint8_t *payload, size_t len)
{
    uint8_t *out = zframe + 14; /* the header goes right before, once the length is known */
    deflateReset(&zs);
    zs.next_in = (Bytef *)payload;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)(zframe_cap - 14);
    if (deflate(&zs, Z_SYNC_FLUSH) != Z_OK || zs.avail_in) {
        fprintf(stderr, "floor_server: deflate failed\n");
        exit(1);
    }
    size_t clen = (zframe_cap - 14) - zs.avail_out;
    if (clen >= 4)
        clen -= 4;
    uint8_t h[14];
    size_t hl = frame_header(h, 0xC1, clen);
    memmove(zframe + 14 - hl, h, hl);
    memmove(zframe, zframe + 14 - hl, hl + clen);
    zframe_len = hl + clen;
}

/* Frame the snapshot for this tick: header, prefix, seq digits, suffix. */
static void build_frame(uint64_t seq)
{
    char digits[24];
    int dlen = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)seq);
    size_t payload = pre_len + (size_t)dlen + post_len;
    patch_timestamp();
    size_t h = frame_header(frame, 0x81, payload);
    memcpy(frame + h, snap_pre, pre_len);
    memcpy(frame + h + pre_len, digits, (size_t)dlen);
    memcpy(frame + h + pre_len + (size_t)dlen, snap_post, post_len);
    frame_len = h + payload;
    if (any_deflate)
        build_zframe(frame + h, payload);
}

static void drop(int fd)
{
    struct client *c = &clients[fd];
    if (c->state == S_OPEN) {
        int last = open_fds[--n_open];
        open_fds[c->open_idx] = last;
        clients[last].open_idx = c->open_idx;
    }
    free(c->hs);
    free(c->pending);
    memset(c, 0, sizeof(*c));
    close(fd);
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "floor_server: accept: %s\n", strerror(errno));
            return;
        }
        if (fd >= max_fds) {
            close(fd);
            continue;
        }
        struct client *c = &clients[fd];
        c->hs = malloc(HS_CAP);
        if (!c->hs) {
            close(fd);
            continue;
        }
        c->state = S_HANDSHAKE;
        c->hs_len = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            drop(fd);
    }
}

static const char *header_value(const char *h, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(h, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (!strncasecmp(line, name, nlen) && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            if (!e)
                return NULL;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *vlen = (size_t)(e - v);
            return v;
        }
    }
    return NULL;
}

static void handshake(int fd)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    struct client *c = &clients[fd];
    ssize_t r = read(fd, c->hs + c->hs_len, HS_CAP - 1 - c->hs_len);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN)
            return;
        drop(fd);
        return;
    }
    c->hs_len += (uint32_t)r;
    c->hs[c->hs_len] = '\0';
    if (!strstr(c->hs, "\r\n\r\n")) {
        if (c->hs_len >= HS_CAP - 1)
            drop(fd);
        return;
    }
    size_t klen = 0;
    const char *key = header_value(c->hs, "Sec-WebSocket-Key", &klen);
    if (!key || klen == 0 || klen > 64) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        (void)!write(fd, bad, sizeof(bad) - 1);
        drop(fd);
        return;
    }
    char cat[64 + sizeof(guid)];
    unsigned char digest[SHA_DIGEST_LENGTH];
    char accept[32];
    memcpy(cat, key, klen);
    memcpy(cat + klen, guid, sizeof(guid) - 1);
    SHA1((unsigned char *)cat, klen + sizeof(guid) - 1, digest);
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);
    /* permessage-deflate unless the offer limits the server's window (this floor compresses
     * with 32 KiB); the offer's other parameters concern the client's own sending. */
    size_t elen = 0;
    const char *ext = header_value(c->hs, "Sec-WebSocket-Extensions", &elen);
    c->deflate = ext && memmem(ext, elen, "permessage-deflate", 18) &&
                 !memmem(ext, elen, "server_max_window_bits", 22);
    any_deflate |= c->deflate;
    char resp[320];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n", accept,
                     c->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                  "server_no_context_takeover; client_no_context_takeover\r\n"
                                : "");
    if (write(fd, resp, (size_t)n) != n) {
        drop(fd);
        return;
    }
    free(c->hs);
    c->hs = NULL;
    c->state = S_OPEN;
    c->open_idx = n_open;
    open_fds[n_open++] = fd;
}

/* Clients only send small frames (subscribe, pongs, close): read and discard them. */
static void discard_input(int fd)
{
    static char sink[65536];
    ssize_t r = read(fd, sink, sizeof(sink));
    if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    closed_by_peer++;
    drop(fd);
}

static void flush_pending(int fd)
{
    struct client *c = &clients[fd];
    while (c->pending) {
        ssize_t w = send(fd, c->pending + c->pending_off, c->pending_len - c->pending_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN)
                return;
            drop(fd);
            return;
        }
        c->pending_off += (uint32_t)w;
        if (c->pending_off == c->pending_len) {
            free(c->pending);
            c->pending = NULL;
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
            epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
        }
    }
}

static void broadcast(void)
{
    uint64_t expirations;
    if (read(tfd, &expirations, sizeof(expirations)) != sizeof(expirations))
        return;
    build_frame(++ticks);
    for (int i = 0; i < n_open; i++) {
        int fd = open_fds[i];
        struct client *c = &clients[fd];
        if (c->pending) {
            conflated++;
            continue;
        }
        const uint8_t *f = c->deflate ? zframe : frame;
        size_t flen = c->deflate ? zframe_len : frame_len;
        ssize_t w = send(fd, f, flen, MSG_DONTWAIT | MSG_NOSIGNAL);
        sends++;
        if (w == (ssize_t)flen)
            continue;
        if (w < 0 && errno != EAGAIN) {
            drop(fd);
            i--; /* drop() moved the last open fd into slot i */
            continue;
        }
        if (w < 0)
            w = 0;
        partial++;
        c->pending_len = (uint32_t)(flen - (size_t)w);
        c->pending_off = 0;
        c->pending = malloc(c->pending_len);
        if (!c->pending) {
            drop(fd);
            i--;
            continue;
        }
        memcpy(c->pending, f + w, c->pending_len);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *snapshot = NULL;
    int port = 0;
    double interval = 1.0;
    max_fds = 65536;
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},     {"port", required_argument, 0, 'p'},
        {"interval", required_argument, 0, 'i'}, {"snapshot", required_argument, 0, 's'},
        {"max-fds", required_argument, 0, 'm'},  {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'i': interval = atof(optarg); break;
        case 's': snapshot = optarg; break;
        case 'm': max_fds = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: floor_server --port P --snapshot FILE [--host A] "
                            "[--interval S] [--max-fds N]\n");
            return 2;
        }
    }
    if (!snapshot || interval <= 0 || max_fds < 64) {
        fprintf(stderr, "floor_server: --snapshot FILE is required; interval > 0\n");
        return 2;
    }
    struct rlimit rl = {(rlim_t)max_fds, (rlim_t)max_fds};
    struct rlimit cur;
    getrlimit(RLIMIT_NOFILE, &cur);
    if (cur.rlim_cur < rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("setrlimit RLIMIT_NOFILE");
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    load_snapshot(snapshot);
    clients = calloc((size_t)max_fds, sizeof(*clients));
    open_fds = calloc((size_t)max_fds, sizeof(*open_fds));
    if (!clients || !open_fds)
        die("calloc");

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "floor_server: bad --host %s\n", host);
        return 2;
    }
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("bind");
    if (listen(lfd, 4096) < 0)
        die("listen");
    socklen_t alen = sizeof(addr);
    getsockname(lfd, (struct sockaddr *)&addr, &alen);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its;
    its.it_interval.tv_sec = (time_t)interval;
    its.it_interval.tv_nsec = (long)((interval - (double)(time_t)interval) * 1e9);
    its.it_value = its.it_interval;
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = tfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);

    printf("LISTENING %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    static struct epoll_event evs[1024];
    while (!stop) {
        int k = epoll_wait(epfd, evs, 1024, -1);
        for (int j = 0; j < k; j++) {
            int fd = evs[j].data.fd;
            if (fd == lfd) {
                accept_all();
            } else if (fd == tfd) {
                broadcast();
            } else if (clients[fd].state == S_HANDSHAKE) {
                handshake(fd);
            } else if (clients[fd].state == S_OPEN) {
                if (evs[j].events & EPOLLOUT)
                    flush_pending(fd);
                if (clients[fd].state == S_OPEN && (evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    discard_input(fd);
            }
        }
    }
    fprintf(stderr, "floor_server: %llu ticks, %llu sends, %llu partial, %llu conflated, "
                    "%llu closed by peer, %d open\n",
            (unsigned long long)ticks, (unsigned long long)sends, (unsigned long long)partial,
            (unsigned long long)conflated, (unsigned long long)closed_by_peer, n_open);
    return 0;
}
