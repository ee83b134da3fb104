/* recovery.h - the updates of the last recovery_window seconds, kept for clients that resume. */
#ifndef SB_RECOVERY_H
#define SB_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

/*
 * The retained stream (docs/realtime/WEBSOCKET_SERVER.md, "Recovery"): every snapshot built over
 * the last window, oldest first, so that a client that reconnects with since={epoch, seq} gets
 * every update it missed, in its own subscription's form.  What is kept is compact: one small
 * envelope per tick (seq, time, stale) holding a reference to that tick's figures (struct
 * metrics, shared with the live snapshot and between the stale ticks of an outage), without the
 * Prometheus view; no JSON is kept, a replayed update is serialised when it is sent.
 *
 * Thread-safe: the ticker thread retains, the service thread and the asyncio thread read, each
 * call under the store's own lock, held for a few pointer copies (never while serialising).
 */
struct recovery;

/* A store keeping the snapshots of the last window_ms, and at most max_snapshots of them (a
 * bound when ticks come faster than the interval: broadcast_metrics() on demand).  window_ms 0
 * keeps nothing: every resume is refused.  Returns NULL when out of memory. */
struct recovery *recovery_new(int64_t window_ms, size_t max_snapshots);

/* Free the store and drop its references.  NULL is fine. */
void recovery_free(struct recovery *r);

/*
 * Keep s (its metrics referenced, not copied) as the newest, then drop what fell out of the
 * window (older than s->taken_ms - window_ms) or past max_snapshots.  Snapshots must come in
 * increasing seq of one epoch.  Returns 0, or -1 when out of memory (the store then forgets
 * everything it held, so that a resume can never skip the update that was not kept).
 */
int recovery_retain(struct recovery *r, const struct snapshot *s);

/*
 * Whether a client that has seen every update of epoch up to seq can resume: 1 when epoch is
 * the store's and every snapshot after seq is still kept (seq is the newest, or seq + 1 is
 * retained), else 0.  epoch is NUL-terminated, of any length.
 */
int recovery_can_resume(struct recovery *r, const char *epoch, uint64_t seq);

/*
 * The retained snapshot that follows seq (a new reference; the caller unrefs it), or NULL when
 * none is newer.  *gap is set to 1 when seq + 1 is no longer kept (it fell out of the window
 * while the client was being replayed to) and the snapshot returned is not seq + 1, else 0.
 */
struct snapshot *recovery_next(struct recovery *r, uint64_t seq, int *gap);

/* What the store holds: how many snapshots, the oldest and newest seq (0 when empty), and the
 * bytes of the distinct figures they reference (their allocations, as malloc reports them). */
struct recovery_stats {
    size_t snapshots;
    uint64_t oldest_seq, newest_seq;
    size_t metrics_bytes;
};
void recovery_get_stats(struct recovery *r, struct recovery_stats *out);

#endif
