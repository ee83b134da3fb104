/* http_protocol.c - plain HTTP on the WebSocket port: checks, routing, answers, the body. */
#include "http_protocol.h"

#include <stdlib.h>
#include <string.h>

#include "event_queue.h"
#include "gql_command.h"
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

/* With authentication on, whatever carries data needs the same token as a WebSocket client;
 * user (when not NULL) receives the user it names ("" with authentication off). */
static int request_authorized(struct lws *wsi, struct service *svc, char user[JWT_MAX_USER_ID + 1])
{
    if (user)
        user[0] = '\0';
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
            if (user)
                memcpy(user, claims.user_id, JWT_MAX_USER_ID + 1);
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

/* The URL's arguments as lws decoded them (%xx, '+'), one "name=value" string each. */
static void write_url_args(jbuf *out, struct lws *wsi)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    char *buf = total > 0 ? malloc((size_t)total + 1) : NULL;
    jb_lit(out, "[");
    for (int i = 0, n; buf && (n = lws_hdr_copy_fragment(wsi, buf, total + 1,
                                                         WSI_TOKEN_HTTP_URI_ARGS, i)) >= 0; i++) {
        if (i)
            jb_lit(out, ",");
        jb_str(out, buf, (size_t)n);
    }
    jb_lit(out, "]");
    if (total > 0 && !buf)
        out->failed = 1;
    free(buf);
}

/* Hand the whole /graphql request to Python (EV_GQL_HTTP) and wait for http_protocol_reply.
 * Returns what the lws callback returns. */
static int graphql_hand_over(struct http_session *hs, struct lws *wsi, struct service *svc)
{
    char user[JWT_MAX_USER_ID + 1];
    char type[128];
    int post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    jbuf text;

    if (!request_authorized(wsi, svc, user))
        return answer_now(wsi, 401, "www-authenticate:", "Bearer",
                          "a token is required: Authorization: Bearer, or ?token=\n", 0);
    if (lws_hdr_copy(wsi, type, sizeof(type), WSI_TOKEN_HTTP_CONTENT_TYPE) < 0)
        type[0] = '\0';
    if (jb_init(&text, 0, hs->request.len + 512) < 0)
        return -1;
    jb_lit(&text, "{\"method\":");
    jb_cstr(&text, post ? "POST" : "GET");
    jb_lit(&text, ",\"args\":");
    write_url_args(&text, wsi);
    jb_lit(&text, ",\"body\":");
    jb_str(&text, hs->request.mem ? jb_text(&hs->request) : "", hs->request.len);
    jb_lit(&text, ",\"content_type\":");
    jb_cstr(&text, type);
    jb_lit(&text, ",\"user\":");
    jb_cstr(&text, user);
    jb_lit(&text, "}");
    jb_free(&hs->request);
    hs->request_id = ++svc->next_http_request_id;
    int rc = text.failed ? -1
                         : evq_post(svc->events, EV_GQL_HTTP, 0, hs->request_id, jb_text(&text));
    jb_free(&text);
    if (rc < 0) {
        hs->request_id = 0;
        return -1;
    }
    svc->counters.gql_http_requests++;
    hs->wsi = wsi;
    hs->next_waiting = svc->http_waiting;
    svc->http_waiting = hs;
    svc->n_http_waiting++;
    return 0;
}

/* GET or POST /graphql: checked here, its body (POST) read through HTTP_BODY, then handed over. */
static int graphql_begin(struct http_session *hs, struct lws *wsi, struct service *svc)
{
    char length[24];
    int post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    if (!post && lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return answer_now(wsi, 405, "allow:", "GET, POST", "method not allowed\n", 0);
    if (!host_allowed_counted(wsi, svc))
        return answer_now(wsi, 403, NULL, NULL, "host not allowed\n", 0);
    /* The WebSocket upgrade's Origin policy: a page of another origin gets no data this way
     * either (no CORS headers are ever sent, so a browser shows it no answer anyway). */
    char shown[128];
    if (!handshake_origin_allowed(wsi, svc->cfg.allowed_origins, svc->cfg.n_allowed_origins, shown,
                                  sizeof(shown))) {
        svc->counters.rejected_origin++;
        return answer_now(wsi, 403, NULL, NULL, "origin not allowed\n", 0);
    }
    if (svc->n_http_waiting >= HTTP_GRAPHQL_MAX_WAITING)
        return answer_now(wsi, 503, "retry-after:", "1", "too many GraphQL requests at once\n", 0);
    if (!post)
        return graphql_hand_over(hs, wsi, svc);
    if (lws_hdr_copy(wsi, length, sizeof(length), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return answer_now(wsi, 411, NULL, NULL, "a Content-Length is required\n", 0);
    char *end;
    unsigned long long n = strtoull(length, &end, 10);
    if (*end || n > HTTP_GRAPHQL_MAX_BODY)
        return answer_now(wsi, 413, NULL, NULL, "the body is over 64 KiB\n", 0);
    jb_free(&hs->request);
    if (jb_init(&hs->request, 0, (size_t)n + 1) < 0)
        return -1;
    if (n == 0)
        return graphql_hand_over(hs, wsi, svc);
    return 0; /* the body arrives through HTTP_BODY */
}

static int graphql_body(struct http_session *hs, const void *in, size_t len)
{
    if (!hs->request.mem || hs->request.len + len > HTTP_GRAPHQL_MAX_BODY)
        return -1; /* more than its Content-Length said */
    jb_raw(&hs->request, in, len);
    return hs->request.failed ? -1 : 0;
}

/* Route the request and write its headers; the body follows in HTTP_WRITEABLE (none for HEAD).
 * Returns what the lws callback returns. */
static int begin(struct http_session *hs, struct lws *wsi, struct service *svc, const char *path)
{
    if (!strcmp(path, "/graphql"))
        return graphql_begin(hs, wsi, svc);
    int head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    if (!head && lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return answer_now(wsi, 405, "allow:", "GET, HEAD", "method not allowed\n", 0);
    if (!host_allowed_counted(wsi, svc))
        return answer_now(wsi, 403, NULL, NULL, "host not allowed\n", head);
    if (!strcmp(path, "/metrics") && !request_authorized(wsi, svc, NULL))
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
        .graphql_schema = svc->cfg.graphql_schema,
        .gql_live = svc->gql_live,
        .gql_waiting = svc->gql_waiting + svc->n_http_waiting,
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

/* Python's answer is in: its headers now, its body from the next HTTP_WRITEABLE. */
static int write_reply_headers(struct http_session *hs, struct lws *wsi)
{
    unsigned char headers[LWS_PRE + 512];
    unsigned char *start = headers + LWS_PRE, *p = start, *end = headers + sizeof(headers) - 1;
    unsigned status = (unsigned)hs->reply_status;
    hs->reply_status = 0;
    if (lws_add_http_common_headers(wsi, status, hs->reply_type, hs->body->jb.len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* Take hs out of the service's list of requests Python has. */
static void unlink_waiting(struct service *svc, struct http_session *hs)
{
    if (!hs->request_id)
        return;
    for (struct http_session **pp = &svc->http_waiting; *pp; pp = &(*pp)->next_waiting) {
        if (*pp == hs) {
            *pp = hs->next_waiting;
            break;
        }
    }
    svc->n_http_waiting--;
    hs->request_id = 0;
    hs->next_waiting = NULL;
}

void http_protocol_reply(struct service *svc, struct gql_command *cmd)
{
    struct http_session *hs = svc->http_waiting;
    while (hs && hs->request_id != cmd->target)
        hs = hs->next_waiting;
    if (hs && cmd->body && cmd->content_type) {
        unlink_waiting(svc, hs);
        msgbuf_unref(hs->body);
        hs->body = cmd->body;
        cmd->body = NULL;
        free(hs->reply_type);
        hs->reply_type = cmd->content_type;
        cmd->content_type = NULL;
        hs->reply_status = cmd->status;
        lws_callback_on_writable(hs->wsi);
    }
    gql_command_free(cmd);
}

static void drop_body(struct http_session *hs, struct service *svc)
{
    if (hs) {
        unlink_waiting(svc, hs);
        msgbuf_unref(hs->body);
        hs->body = NULL;
        jb_free(&hs->request);
        free(hs->reply_type);
        hs->reply_type = NULL;
        hs->reply_status = 0;
    }
}

int http_protocol_handle(struct http_session *hs, struct lws *wsi, enum lws_callback_reasons reason,
                         void *in, size_t len)
{
    struct service *svc = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return hs ? begin(hs, wsi, svc, (const char *)in) : -1;
    case LWS_CALLBACK_HTTP_BODY:
        return hs ? graphql_body(hs, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return hs && hs->request.mem ? graphql_hand_over(hs, wsi, svc) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (hs && hs->reply_status)
            return write_reply_headers(hs, wsi);
        return hs ? write_body(hs, wsi, svc) : -1;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        drop_body(hs, svc);
        return 0;
    default:
        return 0;
    }
}
