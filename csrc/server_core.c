/* server_core.c - wires the event queue, the service thread and the ticker thread together. */
#include "server_core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s, int *oom)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *oom = 1;
    return d;
}

/* Copy a list of n strings into *out (NULL stays NULL).  Returns -1 when out of memory. */
static int copy_list(const char *const *list, size_t n, char ***out, size_t *n_out)
{
    int oom = 0;
    if (!list)
        return 0;
    *out = calloc(n + 1, sizeof(char *));
    if (!*out)
        return -1;
    for (size_t i = 0; i < n; i++) {
        (*out)[i] = dup_or_null(list[i], &oom);
        *n_out = i + 1;
    }
    return oom ? -1 : 0;
}

/* Copy the strings of cfg into scfg.  Returns -1 when out of memory (scfg may hold part). */
static int copy_strings(const struct core_config *cfg, struct service_config *scfg)
{
    int oom = 0;
    scfg->iface = dup_or_null(cfg->iface, &oom);
    scfg->static_dir = dup_or_null(cfg->static_dir, &oom);
    scfg->ssl_cert = dup_or_null(cfg->ssl_cert, &oom);
    scfg->ssl_key = dup_or_null(cfg->ssl_key, &oom);
    if (cfg->jwt_secret) {
        scfg->jwt_secret = malloc(cfg->jwt_secret_len ? cfg->jwt_secret_len : 1);
        if (!scfg->jwt_secret)
            return -1;
        memcpy(scfg->jwt_secret, cfg->jwt_secret, cfg->jwt_secret_len);
        scfg->jwt_secret_len = cfg->jwt_secret_len;
    }
    if (cfg->allowed_origins) {
        scfg->allowed_origins = calloc(cfg->n_allowed_origins + 1, sizeof(char *));
        if (!scfg->allowed_origins)
            return -1;
        for (size_t i = 0; i < cfg->n_allowed_origins; i++) {
            scfg->allowed_origins[i] = dup_or_null(cfg->allowed_origins[i], &oom);
            scfg->n_allowed_origins = i + 1;
        }
    }
    if (cfg->role != SB_ROLE_STANDALONE) {
        scfg->redis.host = dup_or_null(cfg->redis_host, &oom);
        scfg->redis.password = dup_or_null(cfg->redis_password, &oom);
        scfg->redis_prefix = dup_or_null(cfg->redis_prefix, &oom);
    }
    scfg->graphql_schema = dup_or_null(cfg->graphql_schema, &oom);
    if (copy_list(cfg->allowed_hosts, cfg->n_allowed_hosts, &scfg->allowed_hosts,
                  &scfg->n_allowed_hosts) < 0)
        return -1;
    return oom ? -1 : 0;
}

static void publish_to_service(void *ctx, struct snapshot *s)
{
    service_publish(ctx, s);
}

struct server_core *core_start(const struct core_config *cfg, int *bind_errno, char *err,
                               size_t errlen)
{
    struct server_core *c = calloc(1, sizeof(*c));
    struct service_config scfg = {
        .disable_ipv6 = cfg->disable_ipv6,
        .use_poll = cfg->use_poll,
        .port = cfg->port,
        .max_clients = cfg->max_clients,
        .max_message_size = cfg->max_message_size,
        .max_pending = cfg->max_pending,
        .role = cfg->role,
        .redis = {.port = cfg->redis_port, .db = cfg->redis_db},
        /* The stream keeps the recovery window's ticks, so that an edge starting now can serve
         * every resume a standalone server could. */
        .redis_maxlen = (size_t)(cfg->recovery_window_s / cfg->interval_s) + 16,
    };

    *bind_errno = 0;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (evq_init(&c->events) < 0) {
        snprintf(err, errlen, "cannot create an eventfd: %s", strerror(errno));
        free(c);
        return NULL;
    }
    webhook_stats_init(&c->webhooks);
    c->events.min_level = cfg->min_log_level;
    if (copy_strings(cfg, &scfg) < 0)
        goto oom;
    if (ticker_init(&c->ticker, cfg->db_path, (int64_t)(cfg->interval_s * 1e6), cfg->top_n,
                    cfg->anomaly_threshold, cfg->record_anomalies,
                    (int64_t)(cfg->recovery_window_s * 1000), &c->events, publish_to_service,
                    &c->service) < 0)
        goto oom;
    c->ticker_ready = 1;

    c->service_started = 1;
    if (service_start(&c->service, &scfg, &c->events, &c->ticker, &c->webhooks) < 0) {
        *bind_errno = c->service.bind_errno;
        snprintf(err, errlen, "%s", c->service.error);
        core_destroy(c);
        return NULL;
    }
    /* An edge has no DB: its states come from Redis on the service thread. */
    int rc = cfg->role == SB_ROLE_EDGE ? 0 : ticker_start(&c->ticker);
    if (rc) {
        snprintf(err, errlen, "cannot start the ticker thread: %s", strerror(rc));
        core_destroy(c);
        return NULL;
    }
    return c;

oom:
    service_config_free(&scfg);
    snprintf(err, errlen, "out of memory");
    core_destroy(c);
    return NULL;
}

void core_epoch(struct server_core *c, char out[SB_EPOCH_LEN + 1])
{
    ticker_epoch(&c->ticker, out);
}

struct recovery *core_recovery(struct server_core *c)
{
    return c->ticker.recovery;
}

struct history *core_history(struct server_core *c)
{
    return c->ticker.history;
}

int core_port(struct server_core *c)
{
    pthread_mutex_lock(&c->service.lock);
    int port = c->service.bound_port;
    pthread_mutex_unlock(&c->service.lock);
    return port;
}

void core_request_stop(struct server_core *c)
{
    service_request_stop(&c->service);
}

void core_join(struct server_core *c)
{
    /* The ticker publishes into the service, so it stops first. */
    if (c->ticker_ready)
        ticker_destroy(&c->ticker);
    c->ticker_ready = 0;
    if (c->service_started)
        service_destroy(&c->service);
    c->service_started = 0;
}

void core_destroy(struct server_core *c)
{
    if (!c)
        return;
    core_join(c);
    webhook_stats_destroy(&c->webhooks);
    evq_destroy(&c->events);
    free(c);
}

int core_event_fd(const struct server_core *c)
{
    return c->events.fd;
}

struct event *core_take_events(struct server_core *c, size_t *dropped)
{
    return evq_take_all(&c->events, dropped);
}

uint64_t core_request_tick(struct server_core *c)
{
    return ticker_request_tick(&c->ticker);
}

struct snapshot *core_latest_snapshot(struct server_core *c)
{
    return ticker_latest(&c->ticker);
}

size_t core_tick_stats(struct server_core *c, uint32_t *out, size_t max, uint64_t *ticks,
                       int64_t *first_us)
{
    return ticker_tick_stats(&c->ticker, out, max, ticks, first_us);
}

int core_client_rows(struct server_core *c, struct client_row **rows, size_t *n)
{
    return client_rows_take(&c->service, rows, n);
}

int core_set_webhook_stats(struct server_core *c, const struct webhook_stat *rows, size_t n)
{
    return webhook_stats_set(&c->webhooks, rows, n);
}
