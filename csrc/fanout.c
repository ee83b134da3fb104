/* fanout.c - subscription groups and their shared metrics_update frames. */
#include "fanout.h"

#include <stdlib.h>
#include <string.h>

#include "gql_protocol.h"
#include "gql_selection.h"
#include "recovery.h"
#include "ws_protocol.h"

struct fanout_group {
    struct fanout_group *next;
    char *skill;              /* NULL = all skills */
    size_t skill_len;
    struct gql_selection *sel; /* a GraphQL subscription's fields; NULL = the plain protocol */
    size_t members;
    uint64_t built_seq;
    struct msgbuf *message;   /* metrics_update for built_seq */
    struct msgbuf *deflated[PMD_WINDOWS]; /* message compressed, by window; NULL until claimed */
};

static int same_selection(const struct gql_selection *a, const struct gql_selection *b)
{
    if (!a || !b)
        return a == b;
    size_t la, lb;
    const char *ta = gql_selection_text(a, &la), *tb = gql_selection_text(b, &lb);
    return la == lb && !memcmp(ta, tb, la);
}

struct fanout_group *fanout_join_selection(struct fanout *f, const char *skill, size_t len,
                                           struct gql_selection *sel)
{
    struct fanout_group *g;
    for (g = f->groups; g; g = g->next) {
        if (((!skill && !g->skill) ||
             (skill && g->skill && g->skill_len == len && !memcmp(g->skill, skill, len))) &&
            same_selection(sel, g->sel)) {
            g->members++;
            if (sel)
                gql_selection_free(sel);
            return g;
        }
    }
    g = calloc(1, sizeof(*g));
    if (!g)
        goto nomem;
    if (skill) {
        g->skill = malloc(len + 1);
        if (!g->skill) {
            free(g);
            goto nomem;
        }
        memcpy(g->skill, skill, len);
        g->skill[len] = '\0';
        g->skill_len = len;
    }
    g->sel = sel;
    g->members = 1;
    g->next = f->groups;
    f->groups = g;
    return g;
nomem:
    if (sel)
        gql_selection_free(sel);
    return NULL;
}

struct fanout_group *fanout_join(struct fanout *f, const char *skill, size_t len)
{
    return fanout_join_selection(f, skill, len, NULL);
}

/* Drop the compressed frames of the group's previous message. */
static void drop_deflated(struct fanout_group *g)
{
    for (int i = 0; i < PMD_WINDOWS; i++) {
        msgbuf_unref(g->deflated[i]);
        g->deflated[i] = NULL;
    }
}

static void group_free(struct fanout_group *g)
{
    drop_deflated(g);
    msgbuf_unref(g->message);
    free(g->skill);
    if (g->sel)
        gql_selection_free(g->sel);
    free(g);
}

void fanout_leave(struct fanout *f, struct fanout_group *g)
{
    if (!g || --g->members)
        return;
    for (struct fanout_group **pp = &f->groups; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    group_free(g);
}

const char *fanout_group_skill(const struct fanout_group *g, size_t *len)
{
    *len = g->skill_len;
    return g->skill;
}

int fanout_update_pending(const struct fanout *f, const struct fanout_sub *sub)
{
    return sub->group && f->current && sub->sent_seq < f->current->seq;
}

/* A new update for snap in the form of g (a metrics_update, or a GraphQL `next` payload), or
 * NULL when out of memory. */
static struct msgbuf *build_update(const struct snapshot *snap, const struct fanout_group *g)
{
    struct msgbuf *m = msgbuf_new(g->skill ? 1024 : 8192);
    if (!m)
        return NULL;
    if (g->sel)
        gql_selection_write(g->sel, snap, g->skill, g->skill_len, &m->jb);
    else
        snapshot_write_update(snap, g->skill, g->skill_len, &m->jb);
    if (m->jb.failed) {
        msgbuf_unref(m);
        return NULL;
    }
    return m;
}

/* The group's metrics_update for the current snapshot, serialised at most once per tick. */
static struct msgbuf *group_message(struct fanout *f, struct fanout_group *g)
{
    if (g->message && g->built_seq == f->current->seq)
        return g->message;
    struct msgbuf *m = build_update(f->current, g);
    if (!m)
        return NULL;
    if (!g->sel)
        msgbuf_frame(m, 0); /* sent as it is by every plain client (a GraphQL payload is not) */
    drop_deflated(g);
    msgbuf_unref(g->message);
    g->message = m;
    g->built_seq = f->current->seq;
    return m;
}

/* The group's current message as sub takes it: compressed at most once per window size. */
static struct msgbuf *group_frame(struct fanout *f, struct fanout_group *g, int deflate_bits)
{
    struct msgbuf *m = group_message(f, g);
    if (!m || !deflate_bits)
        return m;
    struct msgbuf **slot = &g->deflated[deflate_bits - PMD_MIN_WINDOW_BITS];
    if (!*slot)
        *slot = pmd_compress(&f->zip, deflate_bits, m);
    return *slot;
}

/* While sub replays: the retained update after sent_seq into *out, or *out NULL once the
 * replay has caught up with the current snapshot (the replay then ends). */
static int claim_replayed(struct fanout *f, struct fanout_sub *sub, struct msgbuf **out)
{
    *out = NULL;
    if (sub->sent_seq + 1 < f->current->seq) {
        int gap;
        struct snapshot *s = f->recovery ? recovery_next(f->recovery, sub->sent_seq, &gap) : NULL;
        if (!s || gap) {
            snapshot_unref(s);
            return FC_BEHIND;
        }
        if (s->seq < f->current->seq) {
            *out = build_update(s, sub->group);
            uint64_t seq = s->seq;
            snapshot_unref(s);
            if (!*out)
                return FC_NOMEM;
            sub->sent_seq = seq;
            return FC_OK;
        }
        snapshot_unref(s);
    }
    sub->replaying = 0;
    return FC_OK;
}

int fanout_claim(struct fanout *f, struct fanout_sub *sub, struct msgbuf **out)
{
    if (sub->replaying) {
        int st = claim_replayed(f, sub, out);
        if (st != FC_OK || *out)
            return st;
    }
    struct msgbuf *m = group_frame(f, sub->group, sub->deflate_bits);
    if (!m)
        return FC_NOMEM;
    msgbuf_ref(m);
    sub->sent_seq = f->current->seq;
    *out = m;
    return FC_OK;
}

void fanout_skip_to(struct fanout_sub *sub, uint64_t seq)
{
    sub->sent_seq = seq;
    sub->replaying = 0;
}

void fanout_resume_after(struct fanout_sub *sub, uint64_t seq)
{
    sub->sent_seq = seq;
    sub->replaying = 1;
}

/* 1 when sub never got the snapshot numbered `replaced`: conflated, unless catch_up lets a
 * reader one behind replay it (an edge's batch); a replay owes everything anyway. */
static int account_replaced(struct fanout_sub *sub, uint64_t replaced, int catch_up)
{
    if (!sub->group || sub->replaying || sub->sent_seq >= replaced)
        return 0;
    if (catch_up && sub->sent_seq + 1 == replaced) {
        fanout_resume_after(sub, sub->sent_seq);
        return 0;
    }
    return 1;
}

/* One walk over the sessions: each is counted (conflated or not) and offered the new update in
 * turn.  The profile of a 10,000-client tick put about a tenth of the process in this walk
 * waiting on cache misses (one session after another, each allocated on its own), so the walk
 * loads the sessions ahead (session_prefetch) while the current one's send() runs. */
uint64_t fanout_publish(struct fanout *f, struct snapshot *s, struct session *sessions,
                        int deliver)
{
    uint64_t conflated = 0;
    uint64_t replaced = f->current ? f->current->seq : 0; /* 0: nobody can be behind it */
    /* On an edge a reader only one behind, in the same epoch, is not slow: it had no turn to
     * write before the next state arrived, so it catches up from the store instead. */
    int catch_up = f->catch_up && f->current && !strcmp(f->current->epoch, s->epoch);
    snapshot_unref(f->current);
    f->current = s;
    for (struct session *p = sessions, *next; p; p = next) {
        next = session_next_rw(p); /* a failed write closes p, but it stays linked */
        session_prefetch(p);
        conflated += account_replaced(session_fanout_sub_rw(p), replaced, catch_up);
        const struct gql_conn *gc = session_gql(p);
        for (struct gql_op *op = gc ? gc->ops : NULL; op; op = op->next)
            if (op->live)
                conflated += account_replaced(&op->sub, replaced, catch_up);
        if (deliver)
            session_deliver_update(p);
    }
    return conflated;
}

void fanout_release(struct fanout *f)
{
    while (f->groups) {
        struct fanout_group *g = f->groups;
        f->groups = g->next;
        group_free(g);
    }
    snapshot_unref(f->current);
    f->current = NULL;
    pmd_compressor_release(&f->zip);
}
