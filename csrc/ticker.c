/* ticker.c - the DB thread: reads the skills DB off the network thread and publishes snapshots. */
#include "ticker.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "log.h"
#include "prom_reader.h"
#include "recovery.h"
#include "timeutil.h"

/* How many snapshots the recovery window may hold: its ticks at the interval, twice over for
 * the ticks broadcast_metrics() asks for in between. */
static size_t recovery_capacity(int64_t window_ms, int64_t interval_us)
{
    int64_t per_window = interval_us > 0 ? window_ms * 1000 / interval_us + 1 : 1;
    if (per_window > RECOVERY_MAX_SNAPSHOTS / 2)
        per_window = RECOVERY_MAX_SNAPSHOTS / 2;
    return (size_t)per_window * 2 + 16;
}

int ticker_init(struct ticker *t, const char *db_path, int64_t interval_us, size_t top_n,
                double threshold, int record_anomalies, int64_t recovery_window_ms,
                struct event_queue *events, ticker_publish_fn publish, void *publish_ctx)
{
    pthread_condattr_t attr;

    memset(t, 0, sizeof(*t));
    if (epoch_new(t->epoch) < 0)
        return -1;
    t->recovery = recovery_new(recovery_window_ms,
                               recovery_capacity(recovery_window_ms, interval_us));
    t->history = history_new();
    if (!t->recovery || !t->history || dbr_init(&t->reader, db_path) < 0) {
        recovery_free(t->recovery);
        history_free(t->history);
        return -1;
    }
    t->interval_us = interval_us;
    t->top_n = top_n;
    t->threshold = threshold;
    t->record_anomalies = record_anomalies;
    t->events = events;
    t->publish = publish;
    t->publish_ctx = publish_ctx;
    t->metrics.last_tick_ms = -1;
    t->metrics.last_ok_ms = -1;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    return 0;
}

static void clear_active(struct ticker *t)
{
    for (size_t i = 0; i < t->n_active; i++)
        free(t->active[i].skill);
    free(t->active);
    t->active = NULL;
    t->n_active = 0;
}

/*
 * After a reload (the log shrank, or the file was replaced) the engine starts again, but the
 * anomalies it reported stay in the DB, unresolved, until someone resolves them.  They are kept
 * as active, so that the next reconcile resolves those that no longer hold; their row ids may
 * name other rows in a new file, so each is found again by (skill, type).
 */
static void forget_row_ids(struct ticker *t)
{
    for (size_t i = 0; i < t->n_active; i++)
        t->active[i].row_id = 0;
}

static struct active_anomaly *find_active(struct ticker *t, const struct anomaly *a)
{
    for (size_t i = 0; i < t->n_active; i++) {
        struct active_anomaly *x = &t->active[i];
        if (x->type == a->type && x->skill_len == a->skill_len &&
            !memcmp(x->skill, a->skill_name, a->skill_len))
            return x;
    }
    return NULL;
}

static int detected_contains(const struct anomaly *list, size_t n, const char *skill, size_t len,
                             enum anomaly_type type)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].type == type && list[i].skill_len == len &&
            !memcmp(list[i].skill_name, skill, len))
            return 1;
    return 0;
}

/* The largest |z| among a skill's detections, or 0 when it has none. */
static double skill_score(const struct anomaly *list, size_t n, const char *skill, size_t len)
{
    double best = 0;
    for (size_t i = 0; i < n; i++)
        if (list[i].skill_len == len && !memcmp(list[i].skill_name, skill, len) &&
            fabs(list[i].deviation_score) > best)
            best = fabs(list[i].deviation_score);
    return best;
}

/* 1 when this tick's detections differ from the recorded set (new, cleared, or a new score). */
static int anomalies_changed(struct ticker *t, const struct anomaly *detected, size_t n_detected)
{
    if (n_detected != t->n_active || t->write_pending)
        return 1;
    for (size_t i = 0; i < n_detected; i++) {
        const struct active_anomaly *old = find_active(t, &detected[i]);
        if (!old || old->row_id == 0 || old->deviation_score != detected[i].deviation_score)
            return 1;
    }
    return 0;
}

/*
 * Bring the DB's anomaly records in line with this tick's detections: a row
 * for each (skill, type) that became active, resolved_at for each that
 * cleared, and skill_metrics_cache for the skills concerned.  The new active
 * set replaces the old one only when the writes committed, so a failed write
 * is simply retried on the next tick.  Detections get their first detection
 * time.  Returns 0, or -1 when out of memory.
 */
static int reconcile_anomalies(struct ticker *t, struct anomaly *detected, size_t n_detected,
                               int64_t now)
{
    struct db_reader *r = &t->reader;
    struct active_anomaly *next = calloc(n_detected ? n_detected : 1, sizeof(*next));
    char err[256];
    size_t i;
    int writing = t->record_anomalies && r->has_anomalies_table;
    int ok = 1;

    if (!next)
        return -1;
    if (writing && !anomalies_changed(t, detected, n_detected))
        writing = 0; /* nothing to record: no write transaction, no lock taken */
    if (writing && dbr_begin_write(r, err, sizeof(err)) < 0) {
        writing = 0;
        ok = 0;
    }
    for (i = 0; i < n_detected; i++) {
        struct anomaly *a = &detected[i];
        struct active_anomaly *old = find_active(t, a);
        struct active_anomaly *x = &next[i];
        x->skill = malloc(a->skill_len + 1);
        if (!x->skill)
            goto oom;
        memcpy(x->skill, a->skill_name, a->skill_len + 1);
        x->skill_len = a->skill_len;
        x->type = a->type;
        x->deviation_score = a->deviation_score;
        x->detected_ms = old ? old->detected_ms : now;
        x->row_id = old ? old->row_id : 0;
        a->detected_ms = x->detected_ms;
        if (writing && ok && x->row_id == 0) {
            x->row_id = dbr_open_anomaly(r, a, now);
            ok = x->row_id > 0;
        }
    }
    for (i = 0; writing && ok && i < t->n_active; i++) {
        struct active_anomaly *old = &t->active[i];
        if (detected_contains(detected, n_detected, old->skill, old->skill_len, old->type))
            continue;
        if (old->row_id > 0)
            ok = dbr_resolve_anomaly(r, old->row_id, now) == 0;
        else /* its row is not known in this file (forget_row_ids): find it by (skill, type) */
            ok = dbr_resolve_open_anomaly(r, old->skill, old->skill_len, old->type, now) == 0;
    }
    /* The cache follows every skill that is or was anomalous. */
    for (i = 0; writing && ok && i < n_detected; i++)
        ok = dbr_update_cache(r, detected[i].skill_name, detected[i].skill_len, 1,
                              skill_score(detected, n_detected, detected[i].skill_name,
                                          detected[i].skill_len)) == 0;
    for (i = 0; writing && ok && i < t->n_active; i++) {
        struct active_anomaly *old = &t->active[i];
        if (skill_score(detected, n_detected, old->skill, old->skill_len) == 0)
            ok = dbr_update_cache(r, old->skill, old->skill_len, 0, 0) == 0;
    }
    if (writing) {
        if (ok && dbr_commit(r, err, sizeof(err)) < 0)
            ok = 0;
        if (!ok)
            dbr_rollback(r);
    }
    t->write_pending = !ok;
    if (!ok) {
        if (!t->write_failing)
            sb_log(t->events, SB_WARNING, "could not record anomalies in %s; retrying every tick",
                   r->path);
        t->write_failing = 1;
        for (i = 0; i < n_detected; i++)
            free(next[i].skill);
        free(next);
        return 0;
    }
    if (t->write_failing)
        sb_log(t->events, SB_INFO, "anomaly records written again to %s", r->path);
    t->write_failing = 0;
    clear_active(t);
    t->active = next;
    t->n_active = n_detected;
    return 0;

oom:
    if (writing)
        dbr_rollback(r);
    for (i = 0; i < n_detected; i++)
        free(next[i].skill);
    free(next);
    return -1;
}

/* The broadcast list: the engine's detections plus rows other tools wrote, one per (skill, type). */
static int merge_external(struct anomaly **detected, size_t *n_detected, struct anomaly *external,
                          size_t n_external)
{
    size_t extra = 0;
    for (size_t i = 0; i < n_external; i++)
        if (!detected_contains(*detected, *n_detected, external[i].skill_name,
                               external[i].skill_len, external[i].type))
            extra++;
    if (!extra) {
        anomaly_free_array(external, n_external);
        return 0;
    }
    struct anomaly *all = realloc(*detected, (*n_detected + extra) * sizeof(*all));
    if (!all) {
        anomaly_free_array(external, n_external);
        return -1;
    }
    size_t n = *n_detected;
    for (size_t i = 0; i < n_external; i++) {
        if (detected_contains(all, *n_detected, external[i].skill_name, external[i].skill_len,
                              external[i].type)) {
            free(external[i].skill_name);
            continue;
        }
        all[n++] = external[i]; /* moves the string */
    }
    free(external);
    *detected = all;
    *n_detected = n;
    return 0;
}

/* One DB pass: ingest, evaluate, record, merge.  Returns metrics and *prom (a reference), or
 * NULL with err set. */
static struct metrics *read_metrics(struct ticker *t, int64_t now, struct prom_view **prom_out,
                                    char *err, size_t errlen)
{
    struct db_reader *r = &t->reader;
    int64_t unparseable = 0;
    int fresh;
    struct skill_stats *skills = NULL;
    struct anomaly *detected = NULL, *external = NULL;
    size_t n_skills = 0, n_detected = 0, n_external = 0;

    history_advance(t->history, now);
    if (dbr_prepare(r, t->engine != NULL, &fresh, err, errlen) < 0)
        return NULL;
    if (fresh) {
        struct analytics *engine = analytics_new();
        struct prom_engine *prom = prom_new();
        if (engine) {
            /* The history follows the engine: it is read again from scratch too. */
            history_clear(t->history);
            analytics_set_history(engine, t->history);
        }
        if (!engine || !prom || dbr_load_all(r, engine, now, &unparseable, err, errlen) < 0) {
            if (!engine || !prom)
                snprintf(err, errlen, "out of memory");
            analytics_free(engine);
            prom_free(prom);
            if (engine) {
                /* The history now holds part of a read: only a whole new one is consistent. */
                history_clear(t->history);
                analytics_free(t->engine);
                t->engine = NULL;
            }
            return NULL;
        }
        if (prom_load(prom, r->db, r->last_id, now, err, errlen) < 0) {
            /* The reader's last id has moved on: only a whole new startup read is consistent. */
            analytics_free(engine);
            prom_free(prom);
            analytics_free(t->engine);
            t->engine = NULL;
            return NULL;
        }
        analytics_free(t->engine);
        t->engine = engine;
        prom_free(t->prom);
        t->prom = prom;
        forget_row_ids(t);
    } else if (dbr_ingest(r, t->engine, &unparseable, err, errlen) < 0 ||
               prom_ingest(t->prom, r->db, r->last_id, err, errlen) < 0) {
        return NULL;
    }
    if (unparseable && !t->warned_bad_time) {
        t->warned_bad_time = 1;
        sb_log(t->events, SB_WARNING,
               "%lld invocation(s) in %s have an invoked_at that is not an ISO 8601 time: "
               "they count in the totals but not in the 1 h / 24 h windows",
               (long long)unparseable, r->path);
    }
    if (r->long_names && !t->warned_long_name) {
        t->warned_long_name = 1;
        sb_log(t->events, SB_WARNING,
               "%s holds skill names longer than %d bytes: their rows are skipped", r->path,
               SKILL_NAME_MAX);
    }
    if ((!r->has_anomalies_table || !r->has_cache_table) && !t->warned_no_v4) {
        t->warned_no_v4 = 1;
        sb_log(t->events, SB_WARNING,
               "%s lacks V4's skill_anomalies / skill_metrics_cache tables (pre-V4 schema): "
               "anomalies are detected and broadcast but not recorded", r->path);
    }
    if (analytics_evaluate(t->engine, now, t->threshold, &skills, &n_skills, &detected,
                           &n_detected) < 0 ||
        reconcile_anomalies(t, detected, n_detected, now) < 0)
        goto oom;
    if (dbr_read_open_anomalies(r, now, &external, &n_external, err, errlen) < 0) {
        skill_stats_free_array(skills, n_skills);
        anomaly_free_array(detected, n_detected);
        return NULL;
    }
    if (merge_external(&detected, &n_detected, external, n_external) < 0 ||
        prom_anomalies_seen(t->prom, detected, n_detected) < 0)
        goto oom;
    struct prom_view *prom = prom_view_get(t->prom, now);
    if (!prom)
        goto oom;
    struct metrics *m = metrics_build(skills, n_skills, detected, n_detected);
    if (!m) {
        prom_view_unref(prom);
        snprintf(err, errlen, "out of memory building a snapshot");
        return NULL;
    }
    *prom_out = prom; /* the reference from prom_view_get */
    return m;

oom:
    skill_stats_free_array(skills, n_skills);
    anomaly_free_array(detected, n_detected);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

const double tick_bucket_bounds[TICK_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                 0.05,   0.1,   0.25,   0.5,   1.0};

static void record_tick(struct ticker *t, int64_t us, int64_t now_ms, int db_ok)
{
    double s = (double)us / 1e6;
    size_t b = 0;
    while (b < TICK_BUCKETS && s > tick_bucket_bounds[b])
        b++;
    pthread_mutex_lock(&t->lock);
    t->metrics.ticks++;
    t->metrics.buckets[b]++;
    t->metrics.duration_sum_s += s;
    t->metrics.db_errors += !db_ok;
    t->metrics.last_tick_ms = now_ms;
    if (db_ok)
        t->metrics.last_ok_ms = now_ms;
    t->metrics.db_ok = db_ok;
    if (t->ticks == 0)
        t->first_tick_us = us;
    t->tick_us[t->ticks % TICK_HISTORY] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    t->ticks++;
    pthread_mutex_unlock(&t->lock);
}

void ticker_get_metrics(struct ticker *t, struct ticker_metrics *out)
{
    pthread_mutex_lock(&t->lock);
    *out = t->metrics;
    pthread_mutex_unlock(&t->lock);
}

void ticker_adopt(struct ticker *t, const char *epoch, uint64_t seq)
{
    pthread_mutex_lock(&t->lock);
    memcpy(t->adopt_epoch, epoch, SB_EPOCH_LEN);
    t->adopt_epoch[SB_EPOCH_LEN] = '\0';
    t->adopt_seq = seq;
    t->adopt_pending = 1;
    pthread_mutex_unlock(&t->lock);
}

void ticker_set_latest(struct ticker *t, struct snapshot *s)
{
    snapshot_ref(s);
    pthread_mutex_lock(&t->lock);
    struct snapshot *old = t->latest;
    t->latest = s;
    memcpy(t->epoch, s->epoch, sizeof(t->epoch));
    pthread_mutex_unlock(&t->lock);
    snapshot_unref(old);
}

void ticker_epoch(struct ticker *t, char out[SB_EPOCH_LEN + 1])
{
    pthread_mutex_lock(&t->lock);
    memcpy(out, t->epoch, SB_EPOCH_LEN + 1);
    pthread_mutex_unlock(&t->lock);
}

size_t ticker_tick_stats(struct ticker *t, uint32_t *out, size_t max, uint64_t *ticks,
                         int64_t *first_tick_us)
{
    pthread_mutex_lock(&t->lock);
    size_t have = t->ticks < TICK_HISTORY ? (size_t)t->ticks : TICK_HISTORY;
    size_t n = have < max ? have : max;
    for (size_t i = 0; i < n; i++)
        out[i] = t->tick_us[(t->ticks - n + i) % TICK_HISTORY];
    *ticks = t->ticks;
    *first_tick_us = t->first_tick_us;
    pthread_mutex_unlock(&t->lock);
    return n;
}

static int stop_requested(struct ticker *t)
{
    pthread_mutex_lock(&t->lock);
    int stop = t->stop;
    pthread_mutex_unlock(&t->lock);
    return stop;
}

/* Read the DB; on failure reuse the last good figures and mark the tick stale.  NULL when the
 * read failed because stop() interrupted it: that is no outage, and nobody needs the result. */
static struct snapshot *build_snapshot(struct ticker *t)
{
    char err[512] = "";
    int64_t now = now_unix_ms();
    int64_t started = mono_us();
    struct prom_view *prom = NULL;
    struct metrics *m = read_metrics(t, now, &prom, err, sizeof(err));
    int stale = 0;

    if (!m && stop_requested(t))
        return NULL;

    record_tick(t, mono_us() - started, now, m != NULL);
    if (m) {
        if (t->in_outage)
            sb_log(t->events, SB_INFO, "database readable again: %s", t->reader.path);
        t->in_outage = 0;
        metrics_unref(t->last_good);
        t->last_good = m; /* the reference from read_metrics */
        prom_view_unref(t->last_prom);
        t->last_prom = prom;
    } else {
        if (!t->in_outage)
            sb_log(t->events, SB_ERROR, "database unreadable, serving stale data: %s", err);
        t->in_outage = 1;
        stale = 1;
        if (!t->last_good) {
            t->last_good = metrics_build(NULL, 0, NULL, 0);
            if (!t->last_good)
                return NULL;
        }
    }
    pthread_mutex_lock(&t->lock);
    if (t->adopt_pending) {
        memcpy(t->epoch, t->adopt_epoch, sizeof(t->epoch));
        t->seq = t->adopt_seq;
        t->adopt_pending = 0;
    }
    char epoch[SB_EPOCH_LEN + 1];
    memcpy(epoch, t->epoch, sizeof(epoch));
    pthread_mutex_unlock(&t->lock);
    /* seq counts only the snapshots that exist: a resume can then tell a missing one by its gap. */
    struct snapshot *s = snapshot_new(t->last_good, epoch, t->seq + 1, now, stale, t->top_n);
    if (!s)
        return NULL;
    t->seq++;
    /* Stale figures are the last good ones again: no anomaly came or went that we know of. */
    if (!stale && anomaly_watch_update(&t->watch, t->last_good->anomalies,
                                       t->last_good->n_anomalies, s->seq, t->events) < 0)
        sb_log(t->events, SB_WARNING, "out of memory reporting anomaly changes; retrying next tick");
    if (t->last_prom) {
        prom_view_ref(t->last_prom);
        s->prom = t->last_prom;
    }
    if (recovery_retain(t->recovery, s) < 0 && !t->warned_recovery) {
        t->warned_recovery = 1;
        sb_log(t->events, SB_WARNING,
               "out of memory keeping updates for recovery: clients that reconnect now start over");
    }
    return s;
}

static void add_us(struct timespec *ts, int64_t us)
{
    ts->tv_sec += us / 1000000;
    ts->tv_nsec += (us % 1000000) * 1000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static int before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *ticker_main(void *arg)
{
    struct ticker *t = arg;
    struct timespec next;

    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        /* Sleep until the next period, an on-demand request, or stop. */
        while (!t->stop && t->requested_id == t->done_id) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (!before(&now, &next))
                break;
            pthread_cond_timedwait(&t->wake, &t->lock, &next);
        }
        if (t->stop)
            break;
        uint64_t serving = t->requested_id;
        pthread_mutex_unlock(&t->lock);

        struct snapshot *s = build_snapshot(t);
        if (s) {
            pthread_mutex_lock(&t->lock);
            snapshot_unref(t->latest);
            snapshot_ref(s);
            t->latest = s;
            pthread_mutex_unlock(&t->lock);
            t->publish(t->publish_ctx, s); /* hands over the reference from build_snapshot */
            evq_post(t->events, EV_SNAPSHOT, 0, s->seq, NULL);
        }

        /* A steady period: advance the absolute deadline; after a long stall, skip missed ticks. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!before(&now, &next)) {
            add_us(&next, t->interval_us);
            if (before(&next, &now)) {
                next = now;
                add_us(&next, t->interval_us);
            }
        }

        pthread_mutex_lock(&t->lock);
        if (serving != t->done_id) {
            t->done_id = serving;
            evq_post(t->events, EV_TICK_DONE, 0, serving, NULL);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int ticker_start(struct ticker *t)
{
    int rc = pthread_create(&t->thread, NULL, ticker_main, t);
    if (rc == 0) {
        t->started = 1;
        pthread_setname_np(t->thread, "sb-db"); /* for `top -H`, perf and the benchmark */
    }
    return rc;
}

uint64_t ticker_request_tick(struct ticker *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t id = ++t->requested_id;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    return id;
}

struct snapshot *ticker_latest(struct ticker *t)
{
    pthread_mutex_lock(&t->lock);
    struct snapshot *s = t->latest;
    if (s)
        snapshot_ref(s);
    pthread_mutex_unlock(&t->lock);
    return s;
}

void ticker_destroy(struct ticker *t)
{
    if (t->started) {
        pthread_mutex_lock(&t->lock);
        t->stop = 1;
        pthread_cond_signal(&t->wake);
        pthread_mutex_unlock(&t->lock);
        dbr_interrupt(&t->reader);
        pthread_join(t->thread, NULL);
        t->started = 0;
    }
    snapshot_unref(t->latest);
    t->latest = NULL;
    analytics_free(t->engine);
    t->engine = NULL;
    prom_free(t->prom);
    t->prom = NULL;
    clear_active(t);
    anomaly_watch_clear(&t->watch);
    metrics_unref(t->last_good);
    t->last_good = NULL;
    prom_view_unref(t->last_prom);
    t->last_prom = NULL;
    recovery_free(t->recovery);
    t->recovery = NULL;
    history_free(t->history);
    t->history = NULL;
    dbr_close(&t->reader);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
}
