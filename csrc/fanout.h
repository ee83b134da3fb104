/* fanout.h - subscription groups, the shared frame per group and tick, conflation. */
#ifndef SB_FANOUT_H
#define SB_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "msgbuf.h"
#include "pmdeflate.h"
#include "snapshot.h"

struct session;
struct fanout_group;
struct gql_selection;

/*
 * Clients with the same subscription ("all skills", or one skill) form a group, and a group's
 * metrics_update is serialised at most once per snapshot: every member is sent the same frame.
 * Members that agreed to permessage-deflate get a frame compressed at most once per group,
 * snapshot and window size, shared the same way (pmdeflate.h).  Service thread only, except
 * where noted.
 */
struct fanout {
    struct fanout_group *groups;  /* distinct subscriptions, each with its cached frames */
    struct snapshot *current;     /* what every update is built from; NULL before the first */
    struct pmd_compressor zip;    /* the server's deflaters, one per window size in use */
    struct recovery *recovery;    /* where a resuming session's missed updates come from */
    int catch_up;                 /* an edge: states come in batches after a Redis hiccup, so a
                                   * client that only had no time to write the last one is owed
                                   * every one of the batch (replayed), not just the newest */
};

/* One session's subscription: its group (NULL after unsubscribe) and the newest snapshot it
 * was sent.  The session owns the struct; fanout.c reads and writes it. */
struct fanout_sub {
    struct fanout_group *group;
    uint64_t sent_seq;
    uint8_t deflate_bits;  /* 0: plain frames; else compressed ones, with at most this window */
    int replaying;                /* resumed: every snapshot after sent_seq is owed, in order */
};

/* Join the group for `skill` (len bytes; NULL for all skills), creating it if needed.
 * Returns the group, or NULL when out of memory.  Pair with fanout_leave. */
struct fanout_group *fanout_join(struct fanout *f, const char *skill, size_t len);

/* The same for a GraphQL subscription's group: (skill, selection) pairs, whose frame is the
 * `next` payload gql_selection_write builds.  Takes ownership of sel (freed when an equal group
 * exists, or on failure). */
struct fanout_group *fanout_join_selection(struct fanout *f, const char *skill, size_t len,
                                           struct gql_selection *sel);

/* Leave g (NULL is a no-op); the last member frees the group and its frame. */
void fanout_leave(struct fanout *f, struct fanout_group *g);

/* The group's skill (len bytes, NUL-terminated) or NULL for all skills.  Any thread that holds
 * the lock its session's group pointer is read under: a group lives while it has members. */
const char *fanout_group_skill(const struct fanout_group *g, size_t *len);

/* 1 when sub is subscribed and has not been sent the current snapshot yet, else 0. */
int fanout_update_pending(const struct fanout *f, const struct fanout_sub *sub);

enum fanout_claim_status {
    FC_OK = 0,
    FC_NOMEM,      /* out of memory: nothing counted as sent */
    FC_BEHIND,     /* replaying, and the next update owed has left the recovery window */
};

/*
 * The next update owed to sub, from now on counted as sent, into *out (a new reference the
 * caller drops).  Normally the frame of sub's group for the current snapshot: built on the
 * group's first claim of each snapshot, then shared.  While sub is replaying, the retained
 * snapshot after sent_seq, serialised for this session alone, one per claim (so a slow reader
 * is paced by its own socket and holds one frame at a time); once that reaches the current
 * snapshot, the replay ends and the shared frames follow.  Call only when
 * fanout_update_pending.  Returns an enum fanout_claim_status.
 */
int fanout_claim(struct fanout *f, struct fanout_sub *sub, struct msgbuf **out);

/* Count every snapshot up to seq as sent to sub: the first update it gets is a newer one
 * (0: the current snapshot is due at once).  Ends a replay. */
void fanout_skip_to(struct fanout_sub *sub, uint64_t seq);

/* Resume sub after seq: every snapshot after it is owed, in order, without conflation, until
 * the replay reaches the current one. */
void fanout_resume_after(struct fanout_sub *sub, uint64_t seq);

/* The tick: s (whose reference passes here) replaces the current snapshot.  Returns how many
 * subscribed sessions of the list never got the one it replaces (slow readers: conflated).
 * With deliver set, each session of the list is then offered the new update
 * (session_deliver_update). */
uint64_t fanout_publish(struct fanout *f, struct snapshot *s, struct session *sessions,
                        int deliver);

/* Free whatever is left (groups without members cannot remain; the current snapshot; the
 * deflaters). */
void fanout_release(struct fanout *f);

#endif
