/* redis_publisher.c - the publisher role: append every tick's state to Redis under a lease. */
#include "redis_publisher.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "log.h"
#include "recovery.h"
#include "state_codec.h"
#include "timeutil.h"

#define REPLY_TIMEOUT_S 3.0
#define RENEW_EVERY_S 0.5

/*
 * KEYS: lease, meta, stream.  ARGV: token, lease ms, epoch, seq, maxlen, state, create.
 * Returns {0, holder} fenced (another publisher holds the lease), {2, seq} already written,
 * {1, seq} appended, {3, 0} no meta hash (this is the first append, or Redis has lost its data):
 * the caller sends again with create = 1, which makes the meta hash with its epoch (and a new
 * stream); {4, epoch, seq} the stream is numbered by another run (this publisher takes it
 * over): the caller numbers on from there.
 */
static const char APPEND_LUA[] =
    "local holder = redis.call('GET', KEYS[1])\n"
    "if holder and holder ~= ARGV[1] then return {0, holder} end\n"
    "local seq = tonumber(ARGV[4])\n"
    "local epoch = redis.call('HGET', KEYS[2], 'epoch')\n"
    "if not epoch and ARGV[7] ~= '1' then return {3, 0} end\n"
    "if epoch and epoch ~= ARGV[3] then\n"
    "  return {4, epoch, redis.call('HGET', KEYS[2], 'seq')}\n"
    "end\n"
    "if not epoch then\n"
    "  redis.call('DEL', KEYS[3])\n"
    "  redis.call('HSET', KEYS[2], 'epoch', ARGV[3], 'seq', 0)\n"
    "elseif seq <= tonumber(redis.call('HGET', KEYS[2], 'seq')) then\n"
    "  return {2, redis.call('HGET', KEYS[2], 'seq')}\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "redis.call('HSET', KEYS[2], 'seq', seq)\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[3], 's', ARGV[4], 'd',"
    " ARGV[6])\n"
    "return {1, seq}\n";

/* KEYS: lease.  ARGV: token, lease ms.  Renews the lease if held: 1; another holds it: 0; no
 * lease (Redis lost it): -1, and the next append takes it again. */
static const char RENEW_LUA[] =
    "local holder = redis.call('GET', KEYS[1])\n"
    "if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "if holder then return 0 end\n"
    "return -1\n";

int redis_keys(const char *prefix, char **lease, char **meta, char **stream)
{
    size_t n = strlen(prefix) + 16;
    *lease = malloc(n);
    *meta = malloc(n);
    *stream = malloc(n);
    if (!*lease || !*meta || !*stream) {
        free(*lease);
        free(*meta);
        free(*stream);
        *lease = *meta = *stream = NULL;
        return -1;
    }
    snprintf(*lease, n, "%s:lease", prefix);
    snprintf(*meta, n, "%s:meta", prefix);
    snprintf(*stream, n, "%s:stream", prefix);
    return 0;
}

char *redis_history_key(const char *prefix)
{
    size_t n = strlen(prefix) + 16;
    char *key = malloc(n);
    if (key)
        snprintf(key, n, "%s:history", prefix);
    return key;
}

static void kick(struct redis_publisher *p);

static struct snapshot *backlog_pop(struct redis_publisher *p)
{
    struct snapshot *s = p->backlog[p->head];
    p->backlog[p->head] = NULL;
    p->head = (p->head + 1) % PUBLISHER_BACKLOG;
    p->n--;
    return s;
}

static void drop_backlog(struct redis_publisher *p)
{
    while (p->n)
        snapshot_unref(backlog_pop(p));
}

/*
 * The first append of this run finds no meta hash: the stream starts with this run's epoch.
 * Put the retained window (what clients may already resume from) before the backlog, as much
 * as fits, so that an edge that starts now can serve the window.
 */
static void restore_window(struct redis_publisher *p)
{
    struct snapshot *found[PUBLISHER_BACKLOG];
    size_t k = 0, room = PUBLISHER_BACKLOG - p->n;
    uint64_t first = p->backlog[p->head]->seq, seq = 0;
    int gap;
    struct snapshot *s;

    while (room && (s = recovery_next(p->recovery, seq, &gap))) {
        seq = s->seq;
        if (seq >= first) {
            snapshot_unref(s);
            break;
        }
        if (k == room) { /* keep the newest that fit */
            snapshot_unref(found[0]);
            memmove(found, found + 1, (k - 1) * sizeof(*found));
            k--;
        }
        found[k++] = s;
    }
    for (size_t i = k; i-- > 0;) {
        p->head = (p->head + PUBLISHER_BACKLOG - 1) % PUBLISHER_BACKLOG;
        p->backlog[p->head] = found[i];
        p->n++;
    }
    p->creating = 1;
}

/*
 * Redis lost its data (restarted empty) after this run appended: the stream starts again in a
 * new epoch (as Centrifugo makes one when its meta hash is missing), so that a client resuming
 * with the old epoch is told recovered:false instead of being matched against seqs that Redis
 * no longer has.  The ticker numbers from seq 1 of the new epoch, asked for at once; ticks of
 * the old numbering still coming are dropped in push.
 */
static void start_new_epoch(struct redis_publisher *p)
{
    char epoch[SB_EPOCH_LEN + 1];
    if (epoch_new(epoch) < 0) {
        redis_link_fail(&p->link, "no random epoch");
        return;
    }
    drop_backlog(p);
    memcpy(p->adopting, epoch, sizeof(p->adopting));
    p->creating = 1;
    sb_log(p->events, SB_WARNING, "redis publisher: Redis lost its data; the stream starts again "
           "in the new epoch %s (clients resuming across it start over)", epoch);
    p->adopt(p->adopt_ctx, epoch, 0);
}

/*
 * The lease was free and the stream is numbered by another publisher's run: go on with its
 * numbering (the ticker numbers its next tick epoch/seq + 1, asked for at once), so that clients
 * see one stream with no gap and no seq written twice.  Snapshots of the old numbering still
 * coming from the ticker are dropped in push.
 */
static void take_over(struct redis_publisher *p, const redisReply *reply)
{
    const redisReply *e = reply->elements == 3 ? reply->element[1] : NULL;
    const redisReply *q = e ? reply->element[2] : NULL;
    char *end = NULL;
    uint64_t seq = q && q->type == REDIS_REPLY_STRING ? strtoull(q->str, &end, 10) : 0;
    if (!e || e->type != REDIS_REPLY_STRING || e->len != SB_EPOCH_LEN || !end || *end) {
        sb_log(p->events, SB_ERROR, "redis publisher: unexpected meta hash in Redis");
        redis_link_fail(&p->link, NULL);
        return;
    }
    drop_backlog(p);
    memcpy(p->adopting, e->str, SB_EPOCH_LEN);
    p->adopting[SB_EPOCH_LEN] = '\0';
    sb_log(p->events, SB_INFO, "redis publisher: taking over the stream of epoch %s after seq %"
           PRIu64, p->adopting, seq);
    p->adopt(p->adopt_ctx, p->adopting, seq);
}

static void on_append(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_publisher *p = privdata;
    redisReply *reply = r;
    (void)ac;
    p->in_flight = 0;
    ev_timer_stop(p->link.loop, &p->reply_timeout);
    if (!reply)
        return; /* lost: the entry stays at the head of the backlog */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        sb_log(p->events, SB_ERROR, "redis publisher: unexpected reply to the append: %.200s",
               reply->type == REDIS_REPLY_ERROR ? reply->str : "(not an array)");
        redis_link_fail(&p->link, NULL);
        return;
    }
    long long verdict = reply->element[0]->integer;
    if (verdict == 3) {
        if (p->appended) {
            start_new_epoch(p);
            return;
        }
        restore_window(p);
        kick(p);
        return;
    }
    if (verdict == 4) {
        take_over(p, reply);
        return;
    }
    p->creating = 0;
    struct snapshot *s = backlog_pop(p);
    if (verdict == 0) {
        const redisReply *h = reply->element[1];
        snprintf(p->lease_holder, sizeof(p->lease_holder), "%.*s",
                 h->type == REDIS_REPLY_STRING ? (int)h->len : 0, h->str ? h->str : "");
        if (p->holder || !p->fenced)
            sb_log(p->events, SB_WARNING, "redis publisher: the lease is held by %s: standing by",
                   p->lease_holder);
        p->holder = 0;
        p->fenced++;
        snapshot_unref(s);
        drop_backlog(p); /* another holder numbers the stream now */
        return;
    }
    if (verdict == 1) {
        if (!p->holder)
            sb_log(p->events, SB_INFO, "redis publisher: holding the lease, appending from seq %"
                   PRIu64, s->seq);
        p->holder = 1;
        memcpy(p->lease_holder, p->token, sizeof(p->token));
        p->appended++;
        p->last_seq = s->seq;
    }
    snapshot_unref(s);
    kick(p);
}

/* Send the script for the oldest queued snapshot, if the link is ready and none is in flight. */
static void kick(struct redis_publisher *p)
{
    if (p->in_flight || !p->n || !p->link.ready)
        return;
    /* A standby waits a lease period after (re)connecting before it may take the lease: after
     * Redis lost its data (no lease left), the holder of before comes back first and goes on. */
    if (!p->holder && mono_us() - p->ready_since_us < (int64_t)PUBLISHER_LEASE_MS * 1000)
        return;
    struct snapshot *s = p->backlog[p->head];
    jbuf state;
    if (jb_init(&state, 0, 4096) < 0)
        return;
    state_encode(s, &state);
    if (state.failed) {
        jb_free(&state);
        return;
    }
    char lease_ms[16], seq[24];
    snprintf(lease_ms, sizeof(lease_ms), "%d", PUBLISHER_LEASE_MS);
    snprintf(seq, sizeof(seq), "%" PRIu64, s->seq);
    const char *argv[] = {"EVAL", APPEND_LUA, "3", p->lease_key, p->meta_key, p->stream_key,
                          p->token, lease_ms, s->epoch, seq, p->maxlen,
                          state.mem + state.head, p->creating ? "1" : "0"};
    size_t argvlen[13];
    for (size_t i = 0; i < 13; i++)
        argvlen[i] = i == 11 ? state.len : strlen(argv[i]);
    if (redis_link_command(&p->link, on_append, p, 13, argv, argvlen) == 0) {
        p->in_flight = 1;
        ev_timer_set(&p->reply_timeout, REPLY_TIMEOUT_S, 0.);
        ev_timer_start(p->link.loop, &p->reply_timeout);
    }
    jb_free(&state);
}

static void on_renew(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_publisher *p = privdata;
    redisReply *reply = r;
    (void)ac;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && p->holder) {
        sb_log(p->events, SB_WARNING, "redis publisher: lost the lease: standing by");
        p->holder = 0;
    }
}

static void renew_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct redis_publisher *p = w->data;
    if (!p->holder) {
        kick(p); /* a standby's wait may have ended */
        return;
    }
    if (p->in_flight)
        return;
    char lease_ms[16];
    snprintf(lease_ms, sizeof(lease_ms), "%d", PUBLISHER_LEASE_MS);
    const char *argv[] = {"EVAL", RENEW_LUA, "1", p->lease_key, p->token, lease_ms};
    redis_link_command(&p->link, on_renew, p, 6, argv, NULL);
}

/* The holder copies its whole history store to P:history when it changed (one HSET of v, the
 * version, and d, the store: an edge reads one whole store, and only when v moved).  Standbys do
 * not: their store is the same DB's, but they do not number the stream. */
static void history_sync_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct redis_publisher *p = w->data;
    uint64_t changes = history_changes(p->history);
    if (!p->holder || !p->link.ready || (p->history_synced && changes == p->history_changes))
        return;
    jbuf blob;
    if (jb_init(&blob, 0, 4096) < 0)
        return;
    history_encode(p->history, now_unix_ms(), &blob);
    char version[64];
    snprintf(version, sizeof(version), "%s:%" PRIu64, p->token, changes);
    const char *argv[] = {"HSET", p->history_key, "v", version, "d", blob.mem + blob.head};
    size_t argvlen[] = {4, strlen(p->history_key), 1, strlen(version), 1, blob.len};
    if (!blob.failed && redis_link_command(&p->link, NULL, NULL, 6, argv, argvlen) == 0) {
        p->history_synced = 1;
        p->history_changes = changes;
    }
    jb_free(&blob);
}

static void reply_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct redis_publisher *p = w->data;
    redis_link_fail(&p->link, "an append went unanswered");
}

static void on_ready(void *owner)
{
    struct redis_publisher *p = owner;
    p->ready_since_us = mono_us();
    p->history_synced = 0; /* Redis may have lost P:history meanwhile */
    kick(p);
}

static void on_lost(void *owner)
{
    struct redis_publisher *p = owner;
    p->in_flight = 0;
    ev_timer_stop(p->link.loop, &p->reply_timeout);
}

int redis_publisher_start(struct redis_publisher *p, struct ev_loop *loop,
                          const struct redis_target *target, const char *prefix, size_t maxlen,
                          struct recovery *recovery, struct history *history,
                          redis_publisher_adopt_fn adopt, void *adopt_ctx,
                          struct event_queue *events)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char bytes[16];

    memset(p, 0, sizeof(*p));
    p->events = events;
    p->recovery = recovery;
    p->history = history;
    p->adopt = adopt;
    p->adopt_ctx = adopt_ctx;
    if (RAND_bytes(bytes, (int)sizeof(bytes)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(bytes); i++) {
        p->token[2 * i] = hex[bytes[i] >> 4];
        p->token[2 * i + 1] = hex[bytes[i] & 15];
    }
    snprintf(p->maxlen, sizeof(p->maxlen), "%zu", maxlen);
    if (redis_keys(prefix, &p->lease_key, &p->meta_key, &p->stream_key) < 0)
        return -1;
    p->history_key = redis_history_key(prefix);
    if (!p->history_key ||
        redis_link_init(&p->link, loop, target, "publisher", events, on_ready, on_lost, p) < 0) {
        free(p->lease_key);
        free(p->meta_key);
        free(p->stream_key);
        free(p->history_key);
        p->lease_key = p->meta_key = p->stream_key = p->history_key = NULL;
        return -1;
    }
    ev_timer_init(&p->history_sync, history_sync_cb, 0.5, HISTORY_SYNC_MS / 1000.0);
    p->history_sync.data = p;
    ev_timer_start(loop, &p->history_sync);
    ev_timer_init(&p->reply_timeout, reply_timeout_cb, 0., 0.);
    ev_timer_init(&p->renew, renew_cb, RENEW_EVERY_S, RENEW_EVERY_S);
    p->reply_timeout.data = p->renew.data = p;
    ev_timer_start(loop, &p->renew);
    redis_link_start(&p->link);
    return 0;
}

/* Queue s (its reference passes here) after what is queued; a full backlog drops its oldest. */
static void enqueue(struct redis_publisher *p, struct snapshot *s)
{
    if (p->n == PUBLISHER_BACKLOG) {
        /* Never drop the one in flight: its reply pops the head. */
        size_t victim = p->in_flight ? (p->head + 1) % PUBLISHER_BACKLOG : p->head;
        snapshot_unref(p->backlog[victim]);
        if (victim == p->head) {
            p->backlog[p->head] = NULL;
            p->head = (p->head + 1) % PUBLISHER_BACKLOG;
            p->n--;
        } else {
            /* close the hole: shift the rest of the ring down by one */
            for (size_t i = 1; i + 1 < p->n; i++)
                p->backlog[(p->head + i) % PUBLISHER_BACKLOG] =
                    p->backlog[(p->head + i + 1) % PUBLISHER_BACKLOG];
            p->n--;
        }
        if (!p->dropped++)
            sb_log(p->events, SB_WARNING, "redis publisher: backlog full (%d updates): dropping the "
                   "oldest; edges will see a gap", PUBLISHER_BACKLOG);
    }
    p->backlog[(p->head + p->n) % PUBLISHER_BACKLOG] = s;
    p->n++;
}

void redis_publisher_push(struct redis_publisher *p, struct snapshot *s)
{
    /* A standby only ever offers its newest tick: should it take the lease, it goes on from now,
     * not from ticks the holder already covered. */
    if (!p->holder && !p->in_flight)
        drop_backlog(p);
    if (p->adopting[0]) {
        if (strcmp(s->epoch, p->adopting) != 0)
            return; /* a tick numbered before the takeover */
        p->adopting[0] = '\0';
    }
    /* The service's mailbox keeps only the newest snapshot: ticks that came faster than it was
     * drained (broadcast_metrics() in a burst) are taken from the recovery store, so the stream
     * has every seq. */
    if (p->holder && p->pushed_seq && !strcmp(p->pushed_epoch, s->epoch)) {
        uint64_t seq = p->pushed_seq;
        int gap;
        struct snapshot *missed;
        while ((missed = recovery_next(p->recovery, seq, &gap)) && missed->seq < s->seq) {
            seq = missed->seq;
            enqueue(p, missed);
        }
        snapshot_unref(missed);
    }
    p->pushed_seq = s->seq;
    memcpy(p->pushed_epoch, s->epoch, sizeof(p->pushed_epoch));
    snapshot_ref(s);
    enqueue(p, s);
    kick(p);
}

void redis_publisher_flush(struct redis_publisher *p)
{
    redis_link_flush(&p->link);
}

void redis_publisher_status(const struct redis_publisher *p, struct redis_status *out)
{
    memset(out, 0, sizeof(*out));
    out->role = "publisher";
    out->up = p->link.ready;
    out->holder = p->holder;
    memcpy(out->lease_holder, p->lease_holder, sizeof(out->lease_holder));
    out->appended = p->appended;
    out->fenced = p->fenced;
    out->dropped = p->dropped;
    out->reconnects = p->link.reconnects;
    out->backlog = p->n;
    out->seq = p->last_seq;
}

void redis_publisher_stop(struct redis_publisher *p)
{
    if (!p->lease_key)
        return;
    ev_timer_stop(p->link.loop, &p->renew);
    ev_timer_stop(p->link.loop, &p->history_sync);
    ev_timer_stop(p->link.loop, &p->reply_timeout);
    redis_link_stop(&p->link); /* the reply in flight is called back with NULL */
    redis_link_free(&p->link);
    drop_backlog(p);
    free(p->lease_key);
    free(p->meta_key);
    free(p->stream_key);
    free(p->history_key);
    p->lease_key = p->meta_key = p->stream_key = p->history_key = NULL;
}
