/* client_msg.c - one client message parsed with libwebsockets' LEJP streaming JSON parser. */
#include "client_msg.h"

#include <libwebsockets.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* request_type keeps at most this many bytes of "type" (see client_msg.h). */
#define REQUEST_TYPE_MAX 63

/* The top-level keys this protocol reads. */
enum field { F_NONE = -1, F_TYPE, F_SKILL, F_SKILL_NAME, F_TOKEN, F_COUNT };
static const char *const field_names[F_COUNT] = {"type", "skill", "skill_name", "token"};

/* What the last occurrence of a top-level key held. */
enum kind { K_ABSENT = 0, K_STRING, K_NULL, K_OTHER };

/* A string value assembled from LEJP's chunks; NUL-terminated once any byte
 * (or the empty string) has been stored, and may hold NULs from \u0000. */
struct strbuf {
    char *s;
    size_t len;
    size_t cap;
};

struct parse_state {
    enum kind kind[F_COUNT];
    struct strbuf value[F_COUNT];
    int next;       /* field whose value LEJP reports next, or F_NONE */
    int collecting; /* field a string value is being assembled into, or F_NONE */
    int oom;
};

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
};

/* Copy a reason into the caller's bounded buffer, as "a" followed by "b". */
static void set_err(char *err, size_t errlen, const char *a, const char *b)
{
    size_t pos = 0;
    if (!err || errlen == 0)
        return;
    for (const char *p = a; p && *p && pos + 1 < errlen; p++)
        err[pos++] = *p;
    for (const char *p = b; p && *p && pos + 1 < errlen; p++)
        err[pos++] = *p;
    err[pos] = '\0';
}

/* Exact comparison: keys and values may contain NULs (from \u0000), so a
 * C string compare would let "type\u0000x" pass for "type". */
static int bytes_equal(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(s, name, n) == 0;
}

static int sb_append(struct strbuf *sb, const char *p, size_t n)
{
    if (n > SIZE_MAX - 1 - sb->len)
        return -1;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 64;
        while (cap < sb->len + n + 1) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *grown = realloc(sb->s, cap);
        if (!grown)
            return -1;
        sb->s = grown;
        sb->cap = cap;
    }
    if (n)
        memcpy(sb->s + sb->len, p, n);
    sb->len += n;
    sb->s[sb->len] = '\0';
    return 0;
}

/*
 * LEJP 4.1.6 turns each \uXXXX escape into UTF-8 on its own, so an escaped
 * surrogate pair (how Python's json.dumps sends any emoji) arrives as two
 * 3-byte surrogate encodings (CESU-8), which match no skill name.  Join each
 * such pair into the 4-byte UTF-8 it stands for.  The text frame was valid
 * UTF-8, so these byte patterns can only have come from escapes.  A lone
 * surrogate is left as it is; the JSON writer replaces it when echoing.
 */
static void join_surrogate_pairs(struct strbuf *sb)
{
    unsigned char *s = (unsigned char *)sb->s;
    size_t out = 0;

    for (size_t i = 0; i < sb->len;) {
        if (sb->len - i >= 6 && s[i] == 0xED && (s[i + 1] & 0xF0) == 0xA0 &&
            (s[i + 2] & 0xC0) == 0x80 && s[i + 3] == 0xED && (s[i + 4] & 0xF0) == 0xB0 &&
            (s[i + 5] & 0xC0) == 0x80) {
            unsigned long hi = ((s[i + 1] & 0x0Fu) << 6) | (s[i + 2] & 0x3Fu); /* of 0xD800 */
            unsigned long lo = ((s[i + 4] & 0x0Fu) << 6) | (s[i + 5] & 0x3Fu); /* of 0xDC00 */
            unsigned long cp = 0x10000 + (hi << 10) + lo;
            s[out++] = (unsigned char)(0xF0 | (cp >> 18));
            s[out++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            s[out++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            s[out++] = (unsigned char)(0x80 | (cp & 0x3F));
            i += 6;
        } else {
            s[out++] = s[i++];
        }
    }
    sb->len = out;
    sb->s[out] = '\0';
}

/* The current top-level value was not a string: record its kind. */
static void settle(struct parse_state *ps, enum kind kind)
{
    if (ps->next != F_NONE)
        ps->kind[ps->next] = kind; /* a duplicated key: the last occurrence wins */
    ps->next = F_NONE;
}

static signed char on_event(struct lejp_ctx *ctx, char reason)
{
    struct parse_state *ps = ctx->user;

    switch ((unsigned char)reason) {
    case LEJPCB_PAIR_NAME:
        /*
         * sp is 0 only for the keys of the top-level object.  Checking the
         * path alone is not enough: under an empty key ("": {"type": ...})
         * LEJP builds the nested path "type" with no "." in front.
         */
        ps->next = F_NONE;
        if (ctx->sp == 0) {
            size_t key_len = ctx->pst[ctx->pst_sp].ppos;
            for (int f = 0; f < F_COUNT; f++)
                if (bytes_equal(ctx->path, key_len, field_names[f]))
                    ps->next = f;
        }
        return 0;

    case LEJPCB_VAL_STR_START:
        ps->collecting = ps->next;
        ps->next = F_NONE;
        if (ps->collecting != F_NONE) {
            ps->kind[ps->collecting] = K_ABSENT;
            ps->value[ps->collecting].len = 0;
            /* an empty string gets no chunk of its own, so terminate it now */
            if (sb_append(&ps->value[ps->collecting], "", 0) < 0)
                goto oom;
        }
        return 0;

    case LEJPCB_VAL_STR_CHUNK:
    case LEJPCB_VAL_STR_END:
        if (ps->collecting == F_NONE)
            return 0;
        /* ctx->npos bytes, not strlen: the chunk may hold NULs */
        if (sb_append(&ps->value[ps->collecting], ctx->buf, ctx->npos) < 0)
            goto oom;
        if ((unsigned char)reason == LEJPCB_VAL_STR_END) {
            join_surrogate_pairs(&ps->value[ps->collecting]);
            ps->kind[ps->collecting] = K_STRING;
            ps->collecting = F_NONE;
        }
        return 0;

    case LEJPCB_VAL_NULL:
        settle(ps, K_NULL);
        return 0;

    case LEJPCB_VAL_TRUE:
    case LEJPCB_VAL_FALSE:
    case LEJPCB_VAL_NUM_INT:
    case LEJPCB_VAL_NUM_FLOAT:
    case LEJPCB_OBJECT_START:
    case LEJPCB_ARRAY_START:
        /* For a container this also stops its contents from counting. */
        settle(ps, K_OTHER);
        return 0;

    default:
        return 0;
    }

oom:
    ps->oom = 1;
    return -1;
}

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * 1 when feeding the next byte could overrun one of LEJP 4.1.6's fixed
 * arrays, which it does not bound-check itself:
 * - the key path (ctx->path, LEJP_MAX_PATH bytes) grows by up to two bytes
 *   a byte ("[]") and gets a NUL after them, with no length check;
 * - the array index stack (ctx->i) is written one slot past its end before
 *   LEJP notices that arrays are nested too deeply.
 */
static int would_overrun(const struct lejp_ctx *ctx, unsigned char c)
{
    if (ctx->pst[ctx->pst_sp].ppos > LEJP_MAX_PATH - 3)
        return 1;
    return c == '[' && ctx->st[ctx->sp].s == LEJP_MP_VALUE &&
           ctx->ipos >= LEJP_MAX_INDEX_DEPTH;
}

/*
 * Run LEJP over json[0..len) and check that it is exactly one JSON object.
 * The bytes are fed one at a time so that LEJP's limits can be checked
 * before each step (would_overrun), so that its leniencies can be caught
 * (# comments) and so that the end of the object is known exactly.
 * Returns CM_OK or a status, with err set.
 */
static int run_lejp(const char *json, size_t len, struct parse_state *ps, char *err,
                    size_t errlen)
{
    struct lejp_ctx ctx;
    const char *why = NULL;
    int rc = LEJP_CONTINUE;
    size_t i = 0;

    while (i < len && is_json_space(json[i]))
        i++;
    if (i == len) {
        set_err(err, errlen, "empty message", NULL);
        return CM_INVALID_JSON;
    }
    /* LEJP would also take a top-level array; the protocol wants an object. */
    if (json[i] != '{') {
        set_err(err, errlen, "message is not a JSON object", NULL);
        return CM_INVALID_JSON;
    }

    lejp_construct(&ctx, on_event, ps, NULL, 0);
    for (; i < len && rc == LEJP_CONTINUE; i++) {
        unsigned char c = (unsigned char)json[i];

        /* LEJP 4.1.6 rejects "{}" at the top level; it is a valid, empty object. */
        if (c == '}' && ctx.sp == 0 && ctx.st[0].s == LEJP_MEMBERS) {
            rc = 0;
            continue;
        }
        if (would_overrun(&ctx, c)) {
            why = "nesting or key length exceeds the parser's limits";
            break;
        }
        rc = lejp_parse(&ctx, &c, 1);
        if (rc == LEJP_CONTINUE && (ctx.st[ctx.sp].s & LEJP_FLAG_WS_COMMENTLINE)) {
            why = "'#' comments are not JSON";
            break;
        }
        /*
         * LEJP only restores its array index depth when an array closes
         * below the top level, so each array-valued top-level member leaks
         * one slot and the sixth is refused.  At the top level of an object
         * no array is open: the right depth is 0.
         */
        if (ctx.sp == 0)
            ctx.ipos = 0;
    }
    lejp_destruct(&ctx);

    if (ps->oom) {
        set_err(err, errlen, "out of memory", NULL);
        return CM_INVALID_REQUEST;
    }
    if (why) {
        set_err(err, errlen, "invalid JSON: ", why);
        return CM_INVALID_JSON;
    }
    if (rc == LEJP_CONTINUE) {
        set_err(err, errlen, "invalid JSON: ", "the object is not closed");
        return CM_INVALID_JSON;
    }
    if (rc < 0) {
        set_err(err, errlen, "invalid JSON: ", lejp_error_to_string(rc));
        return CM_INVALID_JSON;
    }
    /* LEJP stops at the closing brace; anything after it but blanks is garbage. */
    for (; i < len; i++) {
        if (!is_json_space(json[i])) {
            set_err(err, errlen, "invalid JSON: ", "data after the object");
            return CM_INVALID_JSON;
        }
    }
    return CM_OK;
}

/* Move a string field out of the parse state. */
static char *take(struct parse_state *ps, int f)
{
    char *s = ps->value[f].s;
    ps->value[f].s = NULL;
    ps->value[f].len = ps->value[f].cap = 0;
    return s;
}

/* The field naming the skill: F_NONE when neither key is present, or -2
 * when both are and their values differ (null counts as a value). */
static int pick_skill(const struct parse_state *ps)
{
    enum kind a = ps->kind[F_SKILL], b = ps->kind[F_SKILL_NAME];
    if (a != K_ABSENT && b != K_ABSENT) {
        const struct strbuf *x = &ps->value[F_SKILL], *y = &ps->value[F_SKILL_NAME];
        if (a != b || (a == K_STRING && (x->len != y->len || memcmp(x->s, y->s, x->len))))
            return -2;
    }
    if (b != K_ABSENT)
        return F_SKILL_NAME;
    return a != K_ABSENT ? F_SKILL : F_NONE;
}

/* Turn the top-level fields into *out; returns a status with err set. */
static int interpret(struct parse_state *ps, struct client_msg *out, char *err, size_t errlen)
{
    if (ps->kind[F_TYPE] == K_ABSENT) {
        set_err(err, errlen, "missing \"type\"", NULL);
        return CM_INVALID_REQUEST;
    }
    if (ps->kind[F_TYPE] != K_STRING) {
        set_err(err, errlen, "\"type\" must be a string", NULL);
        return CM_INVALID_REQUEST;
    }

    const struct strbuf *t = &ps->value[F_TYPE];
    size_t keep = t->len < REQUEST_TYPE_MAX ? t->len : REQUEST_TYPE_MAX;
    out->request_type = malloc(keep + 1);
    if (!out->request_type) {
        set_err(err, errlen, "out of memory", NULL);
        return CM_INVALID_REQUEST;
    }
    memcpy(out->request_type, t->s, keep);
    out->request_type[keep] = '\0';

    enum cm_type type = CM_NONE;
    for (size_t k = 0; k < sizeof(message_types) / sizeof(message_types[0]); k++)
        if (bytes_equal(t->s, t->len, message_types[k].name))
            type = message_types[k].type;

    switch (type) {
    case CM_PING:
    case CM_UNSUBSCRIBE:
        out->type = type;
        return CM_OK;

    case CM_AUTH:
        if (ps->kind[F_TOKEN] != K_STRING) {
            set_err(err, errlen, "\"token\" must be a string", NULL);
            return CM_INVALID_REQUEST;
        }
        /* token has no length field: a NUL would silently cut it short */
        if (memchr(ps->value[F_TOKEN].s, '\0', ps->value[F_TOKEN].len)) {
            set_err(err, errlen, "\"token\" must hold no NUL character", NULL);
            return CM_INVALID_REQUEST;
        }
        out->type = CM_AUTH;
        out->token = take(ps, F_TOKEN);
        return CM_OK;

    case CM_SUBSCRIBE:
    case CM_GET_METRICS: {
        int f = pick_skill(ps);
        if (f == -2) {
            set_err(err, errlen, "\"skill\" and \"skill_name\" differ", NULL);
            return CM_INVALID_REQUEST;
        }
        if (type == CM_SUBSCRIBE && (f == F_NONE || ps->kind[f] == K_NULL)) {
            out->type = CM_SUBSCRIBE; /* all skills */
            return CM_OK;
        }
        if (f == F_NONE || ps->kind[f] != K_STRING) {
            set_err(err, errlen,
                    type == CM_SUBSCRIBE ? "\"skill_name\" must be a string or null"
                                         : "\"skill_name\" must be a string",
                    NULL);
            return CM_INVALID_REQUEST;
        }
        const struct strbuf *v = &ps->value[f];
        if (v->len == 0 || memchr(v->s, '\0', v->len)) {
            set_err(err, errlen, "a skill name must be non-empty and hold no NUL character",
                    NULL);
            return CM_INVALID_REQUEST;
        }
        out->type = type;
        out->skill_len = v->len;
        out->skill = take(ps, f);
        return CM_OK;
    }

    case CM_NONE:
        break;
    }
    set_err(err, errlen, "unknown message type", NULL);
    return CM_UNKNOWN_TYPE;
}

int client_msg_parse(const char *json, size_t len, struct client_msg *out, char *err,
                     size_t errlen)
{
    struct parse_state ps;

    memset(out, 0, sizeof(*out));
    memset(&ps, 0, sizeof(ps));
    ps.next = F_NONE;
    ps.collecting = F_NONE;
    set_err(err, errlen, "", NULL);

    int status = run_lejp(json, len, &ps, err, errlen);
    if (status == CM_OK)
        status = interpret(&ps, out, err, errlen);

    for (int f = 0; f < F_COUNT; f++)
        free(ps.value[f].s);
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
