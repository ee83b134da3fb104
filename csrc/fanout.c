/* fanout.c - subscription groups and their shared metrics_update frames. */
#include "fanout.h"

#include <stdlib.h>
#include <string.h>

#include "recovery.h"
#include "ws_protocol.h"

struct fanout_group {
    struct fanout_group *next;
    char *skill;              /* NULL = all skills */
    size_t skill_len;
    size_t members;
    uint64_t built_seq;
    struct msgbuf *message;   /* metrics_update for built_seq */
};

struct fanout_group *fanout_join(struct fanout *f, const char *skill, size_t len)
{
    struct fanout_group *g;
    for (g = f->groups; g; g = g->next) {
        if ((!skill && !g->skill) ||
            (skill && g->skill && g->skill_len == len && !memcmp(g->skill, skill, len))) {
            g->members++;
            return g;
        }
    }
    g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    if (skill) {
        g->skill = malloc(len + 1);
        if (!g->skill) {
            free(g);
            return NULL;
        }
        memcpy(g->skill, skill, len);
        g->skill[len] = '\0';
        g->skill_len = len;
    }
    g->members = 1;
    g->next = f->groups;
    f->groups = g;
    return g;
}

static void group_free(struct fanout_group *g)
{
    msgbuf_unref(g->message);
    free(g->skill);
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

/* A new metrics_update for snap in the form of g, or NULL when out of memory. */
static struct msgbuf *build_update(const struct snapshot *snap, const struct fanout_group *g)
{
    struct msgbuf *m = msgbuf_new(g->skill ? 1024 : 8192);
    if (!m)
        return NULL;
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
    msgbuf_unref(g->message);
    g->message = m;
    g->built_seq = f->current->seq;
    return m;
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
    struct msgbuf *m = group_message(f, sub->group);
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

uint64_t fanout_publish(struct fanout *f, struct snapshot *s, struct session *sessions,
                        int deliver)
{
    uint64_t conflated = 0;
    if (f->current)
        for (const struct session *p = sessions; p; p = session_next(p))
            conflated += (uint64_t)(fanout_update_pending(f, session_fanout_sub(p)) &&
                                    !session_fanout_sub(p)->replaying);
    snapshot_unref(f->current);
    f->current = s;
    if (deliver)
        for (struct session *p = sessions, *next; p; p = next) {
            next = session_next_rw(p); /* a failed write closes p, but it stays linked */
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
}
