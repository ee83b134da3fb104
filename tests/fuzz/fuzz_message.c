/* fuzz_message.c - libFuzzer target for the pure-C message path: fragment reassembly,
 * JSON parsing, dispatch and reply building, exactly as the service thread runs them.
 *
 * Input: a sequence of fragments, each [flags:1][length:2 little-endian][bytes].
 * flags bit 0: first fragment of a message; bit 1: final; bit 2: binary frame;
 * bit 3: authentication pending; bit 4: no snapshot yet (before the first tick);
 * bit 5: no epoch known (an in-process session of a stopped server);
 * bit 6: no recovery window and no history (the same).
 * A final fragment dispatches the message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "json_writer.h"
#include "rx_buffer.h"
#include "snapshot.h"

#define MAX_MESSAGE 4096

static struct snapshot *make_snapshot(void)
{
    static const char *const names[] = {"pytest-run", "ruff-check", "caf\xc3\xa9", "a\"b\\c"};
    size_t n = sizeof(names) / sizeof(names[0]);
    struct skill_stats *skills = calloc(n, sizeof(*skills));
    struct anomaly *anomalies = calloc(1, sizeof(*anomalies));
    if (!skills || !anomalies)
        abort();
    for (size_t i = 0; i < n; i++) {
        skills[i].name = strdup(names[i]);
        skills[i].name_len = strlen(names[i]);
        skills[i].total_invocations = (int64_t)(10 * (i + 1));
        skills[i].completed_invocations = (int64_t)(9 * (i + 1));
        skills[i].avg_duration_seconds = i ? 1.5 * (double)i : __builtin_nan("");
        skills[i].invocation_count = (int64_t)i;
        skills[i].avg_duration = __builtin_nan("");
        skills[i].last_invocation_ms = i ? 1700000000000 + (int64_t)i : -1;
        skills[i].is_anomalous = i == 0;
    }
    anomalies[0].skill_name = strdup(names[0]);
    anomalies[0].skill_len = strlen(names[0]);
    anomalies[0].deviation_score = -3.25;
    anomalies[0].detected_ms = 1700000000000;
    struct metrics *m = metrics_build(skills, n, anomalies, 1);
    struct snapshot *s = m ? snapshot_new(m, "0123456789abcdef", 7, 1700000000000, 0, 10) : NULL;
    if (!s)
        abort();
    metrics_unref(m);
    return s;
}

static void check_reply(const jbuf *reply)
{
    if (reply->failed || !reply->len)
        return;
    const char *text = jb_text(reply);
    /* Every reply is one JSON object of valid UTF-8. */
    if (text[0] != '{' || text[reply->len - 1] != '}' || !utf8_valid(text, reply->len))
        abort();
}

/* get_history's buckets and the recovery window, holding a little of everything. */
static void make_stores(struct snapshot *snap, struct history **h, struct recovery **r)
{
    *h = history_new();
    *r = recovery_new(600000, 8);
    if (!*h || !*r || recovery_retain(*r, snap) < 0)
        abort();
    for (size_t i = 0; i < snap->metrics->n_skills; i++) {
        const struct skill_stats *st = &snap->metrics->skills[i];
        if (history_add(*h, st->name, st->name_len, 1700000000123 - (int64_t)i * 61000, (int)(i & 1),
                        1.5 * (double)i) < 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct snapshot *snap;
    static struct history *history;
    static struct recovery *recovery;
    struct rx_buffer rx = {0};

    if (!snap) {
        snap = make_snapshot();
        make_stores(snap, &history, &recovery);
    }
    while (size >= 3) {
        uint8_t flags = data[0];
        size_t len = (size_t)data[1] | ((size_t)data[2] << 8);
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        enum rx_status st = rx_append(&rx, data, len, flags & 1, (flags >> 2) & 1, MAX_MESSAGE);
        data += len;
        size -= len;
        if (st != RX_OK) {
            rx_consumed(&rx);
            continue;
        }
        if (!(flags & 2))
            continue;
        /* A text frame's UTF-8 is validated by lws before it reaches us. */
        if (!rx.binary && !utf8_valid(rx.data, rx.len)) {
            rx_consumed(&rx);
            continue;
        }
        struct dispatch_result res;
        jbuf reply;
        if (jb_init(&reply, 16, 256) < 0)
            abort();
        struct dispatch_env env = {
            .snap = (flags & 16) ? NULL : snap,
            .epoch = (flags & 32) ? NULL : "0123456789abcdef",
            .recovery = (flags & 64) ? NULL : recovery,
            .history = (flags & 64) ? NULL : history,
            .auth_pending = (flags >> 3) & 1,
            .now_ms = 1700000000123,
        };
        if (dispatch_message(rx.data, rx.len, rx.binary, &env, &res, &reply) == 0) {
            check_reply(&reply);
            if (res.action == DA_SUBSCRIBE && res.skill) {
                jbuf update;
                if (jb_init(&update, 16, 1024) < 0)
                    abort();
                snapshot_write_update(snap, res.skill, res.skill_len, &update);
                check_reply(&update);
                jb_free(&update);
            }
            dispatch_result_free(&res);
        }
        jb_free(&reply);
        rx_consumed(&rx);
    }
    rx_free(&rx);
    return 0;
}
