/* log.h - log lines from the extension's threads, delivered to Python's logging. */
#ifndef SB_LOG_H
#define SB_LOG_H

#include "event_queue.h"

/* Python logging levels, so the asyncio side passes them through unchanged. */
enum { SB_DEBUG = 10, SB_INFO = 20, SB_WARNING = 30, SB_ERROR = 40 };

/* Format a line (truncated at 1 KiB) and queue it for the Python logger. */
void sb_log(struct event_queue *q, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Route libwebsockets' own warnings and errors to the given queue (NULL
 * detaches).  lws logging is process-wide, so the most recently attached
 * running server receives them; lines logged while none is attached are
 * discarded. */
void sb_log_attach_lws(struct event_queue *q);
void sb_log_detach_lws(struct event_queue *q);

/* The errno of the last "ERROR on binding" line lws logged on this thread
 * (0 if none), reset to 0 by the call. */
int sb_log_take_bind_errno(void);

/* lws reports a failed accept() only as the log line "accept: errno N".  On the calling thread
 * (the service thread), such a line calls hook(arg, N) instead of being logged; NULL removes it. */
void sb_log_set_accept_hook(void (*hook)(void *arg, int err), void *arg);

#endif
