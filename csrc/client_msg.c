/* client_msg.c - one client message: its top-level fields turned into a request. */
#include "client_msg.h"

#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "json_object.h"
#include "snapshot.h"

/* request_type keeps at most this many bytes of "type" (see client_msg.h). */
#define REQUEST_TYPE_MAX 63

_Static_assert(SKILL_NAME_MAX == 1024, "the invalid_request message below quotes the limit");

/* The top-level keys this protocol reads. */
enum field {
    F_NONE = -1, F_TYPE, F_SKILL, F_SKILL_NAME, F_TOKEN, F_SINCE, F_SINCE_EPOCH, F_SINCE_SEQ,
    F_WINDOW, F_STEP, F_COUNT
};
static const char *const field_names[F_COUNT] = {"type",        "skill",     "skill_name",
                                                 "token",       "since",     "since.epoch",
                                                 "since.seq",   "window",    "step"};

/* The largest seq a client may name: every integer up to it is exact in a JSON number. */
#define SEQ_MAX 9007199254740992.0

struct message_type {
    const char *name;
    enum cm_type type;
};

static const struct message_type message_types[] = {
    {"subscribe", CM_SUBSCRIBE},
    {"unsubscribe", CM_UNSUBSCRIBE},
    {"ping", CM_PING},
    {"get_metrics", CM_GET_METRICS},
    {"auth", CM_AUTH},
    {"get_history", CM_GET_HISTORY},
};

/* A whole number in lo..hi, or absent (then *out = dflt).  Returns 0, or -1. */
static int take_whole(const struct jo_value *v, double lo, double hi, long long dflt,
                      long long *out)
{
    if (v->kind == JO_ABSENT) {
        *out = dflt;
        return 0;
    }
    if (v->kind != JO_NUMBER || !(v->number >= lo && v->number <= hi) ||
        v->number != (double)(long long)v->number)
        return -1;
    *out = (long long)v->number;
    return 0;
}

/* The "since" of a subscribe into out.  Returns a status with err set. */
static int take_since(const struct jo_value *ps, struct client_msg *out, char *err, size_t errlen)
{
    const struct jo_value *since = &ps[F_SINCE], *epoch = &ps[F_SINCE_EPOCH];
    long long seq;
    if (since->kind == JO_ABSENT || since->kind == JO_NULL)
        return CM_OK;
    if (since->kind != JO_OTHER || epoch->kind != JO_STRING || epoch->len > CM_EPOCH_MAX ||
        memchr(epoch->s, '\0', epoch->len) || ps[F_SINCE_SEQ].kind == JO_ABSENT ||
        take_whole(&ps[F_SINCE_SEQ], 0, SEQ_MAX, 0, &seq) < 0) {
        jo_set_err(err, errlen,
                   "\"since\" must be {\"epoch\": string, \"seq\": integer >= 0} or null", NULL);
        return CM_INVALID_REQUEST;
    }
    out->has_since = 1;
    memcpy(out->since_epoch, epoch->s, epoch->len + 1);
    out->since_seq = (uint64_t)seq;
    return CM_OK;
}

/* The window and step of a get_history into out.  Returns a status with err set. */
static int take_history_range(const struct jo_value *ps, struct client_msg *out, char *err,
                              size_t errlen)
{
    if (take_whole(&ps[F_WINDOW], 1, HISTORY_MAX_WINDOW_S, HISTORY_DEFAULT_WINDOW_S,
                   &out->window_s) < 0 ||
        take_whole(&ps[F_STEP], HISTORY_MIN_STEP_S, HISTORY_MAX_STEP_S, HISTORY_DEFAULT_STEP_S,
                   &out->step_s) < 0) {
        jo_set_err(err, errlen, HISTORY_RANGE_TEXT, NULL);
        return CM_INVALID_REQUEST;
    }
    return history_request_check(out->window_s, out->step_s, err, errlen) < 0 ? CM_INVALID_REQUEST
                                                                            : CM_OK;
}

/* The field naming the skill: F_NONE when neither key is present, or -2
 * when both are and their values differ (null counts as a value). */
static int pick_skill(const struct jo_value *ps)
{
    enum jo_kind a = ps[F_SKILL].kind, b = ps[F_SKILL_NAME].kind;
    if (a != JO_ABSENT && b != JO_ABSENT) {
        const struct jo_value *x = &ps[F_SKILL], *y = &ps[F_SKILL_NAME];
        if (a != b || (a == JO_STRING && (x->len != y->len || memcmp(x->s, y->s, x->len))))
            return -2;
    }
    if (b != JO_ABSENT)
        return F_SKILL_NAME;
    return a != JO_ABSENT ? F_SKILL : F_NONE;
}

/* Turn the top-level fields into *out; returns a status with err set. */
/* A token string without a NUL (token has no length field: a NUL would cut it short). */
static int take_token(struct jo_value *ps, struct client_msg *out, char *err, size_t errlen)
{
    if (ps[F_TOKEN].kind != JO_STRING) {
        jo_set_err(err, errlen, "\"token\" must be a string", NULL);
        return CM_INVALID_REQUEST;
    }
    if (memchr(ps[F_TOKEN].s, '\0', ps[F_TOKEN].len)) {
        jo_set_err(err, errlen, "\"token\" must hold no NUL character", NULL);
        return CM_INVALID_REQUEST;
    }
    out->type = CM_AUTH;
    out->token = jo_take(&ps[F_TOKEN]);
    return CM_OK;
}

static int interpret(struct jo_value *ps, struct client_msg *out, char *err, size_t errlen)
{
    /* session-buddy's pure-Python server reads its first message as {"token": ...} */
    if (ps[F_TYPE].kind == JO_ABSENT && ps[F_TOKEN].kind == JO_STRING)
        return take_token(ps, out, err, errlen);
    if (ps[F_TYPE].kind == JO_ABSENT) {
        jo_set_err(err, errlen, "missing \"type\"", NULL);
        return CM_INVALID_REQUEST;
    }
    if (ps[F_TYPE].kind != JO_STRING) {
        jo_set_err(err, errlen, "\"type\" must be a string", NULL);
        return CM_INVALID_REQUEST;
    }

    const struct jo_value *t = &ps[F_TYPE];
    size_t keep = t->len < REQUEST_TYPE_MAX ? t->len : REQUEST_TYPE_MAX;
    out->request_type = malloc(keep + 1);
    if (!out->request_type) {
        jo_set_err(err, errlen, "out of memory", NULL);
        return CM_INVALID_REQUEST;
    }
    memcpy(out->request_type, t->s, keep);
    out->request_type[keep] = '\0';

    enum cm_type type = CM_NONE;
    for (size_t k = 0; k < sizeof(message_types) / sizeof(message_types[0]); k++)
        if (jo_bytes_equal(t->s, t->len, message_types[k].name))
            type = message_types[k].type;

    switch (type) {
    case CM_PING:
    case CM_UNSUBSCRIBE:
        out->type = type;
        return CM_OK;

    case CM_AUTH:
        return take_token(ps, out, err, errlen);

    case CM_SUBSCRIBE:
    case CM_GET_METRICS:
    case CM_GET_HISTORY: {
        int f = pick_skill(ps);
        int st = CM_OK;
        if (f == -2) {
            jo_set_err(err, errlen, "\"skill\" and \"skill_name\" differ", NULL);
            return CM_INVALID_REQUEST;
        }
        if (type == CM_SUBSCRIBE)
            st = take_since(ps, out, err, errlen);
        else if (type == CM_GET_HISTORY)
            st = take_history_range(ps, out, err, errlen);
        if (st != CM_OK)
            return st;
        if (type != CM_GET_METRICS && (f == F_NONE || ps[f].kind == JO_NULL)) {
            out->type = type; /* all skills */
            return CM_OK;
        }
        if (f == F_NONE || ps[f].kind != JO_STRING) {
            jo_set_err(err, errlen,
                    type != CM_GET_METRICS ? "\"skill_name\" must be a string or null"
                                           : "\"skill_name\" must be a string",
                    NULL);
            return CM_INVALID_REQUEST;
        }
        const struct jo_value *v = &ps[f];
        if (v->len == 0 || memchr(v->s, '\0', v->len)) {
            jo_set_err(err, errlen, "a skill name must be non-empty and hold no NUL character",
                    NULL);
            return CM_INVALID_REQUEST;
        }
        if (v->len > SKILL_NAME_MAX) {
            jo_set_err(err, errlen, "a skill name must be at most 1024 bytes", NULL);
            return CM_INVALID_REQUEST;
        }
        out->type = type;
        out->skill_len = v->len;
        out->skill = jo_take(&ps[f]);
        return CM_OK;
    }

    case CM_NONE:
        break;
    }
    jo_set_err(err, errlen, "unknown message type", NULL);
    return CM_UNKNOWN_TYPE;
}

int client_msg_parse(const char *json, size_t len, struct client_msg *out, char *err,
                     size_t errlen)
{
    struct jo_value fields[F_COUNT];

    memset(out, 0, sizeof(*out));
    memset(fields, 0, sizeof(fields));
    int status = CM_OK;
    switch (jo_parse(json, len, field_names, F_COUNT, fields, err, errlen)) {
    case JO_OK:
        status = interpret(fields, out, err, errlen);
        break;
    case JO_INVALID:
        status = CM_INVALID_JSON;
        break;
    case JO_NOMEM:
        status = CM_INVALID_REQUEST;
        break;
    }
    jo_free(fields, F_COUNT);
    if (status != CM_OK) {
        /* keep only request_type, for the error reply to echo */
        char *request_type = out->request_type;
        out->request_type = NULL;
        client_msg_free(out);
        out->request_type = request_type;
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
