/* anomaly_watch.h - notices when the broadcast set of active anomalies changes, and tells Python. */
#ifndef SB_ANOMALY_WATCH_H
#define SB_ANOMALY_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "event_queue.h"
#include "snapshot.h"

/*
 * The (skill, type) keys of the anomalies the last snapshot broadcast.  Owned by the ticker
 * thread.  Webhooks (session_buddy/realtime/webhooks.py) turn the changes into
 * anomaly.detected / anomaly.resolved: C reports the whole active set, Python diffs it against
 * the set it delivered last (kept across restarts in the webhook store).
 */
struct anomaly_watch {
    char **keys;        /* owned: "<type>\n<skill>" per active anomaly, sorted */
    size_t n;
    int reported;       /* the first snapshot's set has been posted */
};

/*
 * Compare the anomalies of the snapshot numbered seq with the previous set.  When it is the
 * first snapshot, or a (skill, type) appeared or cleared, post one EV_ANOMALIES event:
 * value = seq, text = a JSON array of the active anomalies in the wire's form (skill_name,
 * anomaly_type, baseline_value, observed_value, deviation_score, detected_at).  A changed
 * score alone posts nothing.  Returns 0, or -1 when out of memory (the watch is unchanged and
 * the next snapshot compares against the old set again).
 */
int anomaly_watch_update(struct anomaly_watch *w, const struct anomaly *list, size_t n,
                         uint64_t seq, struct event_queue *events);

/* Free the keys; the struct may be used again afterwards. */
void anomaly_watch_clear(struct anomaly_watch *w);

#endif
