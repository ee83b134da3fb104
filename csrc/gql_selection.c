/* gql_selection.c - parsing of canonical GraphQL selection texts and their once-per-tick serialisation. */
#include "gql_selection.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

/* The object types a selection set can be on (the schema's, in schema.graphql). */
enum gql_type { T_SUBSCRIPTION, T_UPDATE, T_SKILL, T_ANOMALY, T_LEAF };

/* Field names resolved at parse time: the writer switches on these, never compares a string.  One
 * value per field name; the writer of each type gives it that type's meaning (skillName). */
enum gql_field {
    F_TYPENAME,
    F_METRICS_UPDATE,
    /* MetricsUpdate */
    F_SEQ, F_EPOCH, F_TIMESTAMP, F_STALE, F_TOP_SKILLS, F_ANOMALIES,
    /* SkillMetrics (F_SKILL_NAME also Anomaly's) */
    F_SKILL_NAME, F_LAST_INVOCATION_AT, F_INVOCATION_COUNT, F_COMPLETED_COUNT, F_AVG_DURATION,
    F_TOTAL_INVOCATIONS, F_COMPLETED_INVOCATIONS, F_COMPLETION_RATE, F_AVG_DURATION_SECONDS,
    F_INVOCATION_COUNT_1H, F_INVOCATION_COUNT_24H, F_IS_ANOMALOUS,
    /* Anomaly */
    F_ANOMALY_TYPE, F_BASELINE_VALUE, F_OBSERVED_VALUE, F_DEVIATION_SCORE, F_DETECTED_AT,
};

struct field_def {
    const char *name;
    enum gql_field field;
    enum gql_type type;        /* of its value: T_LEAF, or the object type its selection is on */
};

struct type_def {
    const char *name;          /* what __typename writes */
    const struct field_def *fields;
    size_t n_fields;
};

static const struct field_def subscription_fields[] = {
    {"metricsUpdate", F_METRICS_UPDATE, T_UPDATE},
};

static const struct field_def update_fields[] = {
    {"seq", F_SEQ, T_LEAF},
    {"epoch", F_EPOCH, T_LEAF},
    {"timestamp", F_TIMESTAMP, T_LEAF},
    {"stale", F_STALE, T_LEAF},
    {"topSkills", F_TOP_SKILLS, T_SKILL},
    {"anomalies", F_ANOMALIES, T_ANOMALY},
};

static const struct field_def skill_fields[] = {
    {"skillName", F_SKILL_NAME, T_LEAF},
    {"lastInvocationAt", F_LAST_INVOCATION_AT, T_LEAF},
    {"invocationCount", F_INVOCATION_COUNT, T_LEAF},
    {"completedCount", F_COMPLETED_COUNT, T_LEAF},
    {"avgDuration", F_AVG_DURATION, T_LEAF},
    {"totalInvocations", F_TOTAL_INVOCATIONS, T_LEAF},
    {"completedInvocations", F_COMPLETED_INVOCATIONS, T_LEAF},
    {"completionRate", F_COMPLETION_RATE, T_LEAF},
    {"avgDurationSeconds", F_AVG_DURATION_SECONDS, T_LEAF},
    {"invocationCount1h", F_INVOCATION_COUNT_1H, T_LEAF},
    {"invocationCount24h", F_INVOCATION_COUNT_24H, T_LEAF},
    {"isAnomalous", F_IS_ANOMALOUS, T_LEAF},
};

static const struct field_def anomaly_fields[] = {
    {"skillName", F_SKILL_NAME, T_LEAF},
    {"anomalyType", F_ANOMALY_TYPE, T_LEAF},
    {"baselineValue", F_BASELINE_VALUE, T_LEAF},
    {"observedValue", F_OBSERVED_VALUE, T_LEAF},
    {"deviationScore", F_DEVIATION_SCORE, T_LEAF},
    {"detectedAt", F_DETECTED_AT, T_LEAF},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const struct type_def types[] = {
    [T_SUBSCRIPTION] = {"Subscription", subscription_fields, N_OF(subscription_fields)},
    [T_UPDATE] = {"MetricsUpdate", update_fields, N_OF(update_fields)},
    [T_SKILL] = {"SkillMetrics", skill_fields, N_OF(skill_fields)},
    [T_ANOMALY] = {"Anomaly", anomaly_fields, N_OF(anomaly_fields)},
};

/*
 * One item of the selection.  Items are stored in pre-order: an item's direct children follow it,
 * each child's subtree ends at its `end`, so the writer steps from child to child without a
 * pointer chase.  The key text is the item's whole constant output before its value: `{"key":`
 * for the first item of a selection set (which opens the object), `,"key":` for the others, and
 * for __typename the type's name too, as its value never changes.
 */
struct gql_item {
    uint8_t field;             /* enum gql_field */
    uint16_t n_children;
    uint16_t end;              /* index one past this item's subtree */
    uint32_t key_off;          /* into keys */
    uint32_t key_len;
};

_Static_assert(GQL_SELECTION_MAX_ITEMS <= UINT16_MAX, "item indices fit in uint16_t");

struct gql_selection {
    size_t n_items;
    const char *keys;          /* the key texts, in this allocation after items */
    const char *text;          /* NUL-terminated, after keys */
    size_t text_len;
    struct gql_item items[];   /* items[0] is the root's metricsUpdate */
};

struct parser {
    const char *start, *p, *end;
    struct gql_item items[GQL_SELECTION_MAX_ITEMS];
    const char *key[GQL_SELECTION_MAX_ITEMS];   /* each item's key in the text, for duplicates */
    size_t key_len[GQL_SELECTION_MAX_ITEMS];
    size_t n_items;
    jbuf keys;
    char *err;
    size_t errlen;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* The length of the name at ps->p (0 when none starts there); does not advance. */
static size_t name_len(const struct parser *ps)
{
    const char *q = ps->p;
    if (q == ps->end || !is_name_start(*q))
        return 0;
    while (q < ps->end && is_name_char(*q))
        q++;
    return (size_t)(q - ps->p);
}

static size_t offset(const struct parser *ps)
{
    return (size_t)(ps->p - ps->start);
}

/* Report what is at the parse position instead of the expected thing; returns -1. */
static int unexpected(struct parser *ps, const char *expected)
{
    if (ps->p == ps->end)
        set_err(ps->err, ps->errlen, "selection: expected %s at offset %zu, found the end", expected,
                offset(ps));
    else if ((unsigned char)*ps->p >= 0x21 && (unsigned char)*ps->p <= 0x7e)
        set_err(ps->err, ps->errlen, "selection: expected %s at offset %zu, found '%c'", expected,
                offset(ps), *ps->p);
    else
        set_err(ps->err, ps->errlen, "selection: expected %s at offset %zu, found byte 0x%02x",
                expected, offset(ps), (unsigned char)*ps->p);
    return -1;
}

static int expect(struct parser *ps, char c, const char *what)
{
    if (ps->p == ps->end || *ps->p != c)
        return unexpected(ps, what);
    ps->p++;
    return 0;
}

static const struct field_def *find_field(enum gql_type type, const char *name, size_t len)
{
    const struct type_def *t = &types[type];
    for (size_t i = 0; i < t->n_fields; i++) {
        if (strlen(t->fields[i].name) == len && !memcmp(t->fields[i].name, name, len))
            return &t->fields[i];
    }
    return NULL;
}

/* Parse one selection set on `type` at ps->p, appending its items; depth counts the root's as 1.
 * Its items' count goes to *n_children.  Returns 0, or -1 with the error set. */
static int parse_selection(struct parser *ps, enum gql_type type, int depth, uint16_t *n_children)
{
    static const struct field_def typename_def = {"__typename", F_TYPENAME, T_LEAF};
    size_t first_item = ps->n_items;

    /* Unreachable while the schema nests at most 3 deep (leaves take no selection); it keeps the
     * recursion bounded whatever types are added. */
    if (depth > GQL_SELECTION_MAX_DEPTH) {
        set_err(ps->err, ps->errlen, "selection: nested deeper than %d at offset %zu",
                GQL_SELECTION_MAX_DEPTH, offset(ps));
        return -1;
    }
    if (expect(ps, '{', "'{'") < 0)
        return -1;
    *n_children = 0;
    for (;;) {
        const char *key = ps->p;
        size_t key_len = name_len(ps);
        if (!key_len)
            return unexpected(ps, "a key");
        ps->p += key_len;
        if (expect(ps, ':', "':' after the key") < 0)
            return -1;
        const char *fname = ps->p;
        size_t flen = name_len(ps);
        if (!flen)
            return unexpected(ps, "a field name");
        const struct field_def *def;
        if (type != T_SUBSCRIPTION && flen == 10 && !memcmp(fname, "__typename", 10))
            def = &typename_def;
        else
            def = find_field(type, fname, flen);
        if (!def) {
            set_err(ps->err, ps->errlen, "selection: unknown field '%.*s' on %s at offset %zu",
                    (int)(flen < 64 ? flen : 64), fname, types[type].name, offset(ps));
            return -1;
        }
        ps->p += flen;
        if (ps->n_items == GQL_SELECTION_MAX_ITEMS) {
            set_err(ps->err, ps->errlen, "selection: more than %d items", GQL_SELECTION_MAX_ITEMS);
            return -1;
        }
        /* Siblings are complete, so stepping by their `end` visits exactly them. */
        for (size_t c = first_item; c < ps->n_items; c = ps->items[c].end) {
            if (ps->key_len[c] == key_len && !memcmp(ps->key[c], key, key_len)) {
                set_err(ps->err, ps->errlen, "selection: duplicate key '%.*s' at offset %zu",
                        (int)(key_len < 64 ? key_len : 64), key, (size_t)(key - ps->start));
                return -1;
            }
        }
        size_t idx = ps->n_items++;
        struct gql_item *it = &ps->items[idx];
        it->field = (uint8_t)def->field;
        it->n_children = 0;
        ps->key[idx] = key;
        ps->key_len[idx] = key_len;
        it->key_off = (uint32_t)ps->keys.len;
        jb_raw(&ps->keys, *n_children ? ",\"" : "{\"", 2);
        jb_raw(&ps->keys, key, key_len);
        jb_raw(&ps->keys, "\":", 2);
        if (def->field == F_TYPENAME) {
            jb_lit(&ps->keys, "\"");
            jb_lit(&ps->keys, types[type].name);
            jb_lit(&ps->keys, "\"");
        }
        it->key_len = (uint32_t)(ps->keys.len - it->key_off);
        if (ps->p < ps->end && *ps->p == '{') {
            if (def->type == T_LEAF) {
                set_err(ps->err, ps->errlen,
                        "selection: leaf field %s.%s takes no selection, at offset %zu",
                        types[type].name, def->name, offset(ps));
                return -1;
            }
            uint16_t n = 0;
            if (parse_selection(ps, def->type, depth + 1, &n) < 0)
                return -1;
            ps->items[idx].n_children = n;
        } else if (def->type != T_LEAF) {
            set_err(ps->err, ps->errlen, "selection: field %s.%s needs a selection, at offset %zu",
                    types[type].name, def->name, offset(ps));
            return -1;
        }
        ps->items[idx].end = (uint16_t)ps->n_items;
        (*n_children)++;
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        return expect(ps, '}', "',' or '}'");
    }
}

struct gql_selection *gql_selection_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct parser *ps;
    struct gql_selection *sel = NULL;

    set_err(err, errlen, "%s", "");
    if (len > GQL_SELECTION_MAX_TEXT) {
        set_err(err, errlen, "selection: longer than %d bytes", GQL_SELECTION_MAX_TEXT);
        return NULL;
    }
    /* The parser's arrays are too large for a service-thread stack frame. */
    ps = malloc(sizeof(*ps));
    if (!ps || jb_init(&ps->keys, 0, 256) < 0) {
        free(ps);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    ps->start = ps->p = text;
    ps->end = text + len;
    ps->n_items = 0;
    ps->err = err;
    ps->errlen = errlen;

    uint16_t n_root = 0;
    if (parse_selection(ps, T_SUBSCRIPTION, 1, &n_root) < 0)
        goto done;
    if (ps->p != ps->end) {
        unexpected(ps, "the end");
        goto done;
    }
    /* A subscription selects exactly one root field (graphql's single-root-field rule). */
    if (n_root != 1) {
        set_err(err, errlen, "selection: the root selects %u fields, not exactly one metricsUpdate",
                (unsigned)n_root);
        goto done;
    }
    if (ps->keys.failed) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    size_t items_bytes = ps->n_items * sizeof(struct gql_item);
    sel = malloc(sizeof(*sel) + items_bytes + ps->keys.len + len + 1);
    if (!sel) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    memcpy(sel->items, ps->items, items_bytes);
    char *keys = (char *)sel->items + items_bytes;
    memcpy(keys, jb_text(&ps->keys), ps->keys.len);
    char *copy = keys + ps->keys.len;
    memcpy(copy, text, len);
    copy[len] = '\0';
    sel->n_items = ps->n_items;
    sel->keys = keys;
    sel->text = copy;
    sel->text_len = len;
done:
    jb_free(&ps->keys);
    free(ps);
    return sel;
}

void gql_selection_free(struct gql_selection *sel)
{
    free(sel);
}

const char *gql_selection_text(const struct gql_selection *sel, size_t *len)
{
    if (len)
        *len = sel->text_len;
    return sel->text;
}

static void write_key(const struct gql_selection *sel, const struct gql_item *it, jbuf *out)
{
    jb_raw(out, sel->keys + it->key_off, it->key_len);
}

/* Each writer below writes the object that the selection set of items[idx] selects: its first
 * child's key opens it, so only the closing brace is left. */

static void write_skill(const struct gql_selection *sel, size_t idx, const struct skill_stats *st,
                        jbuf *out)
{
    size_t c = idx + 1;
    for (unsigned k = 0; k < sel->items[idx].n_children; k++, c = sel->items[c].end) {
        const struct gql_item *it = &sel->items[c];
        write_key(sel, it, out);
        switch ((enum gql_field)it->field) {
        case F_SKILL_NAME: jb_str(out, st->name, st->name_len); break;
        case F_LAST_INVOCATION_AT: snapshot_write_time(out, st->last_invocation_ms); break;
        case F_INVOCATION_COUNT: jb_int(out, st->invocation_count); break;
        case F_COMPLETED_COUNT: jb_int(out, st->completed_count); break;
        case F_AVG_DURATION: jb_double(out, st->avg_duration); break;
        case F_TOTAL_INVOCATIONS: jb_int(out, st->total_invocations); break;
        case F_COMPLETED_INVOCATIONS: jb_int(out, st->completed_invocations); break;
        case F_COMPLETION_RATE:
            snapshot_write_rate(out, st->completed_invocations, st->total_invocations);
            break;
        case F_AVG_DURATION_SECONDS: jb_double(out, st->avg_duration_seconds); break;
        case F_INVOCATION_COUNT_1H: jb_int(out, st->invocation_count_1h); break;
        case F_INVOCATION_COUNT_24H: jb_int(out, st->invocation_count); break;
        case F_IS_ANOMALOUS: jb_bool(out, st->is_anomalous); break;
        default: break;        /* __typename: its key text holds the value */
        }
    }
    jb_lit(out, "}");
}

static void write_anomaly(const struct gql_selection *sel, size_t idx, const struct anomaly *a,
                          jbuf *out)
{
    size_t c = idx + 1;
    for (unsigned k = 0; k < sel->items[idx].n_children; k++, c = sel->items[c].end) {
        const struct gql_item *it = &sel->items[c];
        write_key(sel, it, out);
        switch ((enum gql_field)it->field) {
        case F_SKILL_NAME: jb_str(out, a->skill_name, a->skill_len); break;
        case F_ANOMALY_TYPE: jb_cstr(out, anomaly_type_name(a->type)); break;
        case F_BASELINE_VALUE: jb_double(out, a->baseline_value); break;
        case F_OBSERVED_VALUE: jb_double(out, a->observed_value); break;
        case F_DEVIATION_SCORE: jb_double(out, a->deviation_score); break;
        case F_DETECTED_AT: snapshot_write_time(out, a->detected_ms); break;
        default: break;        /* __typename */
        }
    }
    jb_lit(out, "}");
}

/* The same entries as snapshot_write_update's top_skills. */
static void write_top_skills(const struct gql_selection *sel, size_t idx, const struct snapshot *s,
                             const char *skill, size_t skill_len, jbuf *out)
{
    const struct metrics *m = s->metrics;
    jb_lit(out, "[");
    if (skill) {
        const struct skill_stats *st = metrics_find(m, skill, skill_len);
        if (st)
            write_skill(sel, idx, st, out);
    } else {
        size_t n = m->n_skills < s->top_n ? m->n_skills : s->top_n;
        for (size_t i = 0; i < n; i++) {
            if (i)
                jb_lit(out, ",");
            write_skill(sel, idx, &m->skills[i], out);
        }
    }
    jb_lit(out, "]");
}

/* The same entries as snapshot_write_update's anomalies. */
static void write_anomalies(const struct gql_selection *sel, size_t idx, const struct metrics *m,
                            const char *skill, size_t skill_len, jbuf *out)
{
    int first = 1;
    jb_lit(out, "[");
    for (size_t i = 0; i < m->n_anomalies; i++) {
        const struct anomaly *a = &m->anomalies[i];
        if (skill && (a->skill_len != skill_len || memcmp(a->skill_name, skill, skill_len) != 0))
            continue;
        if (!first)
            jb_lit(out, ",");
        first = 0;
        write_anomaly(sel, idx, a, out);
    }
    jb_lit(out, "]");
}

static void write_update(const struct gql_selection *sel, size_t idx, const struct snapshot *s,
                         const char *skill, size_t skill_len, jbuf *out)
{
    size_t c = idx + 1;
    for (unsigned k = 0; k < sel->items[idx].n_children; k++, c = sel->items[c].end) {
        const struct gql_item *it = &sel->items[c];
        write_key(sel, it, out);
        switch ((enum gql_field)it->field) {
        case F_SEQ: jb_int(out, (long long)s->seq); break;
        case F_EPOCH: jb_cstr(out, s->epoch); break;
        case F_TIMESTAMP: {
            char iso[32];
            iso_format_ms(s->taken_ms, iso);
            jb_cstr(out, iso);
            break;
        }
        case F_STALE: jb_bool(out, s->stale); break;
        case F_TOP_SKILLS: write_top_skills(sel, c, s, skill, skill_len, out); break;
        case F_ANOMALIES: write_anomalies(sel, c, s->metrics, skill, skill_len, out); break;
        default: break;        /* __typename */
        }
    }
    jb_lit(out, "}");
}

void gql_selection_write(const struct gql_selection *sel, const struct snapshot *s,
                         const char *skill, size_t skill_len, jbuf *out)
{
    jb_lit(out, "{\"data\":");
    write_key(sel, &sel->items[0], out);
    write_update(sel, 0, s, skill, skill_len, out);
    jb_lit(out, "}}");
}
