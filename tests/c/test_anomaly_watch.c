/* test_anomaly_watch.c - when the active anomaly set is posted to Python (EV_ANOMALIES), and
 * webhook_stats' copy in and out. */
#include <stdlib.h>
#include <string.h>

#include "anomaly_watch.h"
#include "check.h"
#include "webhook_stats.h"

static struct anomaly make(const char *skill, enum anomaly_type type, double z)
{
    struct anomaly a = {.skill_name = (char *)skill, .skill_len = strlen(skill), .type = type,
                        .baseline_value = 0.9, .observed_value = 0.25, .deviation_score = z,
                        .detected_ms = 1764694800000};
    return a;
}

/* The events queued since the last call: how many, and the text and value of the last. */
static size_t take(struct event_queue *q, char *text, size_t cap, uint64_t *value)
{
    size_t dropped, n = 0;
    struct event *e = evq_take_all(q, &dropped);
    while (e) {
        struct event *next = e->next;
        if (e->kind != EV_ANOMALIES)
            FAIL("unexpected event kind %d", (int)e->kind);
        snprintf(text, cap, "%s", e->text);
        *value = e->value;
        n++;
        free(e);
        e = next;
    }
    return n;
}

static void test_changes(void)
{
    struct event_queue q;
    struct anomaly_watch w = {0};
    char text[1024] = "";
    uint64_t seq = 0;

    if (evq_init(&q) < 0) {
        FAIL("evq_init");
        return;
    }
    /* The first snapshot is always reported, even with nothing active. */
    CHECK(anomaly_watch_update(&w, NULL, 0, 1, &q) == 0, "update");
    CHECK(take(&q, text, sizeof(text), &seq) == 1 && !strcmp(text, "[]") && seq == 1,
          "first report: %s (seq %llu)", text, (unsigned long long)seq);
    CHECK(anomaly_watch_update(&w, NULL, 0, 2, &q) == 0 && take(&q, text, sizeof(text), &seq) == 0,
          "no change, no event");

    struct anomaly two[2] = {make("mypy", ANOMALY_PERFORMANCE_DROP, -3.5),
                             make("a\"b\n", ANOMALY_PATTERN_SHIFT, 2.5)};
    CHECK(anomaly_watch_update(&w, two, 2, 3, &q) == 0 && take(&q, text, sizeof(text), &seq) == 1,
          "two appeared");
    CHECK(seq == 3 && strstr(text, "\"skill_name\":\"mypy\",\"anomaly_type\":\"performance_drop\"") &&
              strstr(text, "\"skill_name\":\"a\\\"b\\n\",\"anomaly_type\":\"pattern_shift\"") &&
              strstr(text, "\"deviation_score\":-3.5"),
          "the set in the wire's form: %s", text);

    /* Same keys in another order and with other scores: nothing to announce. */
    struct anomaly swapped[2] = {make("a\"b\n", ANOMALY_PATTERN_SHIFT, 9.0),
                                 make("mypy", ANOMALY_PERFORMANCE_DROP, -2.1)};
    CHECK(anomaly_watch_update(&w, swapped, 2, 4, &q) == 0 && take(&q, text, sizeof(text), &seq) == 0,
          "a score change alone posts nothing");

    /* Same skill, other type: a change. */
    struct anomaly retyped[2] = {make("a\"b\n", ANOMALY_PATTERN_SHIFT, 9.0),
                                 make("mypy", ANOMALY_PERFORMANCE_SPIKE, 2.1)};
    CHECK(anomaly_watch_update(&w, retyped, 2, 5, &q) == 0 && take(&q, text, sizeof(text), &seq) == 1 &&
              seq == 5 && strstr(text, "performance_spike"),
          "a type change is reported: %s", text);

    CHECK(anomaly_watch_update(&w, NULL, 0, 6, &q) == 0 && take(&q, text, sizeof(text), &seq) == 1 &&
              !strcmp(text, "[]") && seq == 6,
          "all cleared: %s", text);
    anomaly_watch_clear(&w);
    evq_destroy(&q);
}

static void test_webhook_stats(void)
{
    struct webhook_stats ws;
    struct webhook_stat rows[2] = {{.key = "abc", .deliveries = 3, .depth = 1, .oldest_created_s = 5.5},
                                   {.key = "def", .failures = 7}};
    struct webhook_stat *got;
    size_t n;

    webhook_stats_init(&ws);
    CHECK(webhook_stats_copy(&ws, &got, &n) == 0 && n == 0 && got == NULL, "empty at first");
    CHECK(webhook_stats_set(&ws, rows, 2) == 0, "set");
    rows[0].deliveries = 99; /* the stats keep their own copy */
    CHECK(webhook_stats_copy(&ws, &got, &n) == 0 && n == 2, "copy");
    if (n == 2) {
        CHECK(!strcmp(got[0].key, "abc") && got[0].deliveries == 3 && got[0].depth == 1 &&
                  got[0].oldest_created_s == 5.5 && got[1].failures == 7,
              "copied figures");
    }
    free(got);
    CHECK(webhook_stats_set(&ws, NULL, 0) == 0 && webhook_stats_copy(&ws, &got, &n) == 0 && n == 0,
          "cleared");
    webhook_stats_destroy(&ws);
}

int main(void)
{
    test_changes();
    test_webhook_stats();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
