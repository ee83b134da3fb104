/* state_codec.h - one tick's state as bytes for Redis: what a publisher appends, an edge reads. */
#ifndef SB_STATE_CODEC_H
#define SB_STATE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "json_writer.h"
#include "snapshot.h"

/*
 * The state of a snapshot (SPEC section 10) is everything its JSON forms are built from: the
 * time, stale, top_n, every skill's figures (all of them, not only the top N, so that an edge
 * answers one-skill subscriptions and get_metrics for any skill) and the anomalies.  seq and
 * epoch travel beside it, as fields of the stream entry.  An edge that decodes it and builds
 * its frames with snapshot_write_update writes the same bytes as the publisher: integers and
 * doubles are carried exactly (little-endian, IEEE 754 bits), names as length + bytes.
 *
 * Format "SBS1": magic, i64 taken_ms, u8 stale, u32 top_n, u32 n_skills, per skill (u32 len,
 * name, i64 total, i64 completed, f64 avg_all, i64 count24, i64 completed24, f64 avg24,
 * i64 count1h, i64 last_ms, u8 anomalous), u32 n_anomalies, per anomaly (u32 len, name,
 * u8 type, f64 baseline, f64 observed, f64 z, i64 detected_ms).
 */

/* Append the state of s to out (check out->failed). */
void state_encode(const struct snapshot *s, jbuf *out);

/*
 * Decode len bytes into a new snapshot numbered seq in epoch (SB_EPOCH_LEN characters).
 * Returns the snapshot (one reference, no Prometheus view), or NULL with err filled when the
 * bytes are not a state (truncated, bad magic, a name over SKILL_NAME_MAX, an unknown anomaly
 * type) or memory ran out.
 */
struct snapshot *state_decode(const unsigned char *p, size_t len, const char *epoch, uint64_t seq,
                              char *err, size_t errlen);

/*
 * A whole history store (history.h) as bytes, for the key P:history (redis_publisher.h): an edge
 * has no DB, so it serves get_history from the publisher's buckets, copied exactly.
 *
 * Format "SBH1": magic, i64 now_ms (the publisher's clock), then per chunk held (the all-skills
 * series first): u8 kind (0 all skills, 1 a skill), for a skill u32 len + name, i64 chunk
 * number, HISTORY_CHUNK_BUCKETS x (u32 invocations, u32 completed, u32 n_durations,
 * f64 sum_durations).
 */

struct history;

/* Append the chunks of h, as of now_ms, to out (check out->failed). */
void history_encode(struct history *h, int64_t now_ms, jbuf *out);

/* A new store holding what len bytes encode, or NULL with err filled (not a store, or out of
 * memory). */
struct history *history_decode(const unsigned char *p, size_t len, char *err, size_t errlen);

#endif
