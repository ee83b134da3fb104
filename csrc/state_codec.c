/* state_codec.c - one tick's state as bytes for Redis, and back (format in state_codec.h). */
#include "state_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"

static const char MAGIC[4] = {'S', 'B', 'S', '1'};

static void put_u64(jbuf *out, uint64_t v)
{
    char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (char)(v >> (8 * i));
    jb_raw(out, b, 8);
}

static void put_u32(jbuf *out, uint32_t v)
{
    char b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (char)(v >> (8 * i));
    jb_raw(out, b, 4);
}

static void put_u8(jbuf *out, unsigned v)
{
    char b = (char)v;
    jb_raw(out, &b, 1);
}

static void put_f64(jbuf *out, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_u64(out, bits);
}

static void put_name(jbuf *out, const char *s, size_t len)
{
    put_u32(out, (uint32_t)len);
    jb_raw(out, s, len);
}

void state_encode(const struct snapshot *s, jbuf *out)
{
    const struct metrics *m = s->metrics;
    jb_raw(out, MAGIC, sizeof(MAGIC));
    put_u64(out, (uint64_t)s->taken_ms);
    put_u8(out, s->stale ? 1 : 0);
    put_u32(out, (uint32_t)s->top_n);
    put_u32(out, (uint32_t)m->n_skills);
    for (size_t i = 0; i < m->n_skills; i++) {
        const struct skill_stats *st = &m->skills[i];
        put_name(out, st->name, st->name_len);
        put_u64(out, (uint64_t)st->total_invocations);
        put_u64(out, (uint64_t)st->completed_invocations);
        put_f64(out, st->avg_duration_seconds);
        put_u64(out, (uint64_t)st->invocation_count);
        put_u64(out, (uint64_t)st->completed_count);
        put_f64(out, st->avg_duration);
        put_u64(out, (uint64_t)st->invocation_count_1h);
        put_u64(out, (uint64_t)st->last_invocation_ms);
        put_u8(out, st->is_anomalous ? 1 : 0);
    }
    put_u32(out, (uint32_t)m->n_anomalies);
    for (size_t i = 0; i < m->n_anomalies; i++) {
        const struct anomaly *a = &m->anomalies[i];
        put_name(out, a->skill_name, a->skill_len);
        put_u8(out, (unsigned)a->type);
        put_f64(out, a->baseline_value);
        put_f64(out, a->observed_value);
        put_f64(out, a->deviation_score);
        put_u64(out, (uint64_t)a->detected_ms);
    }
}

/* A bounded reader: every take fails (and keeps failing) once the bytes run out. */
struct reader {
    const unsigned char *p;
    size_t left;
    int bad;
};

static const unsigned char *take(struct reader *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *at = r->p;
    r->p += n;
    r->left -= n;
    return at;
}

static uint64_t get_u64(struct reader *r)
{
    const unsigned char *b = take(r, 8);
    uint64_t v = 0;
    for (int i = 0; b && i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static uint32_t get_u32(struct reader *r)
{
    const unsigned char *b = take(r, 4);
    uint32_t v = 0;
    for (int i = 0; b && i < 4; i++)
        v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static unsigned get_u8(struct reader *r)
{
    const unsigned char *b = take(r, 1);
    return b ? b[0] : 0;
}

static double get_f64(struct reader *r)
{
    uint64_t bits = get_u64(r);
    double v;
    memcpy(&v, &bits, 8);
    return v;
}

/* A name as an owned NUL-terminated copy, or NULL (r->bad set) when bad or out of memory. */
static char *get_name(struct reader *r, size_t *len)
{
    uint32_t n = get_u32(r);
    const unsigned char *b = n <= SKILL_NAME_MAX ? take(r, n) : NULL;
    char *copy = b ? malloc((size_t)n + 1) : NULL;
    if (!copy) {
        r->bad = 1;
        return NULL;
    }
    memcpy(copy, b, n);
    copy[n] = '\0';
    *len = n;
    return copy;
}

/* Counts come from the wire: no more entries than the bytes left could hold (>= 4 each). */
static size_t get_count(struct reader *r)
{
    uint32_t n = get_u32(r);
    if (n > r->left / 4)
        r->bad = 1;
    return r->bad ? 0 : n;
}

struct snapshot *state_decode(const unsigned char *p, size_t len, const char *epoch, uint64_t seq,
                              char *err, size_t errlen)
{
    struct reader r = {p, len, 0};
    struct skill_stats *skills = NULL;
    struct anomaly *anomalies = NULL;
    size_t n_skills = 0, n_anomalies = 0, got_skills = 0, got_anomalies = 0;

    const unsigned char *magic = take(&r, sizeof(MAGIC));
    if (!magic || memcmp(magic, MAGIC, sizeof(MAGIC)) != 0) {
        snprintf(err, errlen, "not a state (bad magic)");
        return NULL;
    }
    int64_t taken_ms = (int64_t)get_u64(&r);
    int stale = get_u8(&r) != 0;
    size_t top_n = get_u32(&r);
    n_skills = get_count(&r);
    skills = n_skills ? calloc(n_skills, sizeof(*skills)) : NULL;
    if (n_skills && !skills)
        r.bad = 1;
    for (; !r.bad && got_skills < n_skills; got_skills++) {
        struct skill_stats *st = &skills[got_skills];
        st->name = get_name(&r, &st->name_len);
        st->total_invocations = (int64_t)get_u64(&r);
        st->completed_invocations = (int64_t)get_u64(&r);
        st->avg_duration_seconds = get_f64(&r);
        st->invocation_count = (int64_t)get_u64(&r);
        st->completed_count = (int64_t)get_u64(&r);
        st->avg_duration = get_f64(&r);
        st->invocation_count_1h = (int64_t)get_u64(&r);
        st->last_invocation_ms = (int64_t)get_u64(&r);
        st->is_anomalous = get_u8(&r) != 0;
    }
    n_anomalies = r.bad ? 0 : get_count(&r);
    anomalies = n_anomalies ? calloc(n_anomalies, sizeof(*anomalies)) : NULL;
    if (n_anomalies && !anomalies)
        r.bad = 1;
    for (; !r.bad && got_anomalies < n_anomalies; got_anomalies++) {
        struct anomaly *a = &anomalies[got_anomalies];
        a->skill_name = get_name(&r, &a->skill_len);
        unsigned type = get_u8(&r);
        if (type > ANOMALY_PATTERN_SHIFT)
            r.bad = 1;
        a->type = (enum anomaly_type)type;
        a->baseline_value = get_f64(&r);
        a->observed_value = get_f64(&r);
        a->deviation_score = get_f64(&r);
        a->detected_ms = (int64_t)get_u64(&r);
    }
    if (r.bad || r.left) {
        snprintf(err, errlen, "not a state (truncated, trailing bytes or a bad field)");
        skill_stats_free_array(skills, got_skills);
        anomaly_free_array(anomalies, got_anomalies);
        return NULL;
    }
    struct metrics *m = metrics_build(skills, n_skills, anomalies, n_anomalies);
    struct snapshot *s = m ? snapshot_new(m, epoch, seq, taken_ms, stale, top_n) : NULL;
    metrics_unref(m);
    if (!s)
        snprintf(err, errlen, "out of memory");
    return s;
}

static const char HISTORY_MAGIC[4] = {'S', 'B', 'H', '1'};

static void encode_chunk(void *ctx, const char *skill, size_t len, int64_t number,
                         const struct history_cell cells[HISTORY_CHUNK_BUCKETS])
{
    jbuf *out = ctx;
    put_u8(out, skill ? 1 : 0);
    if (skill)
        put_name(out, skill, len);
    put_u64(out, (uint64_t)number);
    for (size_t i = 0; i < HISTORY_CHUNK_BUCKETS; i++) {
        put_u32(out, cells[i].invocations);
        put_u32(out, cells[i].completed);
        put_u32(out, cells[i].n_durations);
        put_f64(out, cells[i].sum_durations);
    }
}

void history_encode(struct history *h, int64_t now_ms, jbuf *out)
{
    jb_raw(out, HISTORY_MAGIC, sizeof(HISTORY_MAGIC));
    put_u64(out, (uint64_t)now_ms);
    history_each_chunk(h, encode_chunk, out);
}

struct history *history_decode(const unsigned char *p, size_t len, char *err, size_t errlen)
{
    struct reader r = {p, len, 0};
    const unsigned char *magic = take(&r, sizeof(HISTORY_MAGIC));
    if (!magic || memcmp(magic, HISTORY_MAGIC, sizeof(HISTORY_MAGIC)) != 0) {
        snprintf(err, errlen, "not a history (bad magic)");
        return NULL;
    }
    int64_t now_ms = (int64_t)get_u64(&r);
    struct history *h = history_new();
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    history_advance(h, now_ms);
    struct history_cell cells[HISTORY_CHUNK_BUCKETS];
    while (!r.bad && r.left) {
        unsigned kind = get_u8(&r);
        uint32_t name_len = kind == 1 ? get_u32(&r) : 0;
        const unsigned char *name = kind == 1 ? take(&r, name_len) : NULL;
        int64_t number = (int64_t)get_u64(&r);
        for (size_t i = 0; i < HISTORY_CHUNK_BUCKETS; i++) {
            cells[i].invocations = get_u32(&r);
            cells[i].completed = get_u32(&r);
            cells[i].n_durations = get_u32(&r);
            cells[i].sum_durations = get_f64(&r);
        }
        if (r.bad || kind > 1 || (kind == 1 && (!name_len || name_len > SKILL_NAME_MAX))) {
            snprintf(err, errlen, "not a history (truncated, or a bad chunk)");
            history_free(h);
            return NULL;
        }
        if (history_put_chunk(h, (const char *)name, name_len, number, cells) < 0) {
            snprintf(err, errlen, "out of memory");
            history_free(h);
            return NULL;
        }
    }
    return h;
}
