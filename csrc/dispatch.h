/* dispatch.h - apply one client message: decide what it asks for and build the reply. */
#ifndef SB_DISPATCH_H
#define SB_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "json_writer.h"
#include "protocol_codes.h"
#include "history.h"
#include "recovery.h"
#include "snapshot.h"

enum dispatch_action {
    DA_NONE = 0,      /* nothing to change; the reply (if any) says everything */
    DA_SUBSCRIBE,     /* set the subscription to skill (NULL = all skills) */
    DA_UNSUBSCRIBE,   /* stop metrics_update until the next subscribe */
    DA_AUTH,          /* verify token (only returned while auth is pending) */
};

struct dispatch_result {
    enum dispatch_action action;
    char *skill;      /* DA_SUBSCRIBE: owned, NUL-terminated, or NULL for all */
    size_t skill_len;
    int resume;       /* DA_SUBSCRIBE: recovered, so every update after resume_seq is owed */
    uint64_t resume_seq;
    char *token;      /* DA_AUTH: owned */
};

/* What a message is answered from.  Every pointer may be NULL. */
struct dispatch_env {
    const struct snapshot *snap; /* the latest snapshot (NULL before the first tick): answers
                                  * get_metrics, and its seq is the one confirmations carry */
    const char *epoch;           /* the stream's epoch (SB_EPOCH_LEN characters), or NULL when
                                  * none is known (an in-process session of a stopped server) */
    struct recovery *recovery;   /* decides whether a subscribe's since can be resumed */
    struct history *history;     /* answers get_history */
    int auth_pending;            /* the client has not authenticated yet and must */
    int64_t now_ms;
};

/*
 * Apply the message data[0..len) from one client.  is_binary: it arrived in
 * a binary frame, so its UTF-8 has not been validated yet.
 *
 * Appends at most one complete JSON reply message to `reply` (nothing for
 * DA_AUTH) and fills *res.  Returns 0, or -1 when out of memory.
 */
int dispatch_message(const char *data, size_t len, int is_binary, const struct dispatch_env *env,
                     struct dispatch_result *res, jbuf *reply);

/* Free the strings of *res and zero it. */
void dispatch_result_free(struct dispatch_result *res);

/* Append the `connected` greeting: epoch (NULL writes null) and seq name the newest update
 * built so far, which the client counts as seen (0 before the first). */
void dispatch_write_connected(jbuf *out, int authenticated, const char *epoch, uint64_t seq,
                              int64_t now_ms);

/* Append an `error` reply; request_type may be NULL. */
void dispatch_write_error(jbuf *out, const char *code, const char *message,
                          const char *request_type);

/* Append the `subscription_confirmed` reply for skill (NULL = all skills), with the epoch
 * (NULL writes null), the seq of the newest update (0 before the first) and `recovered`
 * (-1 leaves it out: the subscribe had no since). */
void dispatch_write_subscribed(jbuf *out, const char *skill, size_t skill_len,
                               const char *epoch, uint64_t seq, int recovered, int64_t now_ms);

#endif
