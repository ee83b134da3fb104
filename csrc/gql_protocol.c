/* gql_protocol.c - GraphQL over WebSocket (graphql-transport-ws) on the server's port. */
#include "gql_protocol.h"

#include <stdlib.h>
#include <string.h>

#include "event_queue.h"
#include "gql_command.h"
#include "gql_message.h"
#include "log.h"
#include "msgbuf.h"
#include "recovery.h"
#include "service.h"
#include "session.h"
#include "ticker.h"

/* Queue a frame of static text. */
static void queue_literal(struct session *s, const char *text)
{
    struct msgbuf *m = msgbuf_new(strlen(text));
    if (!m) {
        session_close_out_of_memory(s);
        return;
    }
    jb_lit(&m->jb, text);
    session_queue_reply(s, m);
}

/* Refuse one operation with an `error` frame (its id is then free again). */
static void queue_op_error(struct session *s, const char *id, size_t id_len, const char *message)
{
    struct msgbuf *m = msgbuf_new(id_len + strlen(message) + 64);
    if (!m) {
        session_close_out_of_memory(s);
        return;
    }
    jb_lit(&m->jb, "{\"id\":");
    jb_str(&m->jb, id, id_len);
    jb_lit(&m->jb, ",\"type\":\"error\",\"payload\":[{\"message\":");
    jb_cstr(&m->jb, message);
    jb_lit(&m->jb, "}]}");
    if (m->jb.failed) {
        msgbuf_unref(m);
        session_close_out_of_memory(s);
        return;
    }
    session_queue_reply(s, m);
}

static struct gql_op *find_op(const struct gql_conn *c, const char *id, size_t len)
{
    for (struct gql_op *op = c->ops; op; op = op->next)
        if (op->id_len == len && !memcmp(op->id, id, len))
            return op;
    return NULL;
}

/* End op: it leaves its group (live) or stops counting as waiting; the id is free again. */
static void remove_op(struct service *svc, struct gql_conn *c, struct gql_op *op)
{
    for (struct gql_op **pp = &c->ops; *pp; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    }
    if (op->live) {
        fanout_leave(&svc->fan, op->sub.group);
        svc->gql_live--;
    }
    if (op->waiting)
        svc->gql_waiting--;
    c->n_ops--;
    free(op);
}

static void on_connection_init(struct session *s, const struct gql_msg *msg)
{
    struct service *svc = s->svc;
    struct gql_conn *c = s->gql;
    if (c->init_seen) {
        session_close(s, SB_CLOSE_GQL_TOO_MANY_INITS);
        return;
    }
    c->init_seen = 1;
    lws_sul_cancel(&s->auth_deadline);
    if (svc->cfg.jwt_secret && !s->authenticated) {
        if (!msg->token) {
            svc->counters.auth_failures++;
            sb_log_topic(svc->events, SB_TOPIC_AUTH, SB_WARNING,
                         "client %llu (%s): authentication failed: no token in the handshake or "
                         "in connection_init",
                         (unsigned long long)s->id, s->peer);
        }
        if (!msg->token ||
            session_verify_token(s, msg->token, msg->token_len, "connection_init payload") < 0) {
            session_close(s, SB_CLOSE_GQL_FORBIDDEN);
            return;
        }
    }
    if (session_take_seat(s) < 0)
        return;
    c->acked = 1;
    sb_log(svc->events, SB_INFO, "client %llu connected from %s over GraphQL%s%s (%zu connected)",
           (unsigned long long)s->id, s->peer, s->authenticated ? " as user " : "",
           s->authenticated ? s->user_id : "", svc->n_sessions);
    queue_literal(s, "{\"type\":\"connection_ack\"}");
}

/* The event that hands a subscribe message to Python: its id, the user, and the message itself
 * as a JSON string (escaped, so that any byte the client sent stays valid UTF-8 JSON). */
static int post_operation(struct session *s, const char *id, size_t id_len)
{
    jbuf text;
    if (jb_init(&text, 0, s->rx.len + id_len + 96) < 0)
        return -1;
    jb_lit(&text, "{\"id\":");
    jb_str(&text, id, id_len);
    jb_lit(&text, ",\"user\":");
    jb_cstr(&text, s->user_id);
    jb_lit(&text, ",\"message\":");
    jb_str(&text, s->rx.data, s->rx.len);
    jb_lit(&text, "}");
    int rc = text.failed ? -1 : evq_post(s->svc->events, EV_GQL_OPERATION, 0, s->id, jb_text(&text));
    jb_free(&text);
    return rc;
}

static void on_subscribe(struct session *s, const struct gql_msg *msg)
{
    struct service *svc = s->svc;
    struct gql_conn *c = s->gql;
    if (!c->acked) {
        session_close(s, SB_CLOSE_GQL_UNAUTHORIZED);
        return;
    }
    if (find_op(c, msg->id, msg->id_len)) {
        session_close(s, SB_CLOSE_GQL_DUPLICATE_ID);
        return;
    }
    if (c->n_ops >= GQL_MAX_OPERATIONS) {
        queue_op_error(s, msg->id, msg->id_len,
                       "too many operations on this connection (the limit is 16): complete one first");
        return;
    }
    if (svc->gql_waiting >= GQL_MAX_WAITING) {
        queue_op_error(s, msg->id, msg->id_len, "the server is busy: try again shortly");
        return;
    }
    struct gql_op *op = calloc(1, sizeof(*op) + msg->id_len + 1);
    if (!op || post_operation(s, msg->id, msg->id_len) < 0) {
        free(op);
        session_close_out_of_memory(s);
        return;
    }
    memcpy(op->id, msg->id, msg->id_len);
    op->id_len = msg->id_len;
    op->waiting = 1;
    op->next = c->ops;
    c->ops = op;
    c->n_ops++;
    svc->gql_waiting++;
    svc->counters.gql_operations++;
}

void gql_receive(struct session *s)
{
    struct gql_msg msg;
    char err[128];

    if (s->rx.binary) { /* the protocol speaks text frames only */
        session_close(s, SB_CLOSE_GQL_BAD_MESSAGE);
        return;
    }
    int st = gql_msg_parse(s->rx.data, s->rx.len, &msg, err, sizeof(err));
    if (st == GQL_MSG_NOMEM) {
        session_close_out_of_memory(s);
    } else if (st != GQL_MSG_OK) {
        sb_log(s->svc->events, SB_INFO, "client %llu (%s) sent an invalid GraphQL message: %s",
               (unsigned long long)s->id, s->peer, err);
        session_close(s, SB_CLOSE_GQL_BAD_MESSAGE);
    } else {
        switch (msg.type) {
        case GQL_MSG_CONNECTION_INIT:
            on_connection_init(s, &msg);
            break;
        case GQL_MSG_PING:
            queue_literal(s, "{\"type\":\"pong\"}");
            break;
        case GQL_MSG_PONG:
            break;
        case GQL_MSG_SUBSCRIBE:
            on_subscribe(s, &msg);
            break;
        case GQL_MSG_COMPLETE: {
            /* Also ends an operation Python is still working on: its answer is dropped. */
            struct gql_op *op = find_op(s->gql, msg.id, msg.id_len);
            if (op)
                remove_op(s->svc, s->gql, op);
            break;
        }
        }
    }
    gql_msg_free(&msg);
}

int gql_updates_pending(const struct session *s)
{
    const struct fanout *f = &s->svc->fan;
    for (const struct gql_op *op = s->gql->ops; op; op = op->next)
        if (op->live && fanout_update_pending(f, &op->sub))
            return 1;
    return 0;
}

/* The next update owed to op, claimed and framed as a `next` message in the service's one
 * frame buffer (session_send copies what the socket does not take at once).  NULL when
 * nothing could be claimed (the session is then closing). */
static struct msgbuf *next_frame(struct session *s, struct gql_op *op)
{
    struct service *svc = s->svc;
    struct msgbuf *update = session_claim_update(s, &op->sub);
    if (!update)
        return NULL;
    if (!svc->gql_frame)
        svc->gql_frame = msgbuf_new(update->jb.len + op->id_len + 64);
    struct msgbuf *m = svc->gql_frame;
    if (m) {
        jb_reset(&m->jb);
        jb_lit(&m->jb, "{\"id\":");
        jb_str(&m->jb, op->id, op->id_len);
        jb_lit(&m->jb, ",\"type\":\"next\",\"payload\":");
        jb_raw(&m->jb, jb_text(&update->jb), update->jb.len);
        jb_lit(&m->jb, "}");
    }
    msgbuf_unref(update);
    if (!m || m->jb.failed) {
        session_close_out_of_memory(s);
        return NULL;
    }
    msgbuf_frame(m, 0);
    return m;
}

int gql_write_update(struct session *s)
{
    const struct fanout *f = &s->svc->fan;
    for (struct gql_op *op = s->gql->ops; op; op = op->next) {
        if (!op->live || !fanout_update_pending(f, &op->sub))
            continue;
        struct msgbuf *m = next_frame(s, op);
        if (!m)
            return 0;
        if (session_send(s, m) < 0)
            return -1;
        if (s->out_head || gql_updates_pending(s))
            lws_callback_on_writable(s->wsi);
        return 0;
    }
    return 0;
}

void gql_deliver_updates(struct session *s)
{
    const struct fanout *f = &s->svc->fan;
    int later = 0;
    for (struct gql_op *op = s->gql->ops; op; op = op->next) {
        if (!op->live || !fanout_update_pending(f, &op->sub))
            continue;
        if (op->sub.replaying || !session_can_push(s)) {
            later = 1;
            continue;
        }
        struct msgbuf *m = next_frame(s, op);
        if (!m)
            return;
        if (session_send(s, m) < 0) {
            session_close(s, SB_CLOSE_WRITE_FAILED);
            return;
        }
    }
    if (later)
        lws_callback_on_writable(s->wsi);
}

void gql_closed(struct session *s)
{
    struct gql_conn *c = s->gql;
    if (!c)
        return;
    while (c->ops)
        remove_op(s->svc, c, c->ops);
    free(c);
    s->gql = NULL;
}

/* Make op a live subscription of cmd's (skill, selection), resumed after cmd's position when
 * the recovery window still holds everything after it, else starting from the current update. */
static void subscribe_op(struct session *s, struct gql_op *op, struct gql_command *cmd)
{
    struct service *svc = s->svc;
    struct fanout_group *g = fanout_join_selection(&svc->fan, cmd->skill, cmd->skill_len, cmd->sel);
    cmd->sel = NULL; /* the fan-out owns it now, whether it joined or not */
    if (!g) {
        session_close_out_of_memory(s);
        return;
    }
    op->waiting = 0;
    svc->gql_waiting--;
    op->live = 1;
    svc->gql_live++;
    op->sub.group = g;
    op->sub.deflate_bits = 0;
    if (cmd->since_epoch && svc->ticker->recovery &&
        recovery_can_resume(svc->ticker->recovery, cmd->since_epoch, cmd->since_seq))
        fanout_resume_after(&op->sub, cmd->since_seq);
    else
        fanout_skip_to(&op->sub, 0);
    if (fanout_update_pending(&svc->fan, &op->sub))
        lws_callback_on_writable(s->wsi);
}

void gql_apply_command(struct service *svc, struct gql_command *cmd)
{
    struct session *s = session_find(svc, cmd->target);
    struct gql_op *op = s && s->gql && !s->closing ? find_op(s->gql, cmd->op_id, cmd->op_id_len)
                                                   : NULL;
    /* Python answers each operation it was handed; anything else (the client completed the
     * operation or left meanwhile) has nobody to go to. */
    if (op && op->waiting) {
        if (cmd->kind == GQC_SUBSCRIBE) {
            subscribe_op(s, op, cmd);
        } else if (cmd->kind == GQC_SEND) {
            session_queue_reply(s, cmd->body);
            cmd->body = NULL;
            if (cmd->done)
                remove_op(svc, s->gql, op);
        }
    }
    gql_command_free(cmd);
}
