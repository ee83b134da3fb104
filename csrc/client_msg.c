/* client_msg.c - one client message parsed with libwebsockets' LEJP streaming JSON parser. */
#include "client_msg.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The top-level keys this protocol reads; LEJP reports which one a value belongs to. */
enum field { F_TYPE, F_SKILL, F_SKILL_NAME, F_TOKEN, F_COUNT };
static const char *const field_paths[F_COUNT] = {"type", "skill", "skill_name", "token"};

enum value_kind { V_ABSENT = 0, V_STRING, V_NULL, V_OTHER };

struct parse_state {
    enum value_kind kind[F_COUNT];
    char *value[F_COUNT];   /* V_STRING values, NUL-terminated */
    size_t len[F_COUNT];
    char *acc;              /* the string being assembled from LEJP's chunks */
    size_t acc_len;
    int oom;
};

static void set_value(struct parse_state *st, int f, enum value_kind kind, char *value, size_t len)
{
    free(st->value[f]);
    st->kind[f] = kind; /* a duplicated key: the last occurrence wins */
    st->value[f] = value;
    st->len[f] = len;
}

/* Which field the current value belongs to: only a top-level key, never one nested deeper. */
static int current_field(const struct lejp_ctx *ctx, const char *suffix)
{
    if (!ctx->path_match)
        return -1;
    int f = ctx->path_match - 1;
    size_t n = strlen(field_paths[f]);
    if (strncmp(ctx->path, field_paths[f], n) || strcmp(ctx->path + n, suffix))
        return -1;
    return f;
}

static int append_chunk(struct parse_state *st, const char *buf, size_t n)
{
    char *grown = realloc(st->acc, st->acc_len + n + 1);
    if (!grown) {
        st->oom = 1;
        return -1;
    }
    memcpy(grown + st->acc_len, buf, n);
    st->acc = grown;
    st->acc_len += n;
    st->acc[st->acc_len] = '\0';
    return 0;
}

static signed char on_event(struct lejp_ctx *ctx, char reason)
{
    struct parse_state *st = ctx->user;
    int f;

    switch (reason) {
    case LEJPCB_VAL_STR_START:
        free(st->acc);
        st->acc = NULL;
        st->acc_len = 0;
        return 0;
    case LEJPCB_VAL_STR_CHUNK:
    case LEJPCB_VAL_STR_END:
        if ((f = current_field(ctx, "")) < 0)
            return 0;
        if (append_chunk(st, ctx->buf, ctx->npos) < 0)
            return -1;
        if (reason == LEJPCB_VAL_STR_END) {
            set_value(st, f, V_STRING, st->acc, st->acc_len);
            st->acc = NULL;
            st->acc_len = 0;
        }
        return 0;
    case LEJPCB_VAL_NULL:
        if ((f = current_field(ctx, "")) >= 0)
            set_value(st, f, V_NULL, NULL, 0);
        return 0;
    case LEJPCB_VAL_TRUE:
    case LEJPCB_VAL_FALSE:
    case LEJPCB_VAL_NUM_INT:
    case LEJPCB_VAL_NUM_FLOAT:
    case LEJPCB_OBJECT_START:
        if ((f = current_field(ctx, "")) >= 0)
            set_value(st, f, V_OTHER, NULL, 0);
        return 0;
    case LEJPCB_ARRAY_START: /* the path already ends in "[]" here */
        if ((f = current_field(ctx, "[]")) >= 0)
            set_value(st, f, V_OTHER, NULL, 0);
        return 0;
    default:
        return 0;
    }
}

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* 1 when s[i..len) is "{", blanks, "}", blanks: LEJP 4.1.6 rejects an empty object. */
static int is_empty_object(const char *s, size_t i, size_t len)
{
    if (i == len || s[i++] != '{')
        return 0;
    while (i < len && is_json_space(s[i]))
        i++;
    if (i == len || s[i++] != '}')
        return 0;
    while (i < len && is_json_space(s[i]))
        i++;
    return i == len;
}

/* LEJP parses a bare array or stops early and leaves trailing bytes; the protocol wants one object. */
static int run_parser(const char *json, size_t len, struct parse_state *st)
{
    struct lejp_ctx ctx;
    size_t i = 0;

    while (i < len && is_json_space(json[i]))
        i++;
    if (is_empty_object(json, i, len))
        return 0;
    if (i == len || json[i] != '{' || len > 0x7fffffff)
        return -1;
    lejp_construct(&ctx, on_event, st, field_paths, F_COUNT);
    int rc = lejp_parse(&ctx, (const unsigned char *)json + i, (int)(len - i));
    lejp_destruct(&ctx);
    if (rc < 0) /* an error, or LEJP_CONTINUE: the object never closed */
        return -1;
    for (size_t k = len - (size_t)rc; k < len; k++)
        if (!is_json_space(json[k]))
            return -1;
    return 0;
}

/* The skill named by "skill" / "skill_name"; returns the field, -1 for none, -2 when they differ. */
static int pick_skill(const struct parse_state *st)
{
    enum value_kind a = st->kind[F_SKILL], b = st->kind[F_SKILL_NAME];
    if (a && b) {
        if (a != b || (a == V_STRING && (st->len[F_SKILL] != st->len[F_SKILL_NAME] ||
                                         memcmp(st->value[F_SKILL], st->value[F_SKILL_NAME],
                                                st->len[F_SKILL]))))
            return -2;
    }
    if (b)
        return F_SKILL_NAME;
    return a ? F_SKILL : -1;
}

static int fail(int status, char *err, size_t errlen, const char *reason)
{
    snprintf(err, errlen, "%s", reason);
    return status;
}

/* Move a string field out of the parse state. */
static char *take(struct parse_state *st, int f)
{
    char *v = st->value[f];
    st->value[f] = NULL;
    return v;
}

static int interpret(struct parse_state *st, struct client_msg *out, char *err, size_t errlen)
{
    if (st->kind[F_TYPE] != V_STRING)
        return fail(CM_INVALID_REQUEST, err, errlen, "\"type\" must be a string");
    const char *type = st->value[F_TYPE];
    size_t tlen = strnlen(type, 63);
    out->request_type = strndup(type, tlen);
    if (!out->request_type)
        return fail(CM_INVALID_REQUEST, err, errlen, "out of memory");

    if (!strcmp(type, "ping")) {
        out->type = CM_PING;
        return CM_OK;
    }
    if (!strcmp(type, "unsubscribe")) {
        out->type = CM_UNSUBSCRIBE;
        return CM_OK;
    }
    if (!strcmp(type, "auth")) {
        if (st->kind[F_TOKEN] != V_STRING)
            return fail(CM_INVALID_REQUEST, err, errlen, "\"token\" must be a string");
        out->type = CM_AUTH;
        out->token = take(st, F_TOKEN);
        return CM_OK;
    }
    int is_subscribe = !strcmp(type, "subscribe");
    if (!is_subscribe && strcmp(type, "get_metrics"))
        return fail(CM_UNKNOWN_TYPE, err, errlen, "unknown message type");

    int f = pick_skill(st);
    if (f == -2)
        return fail(CM_INVALID_REQUEST, err, errlen, "\"skill\" and \"skill_name\" differ");
    if (is_subscribe && (f < 0 || st->kind[f] == V_NULL)) {
        out->type = CM_SUBSCRIBE; /* all skills */
        return CM_OK;
    }
    if (f < 0 || st->kind[f] != V_STRING)
        return fail(CM_INVALID_REQUEST, err, errlen,
                    is_subscribe ? "\"skill_name\" must be a string or null"
                                 : "\"skill_name\" must be a string");
    if (st->len[f] == 0 || memchr(st->value[f], '\0', st->len[f]))
        return fail(CM_INVALID_REQUEST, err, errlen,
                    "a skill name must be non-empty and hold no NUL character");
    out->type = is_subscribe ? CM_SUBSCRIBE : CM_GET_METRICS;
    out->skill_len = st->len[f];
    out->skill = take(st, f);
    return CM_OK;
}

int client_msg_parse(const char *json, size_t len, struct client_msg *out, char *err, size_t errlen)
{
    struct parse_state st;
    int status;

    memset(out, 0, sizeof(*out));
    memset(&st, 0, sizeof(st));
    if (run_parser(json, len, &st) < 0)
        status = fail(CM_INVALID_JSON, err, errlen,
                      st.oom ? "out of memory" : "message is not a valid JSON object");
    else
        status = interpret(&st, out, err, errlen);

    for (int f = 0; f < F_COUNT; f++)
        free(st.value[f]);
    free(st.acc);
    if (status != CM_OK) {
        char *keep = out->request_type;
        out->request_type = NULL;
        client_msg_free(out);
        out->request_type = keep;
    }
    return status;
}

void client_msg_free(struct client_msg *m)
{
    free(m->request_type);
    free(m->skill);
    free(m->token);
    memset(m, 0, sizeof(*m));
}
