/* dispatch.c - the protocol's request handling as plain C: bytes in, action and reply out. */
#include "dispatch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client_msg.h"
#include "timeutil.h"

static void write_timestamp_field(jbuf *out, int64_t now_ms)
{
    char iso[32];
    iso_format_ms(now_ms, iso);
    jb_lit(out, ",\"timestamp\":");
    jb_cstr(out, iso);
}

static void write_stream_position(jbuf *out, const char *epoch, uint64_t seq)
{
    jb_lit(out, ",\"epoch\":");
    jb_cstr(out, epoch);
    jb_lit(out, ",\"seq\":");
    jb_int(out, (long long)seq);
}

void dispatch_write_connected(jbuf *out, int authenticated, const char *epoch, uint64_t seq,
                              int64_t now_ms)
{
    jb_lit(out, "{\"type\":\"connected\","
                "\"message\":\"Connected to Session-Buddy real-time metrics\","
                "\"authenticated\":");
    jb_bool(out, authenticated);
    jb_lit(out, ",\"protocol_version\":\"1.1\"");
    write_stream_position(out, epoch, seq);
    write_timestamp_field(out, now_ms);
    jb_lit(out, "}");
}

void dispatch_write_error(jbuf *out, const char *code, const char *message,
                          const char *request_type)
{
    jb_lit(out, "{\"type\":\"error\",\"code\":");
    jb_cstr(out, code);
    jb_lit(out, ",\"message\":");
    jb_cstr(out, message);
    jb_lit(out, ",\"request_type\":");
    jb_cstr(out, request_type);
    jb_lit(out, "}");
}

void dispatch_write_subscribed(jbuf *out, const char *skill, size_t skill_len,
                               const char *epoch, uint64_t seq, int recovered, int64_t now_ms)
{
    jb_lit(out, "{\"type\":\"subscription_confirmed\",\"skill\":");
    if (skill)
        jb_str(out, skill, skill_len);
    else
        jb_null(out);
    jb_lit(out, ",\"skill_name\":");
    if (skill)
        jb_str(out, skill, skill_len);
    else
        jb_null(out);
    jb_lit(out, ",\"message\":");
    if (skill) {
        jbuf msg;
        if (jb_init(&msg, 0, skill_len + 32) == 0) {
            jb_lit(&msg, "Subscribed to updates for ");
            jb_raw(&msg, skill, skill_len);
            jb_str(out, jb_text(&msg), msg.len);
        }
        out->failed |= msg.failed;
        jb_free(&msg);
    } else {
        jb_lit(out, "\"Subscribed to updates for all skills\"");
    }
    write_timestamp_field(out, now_ms);
    write_stream_position(out, epoch, seq);
    if (recovered >= 0) {
        jb_lit(out, ",\"recovered\":");
        jb_bool(out, recovered);
    }
    jb_lit(out, "}");
}

static void write_unknown_skill(jbuf *out, const char *skill, size_t skill_len,
                                const char *request_type)
{
    jbuf msg;
    if (jb_init(&msg, 0, skill_len + 32) == 0) {
        jb_lit(&msg, "Invalid skill name: ");
        jb_raw(&msg, skill, skill_len);
        jb_lit(out, "{\"type\":\"error\",\"code\":\"" SB_ERR_UNKNOWN_SKILL "\",\"message\":");
        jb_str(out, jb_text(&msg), msg.len);
        jb_lit(out, ",\"request_type\":");
        jb_cstr(out, request_type);
        jb_lit(out, "}");
    }
    out->failed |= msg.failed;
    jb_free(&msg);
}

static void write_metrics_response(jbuf *out, const struct skill_stats *st, int64_t now_ms)
{
    jb_lit(out, "{\"type\":\"metrics_response\",\"data\":");
    snapshot_write_skill_metrics(st, out);
    write_timestamp_field(out, now_ms);
    jb_lit(out, "}");
}

static void write_history_point(jbuf *out, const struct history_point *p)
{
    char iso[32];
    iso_format_ms(p->t_ms, iso);
    jb_lit(out, "{\"t\":");
    jb_cstr(out, iso);
    jb_lit(out, ",\"invocation_count\":");
    jb_int(out, (long long)p->invocations);
    jb_lit(out, ",\"completed_count\":");
    jb_int(out, (long long)p->completed);
    jb_lit(out, ",\"avg_duration\":");
    jb_double(out, p->n_durations ? p->sum_durations / (double)p->n_durations : NAN);
    jb_lit(out, "}");
}

/* The history_response for a parsed get_history (unknown_skill for a skill with no data). */
static void write_history(jbuf *out, const struct dispatch_env *env, const struct client_msg *msg)
{
    if (msg->skill && !(env->snap && metrics_find(env->snap->metrics, msg->skill, msg->skill_len)) &&
        !(env->history && history_knows(env->history, msg->skill, msg->skill_len))) {
        write_unknown_skill(out, msg->skill, msg->skill_len, "get_history");
        return;
    }
    struct history_point *points = malloc(HISTORY_MAX_POINTS * sizeof(*points));
    if (!points) {
        out->failed = 1;
        return;
    }
    size_t n = 0;
    if (env->history)
        n = history_query(env->history, msg->skill, msg->skill_len, env->now_ms, msg->window_s,
                          msg->step_s, points);
    jb_lit(out, "{\"type\":\"history_response\",\"skill_name\":");
    if (msg->skill)
        jb_str(out, msg->skill, msg->skill_len);
    else
        jb_null(out);
    jb_lit(out, ",\"window\":");
    jb_int(out, msg->window_s);
    jb_lit(out, ",\"step\":");
    jb_int(out, msg->step_s);
    jb_lit(out, ",\"points\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            jb_lit(out, ",");
        write_history_point(out, &points[i]);
    }
    jb_lit(out, "]");
    write_timestamp_field(out, env->now_ms);
    jb_lit(out, "}");
    free(points);
}

static const char *status_code(int status)
{
    switch (status) {
    case CM_INVALID_JSON:
        return SB_ERR_INVALID_JSON;
    case CM_UNKNOWN_TYPE:
        return SB_ERR_UNKNOWN_TYPE;
    default:
        return SB_ERR_INVALID_REQUEST;
    }
}

int dispatch_message(const char *data, size_t len, int is_binary, const struct dispatch_env *env,
                     struct dispatch_result *res, jbuf *reply)
{
    const struct snapshot *snap = env->snap;
    int64_t now_ms = env->now_ms;
    struct client_msg msg;
    char err[160];

    memset(res, 0, sizeof(*res));
    if (is_binary && !utf8_valid(data, len)) {
        dispatch_write_error(reply, SB_ERR_INVALID_JSON, "binary frame is not valid UTF-8 JSON", NULL);
        return reply->failed ? -1 : 0;
    }
    int status = client_msg_parse(data, len, &msg, err, sizeof(err));
    if (status != CM_OK) {
        dispatch_write_error(reply, status_code(status), err, msg.request_type);
        goto done;
    }
    if (env->auth_pending && msg.type != CM_AUTH) {
        dispatch_write_error(reply, SB_ERR_AUTH_REQUIRED,
                             "authenticate first: send {\"type\":\"auth\",\"token\":...}",
                             msg.request_type);
        goto done;
    }

    switch (msg.type) {
    case CM_SUBSCRIBE: {
        int recovered = -1; /* no since: the reply says nothing about recovery */
        if (msg.has_since) {
            recovered = env->recovery &&
                        recovery_can_resume(env->recovery, msg.since_epoch, msg.since_seq);
            res->resume = recovered;
            res->resume_seq = msg.since_seq;
        }
        res->action = DA_SUBSCRIBE;
        res->skill = msg.skill;
        res->skill_len = msg.skill_len;
        msg.skill = NULL;
        dispatch_write_subscribed(reply, res->skill, res->skill_len, env->epoch,
                                  snap ? snap->seq : 0, recovered, now_ms);
        break;
    }
    case CM_GET_HISTORY:
        write_history(reply, env, &msg);
        break;
    case CM_UNSUBSCRIBE:
        res->action = DA_UNSUBSCRIBE;
        jb_lit(reply, "{\"type\":\"unsubscribed\"");
        write_timestamp_field(reply, now_ms);
        jb_lit(reply, "}");
        break;
    case CM_PING:
        jb_lit(reply, "{\"type\":\"pong\"");
        write_timestamp_field(reply, now_ms);
        jb_lit(reply, "}");
        break;
    case CM_GET_METRICS: {
        const struct skill_stats *st =
            snap ? metrics_find(snap->metrics, msg.skill, msg.skill_len) : NULL;
        if (st)
            write_metrics_response(reply, st, now_ms);
        else
            write_unknown_skill(reply, msg.skill, msg.skill_len, "get_metrics");
        break;
    }
    case CM_AUTH:
        if (env->auth_pending) {
            res->action = DA_AUTH;
            res->token = msg.token;
            msg.token = NULL;
        } else {
            dispatch_write_error(reply, SB_ERR_INVALID_REQUEST, "no authentication is pending",
                                 msg.request_type);
        }
        break;
    case CM_NONE:
        dispatch_write_error(reply, SB_ERR_INVALID_REQUEST, "message has no type", NULL);
        break;
    }

done:
    client_msg_free(&msg);
    if (reply->failed) {
        dispatch_result_free(res);
        return -1;
    }
    return 0;
}

void dispatch_result_free(struct dispatch_result *res)
{
    free(res->skill);
    free(res->token);
    memset(res, 0, sizeof(*res));
}
