/* gql_selection.h - a compiled GraphQL field selection of Subscription.metricsUpdate and its JSON form. */
#ifndef SB_GQL_SELECTION_H
#define SB_GQL_SELECTION_H

#include <stddef.h>

#include "json_writer.h"
#include "snapshot.h"

/* Bounds on a selection text (GRAPHQL_CONTRACT.md part 2).  Python's compiler enforces its own
 * first; these keep a buggy or hostile caller from costing the service thread more. */
#define GQL_SELECTION_MAX_TEXT 8192  /* bytes */
#define GQL_SELECTION_MAX_DEPTH 8    /* nested selection sets, the root's included (the schema
                                      * itself nests 3 deep: deeper text gives a leaf a selection) */
#define GQL_SELECTION_MAX_ITEMS 256  /* items in all, the root's included */

/* A parsed selection.  Immutable once parsed, so one may be shared between threads and by every
 * subscriber whose operation compiled to the same text. */
struct gql_selection;

/*
 * Parse text[0..len), the canonical selection set of a subscription operation:
 *   selection := '{' item (',' item)* '}'
 *   item      := key ':' field [ selection ]
 *   key       := [A-Za-z_][A-Za-z0-9_]*
 * with no whitespace.  The root selection holds exactly one item, the field metricsUpdate (a
 * subscription selects one root field, never an introspection one).  Fields are those of the
 * schema's MetricsUpdate, SkillMetrics and Anomaly types, or __typename on any of them; object
 * and list fields (metricsUpdate, topSkills, anomalies) need a selection, leaves take none; two
 * items of one selection set may not share a key (Python has merged them).
 *
 * Returns a new selection (free it with gql_selection_free), or NULL with err[0..errlen) set to a
 * NUL-terminated reason (err may be NULL when errlen is 0): for text that is not exactly
 * canonical, an unknown field, a leaf with a selection or an object field without one, a
 * duplicate key, a text over the GQL_SELECTION_MAX_* bounds, or "out of memory".
 */
struct gql_selection *gql_selection_parse(const char *text, size_t len, char *err, size_t errlen);

/* Free sel (NULL allowed). */
void gql_selection_free(struct gql_selection *sel);

/* The canonical text sel was parsed from, NUL-terminated, its length into *len when len is not
 * NULL: the key under which the fan-out groups the operations that share this selection.  Owned
 * by sel. */
const char *gql_selection_text(const struct gql_selection *sel, size_t *len);

/*
 * Append the `payload` of a graphql-transport-ws `next` message for snapshot s:
 * {"data":{"<key>":{...}}}, keys in selection order, values spelt exactly as the plain
 * protocol's metrics_update spells them (snapshot_write_update).  skill NULL means all skills:
 * topSkills holds the top N entries and anomalies all of them; otherwise topSkills holds only
 * that skill's entry (even outside the top N; empty when it has no data) and anomalies only its
 * anomalies.  Check out->failed afterwards.
 */
void gql_selection_write(const struct gql_selection *sel, const struct snapshot *s,
                         const char *skill, size_t skill_len, jbuf *out);

#endif
