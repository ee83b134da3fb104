/* ws_protocol.c - the WebSocket protocol callback: per-connection state, fan-out, shutdown. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dispatch.h"
#include "handshake_policy.h"
#include "http_routes.h"
#include "jwt.h"
#include "log.h"
#include "rate_limit.h"
#include "rx_buffer.h"
#include "service.h"
#include "ticker.h"
#include "timeutil.h"

/* Replies other than metrics_update may queue up to this much per client (SPEC section 4). */
#define MAX_QUEUED_REPLY_BYTES (64 * 1024)
/* Keepalive (SPEC section 2): a ping after 20 s without a pong, a drop 20 s after an
 * unanswered ping.  One scan a second covers every connection. */
#define KEEPALIVE_PING_MS 20000
#define KEEPALIVE_PONG_MS 20000
#define KEEPALIVE_SCAN_US (1 * LWS_US_PER_SEC)
/* A client closed by the server gets this long to take its close frame; one that does not
 * read never gets the writable callback that sends it, so lws then drops the connection. */
#define CLOSE_GRACE_S 5
/* stop() must finish promptly even when clients do not read their close frame. */
#define STOP_DEADLINE_US (1500 * LWS_US_PER_MS)
/* A client with no token in its handshake has this long to send {"type":"auth"}. */
#define AUTH_DEADLINE_US (5 * LWS_US_PER_SEC)
/* Origin and Authorization headers longer than this are refused, not truncated. */
#define MAX_HEADER_VALUE 4096

/* A serialised message with LWS_PRE headroom.  Broadcast messages are
 * shared by every client of a subscription group; replies are owned by one
 * client.  Only the service thread touches these, so refs is plain. */
struct msgbuf {
    struct msgbuf *next;      /* reply queue link */
    int refs;
    jbuf jb;
};

/* Clients with the same subscription share one serialisation per tick. */
struct sub_group {
    struct sub_group *next;
    char *skill;              /* NULL = all skills */
    size_t skill_len;
    size_t members;
    uint64_t built_seq;
    struct msgbuf *message;   /* metrics_update for built_seq */
};

/* Per-connection state: zeroed by lws, set up in ESTABLISHED, freed in CLOSED. */
struct session {
    struct session *next, *prev;
    struct service *svc;
    struct lws *wsi;
    uint64_t id;
    char peer[64];
    int counted;              /* linked into svc->sessions; counts toward max_clients */
    int admitted;             /* authenticated (or no auth needed): listed in `clients`, gets updates */
    int auth_pending;         /* waiting for an auth message */
    int authenticated;
    char user_id[JWT_MAX_USER_ID + 1];
    lws_sorted_usec_list_t auth_deadline;
    struct rate_limit rate;
    int64_t next_ping_ms;     /* monotonic: when to ping, unless a ping is out */
    int64_t ping_sent_ms;     /* monotonic: the unanswered ping's time, or 0 */
    int ping_due;             /* a ping waits for WRITEABLE */
    int direct;               /* plain ws:// without compression: a tick may write to it at once */
    int closing;
    uint16_t close_code;
    const char *close_reason;
    struct sub_group *group;  /* NULL after unsubscribe */
    uint64_t sent_seq;
    struct msgbuf *inflight;  /* kept until the next WRITEABLE: zlib may still read it */
    struct msgbuf *out_head, *out_tail;
    size_t out_bytes;
    struct rx_buffer rx;
    struct msgbuf *http_body;  /* a plain-HTTP response waiting for HTTP_WRITEABLE */
};

const size_t ws_session_size = sizeof(struct session);

const struct session *session_next(const struct session *s) { return s->next; }

uint64_t session_id(const struct session *s) { return s->id; }

const char *session_peer(const struct session *s) { return s->peer; }

const char *session_user_id(const struct session *s) { return s->user_id; }

int session_admitted(const struct session *s) { return s->admitted; }

int session_subscription(const struct session *s, const char **skill, size_t *skill_len)
{
    *skill = s->group ? s->group->skill : NULL;
    *skill_len = s->group ? s->group->skill_len : 0;
    return s->group != NULL;
}

static struct msgbuf *msgbuf_new(size_t initial)
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

static void msgbuf_unref(struct msgbuf *m)
{
    if (m && --m->refs == 0) {
        jb_free(&m->jb);
        free(m);
    }
}

/* ---- subscription groups ---- */

static struct sub_group *group_join(struct service *svc, const char *skill, size_t len)
{
    struct sub_group *g;
    for (g = svc->groups; g; g = g->next) {
        if ((!skill && !g->skill) ||
            (skill && g->skill && g->skill_len == len && !memcmp(g->skill, skill, len))) {
            g->members++;
            return g;
        }
    }
    g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    if (skill) {
        g->skill = malloc(len + 1);
        if (!g->skill) {
            free(g);
            return NULL;
        }
        memcpy(g->skill, skill, len);
        g->skill[len] = '\0';
        g->skill_len = len;
    }
    g->members = 1;
    g->next = svc->groups;
    svc->groups = g;
    return g;
}

static void group_leave(struct service *svc, struct sub_group *g)
{
    if (!g || --g->members)
        return;
    for (struct sub_group **pp = &svc->groups; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    msgbuf_unref(g->message);
    free(g->skill);
    free(g);
}

/* The group's metrics_update for the current snapshot, serialised at most once per tick. */
static struct msgbuf *group_message(struct service *svc, struct sub_group *g)
{
    if (g->message && g->built_seq == svc->current->seq)
        return g->message;
    struct msgbuf *m = msgbuf_new(g->skill ? 1024 : 8192);
    if (!m)
        return NULL;
    snapshot_write_update(svc->current, g->skill, g->skill_len, &m->jb);
    if (m->jb.failed) {
        msgbuf_unref(m);
        return NULL;
    }
    msgbuf_unref(g->message);
    g->message = m;
    g->built_seq = svc->current->seq;
    return m;
}

/* ---- per-session helpers ---- */

static void session_close_with(struct session *s, uint16_t code, const char *reason)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->close_code = code;
    s->close_reason = reason;
    lws_callback_on_writable(s->wsi);
    /* (On stop, the service's own deadline covers every connection at once.) */
    if (!s->svc->stopping)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_LAGGING, CLOSE_GRACE_S);
}

/* Queue a reply built in m (ownership passes here).  Over the bound, the client is closed 1008. */
static void session_queue_reply(struct session *s, struct msgbuf *m)
{
    if (s->out_bytes + m->jb.len > MAX_QUEUED_REPLY_BYTES) {
        msgbuf_unref(m);
        s->svc->counters.closed_slow_consumer++;
        sb_log(s->svc->events, SB_WARNING, "client %llu (%s) is not reading its replies: closing",
               (unsigned long long)s->id, s->peer);
        session_close_with(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "reply queue full");
        return;
    }
    if (s->out_tail)
        s->out_tail->next = m;
    else
        s->out_head = m;
    s->out_tail = m;
    s->out_bytes += m->jb.len;
    lws_callback_on_writable(s->wsi);
}

static void session_set_group(struct session *s, struct sub_group *g)
{
    struct service *svc = s->svc;
    pthread_mutex_lock(&svc->lock);
    struct sub_group *old = s->group;
    s->group = g;
    pthread_mutex_unlock(&svc->lock);
    group_leave(svc, old);
}

static void session_admit(struct session *s);
static void session_check_token(struct session *s, const char *token, size_t len,
                                const char *source);

static void session_apply(struct session *s, const struct dispatch_result *res)
{
    struct service *svc = s->svc;
    switch (res->action) {
    case DA_SUBSCRIBE: {
        struct sub_group *g = group_join(svc, res->skill, res->skill_len);
        if (!g) {
            session_close_with(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
            return;
        }
        session_set_group(s, g);
        s->sent_seq = 0; /* the current snapshot, in the new form, is due at once */
        break;
    }
    case DA_UNSUBSCRIBE:
        session_set_group(s, NULL);
        break;
    case DA_AUTH:
        session_check_token(s, res->token, strlen(res->token), "auth message");
        break;
    case DA_NONE:
        break;
    }
}


/* Subscribed, and not yet sent the current snapshot (or a newer one: see session_admit). */
static int update_pending(const struct session *s)
{
    return s->group && s->svc->current && s->sent_seq < s->svc->current->seq;
}

static void session_handle_message(struct session *s)
{
    struct service *svc = s->svc;
    struct dispatch_result res;
    struct msgbuf *reply = msgbuf_new(256);

    if (!reply || dispatch_message(s->rx.data, s->rx.len, s->rx.binary, svc->current, s->auth_pending,
                                   now_unix_ms(), &res, &reply->jb) < 0) {
        msgbuf_unref(reply);
        session_close_with(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    session_apply(s, &res);
    dispatch_result_free(&res);
    if (reply->jb.len)
        session_queue_reply(s, reply);
    else
        msgbuf_unref(reply);
    if (update_pending(s))
        lws_callback_on_writable(s->wsi);
}

_Static_assert(RATE_LIMIT_PER_S == 20 && RATE_LIMIT_BURST == 40,
              "the rate_limited message below quotes these limits");

/* Over the rate limit: drop the message and say so, or close when it has gone on too long. */
static void session_rate_limited(struct session *s, enum rl_verdict verdict)
{
    struct service *svc = s->svc;
    if (verdict == RL_CLOSE) {
        svc->counters.closed_rate_limit++;
        sb_log(svc->events, SB_WARNING, "client %llu (%s) exceeded the rate limit for %d s: closing",
               (unsigned long long)s->id, s->peer, RATE_LIMIT_SUSTAIN_MS / 1000);
        session_close_with(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit exceeded");
        return;
    }
    svc->counters.rate_limited_messages++;
    struct msgbuf *reply = msgbuf_new(160);
    if (!reply) {
        session_close_with(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    dispatch_write_error(&reply->jb, "rate_limited",
                         "too many messages: the limit is 20 per second with bursts of 40; message dropped",
                         NULL);
    session_queue_reply(s, reply);
}

/*
 * One chunk of a client message.  Every close decided here goes through
 * session_close_with (close frame from the next WRITEABLE) rather than a -1
 * return: with permessage-deflate, lws 4.1.6 ignores what RECEIVE returns for
 * inflated chunks, so a -1 would leave an oversized message unanswered.
 */
static void session_receive(struct session *s, const void *in, size_t len)
{
    struct service *svc = s->svc;
    struct lws *wsi = s->wsi;

    switch (rx_append(&s->rx, in, len, lws_is_first_fragment(wsi), lws_frame_is_binary(wsi),
                      svc->cfg.max_message_size)) {
    case RX_OK:
        break;
    case RX_TOO_LARGE:
        svc->counters.closed_too_large++;
        rx_consumed(&s->rx);
        session_close_with(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return;
    case RX_NOMEM:
        rx_consumed(&s->rx);
        session_close_with(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return;

    svc->counters.messages_received++;
    enum rl_verdict verdict = rate_limit_take(&s->rate, mono_us() / 1000);
    if (verdict == RL_ALLOW)
        session_handle_message(s);
    else
        session_rate_limited(s, verdict);
    rx_consumed(&s->rx);
}

/* The current snapshot's message for the session's group, from now on counted as sent to it.
 * NULL when out of memory, with the session closing. */
static struct msgbuf *claim_update(struct session *s)
{
    struct msgbuf *m = group_message(s->svc, s->group);
    if (!m) {
        session_close_with(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return NULL;
    }
    s->sent_seq = s->svc->current->seq;
    return m;
}

/* Write one text message and count it.  Returns 0, or -1 when the connection failed (lws_write
 * reports a partial write as complete: it keeps the rest and finishes it itself). */
static int send_text(struct session *s, const struct msgbuf *m)
{
    if (lws_write(s->wsi, (unsigned char *)jb_text(&m->jb), m->jb.len, LWS_WRITE_TEXT) < (int)m->jb.len)
        return -1;
    s->svc->counters.messages_sent++;
    s->svc->counters.bytes_sent += m->jb.len;
    return 0;
}

/* One lws_write per WRITEABLE: close first, then replies, then the latest update. */
static int session_writeable(struct session *s)
{
    struct msgbuf *m = NULL;

    if (s->closing) {
        const char *r = s->close_reason ? s->close_reason : "";
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code, (unsigned char *)r, strlen(r));
        return -1;
    }
    msgbuf_unref(s->inflight);
    s->inflight = NULL;

    if (s->ping_due) {
        /* lws 4.1.6 reports no RECEIVE_PONG for an empty pong: give the ping a payload. */
        unsigned char ping[LWS_PRE + 2];
        memcpy(ping + LWS_PRE, "ka", 2);
        s->ping_due = 0;
        if (lws_write(s->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0)
            return -1;
        if (s->out_head || update_pending(s))
            lws_callback_on_writable(s->wsi);
        return 0;
    }
    if (s->out_head) {
        m = s->out_head;
        s->out_head = m->next;
        if (!s->out_head)
            s->out_tail = NULL;
        m->next = NULL;
        s->out_bytes -= m->jb.len;
    } else if (update_pending(s)) {
        m = claim_update(s);
        if (!m)
            return 0;
        m->refs++;
    } else {
        return 0;
    }

    s->inflight = m;
    if (send_text(s, m) < 0)
        return -1;
    if (s->out_head || update_pending(s))
        lws_callback_on_writable(s->wsi);
    return 0;
}

/*
 * The tick's fast path: write the new update to the socket at once, instead of asking lws for a
 * WRITEABLE callback, which costs two epoll_ctl calls and an event per client per tick.  Only
 * for sessions where that is safe: no TLS and no compression (zlib would keep reading the
 * buffer after lws_write returns), nothing queued before it, and no partial write pending in
 * lws (lws_write keeps what the kernel did not take and finishes it through POLLOUT itself).
 */
static int can_push(struct session *s)
{
    return s->direct && s->group && !s->closing && !s->out_head && !lws_partial_buffered(s->wsi);
}

static void session_push_update(struct session *s)
{
    struct msgbuf *m = claim_update(s);
    if (m && send_text(s, m) < 0)
        session_close_with(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "write failed");
}

/* A new snapshot is current: every subscribed client gets it, at once or when writable. */
static void fan_out(struct service *svc)
{
    for (struct session *s = svc->sessions; s; s = s->next) {
        if (can_push(s))
            session_push_update(s);
        else if (s->group)
            lws_callback_on_writable(s->wsi);
    }
}

/* "ip:port" or "[ip6]:port" of the peer. */
static void format_peer(struct lws *wsi, char *out, size_t len)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&sa, &salen) == 0) {
        if (sa.ss_family == AF_INET) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;
            inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
            port = ntohs(in4->sin_port);
        } else if (sa.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
            inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
            port = ntohs(in6->sin6_port);
            snprintf(out, len, "[%s]:%d", ip, port);
            return;
        }
    }
    snprintf(out, len, "%s:%d", ip, port);
}

/* With max_clients clients admitted, close s with 1013 and return 1; else return 0. */
static int session_reject_if_full(struct session *s)
{
    struct service *svc = s->svc;
    if (!svc->cfg.max_clients || svc->n_sessions < svc->cfg.max_clients)
        return 0;
    svc->counters.rejected_full++;
    sb_log(svc->events, SB_WARNING, "rejecting %s: server full (%zu clients)", s->peer,
           svc->cfg.max_clients);
    session_close_with(s, SB_CLOSE_TRY_AGAIN_LATER, "server full");
    return 1;
}

/* Let an authenticated (or unauthenticated, when allowed) client in: it joins the
 * "all skills" group, becomes visible in `clients` and gets its greeting.  Nothing else
 * follows until the next tick: clients written for session-buddy's pure-Python server read
 * the reply to their first request as the frame after `connected`. */
static void session_admit(struct session *s)
{
    struct service *svc = s->svc;
    /* Only clients take seats: a connection still authenticating does not (SPEC section 4). */
    if (session_reject_if_full(s))
        return;
    pending_finished(svc, s->wsi);
    struct sub_group *all = group_join(svc, NULL, 0);
    struct msgbuf *hello = msgbuf_new(192);
    if (!all || !hello) {
        group_leave(svc, all);
        msgbuf_unref(hello);
        session_close_with(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    pthread_mutex_lock(&svc->lock);
    s->group = all;
    svc->n_sessions++;
    s->admitted = 1;
    pthread_mutex_unlock(&svc->lock);
    /* Every snapshot built so far counts as sent, also one still on its way to this thread:
     * the first update is the next tick's. */
    struct snapshot *latest = ticker_latest(svc->ticker);
    s->sent_seq = latest ? latest->seq : 0;
    snapshot_unref(latest);

    if (s->authenticated)
        sb_log(svc->events, SB_INFO, "client %llu connected from %s as user '%s' (%zu connected)",
               (unsigned long long)s->id, s->peer, s->user_id, svc->n_sessions);
    else
        sb_log(svc->events, SB_INFO, "client %llu connected from %s (%zu connected)",
               (unsigned long long)s->id, s->peer, svc->n_sessions);
    dispatch_write_connected(&hello->jb, s->authenticated, now_unix_ms());
    session_queue_reply(s, hello);
}

static void session_auth_failed(struct session *s, const char *why)
{
    struct service *svc = s->svc;
    svc->counters.auth_failures++;
    /* The token itself is never logged. */
    sb_log_topic(svc->events, SB_TOPIC_AUTH, SB_WARNING,
                 "client %llu (%s): authentication failed: %s", (unsigned long long)s->id, s->peer,
                 why);
    session_close_with(s, SB_CLOSE_AUTH_FAILED, "Authentication failed");
}

/* Verify a token from one of the three sources; admit the client or close it 4001. */
static void session_check_token(struct session *s, const char *token, size_t len,
                                const char *source)
{
    struct service *svc = s->svc;
    struct jwt_claims claims;
    char why[96];

    lws_sul_cancel(&s->auth_deadline);
    s->auth_pending = 0;
    enum jwt_status st = jwt_verify(token, len, svc->cfg.jwt_secret, svc->cfg.jwt_secret_len,
                                    (double)now_unix_ms() / 1000.0, &claims);
    if (st != JWT_OK) {
        snprintf(why, sizeof(why), "%s (token from the %s)", jwt_status_text(st), source);
        session_auth_failed(s, why);
        return;
    }
    memcpy(s->user_id, claims.user_id, sizeof(s->user_id));
    jwt_claims_free(&claims);
    s->authenticated = 1;
    sb_log_topic(svc->events, SB_TOPIC_AUTH, SB_INFO,
                 "client %llu (%s) authenticated as user '%s' (token from the %s)",
                 (unsigned long long)s->id, s->peer, s->user_id, source);
    session_admit(s);
}

static void auth_deadline_reached(lws_sorted_usec_list_t *sul)
{
    struct session *s = lws_container_of(sul, struct session, auth_deadline);
    if (s->auth_pending && !s->closing) {
        s->auth_pending = 0;
        session_auth_failed(s, "no token within 5 s");
    }
}

/*
 * The token of the handshake, in SPEC order: "Authorization: Bearer", then
 * ?token=.  Returns its length (token NUL-terminated in buf), 0 when neither
 * carries one, or -1 when a header is too long to hold a token we accept.
 */
static int handshake_token(struct lws *wsi, char *buf, int buflen)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (total > 0) {
        if (total >= buflen)
            return -1;
        if (lws_hdr_copy(wsi, buf, buflen, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
            return -1;
        if (!strncasecmp(buf, "Bearer ", 7)) {
            size_t n = strlen(buf + 7);
            memmove(buf, buf + 7, n + 1);
            return (int)n;
        }
    }
    const char *v = lws_get_urlarg_by_name(wsi, "token=", buf, buflen);
    if (!v)
        return 0;
    size_t n = strlen(v);
    memmove(buf, v, n + 1);
    return (int)n;
}

static void session_established(struct session *s, struct lws *wsi, struct service *svc)
{
    s->wsi = wsi;
    s->svc = svc;
    format_peer(wsi, s->peer, sizeof(s->peer));

    if (svc->stopping) {
        session_close_with(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutdown");
        return;
    }
    if (session_reject_if_full(s))
        return;
    pthread_mutex_lock(&svc->lock);
    s->next = svc->sessions;
    if (svc->sessions)
        svc->sessions->prev = s;
    svc->sessions = s;
    svc->n_connections++;
    s->counted = 1;
    pthread_mutex_unlock(&svc->lock);
    svc->counters.connections_total++;
    s->id = ++svc->next_client_id;
    rate_limit_init(&s->rate, mono_us() / 1000);
    s->next_ping_ms = mono_us() / 1000 + KEEPALIVE_PING_MS;
    /* A client that offered any extension may have permessage-deflate. */
    s->direct = !lws_is_ssl(wsi) && lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS) <= 0;

    if (!svc->cfg.jwt_secret) {
        session_admit(s);
        return;
    }
    char *token = malloc(MAX_HEADER_VALUE);
    if (!token) {
        session_close_with(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    int n = handshake_token(wsi, token, MAX_HEADER_VALUE);
    if (n < 0) {
        session_auth_failed(s, "Authorization header too long");
    } else if (n > 0) {
        session_check_token(s, token, (size_t)n, "handshake");
    } else {
        s->auth_pending = 1;
        pending_restart(svc, wsi); /* the handshake is done; authentication has its own 5 s */
        lws_sul_schedule(lws_get_context(wsi), 0, &s->auth_deadline, auth_deadline_reached,
                         AUTH_DEADLINE_US);
    }
    memset(token, 0, MAX_HEADER_VALUE);
    free(token);
}

static void session_closed(struct session *s)
{
    struct service *svc = s->svc;
    if (!svc)
        return; /* never established */

    lws_sul_cancel(&s->auth_deadline);
    msgbuf_unref(s->inflight);
    while (s->out_head) {
        struct msgbuf *m = s->out_head;
        s->out_head = m->next;
        msgbuf_unref(m);
    }
    rx_free(&s->rx);
    if (s->counted) {
        pthread_mutex_lock(&svc->lock);
        if (s->prev)
            s->prev->next = s->next;
        else
            svc->sessions = s->next;
        if (s->next)
            s->next->prev = s->prev;
        svc->n_connections--;
        struct sub_group *g = s->group;
        s->group = NULL;
        if (s->admitted)
            svc->n_sessions--;
        pthread_mutex_unlock(&svc->lock);
        group_leave(svc, g);
        if (s->admitted)
            sb_log(svc->events, SB_INFO, "client %llu (%s) disconnected (%zu connected)",
                   (unsigned long long)s->id, s->peer, svc->n_sessions);
    }
    memset(s, 0, sizeof(*s));
    if (svc->stopping && svc->n_connections == 0)
        svc->leave_loop = 1;
}

/* ---- plain HTTP on the same port ---- */

/*
 * The Host check against DNS rebinding: with a list of names (the server is bound to a loopback
 * address), a request must name one of them in its Host header.  Returns 1 when it may go on.
 */
static int request_host_allowed(struct lws *wsi, struct service *svc)
{
    char host[256];
    if (!svc->cfg.allowed_hosts)
        return 1;
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HOST);
    if (total <= 0 || total >= (int)sizeof(host) ||
        lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) < 0 ||
        !host_allowed(host, svc->cfg.allowed_hosts, svc->cfg.n_allowed_hosts)) {
        svc->counters.rejected_host++;
        return 0;
    }
    return 1;
}

/* With authentication on, whatever carries data needs the same token as a WebSocket client. */
static int request_authorized(struct lws *wsi, struct service *svc)
{
    if (!svc->cfg.jwt_secret)
        return 1;
    char *token = malloc(MAX_HEADER_VALUE);
    if (!token)
        return 0;
    int ok = 0, n = handshake_token(wsi, token, MAX_HEADER_VALUE);
    if (n > 0) {
        struct jwt_claims claims;
        if (jwt_verify(token, (size_t)n, svc->cfg.jwt_secret, svc->cfg.jwt_secret_len,
                       (double)now_unix_ms() / 1000.0, &claims) == JWT_OK) {
            jwt_claims_free(&claims);
            ok = 1;
        }
    }
    memset(token, 0, MAX_HEADER_VALUE);
    free(token);
    if (!ok)
        svc->counters.auth_failures++;
    return ok;
}

/*
 * A short plain-text answer written at once, for refusals: headers (with one extra header when
 * name is not NULL), then the body unless the request was HEAD.  lws discards a request body
 * that was not read before the next request is parsed.  Returns what the lws callback returns.
 */
static int http_answer_now(struct lws *wsi, unsigned int status, const char *name, const char *value,
                           const char *text, int head_only)
{
    unsigned char headers[LWS_PRE + 512], body[LWS_PRE + 128];
    unsigned char *start = headers + LWS_PRE, *p = start, *end = headers + sizeof(headers) - 1;
    size_t len = strlen(text);

    if (len > sizeof(body) - LWS_PRE)
        return -1;
    if (lws_add_http_common_headers(wsi, status, "text/plain; charset=utf-8", len, &p, end) ||
        (name && lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                             (const unsigned char *)value, (int)strlen(value), &p,
                                             end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (!head_only) {
        memcpy(body + LWS_PRE, text, len);
        if (lws_write(wsi, body + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) < (int)len)
            return -1;
    }
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Route the request and write its headers; the body follows in HTTP_WRITEABLE (none for HEAD).
 * Returns what the lws callback returns. */
static int http_begin(struct session *s, struct lws *wsi, struct service *svc, const char *path)
{
    int head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    if (!head && lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return http_answer_now(wsi, 405, "allow:", "GET, HEAD", "method not allowed\n", 0);
    if (!request_host_allowed(wsi, svc))
        return http_answer_now(wsi, 403, NULL, NULL, "host not allowed\n", head);
    if (!strcmp(path, "/metrics") && !request_authorized(wsi, svc))
        return http_answer_now(wsi, 401, "www-authenticate:", "Bearer",
                               "a token is required: Authorization: Bearer, or ?token=\n", head);

    unsigned char headers[LWS_PRE + 1024];
    unsigned char *start = headers + LWS_PRE, *p = start, *end = headers + sizeof(headers) - 1;
    struct ticker_metrics tm;
    struct http_response res;

    ticker_get_metrics(svc->ticker, &tm);
    struct http_context ctx = {
        .counters = &svc->counters,
        .clients = svc->n_sessions,
        .now_ms = now_unix_ms(),
        .started_ms = svc->started_ms,
        .snapshot = svc->current,
        .ticker = &tm,
        .files = &svc->files,
    };
    struct msgbuf *body = msgbuf_new(4096);
    if (!body || http_route(&ctx, path, &res, &body->jb) < 0) {
        msgbuf_unref(body);
        return -1;
    }
    /* Static files have no LWS_PRE headroom: copy them into the buffer that has it. */
    if (!res.uses_buffer)
        jb_raw(&body->jb, res.body, res.body_len);
    if (body->jb.failed ||
        lws_add_http_common_headers(wsi, (unsigned int)res.status, res.content_type,
                                    body->jb.len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        msgbuf_unref(body);
        return 1;
    }
    msgbuf_unref(s->http_body);
    if (head) {
        /* The same headers as GET, and no body: a pipelined next response stays in step. */
        msgbuf_unref(body);
        s->http_body = NULL;
        if (lws_http_transaction_completed(wsi))
            return -1;
        pending_restart(svc, wsi); /* idle until the next request, which has its own deadline */
        return 0;
    }
    s->http_body = body;
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_write_body(struct session *s, struct lws *wsi)
{
    struct msgbuf *body = s->http_body;
    if (!body)
        return 0;
    s->http_body = NULL;
    int n = lws_write(wsi, (unsigned char *)jb_text(&body->jb), body->jb.len, LWS_WRITE_HTTP_FINAL);
    int short_write = n < (int)body->jb.len;
    msgbuf_unref(body);
    if (short_write || lws_http_transaction_completed(wsi))
        return -1;
    pending_restart(lws_context_user(lws_get_context(wsi)), wsi);
    return 0;
}

/* ---- the upgrade: request and Origin checks ---- */

/*
 * Refuse the upgrade with a real HTTP status.  Written by hand: at this stage lws would answer
 * with an HTTP/1.0 status line, which clients such as python-websockets refuse to read.
 * Returns 1, which tells lws the answer is written and the connection ends.
 */
static int refuse_upgrade(struct lws *wsi, const char *status, const char *extra_header,
                          const char *body)
{
    unsigned char out[LWS_PRE + 512];
    char *text = (char *)out + LWS_PRE;
    int n = snprintf(text, sizeof(out) - LWS_PRE,
                     "HTTP/1.1 %s\r\n%scontent-type: text/plain\r\ncontent-length: %zu\r\n"
                     "connection: close\r\n\r\n%s",
                     status, extra_header, strlen(body), body);
    if (n > 0 && (size_t)n < sizeof(out) - LWS_PRE)
        lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return 1;
}

/* RFC 6455 4.1: the key is 16 random bytes in base64: 22 characters of the alphabet, then "==". */
static int websocket_key_valid(struct lws *wsi)
{
    char key[32];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_KEY) != 24 ||
        lws_hdr_copy(wsi, key, sizeof(key), WSI_TOKEN_KEY) != 24)
        return 0;
    for (int i = 0; i < 22; i++)
        if (!isalnum((unsigned char)key[i]) && key[i] != '+' && key[i] != '/')
            return 0;
    /* The last character before the padding carries 2 bits: it must be one of A, Q, g, w. */
    return strchr("AQgw", key[21]) && key[22] == '=' && key[23] == '=';
}

/*
 * lws 4.1.6 switches protocols for any Sec-WebSocket-Version and any key, and drops a request
 * without a key with no answer.  RFC 6455 4.2.1 asks for 400, and 4.4 for 426 naming the
 * version we speak.  Returns what the callback returns.
 */
static int check_upgrade_request(struct lws *wsi, struct service *svc)
{
    const char *status = "400 Bad Request", *header = "", *body;
    char version[8] = "", http[16] = "";

    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        body = "a WebSocket handshake must be a GET request\n";
    } else if (lws_hdr_copy(wsi, http, sizeof(http), WSI_TOKEN_HTTP) < 0 || strcmp(http, "HTTP/1.1")) {
        body = "a WebSocket handshake needs HTTP/1.1\n"; /* RFC 6455 4.1 */
    } else if (!websocket_key_valid(wsi)) {
        body = "Sec-WebSocket-Key must be 16 bytes in base64\n";
    } else if (lws_hdr_copy(wsi, version, sizeof(version), WSI_TOKEN_VERSION) < 0 ||
               strcmp(version, "13") != 0) {
        status = "426 Upgrade Required";
        header = "sec-websocket-version: 13\r\n";
        body = "unsupported Sec-WebSocket-Version: this server speaks 13\n";
    } else {
        return 0;
    }
    svc->counters.rejected_handshake++;
    return refuse_upgrade(wsi, status, header, body);
}

static int origin_allowed(struct lws *wsi, const struct service *svc, const char *origin)
{
    char host[256];
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HOST);
    if (total <= 0 || total >= (int)sizeof(host) || lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) < 0)
        host[0] = '\0'; /* then only the local origins qualify */
    return origin_allowed_by_policy(origin, host, lws_is_ssl(wsi), svc->cfg.allowed_origins,
                                    svc->cfg.n_allowed_origins);
}

/*
 * A handshake whose Origin the policy refuses (handshake_policy.h: the listed origins, or by
 * default this server's own pages and local ones) gets a real HTTP 403 (returning nonzero from
 * FILTER_PROTOCOL_CONNECTION would only drop the TCP connection), so that a web page the user
 * happens to visit cannot read the stream.  A handshake without Origin comes from a non-browser
 * client, which could claim any Origin anyway: it passes, and authentication is what guards
 * those.  Returns what the callback returns.
 */
static int check_origin(struct lws *wsi, struct service *svc)
{
    char origin[512] = "";

    int total = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (total <= 0)
        return 0;
    if (total < (int)sizeof(origin) && lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) >= 0 &&
        origin_allowed(wsi, svc, origin))
        return 0;

    char peer[64];
    format_peer(wsi, peer, sizeof(peer));
    svc->counters.rejected_origin++;
    sb_log(svc->events, SB_WARNING, "rejecting %s: Origin %.100s%s not allowed", peer,
           total < (int)sizeof(origin) ? origin : "(too long)", total > 100 ? "..." : "");
    return refuse_upgrade(wsi, "403 Forbidden", "", "origin not allowed\n");
}

/* ---- keepalive ---- */

static void keepalive_scan(lws_sorted_usec_list_t *sul)
{
    struct service *svc = lws_container_of(sul, struct service, keepalive);
    int64_t now = mono_us() / 1000;

    for (struct session *s = svc->sessions; s; s = s->next) {
        if (s->closing)
            continue;
        if (s->ping_sent_ms) {
            if (now - s->ping_sent_ms >= KEEPALIVE_PONG_MS) {
                sb_log(svc->events, SB_INFO, "client %llu (%s) did not answer a ping for %d s: dropping",
                       (unsigned long long)s->id, s->peer, KEEPALIVE_PONG_MS / 1000);
                s->closing = 1; /* it reads nothing, so no close frame: drop it now */
                lws_set_timeout(s->wsi, PENDING_TIMEOUT_LAGGING, LWS_TO_KILL_ASYNC);
            }
        } else if (now >= s->next_ping_ms) {
            s->ping_sent_ms = now;
            s->ping_due = 1;
            lws_callback_on_writable(s->wsi);
        }
    }
    lws_sul_schedule(svc->ctx, 0, &svc->keepalive, keepalive_scan, KEEPALIVE_SCAN_US);
}

void ws_keepalive_start(struct service *svc)
{
    lws_sul_schedule(svc->ctx, 0, &svc->keepalive, keepalive_scan, KEEPALIVE_SCAN_US);
}

static void session_pong(struct session *s)
{
    s->ping_sent_ms = 0;
    s->next_ping_ms = mono_us() / 1000 + KEEPALIVE_PING_MS;
}

/* ---- cross-thread wake-ups ---- */

static void stop_deadline_reached(lws_sorted_usec_list_t *sul)
{
    struct service *svc = lws_container_of(sul, struct service, stop_deadline);
    if (svc->n_connections)
        sb_log(svc->events, SB_WARNING, "%zu clients did not close in time; dropping them",
               svc->n_connections);
    svc->leave_loop = 1;
}

static void begin_shutdown(struct service *svc)
{
    svc->stopping = 1;
    lws_sul_cancel(&svc->keepalive);
    for (struct session *s = svc->sessions; s; s = s->next)
        session_close_with(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutdown");
    if (svc->n_connections == 0)
        svc->leave_loop = 1;
    else
        lws_sul_schedule(svc->ctx, 0, &svc->stop_deadline, stop_deadline_reached,
                         STOP_DEADLINE_US);
}

/* A new snapshot is about to replace the current one: every subscribed client that has not
 * been sent the current one yet (a slow reader) will never see it. */
static void count_conflated(struct service *svc)
{
    for (const struct session *s = svc->sessions; s; s = s->next)
        if (update_pending(s))
            svc->counters.conflated_updates++;
}

/* Wakes coalesce and can be spurious: take everything that is pending each time. */
static void drain_mailbox(struct service *svc)
{
    pthread_mutex_lock(&svc->lock);
    struct snapshot *s = svc->pending;
    svc->pending = NULL;
    int stop = svc->stop_requested;
    pthread_mutex_unlock(&svc->lock);

    if (s) {
        if (svc->current)
            count_conflated(svc);
        snapshot_unref(svc->current);
        svc->current = s;
        if (!svc->stopping)
            fan_out(svc);
    }
    if (stop && !svc->stopping)
        begin_shutdown(svc);
}

int ws_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len)
{
    struct session *s = user;
    struct service *svc = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain_mailbox(svc);
        return 0; /* nonzero would free the cancel pipe's wsi (lws #2168) */
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (check_upgrade_request(wsi, svc))
            return 1;
        if (!request_host_allowed(wsi, svc))
            return refuse_upgrade(wsi, "403 Forbidden", "", "host not allowed\n");
        return check_origin(wsi, svc);
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        service_accept_ok(svc);
        return pending_accepted(svc, wsi) < 0 ? -1 : 0;
    case LWS_CALLBACK_WSI_DESTROY:
        pending_finished(svc, wsi);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws 4.1.6 answers most invalid close codes with 1002 itself, but echoes a 1-byte
         * payload and codes from 5000 up (RFC 6455 5.5.1, 7.4). */
        if (!close_payload_valid(in, len)) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"invalid close frame", 19);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        session_established(s, wsi, svc);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!s->closing) /* after a close decision, the rest of the input is ignored */
            session_receive(s, in, len);
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (s->svc)
            session_pong(s);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return session_writeable(s);
    case LWS_CALLBACK_CLOSED:
        session_closed(s);
        return 0;
    /* A connection closed before its headers were parsed has no per-session data. */
    case LWS_CALLBACK_HTTP:
        return s ? http_begin(s, wsi, svc, (const char *)in) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return s ? http_write_body(s, wsi) : -1;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s) {
            msgbuf_unref(s->http_body);
            s->http_body = NULL;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
