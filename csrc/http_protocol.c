/* http_protocol.c - plain HTTP on the WebSocket port: checks, routing, answers, the body. */
#include "http_protocol.h"

#include <stdlib.h>
#include <string.h>

#include "handshake.h"
#include "http_routes.h"
#include "jwt.h"
#include "msgbuf.h"
#include "service.h"
#include "ticker.h"
#include "timeutil.h"

/* The Host check, counted. */
static int host_allowed_counted(struct lws *wsi, struct service *svc)
{
    if (handshake_host_allowed(wsi, svc->cfg.allowed_hosts, svc->cfg.n_allowed_hosts))
        return 1;
    svc->counters.rejected_host++;
    return 0;
}

/* With authentication on, whatever carries data needs the same token as a WebSocket client. */
static int request_authorized(struct lws *wsi, struct service *svc)
{
    if (!svc->cfg.jwt_secret)
        return 1;
    char *token = malloc(HANDSHAKE_MAX_TOKEN);
    if (!token)
        return 0;
    int ok = 0, n = handshake_token(wsi, token, HANDSHAKE_MAX_TOKEN);
    if (n > 0) {
        struct jwt_claims claims;
        if (jwt_verify(token, (size_t)n, svc->cfg.jwt_secret, svc->cfg.jwt_secret_len,
                       (double)now_unix_ms() / 1000.0, &claims) == JWT_OK) {
            jwt_claims_free(&claims);
            ok = 1;
        }
    }
    memset(token, 0, HANDSHAKE_MAX_TOKEN);
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
static int answer_now(struct lws *wsi, unsigned int status, const char *name, const char *value,
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
static int begin(struct http_session *hs, struct lws *wsi, struct service *svc, const char *path)
{
    int head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    if (!head && lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return answer_now(wsi, 405, "allow:", "GET, HEAD", "method not allowed\n", 0);
    if (!host_allowed_counted(wsi, svc))
        return answer_now(wsi, 403, NULL, NULL, "host not allowed\n", head);
    if (!strcmp(path, "/metrics") && !request_authorized(wsi, svc))
        return answer_now(wsi, 401, "www-authenticate:", "Bearer",
                          "a token is required: Authorization: Bearer, or ?token=\n", head);

    unsigned char headers[LWS_PRE + 1024];
    unsigned char *start = headers + LWS_PRE, *p = start, *end = headers + sizeof(headers) - 1;
    struct ticker_metrics tm;
    struct http_response res;

    struct redis_status redis;
    int has_redis = service_redis_status(svc, &redis) == 0;
    ticker_get_metrics(svc->ticker, &tm);
    struct webhook_stat *hooks = NULL;
    size_t n_hooks = 0;
    if (webhook_stats_copy(svc->webhooks, &hooks, &n_hooks) < 0)
        return -1;
    struct http_context ctx = {
        .redis = has_redis ? &redis : NULL,
        .counters = &svc->counters,
        .clients = svc->n_sessions,
        .now_ms = now_unix_ms(),
        .started_ms = svc->started_ms,
        .snapshot = svc->fan.current,
        .ticker = &tm,
        .files = &svc->files,
        .webhooks = hooks,
        .n_webhooks = n_hooks,
    };
    struct msgbuf *body = msgbuf_new(4096);
    if (!body || http_route(&ctx, path, &res, &body->jb) < 0) {
        free(hooks);
        msgbuf_unref(body);
        return -1;
    }
    free(hooks);
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
    msgbuf_unref(hs->body);
    if (head) {
        /* The same headers as GET, and no body: a pipelined next response stays in step. */
        msgbuf_unref(body);
        hs->body = NULL;
        if (lws_http_transaction_completed(wsi))
            return -1;
        pending_restart(svc, wsi); /* idle until the next request, which has its own deadline */
        return 0;
    }
    hs->body = body;
    lws_callback_on_writable(wsi);
    return 0;
}

static int write_body(struct http_session *hs, struct lws *wsi, struct service *svc)
{
    struct msgbuf *body = hs->body;
    if (!body)
        return 0;
    hs->body = NULL;
    int n = lws_write(wsi, (unsigned char *)jb_text(&body->jb), body->jb.len, LWS_WRITE_HTTP_FINAL);
    int short_write = n < (int)body->jb.len;
    msgbuf_unref(body);
    if (short_write || lws_http_transaction_completed(wsi))
        return -1;
    pending_restart(svc, wsi);
    return 0;
}

static void drop_body(struct http_session *hs)
{
    if (hs) {
        msgbuf_unref(hs->body);
        hs->body = NULL;
    }
}

int http_protocol_handle(struct http_session *hs, struct lws *wsi, enum lws_callback_reasons reason,
                         void *in, size_t len)
{
    struct service *svc = lws_context_user(lws_get_context(wsi));
    (void)len;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return hs ? begin(hs, wsi, svc, (const char *)in) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return hs ? write_body(hs, wsi, svc) : -1;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        drop_body(hs);
        return 0;
    default:
        return 0;
    }
}
