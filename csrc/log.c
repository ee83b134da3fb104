/* log.c - formats log lines into the event queue and captures libwebsockets' log output. */
#include "log.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_sanitize.h"

/* lws's log callback is installed once per process; where a line goes is the logging
 * thread's own business (see sb_log_route_lws). */
static pthread_once_t lws_emit_installed = PTHREAD_ONCE_INIT;
static __thread struct event_queue *lws_sink;
static __thread int bind_errno;
static __thread void (*accept_hook)(void *, int);
static __thread void *accept_hook_arg;

void sb_log_topic(struct event_queue *q, enum sb_log_topic topic, int level, const char *fmt, ...)
{
    char raw[SB_LOG_LINE_MAX], line[SB_LOG_LINE_MAX];
    va_list ap;

    if (level < q->min_level)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1;
    /* The arguments are peer and DB text: a cut must not leave half a character, and no byte of
     * theirs may forge a line or reach Python as text it cannot decode. */
    if ((size_t)n >= sizeof(raw))
        len = utf8_whole_prefix(raw, len);
    text_log_escape(line, sizeof(line), raw, len);
    evq_post(q, EV_LOG, level, (uint64_t)topic, line);
}

/*
 * lws 4.1.6 logs a peer's malformed input at ERR or WARN ("Ran out of header data space" once
 * per header line of an oversized request).  Any client could fill the log at ERROR that way, so
 * these go out at INFO, as nginx logs client errors.  Matched by prefix of the message.
 */
static const char *const peer_caused[] = {
    "Ran out of header data space",
    "lws_pos_in_bounds: pos",
    "More hdr frags than we can deal with",
    "header ",                     /* "header %li exceeds limit %ld" */
    "Duplicated method",
    "Missing URI in HTTP request",
    "multiple methods?",
    "lws_process_ws_upgrade: malformed or absent conn hdr",
    "lws_process_ws_upgrade: protocol list too long",
    "lws_process_ws_upgrade: pcol name too long",
    "lws_process_ws_upgrade: malformatted protocol list",
    "Client key too long",
    "b63 of length must be zero",
    "Control frame with xtended length is illegal",
};

static int is_peer_caused(const char *msg)
{
    for (size_t i = 0; i < sizeof(peer_caused) / sizeof(peer_caused[0]); i++)
        if (!strncmp(msg, peer_caused[i], strlen(peer_caused[i])))
            return 1;
    return 0;
}

/* lws calls this on whichever thread logs; it must never touch Python. */
static void lws_emit(int lws_level, const char *line)
{
    char clean[300];
    size_t n = strlen(line);
    const char *bind = strstr(line, "ERROR on binding");

    if (bind) {
        /* "ERROR on binding fd N to port P (-1 98)": the errno is the last number. */
        const char *paren = strrchr(line, ' ');
        if (paren)
            bind_errno = atoi(paren + 1);
    }
    /* lws prefixes a timestamp and ends lines with a newline; keep the message only. */
    const char *msg = strstr(line, "]: ");
    msg = msg ? msg + 3 : line;
    if (accept_hook && !strncmp(msg, "accept: errno ", 14)) {
        accept_hook(accept_hook_arg, atoi(msg + 14));
        return;
    }
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        n--;
    if (n >= sizeof(clean))
        n = sizeof(clean) - 1;
    memcpy(clean, msg, n);
    clean[n] = '\0';

    if (lws_sink)
        sb_log(lws_sink, is_peer_caused(clean) ? SB_INFO : lws_level == LLL_ERR ? SB_ERROR : SB_WARNING,
               "libwebsockets: %s", clean);
}

static void install_lws_emit(void)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
}

void sb_log_route_lws(struct event_queue *q)
{
    pthread_once(&lws_emit_installed, install_lws_emit);
    lws_sink = q;
}

int sb_log_take_bind_errno(void)
{
    int e = bind_errno;
    bind_errno = 0;
    return e;
}

void sb_log_set_accept_hook(void (*hook)(void *arg, int err), void *arg)
{
    accept_hook = hook;
    accept_hook_arg = arg;
}
