/* fuzz_gql_selection.c - libFuzzer target for the compiled GraphQL selection parser and writer.
 *
 * Input: a selection text.  Besides not crashing: a refused text leaves a message; an accepted
 * one keeps its text byte for byte, parses again, and writes a payload that is one JSON object
 * (as far as LEJP's limits let it tell) for every kind of filter. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gql_selection.h"
#include "json_object.h"

static char *dup_or_die(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

/* Two skills (top N 1) with a NAN average and an unknown time, one anomaly each. */
static struct snapshot *sample(void)
{
    static struct snapshot *s;
    if (s)
        return s;
    struct skill_stats *skills = calloc(2, sizeof(*skills));
    struct anomaly *anomalies = calloc(2, sizeof(*anomalies));
    if (!skills || !anomalies)
        abort();
    const char *names[] = {"a\"b", "c"};
    for (int i = 0; i < 2; i++) {
        skills[i].name = dup_or_die(names[i]);
        skills[i].name_len = strlen(names[i]);
        skills[i].total_invocations = 2 - i;
        skills[i].completed_invocations = 1;
        skills[i].avg_duration = i ? NAN : 0.5;
        skills[i].avg_duration_seconds = 0.25;
        skills[i].last_invocation_ms = i ? -1 : 1770724825123LL;
        anomalies[i].skill_name = dup_or_die(names[i]);
        anomalies[i].skill_len = strlen(names[i]);
        anomalies[i].type = (enum anomaly_type)i;
        anomalies[i].deviation_score = 3.0 - i;
        anomalies[i].detected_ms = 1770724800000LL;
    }
    struct metrics *m = metrics_build(skills, 2, anomalies, 2);
    s = m ? snapshot_new(m, "0123456789abcdef", 7, 1770724825456LL, 0, 1) : NULL;
    metrics_unref(m);
    if (!s)
        abort();
    return s;
}

static void check_payload(const struct gql_selection *sel, const char *skill)
{
    jbuf out;
    if (jb_init(&out, 0, 64) < 0)
        abort();
    gql_selection_write(sel, sample(), skill, skill ? strlen(skill) : 0, &out);
    if (out.failed || strncmp(jb_text(&out), "{\"data\":{\"", 10) != 0)
        abort();
    const char *names[] = {"data"};
    struct jo_value v[1] = {{0}};
    char err[128];
    int st = jo_parse(jb_text(&out), out.len, names, 1, v, err, sizeof(err));
    /* LEJP gives up on key paths over 125 bytes: long aliases, not bad output. */
    if (st == JO_OK ? v[0].kind != JO_OTHER : !strstr(err, "limits"))
        abort();
    jo_free(v, 1);
    jb_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[128];
    struct gql_selection *sel = gql_selection_parse(text, size, err, sizeof(err));
    if (!sel) {
        if (!err[0] || !memchr(err, '\0', sizeof(err)))
            abort();
        return 0;
    }
    size_t len;
    const char *kept = gql_selection_text(sel, &len);
    if (len != size || memcmp(kept, text, size) != 0 || kept[len] != '\0')
        abort();
    struct gql_selection *again = gql_selection_parse(kept, len, err, sizeof(err));
    if (!again)
        abort();
    gql_selection_free(again);
    check_payload(sel, NULL);
    check_payload(sel, "a\"b");
    check_payload(sel, "c");
    check_payload(sel, "none");
    gql_selection_free(sel);
    return 0;
}
