/* fuzz_graphql.c - libFuzzer target for what a GraphQL client or a buggy compiler can hand the C side.
 *
 * Input: [selector:1][bytes].  Selector bit 0 clear: the bytes are a graphql-transport-ws client
 * message (gql_msg_parse); an accepted subscribe/complete must carry a bounded, NUL-free id.
 * Set: the bytes are a selection text (gql_selection_parse); an accepted one must give back its
 * text exactly and serialise a snapshot without failing. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gql_message.h"
#include "gql_selection.h"
#include "snapshot.h"

static struct snapshot *fixture(void)
{
    static struct snapshot *snap;
    if (snap)
        return snap;
    struct skill_stats *skills = calloc(2, sizeof(*skills));
    struct anomaly *anomalies = calloc(1, sizeof(*anomalies));
    if (!skills || !anomalies)
        abort();
    skills[0] = (struct skill_stats){.name = strdup("pytest"), .name_len = 6, .total_invocations = 3,
                                     .completed_invocations = 2, .avg_duration_seconds = 1.5,
                                     .invocation_count = 3, .completed_count = 2, .avg_duration = NAN,
                                     .invocation_count_1h = 1, .last_invocation_ms = 1700000000000};
    skills[1] = (struct skill_stats){.name = strdup("ruff"), .name_len = 4, .avg_duration = NAN,
                                     .avg_duration_seconds = NAN, .last_invocation_ms = -1};
    anomalies[0] = (struct anomaly){.skill_name = strdup("pytest"), .skill_len = 6,
                                    .type = ANOMALY_PERFORMANCE_DROP, .deviation_score = -3.5,
                                    .detected_ms = 1700000000000};
    struct metrics *m = metrics_build(skills, 2, anomalies, 1);
    if (!m)
        abort();
    snap = snapshot_new(m, "0123456789abcdef", 7, 1700000000000, 0, 10);
    metrics_unref(m);
    if (!snap)
        abort();
    return snap;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char err[128];

    if (!(data[0] & 1)) {
        struct gql_msg msg;
        int st = gql_msg_parse(text, len, &msg, err, sizeof(err));
        if (st == GQL_MSG_OK && (msg.type == GQL_MSG_SUBSCRIBE || msg.type == GQL_MSG_COMPLETE) &&
            (!msg.id || !msg.id_len || msg.id_len > GQL_MAX_ID_LEN || strlen(msg.id) != msg.id_len))
            abort();
        if (st != GQL_MSG_OK && (msg.id || msg.token))
            abort(); /* a refused message keeps nothing */
        gql_msg_free(&msg);
        return 0;
    }
    struct gql_selection *sel = gql_selection_parse(text, len, err, sizeof(err));
    if (!sel)
        return 0;
    size_t back_len;
    const char *back = gql_selection_text(sel, &back_len);
    if (back_len != len || memcmp(back, text, len))
        abort(); /* the group key must be the text itself */
    jbuf out;
    if (jb_init(&out, 0, 256) < 0)
        abort();
    gql_selection_write(sel, fixture(), NULL, 0, &out);
    gql_selection_write(sel, fixture(), "pytest", 6, &out);
    if (out.failed)
        abort();
    jb_free(&out);
    gql_selection_free(sel);
    return 0;
}
