/* http_routes.h - the plain-HTTP answers on the WebSocket port: /healthz, /metrics, the dashboard. */
#ifndef SB_HTTP_ROUTES_H
#define SB_HTTP_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "json_writer.h"
#include "service.h"
#include "snapshot.h"
#include "static_files.h"
#include "ticker.h"
#include "webhook_stats.h"

/* Everything a route may report, gathered by the caller on the service thread. */
struct http_context {
    const struct service_counters *counters;
    size_t clients;
    int64_t now_ms;
    int64_t started_ms;
    const struct snapshot *snapshot;        /* may be NULL before the first tick */
    const struct ticker_metrics *ticker;
    const struct static_files *files;
    const struct redis_status *redis;       /* NULL for standalone */
    const struct webhook_stat *webhooks;    /* per endpoint, as Python last pushed them */
    size_t n_webhooks;
    const char *graphql_schema;             /* the SDL of GET /graphql/schema, or NULL */
    size_t gql_live;                        /* GraphQL subscriptions live now */
    size_t gql_waiting;                     /* GraphQL operations and requests Python has now */
};

struct http_response {
    int status;
    const char *content_type;
    const char *body;       /* either a static file's bytes ... */
    size_t body_len;
    int uses_buffer;        /* ... or the text appended to the caller's buffer */
};

/* Answer GET path (no query string).  Builds into buf when the body is
 * dynamic.  Returns 0, or -1 when out of memory. */
int http_route(const struct http_context *ctx, const char *path, struct http_response *res,
               jbuf *buf);

#endif
