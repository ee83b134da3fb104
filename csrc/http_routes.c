/* http_routes.c - /healthz JSON, /metrics in Prometheus text format 0.0.4, and static files. */
#include "http_routes.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "prom_metrics.h"
#include "text_sanitize.h"
#include "timeutil.h"

/* The role and its Redis side: the fields an operator needs to see a deployment at a glance. */
static void write_redis_health(const struct redis_status *r, jbuf *b)
{
    jb_lit(b, ",\"role\":");
    jb_cstr(b, r ? r->role : "standalone");
    if (!r)
        return;
    jb_lit(b, ",\"redis\":");
    jb_cstr(b, r->up ? "up" : "down");
    jb_lit(b, ",\"seq\":");
    jb_int(b, (long long)r->seq);
    jb_lit(b, ",\"reconnects\":");
    jb_int(b, (long long)r->reconnects);
    if (!strcmp(r->role, "edge")) {
        jb_lit(b, ",\"stale\":");
        jb_bool(b, r->stale);
        jb_lit(b, ",\"lag_s\":");
        jb_double(b, r->lag_s);
        jb_lit(b, ",\"lag_seqs\":");
        jb_int(b, (long long)r->lag_seqs);
        jb_lit(b, ",\"gaps\":");
        jb_int(b, (long long)r->gaps);
    } else {
        jb_lit(b, ",\"lease_holder\":");
        jb_cstr(b, r->lease_holder);
        jb_lit(b, ",\"holder\":");
        jb_bool(b, r->holder);
        jb_lit(b, ",\"backlog\":");
        jb_int(b, (long long)r->backlog);
    }
}

static void write_healthz(const struct http_context *ctx, struct http_response *res, jbuf *b)
{
    char iso[32];
    int db_ok = ctx->ticker->ticks == 0 || ctx->ticker->db_ok;
    const struct redis_status *r = ctx->redis;
    int ok = db_ok && !(r && r->stale);

    res->status = ok ? 200 : 503;
    res->content_type = "application/json";
    jb_lit(b, ok ? "{\"status\":\"ok\"" : "{\"status\":\"degraded\"");
    jb_lit(b, ",\"clients\":");
    jb_int(b, (long long)ctx->clients);
    jb_lit(b, ",\"uptime_s\":");
    jb_double(b, (double)(ctx->now_ms - ctx->started_ms) / 1000.0);
    jb_lit(b, ",\"last_tick_at\":");
    if (ctx->ticker->last_tick_ms >= 0) {
        iso_format_ms(ctx->ticker->last_tick_ms, iso);
        jb_cstr(b, iso);
    } else {
        jb_null(b);
    }
    jb_lit(b, db_ok ? ",\"db\":\"ok\"" : ",\"db\":\"error\"");
    write_redis_health(r, b);
    jb_lit(b, "}");
}

static void metric_header(jbuf *b, const char *name, const char *type, const char *help)
{
    jb_lit(b, "# HELP session_buddy_");
    jb_lit(b, name);
    jb_lit(b, " ");
    jb_lit(b, help);
    jb_lit(b, "\n# TYPE session_buddy_");
    jb_lit(b, name);
    jb_lit(b, " ");
    jb_lit(b, type);
    jb_lit(b, "\n");
}

static void metric_value(jbuf *b, const char *name, double v)
{
    jb_lit(b, "session_buddy_");
    jb_lit(b, name);
    jb_lit(b, " ");
    jb_double(b, v);
    jb_lit(b, "\n");
}

static void metric(jbuf *b, const char *name, const char *type, const char *help, double v)
{
    metric_header(b, name, type, help);
    metric_value(b, name, v);
}

/* One sample of a counter with a single fixed label. */
static void labelled(jbuf *b, const char *name, const char *label, const char *value, uint64_t v)
{
    char line[64];
    jb_lit(b, "session_buddy_");
    jb_lit(b, name);
    jb_lit(b, "{");
    jb_lit(b, label);
    jb_lit(b, "=\"");
    jb_lit(b, value);
    snprintf(line, sizeof(line), "\"} %llu\n", (unsigned long long)v);
    jb_lit(b, line);
}

/* A label value as the text format requires: UTF-8 with backslash, quote and newline escaped.
 * A DB name may hold anything: each byte of invalid UTF-8 becomes U+FFFD, as in the JSON
 * messages, and so does NUL, so that one bad name can never make a scraper reject the page. */
static void label_value(jbuf *b, const char *s, size_t n)
{
    size_t run = 0; /* s[i - run, i) is clean text not yet copied */
    for (size_t i = 0; i < n;) {
        size_t len = s[i] ? utf8_char_len(s + i, n - i) : 0;
        const char *esc = !len           ? "\xEF\xBF\xBD"
                          : s[i] == '\\' ? "\\\\"
                          : s[i] == '"'  ? "\\\""
                          : s[i] == '\n' ? "\\n"
                                         : NULL;
        if (!esc) {
            run += len;
            i += len;
            continue;
        }
        jb_raw(b, s + i - run, run);
        run = 0;
        jb_lit(b, esc);
        i++;
    }
    jb_raw(b, s + n - run, run);
}

static void skill_sample(jbuf *b, const char *name, const struct skill_stats *st, double v)
{
    jb_lit(b, "session_buddy_");
    jb_lit(b, name);
    jb_lit(b, "{skill=\"");
    label_value(b, st->name, st->name_len);
    jb_lit(b, "\"} ");
    jb_double(b, v);
    jb_lit(b, "\n");
}

/* ---- session-buddy's own names, as its PrometheusExporter served them, computed by the engine ---- */

/* A sample value in the text format: NaN and the infinities are words there, not JSON's null. */
static void prom_double(jbuf *b, double v)
{
    if (isnan(v))
        jb_lit(b, "NaN");
    else if (isinf(v))
        jb_lit(b, v > 0 ? "+Inf" : "-Inf");
    else
        jb_double(b, v);
}

static void family_header(jbuf *b, const char *name, const char *type, const char *help)
{
    jb_lit(b, "# HELP ");
    jb_lit(b, name);
    jb_lit(b, " ");
    jb_lit(b, help);
    jb_lit(b, "\n# TYPE ");
    jb_lit(b, name);
    jb_lit(b, " ");
    jb_lit(b, type);
    jb_lit(b, "\n");
}

/* `key="value"`, preceded by a comma unless it is the first label. */
static void label(jbuf *b, int first, const char *key, const char *v, size_t n)
{
    if (!first)
        jb_lit(b, ",");
    jb_lit(b, key);
    jb_lit(b, "=\"");
    label_value(b, v, n);
    jb_lit(b, "\"");
}

static void skill_phase_labels(jbuf *b, const struct prom_series *s)
{
    label(b, 1, "skill_name", s->skill, s->skill_len);
    label(b, 0, "workflow_phase", s->phase, s->phase_len);
}

static void write_invocation_counts(jbuf *b, const struct prom_view *v)
{
    family_header(b, "skill_invocations_total", "counter",
                  "Skill invocations in the database, by skill, workflow phase and completion.");
    for (size_t i = 0; i < v->n_series; i++) {
        const struct prom_series *s = &v->series[i];
        for (int done = 0; done < 2; done++) {
            if (!s->calls[done])
                continue; /* as the exporter: a label set exists once it was counted */
            jb_lit(b, "skill_invocations_total{");
            skill_phase_labels(b, s);
            label(b, 0, "completed", done ? "true" : "false", done ? 4 : 5);
            jb_lit(b, "} ");
            jb_int(b, (long long)s->calls[done]);
            jb_lit(b, "\n");
        }
    }
}

static void write_duration_histograms(jbuf *b, const struct prom_view *v)
{
    family_header(b, "skill_duration_seconds", "histogram",
                  "Durations of skill invocations in the database, by skill and workflow phase.");
    for (size_t i = 0; i < v->n_series; i++) {
        const struct prom_series *s = &v->series[i];
        uint64_t cumulative = 0;
        if (!s->n_durations)
            continue;
        for (size_t k = 0; k <= PROM_DURATION_BUCKETS; k++) {
            cumulative += s->buckets[k];
            jb_lit(b, "skill_duration_seconds_bucket{");
            skill_phase_labels(b, s);
            jb_lit(b, ",le=\"");
            if (k < PROM_DURATION_BUCKETS)
                jb_double(b, prom_duration_bounds[k]);
            else
                jb_lit(b, "+Inf");
            jb_lit(b, "\"} ");
            jb_int(b, (long long)cumulative);
            jb_lit(b, "\n");
        }
        jb_lit(b, "skill_duration_seconds_sum{");
        skill_phase_labels(b, s);
        jb_lit(b, "} ");
        prom_double(b, s->sum_durations);
        jb_lit(b, "\nskill_duration_seconds_count{");
        skill_phase_labels(b, s);
        jb_lit(b, "} ");
        jb_int(b, (long long)s->n_durations);
        jb_lit(b, "\n");
    }
}

static void write_completion_rates(jbuf *b, const struct metrics *m)
{
    family_header(b, "skill_completion_rate", "gauge",
                  "Share of the skill's invocations that completed, 0..1 (all time).");
    for (size_t i = 0; i < m->n_skills; i++) {
        const struct skill_stats *st = &m->skills[i];
        if (st->total_invocations <= 0)
            continue;
        jb_lit(b, "skill_completion_rate{");
        label(b, 1, "skill_name", st->name, st->name_len);
        jb_lit(b, "} ");
        prom_double(b, (double)st->completed_invocations / (double)st->total_invocations);
        jb_lit(b, "\n");
    }
}

static void write_anomaly_counts(jbuf *b, const struct prom_view *v)
{
    family_header(b, "anomalies_detected_total", "counter",
                  "Times a (skill, anomaly type) became active in the broadcast, since the server started.");
    for (size_t i = 0; i < v->n_anomalies; i++) {
        const struct prom_anomaly_count *c = &v->anomalies[i];
        const char *type = anomaly_type_name(c->type);
        jb_lit(b, "anomalies_detected_total{");
        label(b, 1, "anomaly_type", type, strlen(type));
        label(b, 0, "skill_name", c->skill, c->skill_len);
        jb_lit(b, "} ");
        jb_int(b, (long long)c->count);
        jb_lit(b, "\n");
    }
}

/* The names session-buddy's dashboards and alert rules query, without the session_buddy_ prefix. */
static void write_upstream_metrics(const struct http_context *ctx, jbuf *b)
{
    const struct metrics *m = ctx->snapshot ? ctx->snapshot->metrics : NULL;
    const struct prom_view *prom = ctx->snapshot ? ctx->snapshot->prom : NULL;

    if (ctx->ticker->last_ok_ms >= 0) {
        family_header(b, "skill_metrics_cache_last_update", "gauge",
                      "Unix time the server's metrics were last read from the database.");
        jb_lit(b, "skill_metrics_cache_last_update ");
        jb_double(b, (double)ctx->ticker->last_ok_ms / 1000.0);
        jb_lit(b, "\n");
    }
    if (!m || !prom)
        return; /* no DB read yet */
    write_invocation_counts(b, prom);
    write_duration_histograms(b, prom);
    write_completion_rates(b, m);
    write_anomaly_counts(b, prom);
    family_header(b, "active_sessions_total", "gauge",
                  "Sessions (distinct session_id) with an invocation in the last hour.");
    jb_lit(b, "active_sessions_total ");
    jb_int(b, (long long)prom->active_sessions);
    jb_lit(b, "\n");
}

static void write_redis_metrics(const struct redis_status *r, jbuf *b)
{
    metric(b, "redis_up", "gauge", "1 while the Redis link is connected and set up.", r->up);
    metric(b, "redis_reconnects_total", "counter", "Redis connections made after the first.",
           (double)r->reconnects);
    metric(b, "redis_seq", "gauge", "The newest seq appended (publisher) or delivered (edge).",
           (double)r->seq);
    if (!strcmp(r->role, "edge")) {
        metric(b, "redis_stale", "gauge", "1 while the edge has had no state for 3 s.", r->stale);
        metric(b, "redis_lag_seconds", "gauge",
               "Receive time minus the publisher's time of the newest state.", r->lag_s);
        metric(b, "redis_lag_seqs", "gauge", "States read from Redis but not yet delivered.",
               (double)r->lag_seqs);
        metric(b, "redis_gaps_total", "counter", "Gaps in seq seen in the stream.", (double)r->gaps);
    } else {
        metric(b, "redis_lease_holder", "gauge", "1 while this publisher holds the lease.",
               r->holder);
        metric(b, "redis_appended_total", "counter", "States appended to the stream.",
               (double)r->appended);
        metric(b, "redis_fenced_total", "counter", "Appends refused: another publisher holds the lease.",
               (double)r->fenced);
        metric(b, "redis_backlog", "gauge", "States waiting to be appended.", (double)r->backlog);
        metric(b, "redis_backlog_dropped_total", "counter", "States dropped from a full backlog.",
               (double)r->dropped);
    }
}

/* The per-endpoint webhook families: a counter or gauge field of struct webhook_stat each. */
static const struct {
    const char *name, *type, *help;
    size_t offset;
} webhook_families[] = {
    {"webhook_deliveries_total", "counter",
     "Webhook events delivered (2xx), by endpoint (a hash of its URL).",
     offsetof(struct webhook_stat, deliveries)},
    {"webhook_failures_total", "counter", "Failed webhook attempts (error, timeout or status >= 300).",
     offsetof(struct webhook_stat, failures)},
    {"webhook_retries_total", "counter", "Webhook attempts after an event's first.",
     offsetof(struct webhook_stat, retries)},
    {"webhook_expired_total", "counter",
     "Webhook events dropped after retrying for their maximum age (24 h).",
     offsetof(struct webhook_stat, expired)},
    {"webhook_overflowed_total", "counter",
     "Webhook events dropped because the endpoint's queue was full.",
     offsetof(struct webhook_stat, overflowed)},
    {"webhook_queue_depth", "gauge", "Webhook events accepted and not yet delivered.",
     offsetof(struct webhook_stat, depth)},
};

static void webhook_sample(jbuf *b, const char *name, const struct webhook_stat *w, double v)
{
    jb_lit(b, "session_buddy_");
    jb_lit(b, name);
    jb_lit(b, "{endpoint=\"");
    label_value(b, w->key, strlen(w->key));
    jb_lit(b, "\"} ");
    jb_double(b, v);
    jb_lit(b, "\n");
}

/* Labelled by the endpoint's key (a hash of its URL), never by the URL, which may be a secret. */
static void write_webhook_metrics(const struct http_context *ctx, jbuf *b)
{
    if (!ctx->n_webhooks)
        return; /* no webhooks configured */
    for (size_t f = 0; f < sizeof(webhook_families) / sizeof(webhook_families[0]); f++) {
        metric_header(b, webhook_families[f].name, webhook_families[f].type,
                      webhook_families[f].help);
        for (size_t i = 0; i < ctx->n_webhooks; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&ctx->webhooks[i] + webhook_families[f].offset, sizeof(v));
            webhook_sample(b, webhook_families[f].name, &ctx->webhooks[i], (double)v);
        }
    }
    /* Measured at the scrape, so that a stuck endpoint's age keeps growing between pushes. */
    metric_header(b, "webhook_oldest_age_seconds", "gauge",
                  "Age of the oldest undelivered webhook event, 0 when none.");
    for (size_t i = 0; i < ctx->n_webhooks; i++) {
        const struct webhook_stat *w = &ctx->webhooks[i];
        double age = (double)ctx->now_ms / 1000.0 - w->oldest_created_s;
        webhook_sample(b, "webhook_oldest_age_seconds", w, w->depth == 0 || age < 0 ? 0.0 : age);
    }
}

static void write_metrics(const struct http_context *ctx, struct http_response *res, jbuf *b)
{
    const struct service_counters *c = ctx->counters;
    const struct ticker_metrics *t = ctx->ticker;
    char line[96];

    res->status = 200;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    metric(b, "clients_connected", "gauge", "WebSocket clients connected now.", (double)ctx->clients);
    metric(b, "connections_total", "counter", "WebSocket connections accepted since start.",
           (double)c->connections_total);
    metric_header(b, "connections_rejected_total", "counter",
                  "Connections refused at or right after the handshake, by reason.");
    labelled(b, "connections_rejected_total", "reason", "server_full", c->rejected_full);
    labelled(b, "connections_rejected_total", "reason", "origin", c->rejected_origin);
    labelled(b, "connections_rejected_total", "reason", "bad_handshake", c->rejected_handshake);
    labelled(b, "connections_rejected_total", "reason", "auth_failed", c->auth_failures);
    labelled(b, "connections_rejected_total", "reason", "host", c->rejected_host);
    labelled(b, "connections_rejected_total", "reason", "pending_full", c->rejected_pending_full);
    labelled(b, "connections_rejected_total", "reason", "pending_timeout", c->closed_pending_timeout);
    metric_header(b, "connections_closed_total", "counter",
                  "Established connections the server closed for a policy, by reason.");
    labelled(b, "connections_closed_total", "reason", "rate_limit", c->closed_rate_limit);
    labelled(b, "connections_closed_total", "reason", "message_too_large", c->closed_too_large);
    labelled(b, "connections_closed_total", "reason", "slow_consumer", c->closed_slow_consumer);
    metric(b, "accept_failures_total", "counter",
           "accept() calls that failed (EMFILE, ENFILE...); accepting pauses after each.",
           (double)c->accept_failures);
    metric(b, "graphql_subscriptions", "gauge", "GraphQL subscriptions live now.", (double)ctx->gql_live);
    metric(b, "graphql_waiting", "gauge",
           "GraphQL operations and /graphql requests waiting for validation or execution now.",
           (double)ctx->gql_waiting);
    metric(b, "graphql_operations_total", "counter",
           "GraphQL operations received over WebSocket since start.", (double)c->gql_operations);
    metric(b, "graphql_http_requests_total", "counter",
           "GraphQL requests received over HTTP since start.", (double)c->gql_http_requests);
    metric(b, "messages_rate_limited_total", "counter",
           "Client messages dropped and answered rate_limited.", (double)c->rate_limited_messages);
    metric(b, "messages_sent_total", "counter", "WebSocket messages written to clients.",
           (double)c->messages_sent);
    metric(b, "bytes_sent_total", "counter", "Payload bytes written to clients.", (double)c->bytes_sent);
    metric(b, "messages_received_total", "counter", "Complete client messages received.",
           (double)c->messages_received);
    metric(b, "updates_conflated_total", "counter",
           "metrics_update messages replaced by a newer one before a slow client could take them.",
           (double)c->conflated_updates);
    metric(b, "uptime_seconds", "gauge", "Seconds since the server started.",
           (double)(ctx->now_ms - ctx->started_ms) / 1000.0);
    metric(b, "db_errors_total", "counter", "Ticks that could not read the database.",
           (double)t->db_errors);
    metric(b, "db_up", "gauge", "1 when the last tick read the database, else 0.",
           t->ticks == 0 || t->db_ok ? 1.0 : 0.0);

    metric_header(b, "tick_duration_seconds", "histogram",
                  "Database and analytics work of one tick.");
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= TICK_BUCKETS; i++) {
        cumulative += t->buckets[i];
        if (i < TICK_BUCKETS)
            snprintf(line, sizeof(line), "session_buddy_tick_duration_seconds_bucket{le=\"%g\"} %llu\n",
                     tick_bucket_bounds[i], (unsigned long long)cumulative);
        else
            snprintf(line, sizeof(line), "session_buddy_tick_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                     (unsigned long long)cumulative);
        jb_lit(b, line);
    }
    metric_value(b, "tick_duration_seconds_sum", t->duration_sum_s);
    metric_value(b, "tick_duration_seconds_count", (double)t->ticks);

    if (ctx->snapshot) {
        const struct metrics *m = ctx->snapshot->metrics;
        metric_header(b, "skill_invocations_24h", "gauge", "Invocations of the skill in the last 24 h.");
        for (size_t i = 0; i < m->n_skills; i++)
            skill_sample(b, "skill_invocations_24h", &m->skills[i], (double)m->skills[i].invocation_count);
        metric_header(b, "skill_invocations_total", "counter", "Invocations of the skill ever.");
        for (size_t i = 0; i < m->n_skills; i++)
            skill_sample(b, "skill_invocations_total", &m->skills[i],
                         (double)m->skills[i].total_invocations);
        metric_header(b, "skill_anomalous", "gauge", "1 while the skill has an active anomaly.");
        for (size_t i = 0; i < m->n_skills; i++)
            skill_sample(b, "skill_anomalous", &m->skills[i], m->skills[i].is_anomalous ? 1.0 : 0.0);
    }
    if (ctx->redis)
        write_redis_metrics(ctx->redis, b);
    write_webhook_metrics(ctx, b);
    write_upstream_metrics(ctx, b);
}

int http_route(const struct http_context *ctx, const char *path, struct http_response *res,
               jbuf *buf)
{
    memset(res, 0, sizeof(*res));
    if (!strcmp(path, "/healthz")) {
        write_healthz(ctx, res, buf);
        res->uses_buffer = 1;
    } else if (!strcmp(path, "/metrics")) {
        write_metrics(ctx, res, buf);
        res->uses_buffer = 1;
    } else if (!strcmp(path, "/graphql/schema") && ctx->graphql_schema) {
        res->status = 200;
        res->content_type = "text/plain; charset=utf-8";
        res->body = ctx->graphql_schema;
        res->body_len = strlen(ctx->graphql_schema);
    } else {
        const struct static_file *f = static_files_find(ctx->files, path);
        if (f) {
            res->status = 200;
            res->content_type = f->content_type;
            res->body = f->data;
            res->body_len = f->len;
        } else {
            res->status = 404;
            res->content_type = "text/plain; charset=utf-8";
            res->uses_buffer = 1;
            jb_lit(buf, "not found\n");
        }
    }
    return buf->failed ? -1 : 0;
}
