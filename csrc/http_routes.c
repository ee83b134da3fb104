/* http_routes.c - /healthz JSON, /metrics in Prometheus text format 0.0.4, and static files. */
#include "http_routes.h"

#include <stdio.h>
#include <string.h>

#include "text_sanitize.h"
#include "timeutil.h"

static void write_healthz(const struct http_context *ctx, struct http_response *res, jbuf *b)
{
    char iso[32];
    int db_ok = ctx->ticker->ticks == 0 || ctx->ticker->db_ok;

    res->status = db_ok ? 200 : 503;
    res->content_type = "application/json";
    jb_lit(b, db_ok ? "{\"status\":\"ok\"" : "{\"status\":\"degraded\"");
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
    jb_lit(b, db_ok ? ",\"db\":\"ok\"}" : ",\"db\":\"error\"}");
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
    metric_header(b, "connections_closed_total", "counter",
                  "Established connections the server closed for a policy, by reason.");
    labelled(b, "connections_closed_total", "reason", "rate_limit", c->closed_rate_limit);
    labelled(b, "connections_closed_total", "reason", "message_too_large", c->closed_too_large);
    labelled(b, "connections_closed_total", "reason", "slow_consumer", c->closed_slow_consumer);
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
