/* log.h - log lines from the extension's threads, delivered to Python's logging. */
#ifndef SB_LOG_H
#define SB_LOG_H

#include "event_queue.h"

/* Python logging levels, so the asyncio side passes them through unchanged. */
enum { SB_DEBUG = 10, SB_INFO = 20, SB_WARNING = 30, SB_ERROR = 40 };

/* Log lines are cut to this many bytes (NUL included), before and after escaping. */
#define SB_LOG_LINE_MAX 1024

/* Format a line and queue it for the Python logger.  The formatted text is cut on a
 * character boundary, then escaped by text_log_escape: whatever bytes the arguments
 * hold (peer input, DB text), the queued line is valid UTF-8 with no control
 * character, so it can neither forge a line nor fail to decode. */
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

#endif
