/* test_gql_selection.c - compiled GraphQL selections: what parses, what is refused, and payloads equal to the plain protocol's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gql_selection.h"
#include "json_object.h"
#include "snapshot.h"

static const char EPOCH[] = "0123456789abcdef";
static const char ODD_NAME[] = "n\"a\\m\xc3\xa9";

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    if (!d)
        exit(1);
    return d;
}

/* Three skills, top N 2, so that "old" is outside the top N; NAN averages, an unknown last
 * invocation, a name needing escapes; anomalies of two skills, one of them outside the top N. */
static struct snapshot *sample(void)
{
    struct skill_stats *skills = calloc(3, sizeof(*skills));
    struct anomaly *anomalies = calloc(3, sizeof(*anomalies));
    if (!skills || !anomalies)
        exit(1);
    const char *names[] = {"pytest-run", ODD_NAME, "old"};
    for (int i = 0; i < 3; i++) {
        skills[i].name = dup_str(names[i]);
        skills[i].name_len = strlen(names[i]);
        skills[i].total_invocations = 10 - i;
        skills[i].completed_invocations = 7 - i;
        skills[i].avg_duration_seconds = i == 2 ? NAN : 0.1 * (i + 1);
        skills[i].invocation_count = 3 - i;
        skills[i].completed_count = 2 - i > 0 ? 2 - i : 0;
        skills[i].avg_duration = i ? NAN : 1.0 / 3.0;
        skills[i].invocation_count_1h = i == 0;
        skills[i].last_invocation_ms = i == 2 ? -1 : 1770724825123LL;
    }
    const char *anomalous[] = {ODD_NAME, "old", ODD_NAME};
    const enum anomaly_type kinds[] = {ANOMALY_PATTERN_SHIFT, ANOMALY_PERFORMANCE_DROP,
                                       ANOMALY_PERFORMANCE_SPIKE};
    for (int i = 0; i < 3; i++) {
        anomalies[i].skill_name = dup_str(anomalous[i]);
        anomalies[i].skill_len = strlen(anomalous[i]);
        anomalies[i].type = kinds[i];
        anomalies[i].baseline_value = 2.5;
        anomalies[i].observed_value = i == 1 ? 1e-300 : 0.1;
        anomalies[i].deviation_score = -3.25 + i;
        anomalies[i].detected_ms = 1770724800000LL + i;
    }
    struct metrics *m = metrics_build(skills, 3, anomalies, 3);
    struct snapshot *s = m ? snapshot_new(m, EPOCH, 42, 1770724825456LL, 1, 2) : NULL;
    metrics_unref(m);
    if (!s)
        exit(1);
    return s;
}

static struct snapshot *empty_sample(void)
{
    struct metrics *m = metrics_build(NULL, 0, NULL, 0);
    struct snapshot *s = m ? snapshot_new(m, EPOCH, 1, 0, 0, 10) : NULL;
    metrics_unref(m);
    if (!s)
        exit(1);
    return s;
}

static struct gql_selection *parse(const char *text)
{
    char err[256];
    struct gql_selection *sel = gql_selection_parse(text, strlen(text), err, sizeof(err));
    CHECK(sel != NULL, "refused %s: %s", text, err);
    return sel;
}

/* The payload as a C string (caller frees). */
static char *raw_payload(const struct gql_selection *sel, const struct snapshot *s, const char *skill)
{
    jbuf b;
    if (jb_init(&b, 0, 64) < 0)
        exit(1);
    gql_selection_write(sel, s, skill, skill ? strlen(skill) : 0, &b);
    CHECK(!b.failed, "write failed");
    char *text = dup_str(jb_text(&b));
    jb_free(&b);
    return text;
}

/* The payload as a C string (caller frees), checked to be one JSON object holding one data. */
static char *payload(const struct gql_selection *sel, const struct snapshot *s, const char *skill)
{
    char *text = raw_payload(sel, s, skill);
    const char *names[] = {"data"};
    struct jo_value v[1] = {{0}};
    char err[128];
    int st = jo_parse(text, strlen(text), names, 1, v, err, sizeof(err));
    CHECK(st == JO_OK && v[0].kind == JO_OTHER && v[0].count == 1, "not JSON with one data (%s): %s",
          err, text);
    jo_free(v, 1);
    return text;
}

static char *plain_update(const struct snapshot *s, const char *skill)
{
    jbuf b;
    if (jb_init(&b, 0, 256) < 0)
        exit(1);
    snapshot_write_update(s, skill, skill ? strlen(skill) : 0, &b);
    char *text = b.failed ? NULL : dup_str(jb_text(&b));
    jb_free(&b);
    if (!text)
        exit(1);
    return text;
}

static void expect_payload(const char *selection, const struct snapshot *s, const char *skill,
                           const char *want)
{
    struct gql_selection *sel = parse(selection);
    if (!sel)
        return;
    char *got = payload(sel, s, skill);
    CHECK(strcmp(got, want) == 0, "%s (skill %s):\n got  %s\n want %s", selection,
          skill ? skill : "NULL", got, want);
    free(got);
    gql_selection_free(sel);
}

/* got must be prefix + middle + suffix; returns a copy of middle (caller frees), or NULL. */
static char *between(const char *got, const char *prefix, const char *suffix)
{
    size_t n = strlen(got), p = strlen(prefix), q = strlen(suffix);
    if (n < p + q || strncmp(got, prefix, p) || strcmp(got + n - q, suffix))
        return NULL;
    char *mid = dup_str(got + p);
    mid[n - p - q] = '\0';
    return mid;
}

static void test_text_is_kept(void)
{
    const char *text = "{u:metricsUpdate{seq:seq,top:topSkills{skillName:skillName,"
                       "__typename:__typename}}}";
    struct gql_selection *sel = parse(text);
    if (!sel)
        return;
    size_t len = 0;
    const char *back = gql_selection_text(sel, &len);
    CHECK(len == strlen(text) && strcmp(back, text) == 0, "text %s", back);
    CHECK(gql_selection_text(sel, NULL) == back, "len may be NULL");
    gql_selection_free(sel);
    gql_selection_free(NULL);
}

/* The contract's example, and nested selections with __typename on every type. */
static void test_expected_payloads(void)
{
    struct snapshot *s = sample();
    expect_payload("{u:metricsUpdate{seq:seq,top:topSkills{skillName:skillName,__typename:__typename}}}",
                   s, NULL,
                   "{\"data\":{\"u\":{\"seq\":42,\"top\":[{\"skillName\":\"pytest-run\","
                   "\"__typename\":\"SkillMetrics\"},{\"skillName\":\"n\\\"a\\\\m\xc3\xa9\","
                   "\"__typename\":\"SkillMetrics\"}]}}}");
    expect_payload("{metricsUpdate:metricsUpdate{__typename:__typename,stale:stale,"
                   "anomalies:anomalies{t:__typename,k:anomalyType},"
                   "topSkills:topSkills{__typename:__typename}}}",
                   s, "old",
                   "{\"data\":{\"metricsUpdate\":{\"__typename\":\"MetricsUpdate\",\"stale\":true,"
                   "\"anomalies\":[{\"t\":\"Anomaly\",\"k\":\"performance_drop\"}],"
                   "\"topSkills\":[{\"__typename\":\"SkillMetrics\"}]}}}");
    /* Aliases: one field under two keys, a key that is another field's name, keys of '_' and
     * digits; the same list twice with different selections. */
    expect_payload("{_0:metricsUpdate{epoch:seq,seq:epoch,s2:seq,a:anomalies{x:deviationScore},"
                   "b:anomalies{y:detectedAt,z:skillName}}}",
                   s, ODD_NAME,
                   "{\"data\":{\"_0\":{\"epoch\":42,\"seq\":\"0123456789abcdef\",\"s2\":42,"
                   "\"a\":[{\"x\":-3.25},{\"x\":-1.25}],"
                   "\"b\":[{\"y\":\"2026-02-10T12:00:00.000Z\",\"z\":\"n\\\"a\\\\m\xc3\xa9\"},"
                   "{\"y\":\"2026-02-10T12:00:00.002Z\",\"z\":\"n\\\"a\\\\m\xc3\xa9\"}]}}}");
    /* NAN averages and an unknown last invocation are null, an integral float keeps ".0". */
    expect_payload("{u:metricsUpdate{t:topSkills{a:avgDuration,b:avgDurationSeconds,"
                   "l:lastInvocationAt,r:completionRate}}}",
                   s, "old",
                   "{\"data\":{\"u\":{\"t\":[{\"a\":null,\"b\":null,\"l\":null,\"r\":0.625}]}}}");
    expect_payload("{u:metricsUpdate{t:topSkills{a:avgDuration,l:lastInvocationAt}}}", s,
                   "pytest-run",
                   "{\"data\":{\"u\":{\"t\":[{\"a\":0.3333333333333333,"
                   "\"l\":\"2026-02-10T12:00:25.123Z\"}]}}}");
    expect_payload("{u:metricsUpdate{a:anomalies{b:baselineValue}}}", s, "pytest-run",
                   "{\"data\":{\"u\":{\"a\":[]}}}");
    snapshot_unref(s);

    s = empty_sample();
    expect_payload("{u:metricsUpdate{t:topSkills{n:skillName},a:anomalies{n:skillName},"
                   "ts:timestamp,stale:stale}}",
                   s, NULL,
                   "{\"data\":{\"u\":{\"t\":[],\"a\":[],\"ts\":\"1970-01-01T00:00:00.000Z\","
                   "\"stale\":false}}}");
    expect_payload("{u:metricsUpdate{t:topSkills{n:skillName}}}", s, "any",
                   "{\"data\":{\"u\":{\"t\":[]}}}");
    snapshot_unref(s);
}

/* Every field of every type, keyed as the plain protocol spells it and in its order, gives the
 * plain protocol's bytes for each filter: all skills, inside and outside the top N, unknown. */
static void test_every_field_equals_the_plain_update(void)
{
    static const char data_sel[] =
        "{d:metricsUpdate{top_skills:topSkills{skill_name:skillName,"
        "last_invocation_at:lastInvocationAt,invocation_count:invocationCount,"
        "completed_count:completedCount,avg_duration:avgDuration,"
        "total_invocations:totalInvocations,completion_rate:completionRate,"
        "avg_duration_seconds:avgDurationSeconds,invocation_count_1h:invocationCount1h,"
        "is_anomalous:isAnomalous},"
        "anomalies:anomalies{skill_name:skillName,anomaly_type:anomalyType,"
        "baseline_value:baselineValue,observed_value:observedValue,"
        "deviation_score:deviationScore,detected_at:detectedAt},stale:stale}}";
    static const char envelope_sel[] = "{e:metricsUpdate{seq:seq,epoch:epoch,timestamp:timestamp}}";
    static const char response_sel[] =
        "{r:metricsUpdate{t:topSkills{skill_name:skillName,total_invocations:totalInvocations,"
        "completed_invocations:completedInvocations,completion_rate:completionRate,"
        "avg_duration_seconds:avgDurationSeconds,last_invocation_at:lastInvocationAt,"
        "invocation_count_1h:invocationCount1h,invocation_count_24h:invocationCount24h,"
        "is_anomalous:isAnomalous}}}";
    const char *filters[] = {NULL, "pytest-run", ODD_NAME, "old", "missing", ""};
    struct snapshot *samples[] = {sample(), empty_sample()};
    struct gql_selection *data = parse(data_sel), *envelope = parse(envelope_sel),
                         *response = parse(response_sel);
    if (!data || !envelope || !response)
        goto out;
    for (size_t k = 0; k < 2; k++) {
        const struct snapshot *s = samples[k];
        for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
            const char *f = filters[i];
            char *plain = plain_update(s, f);
            /* plain: {"type":"metrics_update",<envelope>,"data":<data>} */
            char *head = strstr(plain, ",\"data\":");
            if (!head)
                exit(1);
            *head = '\0';
            char *plain_data = between(head + 1, "\"data\":", "}");
            char *plain_env = between(plain, "{\"type\":\"metrics_update\",", "");
            CHECK(plain_data && plain_env, "plain form: %s", plain);

            char *got = payload(data, s, f);
            char *got_data = between(got, "{\"data\":{\"d\":", "}}");
            CHECK(got_data && plain_data && strcmp(got_data, plain_data) == 0,
                  "data, sample %zu, filter %s:\n gql   %s\n plain %s", k, f ? f : "NULL", got,
                  plain_data);
            free(got_data);
            free(got);

            got = payload(envelope, s, f);
            char *got_env = between(got, "{\"data\":{\"e\":{", "}}}");
            CHECK(got_env && plain_env && strcmp(got_env, plain_env) == 0,
                  "envelope:\n gql   %s\n plain %s", got, plain_env);
            free(got_env);
            free(got);
            free(plain_data);
            free(plain_env);
            free(plain);

            /* SkillMetrics also carries the metrics_response fields. */
            const struct skill_stats *st = f ? metrics_find(s->metrics, f, strlen(f)) : NULL;
            if (!st)
                continue;
            jbuf b;
            if (jb_init(&b, 0, 256) < 0)
                exit(1);
            snapshot_write_skill_metrics(st, &b);
            got = payload(response, s, f);
            char *entry = between(got, "{\"data\":{\"r\":{\"t\":[", "]}}}");
            CHECK(entry && strcmp(entry, jb_text(&b)) == 0, "response fields:\n gql   %s\n plain %s",
                  got, jb_text(&b));
            free(entry);
            free(got);
            jb_free(&b);
        }
    }
out:
    gql_selection_free(data);
    gql_selection_free(envelope);
    gql_selection_free(response);
    snapshot_unref(samples[0]);
    snapshot_unref(samples[1]);
}

static void expect_refused(const char *text, size_t len, const char *why)
{
    char err[256] = "untouched";
    struct gql_selection *sel = gql_selection_parse(text, len, err, sizeof(err));
    CHECK(sel == NULL, "accepted %.*s", (int)(len < 200 ? len : 200), text);
    CHECK(strstr(err, why) != NULL, "%.*s: error \"%s\" does not say \"%s\"",
          (int)(len < 200 ? len : 200), text, err, why);
    gql_selection_free(sel);
}

#define REFUSED(text, why) expect_refused(text, sizeof(text) - 1, why)

static void test_refusals(void)
{
    /* Not canonical. */
    REFUSED("", "expected '{' at offset 0, found the end");
    REFUSED(" {u:metricsUpdate{seq:seq}}", "found byte 0x20");
    REFUSED("{u: metricsUpdate{seq:seq}}", "expected a field name at offset 3");
    REFUSED("{u:metricsUpdate{seq:seq }}", "expected ',' or '}' at offset 24");
    REFUSED("{u:metricsUpdate{seq:seq}}\n", "expected the end at offset 26");
    REFUSED("{u:metricsUpdate{seq:seq}}}", "expected the end at offset 26, found '}'");
    REFUSED("{u:metricsUpdate{seq:seq},}", "expected a key at offset 26");
    REFUSED("{u:metricsUpdate{seq:seq,}}", "expected a key at offset 25");
    REFUSED("{u:metricsUpdate{seq:seq}", "expected ',' or '}' at offset 25, found the end");
    REFUSED("{u:metricsUpdate{seq}}", "expected ':' after the key at offset 20");
    REFUSED("{u:metricsUpdate{seq:}}", "expected a field name at offset 21");
    REFUSED("{u:metricsUpdate{:seq}}", "expected a key at offset 17");
    REFUSED("{u:metricsUpdate{1a:seq}}", "expected a key at offset 17");
    REFUSED("{u:metricsUpdate{}}", "expected a key at offset 17");
    REFUSED("{}", "expected a key at offset 1");
    REFUSED("{u:metricsUpdate{seq:seq}}{}", "expected the end");
    REFUSED("{u:metricsUpdate(skill:\"x\"){seq:seq}}", "field Subscription.metricsUpdate needs a selection, at offset 16");
    REFUSED("{u:metricsUpdate{s\xc3\xa9q:seq}}", "found byte 0xc3");
    REFUSED("{u:metricsUpdate{s:seq\xff}}", "found byte 0xff");
    expect_refused("{u:metricsUpdate{seq:seq}}\0", 27, "expected the end at offset 26, found byte 0x00");
    expect_refused("{u:metricsUpdate{s\0q:seq}}", 26, "found byte 0x00");
    /* Fields of the wrong type, unknown ones, the wrong case. */
    REFUSED("{u:metricsUpdate{s:skillName}}", "unknown field 'skillName' on MetricsUpdate");
    REFUSED("{u:metricsUpdate{t:topSkills{a:anomalyType}}}", "unknown field 'anomalyType' on SkillMetrics");
    REFUSED("{u:metricsUpdate{a:anomalies{c:invocationCount}}}", "unknown field 'invocationCount' on Anomaly");
    REFUSED("{u:metricsUpdate{s:Seq}}", "unknown field 'Seq'");
    REFUSED("{u:metricsUpdate{s:skill_name}}", "unknown field 'skill_name'");
    REFUSED("{u:topSkills{s:skillName}}", "unknown field 'topSkills' on Subscription");
    REFUSED("{u:metricsUpdate{s:__schema}}", "unknown field '__schema'");
    /* The root selects exactly metricsUpdate. */
    REFUSED("{t:__typename}", "unknown field '__typename' on Subscription");
    REFUSED("{u:metricsUpdate{seq:seq},v:metricsUpdate{seq:seq}}", "the root selects 2 fields");
    /* Leaves take no selection, objects need one. */
    REFUSED("{u:metricsUpdate{seq:seq{x:x}}}", "leaf field MetricsUpdate.seq takes no selection");
    REFUSED("{u:metricsUpdate{t:topSkills{n:skillName{}}}}", "leaf field SkillMetrics.skillName");
    REFUSED("{u:metricsUpdate{t:__typename{x:x}}}", "leaf field MetricsUpdate.__typename");
    REFUSED("{u:metricsUpdate}", "field Subscription.metricsUpdate needs a selection");
    REFUSED("{u:metricsUpdate{t:topSkills}}", "field MetricsUpdate.topSkills needs a selection");
    REFUSED("{u:metricsUpdate{a:anomalies,s:seq}}", "field MetricsUpdate.anomalies needs a selection");
    /* Response keys are unique within a selection set (Python merged them), not across sets. */
    REFUSED("{u:metricsUpdate{s:seq,e:epoch,s:seq}}", "duplicate key 's' at offset 31");
    REFUSED("{u:metricsUpdate{t:topSkills{n:skillName},t:anomalies{n:skillName}}}", "duplicate key 't'");
    REFUSED("{u:metricsUpdate{t:topSkills{__typename:__typename,__typename:skillName}}}",
            "duplicate key '__typename'");
    struct gql_selection *sel =
        parse("{u:metricsUpdate{u:seq,t:topSkills{u:skillName,t:skillName},a:anomalies{u:skillName}}}");
    gql_selection_free(sel);
}

/* "{u:metricsUpdate{kkk...:seq}}" of len bytes into text. */
static void long_key_text(char *text, size_t len)
{
    static const char head[] = "{u:metricsUpdate{", tail[] = ":seq}}";
    size_t pad = len - (sizeof(head) - 1) - (sizeof(tail) - 1);
    memcpy(text, head, sizeof(head) - 1);
    memset(text + sizeof(head) - 1, 'k', pad);
    memcpy(text + sizeof(head) - 1 + pad, tail, sizeof(tail));
}

static void test_limits(void)
{
    char *text = malloc(GQL_SELECTION_MAX_TEXT + 2);
    if (!text)
        exit(1);
    long_key_text(text, GQL_SELECTION_MAX_TEXT);
    struct gql_selection *sel = parse(text);
    if (sel) {
        struct snapshot *s = sample();
        /* Not through LEJP, whose keys end at 125 bytes. */
        char *got = raw_payload(sel, s, NULL);
        CHECK(strlen(got) == GQL_SELECTION_MAX_TEXT - strlen("{u:metricsUpdate{:seq}}") +
                                 strlen("{\"data\":{\"u\":{\"\":42}}}"),
              "long key written");
        free(got);
        snapshot_unref(s);
    }
    gql_selection_free(sel);
    long_key_text(text, GQL_SELECTION_MAX_TEXT + 1);
    expect_refused(text, GQL_SELECTION_MAX_TEXT + 1, "longer than 8192 bytes");

    /* Items: metricsUpdate's, then aliases of seq: exactly the bound, and one more. */
    for (int n = GQL_SELECTION_MAX_ITEMS; n <= GQL_SELECTION_MAX_ITEMS + 1; n++) {
        size_t len = (size_t)snprintf(text, GQL_SELECTION_MAX_TEXT, "{u:metricsUpdate{");
        for (int i = 0; i < n - 1; i++)
            len += (size_t)snprintf(text + len, GQL_SELECTION_MAX_TEXT - len, "%sk%d:seq",
                                    i ? "," : "", i);
        len += (size_t)snprintf(text + len, GQL_SELECTION_MAX_TEXT - len, "}}");
        char err[128];
        sel = gql_selection_parse(text, len, err, sizeof(err));
        if (n == GQL_SELECTION_MAX_ITEMS) {
            CHECK(sel != NULL, "%d items refused: %s", n, err);
            if (sel) {
                struct snapshot *s = sample();
                char *got = payload(sel, s, NULL);
                CHECK(strstr(got, "{\"data\":{\"u\":{\"k0\":42,\"k1\":42,") == got &&
                          strstr(got, ",\"k254\":42}}}") != NULL,
                      "every item written: %s", got);
                free(got);
                snapshot_unref(s);
            }
        } else {
            CHECK(sel == NULL && strstr(err, "more than 256 items"), "%d items: %s", n, err);
        }
        gql_selection_free(sel);
    }

    /* Nesting past what the schema allows, a little and as deep as the text allows: refused at
     * the first leaf, never recursed into. */
    for (int depth = 9; depth <= 9000; depth *= 1000) {
        size_t len = 0;
        for (int i = 0; i < depth && len + 40 < GQL_SELECTION_MAX_TEXT; i++)
            len += (size_t)snprintf(text + len, 32, "%s",
                                    i == 0 ? "{u:metricsUpdate" : i == 1 ? "{t:topSkills" : "{n:skillName");
        for (size_t i = 0; i < 8 && len < GQL_SELECTION_MAX_TEXT; i++)
            text[len++] = '}';
        expect_refused(text, len, "leaf field SkillMetrics.skillName takes no selection");
    }
    free(text);
}

static void test_errors_are_bounded(void)
{
    char err[8];
    memset(err, 'x', sizeof(err));
    struct gql_selection *sel = gql_selection_parse("{u:nope{a:b}}", 13, err, sizeof(err));
    CHECK(sel == NULL && memchr(err, '\0', sizeof(err)) && !strncmp(err, "selecti", 7),
          "truncated error");
    sel = gql_selection_parse("{u:nope{a:b}}", 13, NULL, 0);
    CHECK(sel == NULL, "no error buffer");
    /* A successful parse leaves an empty message. */
    char ok_err[32] = "stale";
    sel = gql_selection_parse("{u:metricsUpdate{s:seq}}", 24, ok_err, sizeof(ok_err));
    CHECK(sel && ok_err[0] == '\0', "message after success: %s", ok_err);
    gql_selection_free(sel);
}

int main(void)
{
    test_text_is_kept();
    test_expected_payloads();
    test_every_field_equals_the_plain_update();
    test_refusals();
    test_limits();
    test_errors_are_bounded();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
