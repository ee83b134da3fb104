/* redis_edge.c - the edge role: follow the publisher's stream in Redis and hand each state on. */
#include "redis_edge.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "log.h"
#include "redis_publisher.h"
#include "state_codec.h"
#include "timeutil.h"

/* XREAD BLOCK answers within this time even when nothing is new (nil): silence past
 * REPLY_TIMEOUT_S is a dead connection, not a quiet stream (centrifugo#1189). */
#define BLOCK_MS "1000"
#define READ_COUNT "1000"
#define REPLY_TIMEOUT_S 3.0

/* KEYS: history.  ARGV: the version the edge holds.  0 when it is still the current one, else
 * {v, d} (both nil while no publisher has written one). */
static const char READ_HISTORY_LUA[] =
    "if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then return 0 end\n"
    "return redis.call('HMGET', KEYS[1], 'v', 'd')\n";

static void read_next(struct redis_edge *e);

static int64_t mono_ms(void)
{
    return mono_us() / 1000;
}

/* The value of field name in an entry's flat [f1, v1, f2, v2...] array, or NULL. */
static const redisReply *entry_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING && strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

/* Decode one entry and deliver it; a bad entry is counted and skipped. */
static void take_entry(struct redis_edge *e, const redisReply *entry, uint64_t behind)
{
    const redisReply *id = entry->type == REDIS_REPLY_ARRAY && entry->elements == 2 ?
                               entry->element[0] : NULL;
    const redisReply *fields = id ? entry->element[1] : NULL;
    if (!id || id->type != REDIS_REPLY_STRING || id->len >= sizeof(e->last_id) ||
        fields->type != REDIS_REPLY_ARRAY) {
        e->bad_entries++;
        return;
    }
    memcpy(e->last_id, id->str, id->len + 1);
    const redisReply *ep = entry_field(fields, "e"), *sq = entry_field(fields, "s");
    const redisReply *data = entry_field(fields, "d");
    char err[128];
    char *end = NULL;
    uint64_t seq = sq && sq->type == REDIS_REPLY_STRING ? strtoull(sq->str, &end, 10) : 0;
    struct snapshot *s = NULL;
    if (ep && ep->type == REDIS_REPLY_STRING && ep->len == SB_EPOCH_LEN && end && !*end && seq &&
        data && data->type == REDIS_REPLY_STRING)
        s = state_decode((const unsigned char *)data->str, data->len, ep->str, seq, err,
                         sizeof(err));
    else
        snprintf(err, sizeof(err), "missing or bad e, s or d field");
    if (!s) {
        if (!e->bad_entries++)
            sb_log(e->events, SB_ERROR, "redis edge: entry %s skipped: %s", e->last_id, err);
        return;
    }
    if (e->have_state && strcmp(e->epoch, s->epoch) == 0) {
        if (s->seq <= e->seq) { /* never twice */
            snapshot_unref(s);
            return;
        }
        if (s->seq != e->seq + 1) {
            e->gaps++;
            sb_log(e->events, SB_WARNING, "redis edge: gap in the stream: seq %" PRIu64 " after %"
                   PRIu64 "; clients resuming across it start over", s->seq, e->seq);
        }
    } else if (e->have_state) {
        sb_log(e->events, SB_INFO, "redis edge: new epoch %s (was %s)", s->epoch, e->epoch);
    }
    memcpy(e->epoch, s->epoch, sizeof(e->epoch));
    e->seq = s->seq;
    e->have_state = 1;
    e->lag_ms = now_unix_ms() - s->taken_ms;
    e->lag_seqs = behind;
    e->deliver(e->deliver_ctx, s);
}

static void on_read(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_edge *e = privdata;
    redisReply *reply = r;
    (void)ac;
    e->reading = 0;
    ev_timer_stop(e->link.loop, &e->reply_timeout);
    if (!reply)
        return; /* lost: on_ready reads again from last_id */
    if (reply->type == REDIS_REPLY_ERROR) {
        sb_log(e->events, SB_ERROR, "redis edge: XREAD failed: %.200s", reply->str);
        redis_link_fail(&e->link, NULL);
        return;
    }
    /* nil: nothing new within BLOCK_MS.  Else [[stream, [entry...]]]. */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2) {
        const redisReply *entries = reply->element[0]->element[1];
        if (entries->type == REDIS_REPLY_ARRAY && entries->elements) {
            for (size_t i = 0; i < entries->elements; i++)
                take_entry(e, entries->element[i], entries->elements - 1 - i);
            e->last_state_ms = mono_ms();
            if (e->stale)
                sb_log(e->events, SB_INFO, "redis edge: state flowing again (seq %" PRIu64 ")",
                       e->seq);
            e->stale = 0;
        }
    }
    read_next(e);
}

static void read_next(struct redis_edge *e)
{
    if (e->reading || !e->link.ready)
        return;
    const char *argv[] = {"XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS",
                          e->stream_key, e->last_id};
    if (redis_link_command(&e->link, on_read, e, 8, argv, NULL) == 0) {
        e->reading = 1;
        ev_timer_set(&e->reply_timeout, REPLY_TIMEOUT_S, 0.);
        ev_timer_start(e->link.loop, &e->reply_timeout);
    }
}

static void reply_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct redis_edge *e = w->data;
    redis_link_fail(&e->link, "XREAD went unanswered");
}

static void stale_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct redis_edge *e = w->data;
    if (!e->stale && mono_ms() - e->last_state_ms > EDGE_STALE_MS) {
        e->stale = 1;
        sb_log(e->events, SB_WARNING, "redis edge: no state for %d s: stale (redis %s)",
               EDGE_STALE_MS / 1000, e->link.ready ? "up" : "down");
    }
}

static void on_history(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_edge *e = privdata;
    redisReply *reply = r;
    (void)ac;
    e->history_reading = 0;
    if (!reply || reply->type == REDIS_REPLY_INTEGER)
        return; /* lost, or the copy held is current */
    const redisReply *v = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 ?
                              reply->element[0] : NULL;
    const redisReply *d = v ? reply->element[1] : NULL;
    if (v && v->type == REDIS_REPLY_NIL)
        return; /* no publisher has written one yet */
    char err[128] = "not a version and a store";
    struct history *copy = NULL;
    if (v && v->type == REDIS_REPLY_STRING && v->len < sizeof(e->history_version) &&
        d->type == REDIS_REPLY_STRING)
        copy = history_decode((const unsigned char *)d->str, d->len, err, sizeof(err));
    if (!copy) {
        sb_log(e->events, SB_ERROR, "redis edge: %s skipped: %s", e->history_key, err);
        return;
    }
    history_swap(e->history, copy);
    history_free(copy);
    memcpy(e->history_version, v->str, v->len + 1);
}

/* Read P:history when its version moved (one read at a time). */
static void read_history(struct redis_edge *e)
{
    if (e->history_reading || !e->link.ready)
        return;
    const char *argv[] = {"EVAL", READ_HISTORY_LUA, "1", e->history_key, e->history_version};
    if (redis_link_command(&e->link, on_history, e, 5, argv, NULL) == 0)
        e->history_reading = 1;
}

static void history_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    read_history(w->data);
}

static void on_ready(void *owner)
{
    read_history(owner);
    read_next(owner);
}

static void on_lost(void *owner)
{
    struct redis_edge *e = owner;
    e->reading = 0;
    e->history_reading = 0;
    ev_timer_stop(e->link.loop, &e->reply_timeout);
}

int redis_edge_start(struct redis_edge *e, struct ev_loop *loop, const struct redis_target *target,
                     const char *prefix, struct history *history, redis_edge_deliver_fn deliver,
                     void *deliver_ctx, struct event_queue *events)
{
    memset(e, 0, sizeof(*e));
    e->history = history;
    e->deliver = deliver;
    e->deliver_ctx = deliver_ctx;
    e->events = events;
    strcpy(e->last_id, "0");
    e->last_state_ms = mono_ms();
    char *lease = NULL, *meta = NULL;
    if (redis_keys(prefix, &lease, &meta, &e->stream_key) < 0)
        return -1;
    free(lease);
    free(meta);
    e->history_key = redis_history_key(prefix);
    if (!e->history_key ||
        redis_link_init(&e->link, loop, target, "edge", events, on_ready, on_lost, e) < 0) {
        free(e->stream_key);
        free(e->history_key);
        e->stream_key = e->history_key = NULL;
        return -1;
    }
    ev_timer_init(&e->history_poll, history_poll_cb, HISTORY_SYNC_MS / 1000.0,
                  HISTORY_SYNC_MS / 1000.0);
    e->history_poll.data = e;
    ev_timer_start(loop, &e->history_poll);
    ev_timer_init(&e->reply_timeout, reply_timeout_cb, 0., 0.);
    ev_timer_init(&e->stale_check, stale_check_cb, 0.5, 0.5);
    e->reply_timeout.data = e->stale_check.data = e;
    ev_timer_start(loop, &e->stale_check);
    redis_link_start(&e->link);
    return 0;
}

void redis_edge_status(const struct redis_edge *e, struct redis_status *out)
{
    memset(out, 0, sizeof(*out));
    out->role = "edge";
    out->up = e->link.ready;
    out->stale = e->stale;
    out->lag_s = (double)e->lag_ms / 1000.0;
    out->lag_seqs = e->lag_seqs;
    out->seq = e->seq;
    out->gaps = e->gaps;
    out->reconnects = e->link.reconnects;
}

void redis_edge_stop(struct redis_edge *e)
{
    if (!e->stream_key)
        return;
    ev_timer_stop(e->link.loop, &e->stale_check);
    ev_timer_stop(e->link.loop, &e->history_poll);
    ev_timer_stop(e->link.loop, &e->reply_timeout);
    redis_link_stop(&e->link);
    redis_link_free(&e->link);
    free(e->stream_key);
    free(e->history_key);
    e->stream_key = e->history_key = NULL;
}
