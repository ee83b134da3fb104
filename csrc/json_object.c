/* json_object.c - the top-level fields of one JSON object, read with libwebsockets' LEJP. */
#include "json_object.h"

#include <libwebsockets.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONE (-1)

struct parse_state {
    const char *const *names;
    struct jo_value *values;
    int n;
    int top;        /* the wanted name the current top-level key is, or NONE */
    int next;       /* field whose value LEJP reports next, or NONE */
    int collecting; /* field a string value is being assembled into, or NONE */
    int oom;
};

void jo_set_err(char *err, size_t errlen, const char *a, const char *b)
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
int jo_bytes_equal(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(s, name, n) == 0;
}

static int append(struct jo_value *v, const char *p, size_t n)
{
    if (n > SIZE_MAX - 1 - v->len)
        return -1;
    if (v->len + n + 1 > v->cap) {
        size_t cap = v->cap ? v->cap : 64;
        while (cap < v->len + n + 1) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *grown = realloc(v->s, cap);
        if (!grown)
            return -1;
        v->s = grown;
        v->cap = cap;
    }
    if (n)
        memcpy(v->s + v->len, p, n);
    v->len += n;
    v->s[v->len] = '\0';
    return 0;
}

/*
 * LEJP 4.1.6 turns each \uXXXX escape into UTF-8 on its own, so an escaped
 * surrogate pair (how Python's json.dumps sends any emoji) arrives as two
 * 3-byte surrogate encodings (CESU-8), which match no skill name.  Join each
 * such pair into the 4-byte UTF-8 it stands for.  Valid UTF-8 input cannot
 * hold these byte patterns, so they can only have come from escapes.  A lone
 * surrogate is left as it is; the JSON writer replaces it when echoing.
 */
static void join_surrogate_pairs(struct jo_value *v)
{
    unsigned char *s = (unsigned char *)v->s;
    size_t out = 0;

    for (size_t i = 0; i < v->len;) {
        if (v->len - i >= 6 && s[i] == 0xED && (s[i + 1] & 0xF0) == 0xA0 &&
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
    v->len = out;
    v->s[out] = '\0';
}

/* The current top-level value was not a string: record its kind (and a number's value). */
static void settle(struct parse_state *ps, enum jo_kind kind, const struct lejp_ctx *ctx)
{
    if (ps->next != NONE) {
        struct jo_value *v = &ps->values[ps->next];
        v->kind = kind; /* a duplicated key: the last occurrence wins */
        v->number = 0;
        if (ctx) {
            char text[sizeof(ctx->buf) + 1];
            memcpy(text, ctx->buf, ctx->npos);
            text[ctx->npos] = '\0';
            v->number = strtod(text, NULL);
        }
    }
    ps->next = NONE;
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
        ps->next = NONE;
        if (ctx->sp == 0) {
            size_t key_len = ctx->pst[ctx->pst_sp].ppos;
            ps->top = NONE;
            for (int f = 0; f < ps->n; f++)
                if (!strchr(ps->names[f], '.') &&
                    jo_bytes_equal(ctx->path, key_len, ps->names[f])) {
                    ps->next = ps->top = f;
                    ps->values[f].count++;
                }
        } else if (ctx->sp == 1 && ps->top != NONE) {
            /* A key of the object under a wanted top-level key: "parent.child".  The path alone
             * could also be a top-level key holding a "." or a key under an empty one. */
            size_t key_len = ctx->pst[ctx->pst_sp].ppos;
            size_t parent_len = strlen(ps->names[ps->top]);
            for (int f = 0; f < ps->n; f++)
                if (jo_bytes_equal(ctx->path, key_len, ps->names[f]) && key_len > parent_len &&
                    !memcmp(ps->names[f], ps->names[ps->top], parent_len) &&
                    ps->names[f][parent_len] == '.') {
                    ps->next = f;
                    ps->values[f].count++;
                }
        }
        return 0;

    case LEJPCB_VAL_STR_START:
        ps->collecting = ps->next;
        ps->next = NONE;
        if (ps->collecting != NONE) {
            struct jo_value *v = &ps->values[ps->collecting];
            v->kind = JO_ABSENT;
            v->len = 0;
            /* an empty string gets no chunk of its own, so terminate it now */
            if (append(v, "", 0) < 0)
                goto oom;
        }
        return 0;

    case LEJPCB_VAL_STR_CHUNK:
    case LEJPCB_VAL_STR_END:
        if (ps->collecting == NONE)
            return 0;
        struct jo_value *v = &ps->values[ps->collecting];
        /* ctx->npos bytes, not strlen: the chunk may hold NULs */
        if (append(v, ctx->buf, ctx->npos) < 0)
            goto oom;
        if ((unsigned char)reason == LEJPCB_VAL_STR_END) {
            join_surrogate_pairs(v);
            v->kind = JO_STRING;
            ps->collecting = NONE;
        }
        return 0;

    case LEJPCB_VAL_NULL:
        settle(ps, JO_NULL, NULL);
        return 0;

    case LEJPCB_VAL_NUM_INT:
    case LEJPCB_VAL_NUM_FLOAT:
        settle(ps, JO_NUMBER, ctx);
        return 0;

    case LEJPCB_VAL_TRUE:
    case LEJPCB_VAL_FALSE:
    case LEJPCB_OBJECT_START:
    case LEJPCB_ARRAY_START:
        /* For a container this also stops its contents from counting. */
        settle(ps, JO_OTHER, NULL);
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
 * The bytes are fed one at a time so that LEJP's limits can be checked
 * before each step (would_overrun), so that its leniencies can be caught
 * (# comments) and so that the end of the object is known exactly.
 */
int jo_parse(const char *json, size_t len, const char *const *names, size_t n,
             struct jo_value *values, char *err, size_t errlen)
{
    struct parse_state ps = {names, values, (int)n, NONE, NONE, NONE, 0};
    struct lejp_ctx ctx;
    const char *why = NULL;
    int rc = LEJP_CONTINUE;
    size_t i = 0;

    jo_set_err(err, errlen, "", NULL);
    while (i < len && is_json_space(json[i]))
        i++;
    if (i == len) {
        jo_set_err(err, errlen, "empty message", NULL);
        return JO_INVALID;
    }
    /* LEJP would also take a top-level array; we want an object. */
    if (json[i] != '{') {
        jo_set_err(err, errlen, "not a JSON object", NULL);
        return JO_INVALID;
    }

    lejp_construct(&ctx, on_event, &ps, NULL, 0);
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

    if (ps.oom) {
        jo_set_err(err, errlen, "out of memory", NULL);
        return JO_NOMEM;
    }
    if (why) {
        jo_set_err(err, errlen, "invalid JSON: ", why);
        return JO_INVALID;
    }
    if (rc == LEJP_CONTINUE) {
        jo_set_err(err, errlen, "invalid JSON: ", "the object is not closed");
        return JO_INVALID;
    }
    if (rc < 0) {
        jo_set_err(err, errlen, "invalid JSON: ", lejp_error_to_string(rc));
        return JO_INVALID;
    }
    /* LEJP stops at the closing brace; anything after it but blanks is garbage. */
    for (; i < len; i++) {
        if (!is_json_space(json[i])) {
            jo_set_err(err, errlen, "invalid JSON: ", "data after the object");
            return JO_INVALID;
        }
    }
    return JO_OK;
}

char *jo_take(struct jo_value *v)
{
    char *s = v->s;
    v->s = NULL;
    v->len = v->cap = 0;
    return s;
}

void jo_free(struct jo_value *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(values[i].s);
        values[i].s = NULL;
        values[i].len = values[i].cap = 0;
    }
}
