/* ws_protocol.c - the WebSocket protocol: per-connection sessions, auth, replies, the callback. */
#include "ws_protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "connection.h"
#include "dispatch.h"
#include "fanout.h"
#include "handshake.h"
#include "http_protocol.h"
#include "jwt.h"
#include "log.h"
#include "gql_message.h"
#include "gql_protocol.h"
#include "msgbuf.h"
#include "pmd_extension.h"
#include "rate_limit.h"
#include "service.h"
#include "session.h"
#include "ticker.h"
#include "timeutil.h"

/* Keepalive: a ping after 20 s without a pong, a drop 20 s after an unanswered ping (the
 * service's one timer calls session_keepalive for every connection once a second). */
#define KEEPALIVE_PING_MS 20000
#define KEEPALIVE_PONG_MS 20000
/* The first ping comes up to this much sooner, by connection id: clients that connected together
 * (a restart, a reconnecting dashboard fleet) would otherwise all be pinged in one second, every
 * 20 s, and their pongs read back in the next, on top of that second's fan-out.  Each later ping
 * follows its pong by KEEPALIVE_PING_MS, so the spread lasts. */
#define KEEPALIVE_STAGGER_SLOTS 10
#define KEEPALIVE_STAGGER_MS 1000
/* A client with no token in its handshake has this long to send {"type":"auth"}. */
#define AUTH_DEADLINE_US (5 * LWS_US_PER_SEC)

const size_t ws_session_size = sizeof(struct session);

/* The accessors of ws_protocol.h, one line each. */
const struct session *session_next(const struct session *s) { return s->next; }
struct session *session_next_rw(struct session *s) { return s->next; }
uint64_t session_id(const struct session *s) { return s->id; }
const char *session_peer(const struct session *s) { return s->peer; }
const char *session_user_id(const struct session *s) { return s->user_id; }
int session_admitted(const struct session *s) { return s->admitted; }
const struct fanout_sub *session_fanout_sub(const struct session *s) { return &s->sub; }
struct fanout_sub *session_fanout_sub_rw(struct session *s) { return &s->sub; }
struct pmd_conn *session_pmd(struct session *s) { return &s->pmd; }
const struct gql_conn *session_gql(const struct session *s) { return s->gql; }

/* Two turns ahead: when s's turn comes, the walk already loaded s (last turn) and asks for the
 * next session's GraphQL state and for the session after that.  Loading s->next's fields here
 * does not wait, since the previous turn loaded that session.  A GraphQL connection's state is
 * its own allocation, which the walk reads right away (gql->ops, then each op's live flag): the
 * next session's is asked for here, its pointer one turn before that (a profile at 10,000
 * GraphQL clients had 3 % of the process waiting on those loads in fanout_publish).  The
 * connection itself (struct lws, private to lws) is not loaded ahead: a ws:// write reads one
 * field of it (lws_partial_buffered), since session_send writes to the socket itself. */
void session_prefetch(const struct session *s)
{
    const struct session *n = s->next;
    if (!n)
        return;
    if (n->gql)
        __builtin_prefetch(n->gql);
    const struct session *nn = n->next;
    if (!nn)
        return;
    __builtin_prefetch(nn);              /* the walk's fields: the struct's first 72 bytes */
    __builtin_prefetch(&nn->closing);
}

int session_subscription(const struct session *s, const char **skill, size_t *skill_len)
{
    *skill = NULL;
    *skill_len = 0;
    if (!s->sub.group)
        return 0;
    *skill = fanout_group_skill(s->sub.group, skill_len);
    return 1;
}

void session_close(struct session *s, enum sb_close_why why)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->close_code = sb_close_codes[why].code;
    s->close_reason = sb_close_codes[why].reason;
    lws_callback_on_writable(s->wsi);
    /* (On stop, the service's own deadline covers every connection at once.) */
    if (!s->svc->stopping)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_LAGGING, SB_CLOSE_GRACE_S);
}

void session_close_out_of_memory(struct session *s)
{
    session_close(s, SB_CLOSE_OUT_OF_MEMORY);
}

/* Once the replies waiting reach the bound, the client is closed 1008: the queue holds at most
 * the bound plus one reply (a reply may be larger than the bound by itself: a 1,440-point
 * history_response). */
void session_queue_reply(struct session *s, struct msgbuf *m)
{
    if (s->out_bytes >= SB_MAX_QUEUED_REPLY_BYTES) {
        msgbuf_unref(m);
        s->svc->counters.closed_slow_consumer++;
        sb_log(s->svc->events, SB_WARNING, "client %llu (%s) is not reading its replies: closing",
               (unsigned long long)s->id, s->peer);
        session_close(s, SB_CLOSE_SLOW_CONSUMER);
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

/* Switch the session's group; Python's `clients` view reads it under the lock. */
static void set_group(struct session *s, struct fanout_group *g)
{
    struct service *svc = s->svc;
    pthread_mutex_lock(&svc->lock);
    struct fanout_group *old = s->sub.group;
    s->sub.group = g;
    pthread_mutex_unlock(&svc->lock);
    fanout_leave(&svc->fan, old);
}

static void check_token(struct session *s, const char *token, size_t len, const char *source);

static void apply(struct session *s, const struct dispatch_result *res)
{
    struct service *svc = s->svc;
    switch (res->action) {
    case DA_SUBSCRIBE: {
        struct fanout_group *g = fanout_join(&svc->fan, res->skill, res->skill_len);
        if (!g) {
            session_close_out_of_memory(s);
            return;
        }
        set_group(s, g);
        if (res->resume)
            fanout_resume_after(&s->sub, res->resume_seq); /* every missed update, in order */
        else
            fanout_skip_to(&s->sub, 0); /* the current snapshot, in the new form, is due at once */
        break;
    }
    case DA_UNSUBSCRIBE:
        set_group(s, NULL);
        break;
    case DA_AUTH:
        check_token(s, res->token, strlen(res->token), "auth message");
        break;
    case DA_NONE:
        break;
    }
}

static void handle_message(struct session *s)
{
    struct service *svc = s->svc;
    struct dispatch_result res;
    struct msgbuf *reply = msgbuf_new(256);
    char epoch[SB_EPOCH_LEN + 1];
    if (!svc->fan.current)
        ticker_epoch(svc->ticker, epoch);
    struct dispatch_env env = {
        .snap = svc->fan.current,
        /* The epoch of the snapshot the reply's seq comes from: one consistent pair, even while a
         * publisher taking over or an edge switches numbering. */
        .epoch = svc->fan.current ? svc->fan.current->epoch : epoch,
        .recovery = svc->ticker->recovery,
        .history = svc->ticker->history,
        .auth_pending = s->auth_pending,
        .now_ms = now_unix_ms(),
    };

    if (!reply || dispatch_message(s->rx.data, s->rx.len, s->rx.binary, &env, &res,
                                   &reply->jb) < 0) {
        msgbuf_unref(reply);
        session_close_out_of_memory(s);
        return;
    }
    apply(s, &res);
    dispatch_result_free(&res);
    if (reply->jb.len)
        session_queue_reply(s, reply);
    else
        msgbuf_unref(reply);
    if (fanout_update_pending(&s->svc->fan, &s->sub))
        lws_callback_on_writable(s->wsi);
}

_Static_assert(RATE_LIMIT_PER_S == 20 && RATE_LIMIT_BURST == 40,
              "the rate_limited message below quotes these limits");

/* Over the rate limit: drop the message and say so, or close when it has gone on too long. */
static void rate_limited(struct session *s, enum rl_verdict verdict)
{
    struct service *svc = s->svc;
    if (verdict == RL_CLOSE) {
        svc->counters.closed_rate_limit++;
        sb_log(svc->events, SB_WARNING, "client %llu (%s) exceeded the rate limit for %d s: closing",
               (unsigned long long)s->id, s->peer, RATE_LIMIT_SUSTAIN_MS / 1000);
        session_close(s, SB_CLOSE_RATE_LIMIT);
        return;
    }
    svc->counters.rate_limited_messages++;
    struct msgbuf *reply = msgbuf_new(160);
    if (!reply) {
        session_close_out_of_memory(s);
        return;
    }
    dispatch_write_error(&reply->jb, SB_ERR_RATE_LIMITED,
                         "too many messages: the limit is 20 per second with bursts of 40; message dropped",
                         NULL);
    session_queue_reply(s, reply);
}

/*
 * One chunk of a client message, inflated here when its first frame had RSV1 (lws passes
 * compressed payloads through: pmd_extension.h).  Every close decided here goes through
 * session_close (close frame from the next WRITEABLE), and the rest of the input is then
 * ignored.  UTF-8 is checked here on the whole (inflated) text message: lws's own check would
 * see compressed bytes.
 */
static void receive(struct session *s, const void *in, size_t len)
{
    struct service *svc = s->svc;
    struct lws *wsi = s->wsi;
    int final = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);

    switch (pmd_receive(&s->pmd.inflating, &s->rx, in, len, lws_is_first_fragment(wsi),
                        (lws_get_reserved_bits(wsi) & 0x40) != 0, lws_frame_is_binary(wsi), final,
                        svc->cfg.max_message_size)) {
    case PMD_RX_OK:
        break;
    case PMD_RX_TOO_LARGE:
        svc->counters.closed_too_large++;
        rx_consumed(&s->rx);
        session_close(s, SB_CLOSE_TOO_LARGE);
        return;
    case PMD_RX_NOMEM:
        rx_consumed(&s->rx);
        session_close_out_of_memory(s);
        return;
    case PMD_RX_BAD_DATA:
        rx_consumed(&s->rx);
        session_close(s, SB_CLOSE_BAD_DEFLATE);
        return;
    }
    if (!final)
        return;
    if (!s->rx.binary && !utf8_valid(s->rx.data, s->rx.len)) {
        rx_consumed(&s->rx);
        session_close(s, SB_CLOSE_BAD_UTF8);
        return;
    }

    svc->counters.messages_received++;
    enum rl_verdict verdict = rate_limit_take(&s->rate, mono_us() / 1000);
    if (s->gql) {
        /* graphql-transport-ws has no rate-limit message: an excess message is dropped. */
        if (verdict == RL_ALLOW)
            gql_receive(s);
        else if (verdict == RL_CLOSE)
            rate_limited(s, verdict);
    } else if (verdict == RL_ALLOW)
        handle_message(s);
    else
        rate_limited(s, verdict);
    rx_consumed(&s->rx);
}

struct msgbuf *session_claim_update(struct session *s, struct fanout_sub *sub)
{
    struct service *svc = s->svc;
    struct msgbuf *m = NULL;
    switch (fanout_claim(&svc->fan, sub, &m)) {
    case FC_OK:
        break;
    case FC_NOMEM:
        session_close_out_of_memory(s);
        break;
    case FC_BEHIND:
        svc->counters.closed_slow_consumer++;
        sb_log(svc->events, SB_WARNING,
               "client %llu (%s) read its replay too slowly: the updates it was owed left the "
               "recovery window; closing",
               (unsigned long long)s->id, s->peer);
        session_close(s, SB_CLOSE_REPLAY_BEHIND);
        break;
    }
    return m;
}

/* The keepalive ping, built whole.  lws 4.1.6 reports no RECEIVE_PONG for an empty pong, so
 * the ping has a payload for the pong to echo. */
static unsigned char ping_frame[] = {0x89, 0x02, 'k', 'a'}; /* FIN, ping; 2 bytes */

/*
 * A frame built whole (the tick's updates, the keepalive ping) goes to a ws:// socket with one
 * send(), the least a fan-out can do: lws_write would walk its role and extension layers (and
 * the fields of struct lws they read) only to reach the same send().  What the kernel does not
 * take, and every write while lws still holds an unsent tail, goes through lws_write as raw
 * bytes: lws keeps the rest, finishes it through POLLOUT and reports it as written, so the
 * caller may free (or reuse) the frame at once.  On TLS it all goes through lws_write.
 */
static int send_whole(struct session *s, unsigned char *frame, size_t n)
{
    size_t sent = 0;
    if (s->fd >= 0 && !lws_partial_buffered(s->wsi)) {
        ssize_t w = send(s->fd, frame, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        sent = w > 0 ? (size_t)w : 0;
    }
    if (sent < n && lws_write(s->wsi, frame + sent, n - sent, LWS_WRITE_RAW) < (int)(n - sent))
        return -1;
    return 0;
}

/* A frame built whole through send_whole; a text (a reply) through lws_write, which frames it. */
int session_send(struct session *s, const struct msgbuf *m)
{
    unsigned char *text = (unsigned char *)jb_text(&m->jb);
    if (m->frame_head ? send_whole(s, text - m->frame_head, m->frame_head + m->jb.len) < 0
                      : lws_write(s->wsi, text, m->jb.len, LWS_WRITE_TEXT) < (int)m->jb.len)
        return -1;
    s->svc->counters.messages_sent++;
    s->svc->counters.bytes_sent += m->jb.len;
    return 0;
}

/* One lws_write per WRITEABLE: close first, then a ping, then replies, then the latest update. */
static int writeable(struct session *s)
{
    struct msgbuf *m = NULL;

    if (s->closing) {
        const char *r = s->close_reason ? s->close_reason : "";
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code, (unsigned char *)r, strlen(r));
        return -1;
    }

    if (s->ping_due) {
        s->ping_due = 0;
        if (send_whole(s, ping_frame, sizeof(ping_frame)) < 0)
            return -1;
        if (s->out_head || fanout_update_pending(&s->svc->fan, &s->sub) ||
            (s->gql && gql_updates_pending(s)))
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
    } else if (fanout_update_pending(&s->svc->fan, &s->sub)) {
        m = session_claim_update(s, &s->sub);
        if (!m)
            return 0;
    } else if (s->gql) {
        return gql_write_update(s);
    } else {
        return 0;
    }

    int rc = session_send(s, m);
    msgbuf_unref(m);
    if (rc < 0)
        return -1;
    if (s->out_head || fanout_update_pending(&s->svc->fan, &s->sub) ||
        (s->gql && gql_updates_pending(s)))
        lws_callback_on_writable(s->wsi);
    return 0;
}

/*
 * The tick's fast path: write the new update to the socket at once, instead of asking lws for a
 * WRITEABLE callback, which costs two epoll_ctl calls and an event per client per tick.  Only
 * for sessions where that is safe: no TLS, nothing queued before it, and no partial write
 * pending in lws (lws_write keeps what the kernel did not take and finishes it through POLLOUT
 * itself).  Compressed clients qualify: their frames are built whole and lws runs no zlib.
 */
int session_can_push(const struct session *s)
{
    return s->fd >= 0 && !s->closing && !s->out_head && !lws_partial_buffered(s->wsi);
}

void session_deliver_update(struct session *s)
{
    if (s->gql) {
        gql_deliver_updates(s);
    } else if (s->sub.group && !s->sub.replaying && session_can_push(s)) {
        struct msgbuf *m = session_claim_update(s, &s->sub);
        if (m && session_send(s, m) < 0)
            session_close(s, SB_CLOSE_WRITE_FAILED);
        msgbuf_unref(m);
    } else if (s->sub.group) {
        lws_callback_on_writable(s->wsi);
    }
}

/* With max_clients clients admitted, close s with 1013 and return 1; else return 0. */
static int reject_if_full(struct session *s)
{
    struct service *svc = s->svc;
    if (!svc->cfg.max_clients || svc->n_sessions < svc->cfg.max_clients)
        return 0;
    svc->counters.rejected_full++;
    sb_log(svc->events, SB_WARNING, "rejecting %s: server full (%zu clients)", s->peer,
           svc->cfg.max_clients);
    session_close(s, SB_CLOSE_SERVER_FULL);
    return 1;
}

/* Let an authenticated (or unauthenticated, when allowed) client in: it joins the
 * "all skills" group, becomes visible in `clients` and gets its greeting.  Nothing else
 * follows until the next tick: clients written for session-buddy's pure-Python server read
 * the reply to their first request as the frame after `connected`. */
int session_take_seat(struct session *s)
{
    struct service *svc = s->svc;
    /* Only clients take seats: a connection still authenticating does not. */
    if (reject_if_full(s))
        return -1;
    pending_finished(svc, s->wsi);
    pthread_mutex_lock(&svc->lock);
    svc->n_sessions++;
    s->admitted = 1;
    pthread_mutex_unlock(&svc->lock);
    return 0;
}

static void admit(struct session *s)
{
    struct service *svc = s->svc;
    struct fanout_group *all = fanout_join(&svc->fan, NULL, 0);
    struct msgbuf *hello = msgbuf_new(192);
    if (!all || !hello) {
        fanout_leave(&svc->fan, all);
        msgbuf_unref(hello);
        session_close_out_of_memory(s);
        return;
    }
    if (session_take_seat(s) < 0) {
        fanout_leave(&svc->fan, all);
        msgbuf_unref(hello);
        return;
    }
    set_group(s, all);
    /* Every snapshot built so far counts as sent, also one still on its way to this thread:
     * the first update is the next tick's. */
    struct snapshot *latest = ticker_latest(svc->ticker);
    uint64_t seen = latest ? latest->seq : 0;
    fanout_skip_to(&s->sub, seen);

    if (s->authenticated)
        sb_log(svc->events, SB_INFO, "client %llu connected from %s as user '%s' (%zu connected)",
               (unsigned long long)s->id, s->peer, s->user_id, svc->n_sessions);
    else
        sb_log(svc->events, SB_INFO, "client %llu connected from %s (%zu connected)",
               (unsigned long long)s->id, s->peer, svc->n_sessions);
    char epoch[SB_EPOCH_LEN + 1];
    if (!latest)
        ticker_epoch(svc->ticker, epoch);
    dispatch_write_connected(&hello->jb, s->authenticated, latest ? latest->epoch : epoch, seen,
                             now_unix_ms());
    snapshot_unref(latest);
    session_queue_reply(s, hello);
}

/* Count and log a failed authentication (the token itself is never logged). */
static void log_auth_failure(struct session *s, const char *why)
{
    struct service *svc = s->svc;
    svc->counters.auth_failures++;
    sb_log_topic(svc->events, SB_TOPIC_AUTH, SB_WARNING,
                 "client %llu (%s): authentication failed: %s", (unsigned long long)s->id, s->peer,
                 why);
}

/* The connection's protocol closes a failed authentication with its own code. */
static void auth_failed(struct session *s, const char *why)
{
    log_auth_failure(s, why);
    session_close(s, s->gql ? SB_CLOSE_GQL_FORBIDDEN : SB_CLOSE_BAD_TOKEN);
}

int session_verify_token(struct session *s, const char *token, size_t len, const char *source)
{
    struct service *svc = s->svc;
    struct jwt_claims claims;
    char why[96];

    enum jwt_status st = jwt_verify(token, len, svc->cfg.jwt_secret, svc->cfg.jwt_secret_len,
                                    (double)now_unix_ms() / 1000.0, &claims);
    if (st != JWT_OK) {
        snprintf(why, sizeof(why), "%s (token from the %s)", jwt_status_text(st), source);
        log_auth_failure(s, why);
        return -1;
    }
    memcpy(s->user_id, claims.user_id, sizeof(s->user_id));
    jwt_claims_free(&claims);
    s->authenticated = 1;
    sb_log_topic(svc->events, SB_TOPIC_AUTH, SB_INFO,
                 "client %llu (%s) authenticated as user '%s' (token from the %s)",
                 (unsigned long long)s->id, s->peer, s->user_id, source);
    return 0;
}

/* The auth message's token: admit the client, or close it 4001. */
static void check_token(struct session *s, const char *token, size_t len, const char *source)
{
    lws_sul_cancel(&s->auth_deadline);
    s->auth_pending = 0;
    if (session_verify_token(s, token, len, source) < 0)
        session_close(s, SB_CLOSE_BAD_TOKEN);
    else
        admit(s);
}

static void auth_deadline_reached(lws_sorted_usec_list_t *sul)
{
    struct session *s = lws_container_of(sul, struct session, auth_deadline);
    if (s->gql) {
        if (!s->gql->init_seen && !s->closing)
            session_close(s, SB_CLOSE_GQL_INIT_TIMEOUT);
        return;
    }
    if (s->auth_pending && !s->closing) {
        s->auth_pending = 0;
        auth_failed(s, "no token within 5 s");
    }
}

/* The handshake's token (Authorization header or ?token=), verified: 1 when it carried a valid
 * one, 0 when it carried none, -1 when the connection is closing (a bad or over-long token gets
 * the protocol's code; or no memory). */
static int handshake_auth(struct session *s, struct lws *wsi)
{
    char *token = malloc(HANDSHAKE_MAX_TOKEN);
    if (!token) {
        session_close_out_of_memory(s);
        return -1;
    }
    int rc = 0, n = handshake_token(wsi, token, HANDSHAKE_MAX_TOKEN);
    if (n < 0) {
        auth_failed(s, "Authorization header too long");
        rc = -1;
    } else if (n > 0) {
        rc = session_verify_token(s, token, (size_t)n, "handshake") < 0 ? -1 : 1;
        if (rc < 0)
            session_close(s, s->gql ? SB_CLOSE_GQL_FORBIDDEN : SB_CLOSE_BAD_TOKEN);
    }
    memset(token, 0, HANDSHAKE_MAX_TOKEN);
    free(token);
    return rc;
}

/* The handshake is done: the client's first message (auth, or connection_init) has its own 5 s. */
static void start_auth_deadline(struct session *s, struct lws *wsi)
{
    pending_restart(s->svc, wsi);
    lws_sul_schedule(lws_get_context(wsi), 0, &s->auth_deadline, auth_deadline_reached,
                     AUTH_DEADLINE_US);
}

/* Authentication on: the handshake's token, or 5 s to send an auth message. */
static void authenticate(struct session *s, struct lws *wsi)
{
    int rc = handshake_auth(s, wsi);
    if (rc > 0) {
        admit(s);
    } else if (rc == 0) {
        s->auth_pending = 1;
        start_auth_deadline(s, wsi);
    }
}

/* A graphql-transport-ws connection: authenticated by its handshake's token, if it has one
 * (else connection_init's payload may carry it), and given 5 s to send connection_init. */
static void start_graphql(struct session *s, struct lws *wsi)
{
    s->gql = calloc(1, sizeof(*s->gql));
    if (!s->gql) {
        session_close_out_of_memory(s);
        return;
    }
    if (s->svc->cfg.jwt_secret && handshake_auth(s, wsi) < 0)
        return;
    start_auth_deadline(s, wsi);
}

static int is_graphql(struct lws *wsi)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);
    return p && p->name && !strcmp(p->name, GQL_PROTOCOL_NAME);
}

static void established(struct session *s, struct lws *wsi, struct service *svc)
{
    s->wsi = wsi;
    s->svc = svc;
    s->fd = lws_is_ssl(wsi) ? -1 : (int)lws_get_socket_fd(wsi);
    handshake_peer(wsi, s->peer, sizeof(s->peer));

    if (svc->stopping) {
        session_close(s, SB_CLOSE_SHUTDOWN);
        return;
    }
    if (reject_if_full(s))
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
    if (id_map_put(&svc->sessions_by_id, s->id, s) < 0) {
        s->id = 0; /* never indexed, so closed() unindexes nothing */
        session_close_out_of_memory(s);
        return;
    }
    rate_limit_init(&s->rate, mono_us() / 1000);
    s->next_ping_ms = mono_us() / 1000 + KEEPALIVE_PING_MS -
                      (int64_t)(s->id % KEEPALIVE_STAGGER_SLOTS) * KEEPALIVE_STAGGER_MS;
    s->sub.deflate_bits = s->pmd.agreed ? s->pmd.terms.window_bits : 0;

    if (is_graphql(wsi))
        start_graphql(s, wsi);
    else if (svc->cfg.jwt_secret)
        authenticate(s, wsi);
    else
        admit(s);
}

static void closed(struct session *s)
{
    struct service *svc = s->svc;
    if (!svc)
        return; /* never established */

    lws_sul_cancel(&s->auth_deadline);
    pmd_inflater_free(&s->pmd.inflating);
    gql_closed(s);
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
        id_map_del(&svc->sessions_by_id, s->id);
        struct fanout_group *g = s->sub.group;
        s->sub.group = NULL;
        if (s->admitted)
            svc->n_sessions--;
        pthread_mutex_unlock(&svc->lock);
        fanout_leave(&svc->fan, g);
        if (s->admitted)
            sb_log(svc->events, SB_INFO, "client %llu (%s) disconnected (%zu connected)",
                   (unsigned long long)s->id, s->peer, svc->n_sessions);
    }
    memset(s, 0, sizeof(*s));
    service_connection_closed(svc);
}

struct session *session_find(struct service *svc, uint64_t id)
{
    return id_map_get(&svc->sessions_by_id, id);
}

void session_keepalive(struct session *s, int64_t now_ms)
{
    if (s->closing)
        return;
    if (s->ping_sent_ms) {
        if (now_ms - s->ping_sent_ms >= KEEPALIVE_PONG_MS) {
            sb_log(s->svc->events, SB_INFO, "client %llu (%s) did not answer a ping for %d s: dropping",
                   (unsigned long long)s->id, s->peer, KEEPALIVE_PONG_MS / 1000);
            s->closing = 1; /* it reads nothing, so no close frame: drop it now */
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_LAGGING, LWS_TO_KILL_ASYNC);
        }
    } else if (now_ms >= s->next_ping_ms) {
        /* At once where the tick could write too, which saves the WRITEABLE round trip (two
         * epoll_ctl calls and an event); else from the next WRITEABLE, before anything queued. */
        s->ping_sent_ms = now_ms;
        if (!session_can_push(s)) {
            s->ping_due = 1;
            lws_callback_on_writable(s->wsi);
        } else if (send_whole(s, ping_frame, sizeof(ping_frame)) < 0) {
            session_close(s, SB_CLOSE_WRITE_FAILED);
        }
    }
}

static void pong(struct session *s)
{
    s->ping_sent_ms = 0;
    s->next_ping_ms = mono_us() / 1000 + KEEPALIVE_PING_MS;
}

int ws_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len)
{
    struct session *s = user;
    struct service *svc = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        service_drain_mailbox(svc);
        return 0; /* nonzero would free the cancel pipe's wsi (lws #2168) */
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
    case LWS_CALLBACK_WSI_DESTROY:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return connection_event(wsi, reason, svc, in, len);
    case LWS_CALLBACK_ADD_HEADERS:
        return s ? pmd_extension_add_headers(&s->pmd, in) : 0;
    case LWS_CALLBACK_ESTABLISHED:
        established(s, wsi, svc);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!s->closing) /* after a close decision, the rest of the input is ignored */
            receive(s, in, len);
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (s->svc)
            pong(s);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return writeable(s);
    case LWS_CALLBACK_CLOSED:
        closed(s);
        return 0;
    /* A connection closed before its headers were parsed has no per-session data. */
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        return http_protocol_handle(s ? &s->http : NULL, wsi, reason, in, len);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
