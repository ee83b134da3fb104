/* redis_link.c - one Redis connection on the service thread's libev loop, kept up with backoff. */
#include "redis_link.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define BACKOFF_FIRST_S 0.1
#define BACKOFF_MAX_S 5.0
/* Connect, AUTH, SELECT and PING on loopback or a LAN take milliseconds; a server that has not
 * answered all of them in this time is treated as down. */
#define SETUP_TIMEOUT_S 2.0

void redis_target_free(struct redis_target *t)
{
    free(t->host);
    if (t->password)
        memset(t->password, 0, strlen(t->password));
    free(t->password);
    memset(t, 0, sizeof(*t));
}

/* A jittered delay in [d/2, d): links that lost one Redis together do not come back in step. */
static double jittered(double d)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned x = (unsigned)ts.tv_nsec * 2654435761u;
    return d * (0.5 + 0.5 * (double)(x >> 8) / (double)(1u << 24));
}

static void schedule_retry(struct redis_link *l)
{
    if (l->stopped)
        return;
    ev_timer_stop(l->loop, &l->setup_timeout);
    ev_timer_set(&l->retry, jittered(l->backoff_s), 0.);
    ev_timer_start(l->loop, &l->retry);
    l->backoff_s = l->backoff_s * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : l->backoff_s * 2;
}

/* The connection is gone (whoever noticed): forget it and tell the user. */
static void lost(struct redis_link *l)
{
    int was_ready = l->ready;
    l->ac = NULL;
    l->ready = 0;
    if (was_ready && l->on_lost)
        l->on_lost(l->owner);
    schedule_retry(l);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_link *l = ac->data;
    redisReply *reply = r;
    const char *step = privdata;
    if (!l || l->ac != ac || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        sb_log(l->events, SB_ERROR, "redis %s: %s refused: %.200s", l->name, step, reply->str);
        redis_link_fail(l, NULL);
        return;
    }
    if (strcmp(step, "PING") != 0)
        return;
    ev_timer_stop(l->loop, &l->setup_timeout);
    l->ready = 1;
    l->backoff_s = BACKOFF_FIRST_S;
    if (l->connected_once)
        l->reconnects++;
    if (l->warned_down || l->connected_once)
        sb_log(l->events, SB_INFO, "redis %s: connected to %s:%d", l->name, l->target.host,
               l->target.port);
    l->connected_once = 1;
    l->warned_down = 0;
    if (l->on_ready)
        l->on_ready(l->owner);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;
    if (!l || l->ac != ac || status == REDIS_OK)
        return;
    /* hiredis frees a context whose connect failed once this returns. */
    if (!l->warned_down)
        sb_log(l->events, SB_WARNING, "redis %s: cannot connect to %s:%d: %s; retrying with backoff",
               l->name, l->target.host, l->target.port, ac->errstr);
    l->warned_down = 1;
    lost(l);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;
    if (!l || l->ac != ac)
        return;
    (void)status;
    if (!l->warned_down && !l->stopped)
        sb_log(l->events, SB_WARNING, "redis %s: connection to %s:%d lost: %s; reconnecting", l->name,
               l->target.host, l->target.port, ac->err ? ac->errstr : "closed");
    l->warned_down = 1;
    lost(l);
}

static void setup_command(struct redis_link *l, const char *step, int argc, const char **argv)
{
    redisAsyncCommandArgv(l->ac, on_setup_reply, (void *)step, argc, argv, NULL);
}

static void connect_now(struct redis_link *l)
{
    redisAsyncContext *ac = redisAsyncConnect(l->target.host, l->target.port);
    if (!ac) {
        schedule_retry(l);
        return;
    }
    if (ac->err) {
        if (!l->warned_down)
            sb_log(l->events, SB_WARNING, "redis %s: cannot connect to %s:%d: %s", l->name,
                   l->target.host, l->target.port, ac->errstr);
        l->warned_down = 1;
        redisAsyncFree(ac);
        schedule_retry(l);
        return;
    }
    ac->data = l;
    l->ac = ac;
    redisLibevAttach(l->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Commands queue until the socket connects, then go out in this order. */
    if (l->target.password) {
        const char *auth[] = {"AUTH", l->target.password};
        setup_command(l, "AUTH", 2, auth);
    }
    if (l->target.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", l->target.db);
        const char *select[] = {"SELECT", db};
        setup_command(l, "SELECT", 2, select);
    }
    const char *ping[] = {"PING"};
    setup_command(l, "PING", 1, ping);
    ev_timer_set(&l->setup_timeout, SETUP_TIMEOUT_S, 0.);
    ev_timer_start(l->loop, &l->setup_timeout);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    connect_now(w->data);
}

static void setup_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    redis_link_fail(w->data, "no answer in time while connecting");
}

/* Free the context outside hiredis' callbacks: its pending replies are called back with NULL,
 * and its disconnect callback finds l->ac already cleared. */
static void kill_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct redis_link *l = w->data;
    redisAsyncContext *ac = l->ac;
    if (!ac)
        return;
    int was_ready = l->ready;
    l->ac = NULL;
    l->ready = 0;
    redisAsyncFree(ac);
    if (was_ready && l->on_lost)
        l->on_lost(l->owner);
    schedule_retry(l);
}

int redis_link_init(struct redis_link *l, struct ev_loop *loop, const struct redis_target *target,
                    const char *name, struct event_queue *events, redis_link_fn on_ready,
                    redis_link_fn on_lost, void *owner)
{
    memset(l, 0, sizeof(*l));
    l->loop = loop;
    l->name = name;
    l->events = events;
    l->on_ready = on_ready;
    l->on_lost = on_lost;
    l->owner = owner;
    l->backoff_s = BACKOFF_FIRST_S;
    l->target.port = target->port;
    l->target.db = target->db;
    l->target.host = strdup(target->host);
    l->target.password = target->password ? strdup(target->password) : NULL;
    if (!l->target.host || (target->password && !l->target.password)) {
        redis_target_free(&l->target);
        return -1;
    }
    ev_timer_init(&l->retry, retry_cb, 0., 0.);
    ev_timer_init(&l->setup_timeout, setup_timeout_cb, 0., 0.);
    ev_timer_init(&l->kill, kill_cb, 0., 0.);
    l->retry.data = l->setup_timeout.data = l->kill.data = l;
    return 0;
}

void redis_link_start(struct redis_link *l)
{
    connect_now(l);
}

int redis_link_command(struct redis_link *l, redisCallbackFn *fn, void *privdata, int argc,
                       const char **argv, const size_t *argvlen)
{
    if (!l->ac || !l->ready)
        return -1;
    return redisAsyncCommandArgv(l->ac, fn, privdata, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
}

void redis_link_flush(struct redis_link *l)
{
    /* Only once set up: on a context still connecting, hiredis' write handler would take a
     * connect(2) in progress for done.  A kill pending means the connection is being given up. */
    if (!l->ac || !l->ready || ev_is_active(&l->kill))
        return;
    /* A partial write leaves the write watcher started, an error frees the context (on_disconnect
     * clears l->ac); either way nothing here touches the context after the call. */
    redisAsyncHandleWrite(l->ac);
}

void redis_link_fail(struct redis_link *l, const char *why)
{
    if (!l->ac)
        return;
    if (why && !l->warned_down)
        sb_log(l->events, SB_WARNING, "redis %s: %s; reconnecting", l->name, why);
    l->warned_down = 1;
    ev_timer_set(&l->kill, 0., 0.);
    ev_timer_start(l->loop, &l->kill);
}

void redis_link_stop(struct redis_link *l)
{
    if (l->stopped)
        return;
    l->stopped = 1;
    ev_timer_stop(l->loop, &l->retry);
    ev_timer_stop(l->loop, &l->setup_timeout);
    ev_timer_stop(l->loop, &l->kill);
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->ready = 0;
    if (ac)
        redisAsyncFree(ac);
}

void redis_link_free(struct redis_link *l)
{
    redis_target_free(&l->target);
}
