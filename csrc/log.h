/* log.h - log lines from the extension's threads, delivered to Python's logging. */
#ifndef SB_LOG_H
#define SB_LOG_H

#include "event_queue.h"

/* Python logging levels, so the asyncio side passes them through unchanged. */
enum { SB_DEBUG = 10, SB_INFO = 20, SB_WARNING = 30, SB_ERROR = 40 };

/* Which Python logger a line is for (it travels as the log event's value): the server's
 * lifecycle and connections, or authentication (session-buddy's "websocket_server" and
 * "auth" loggers). */
enum sb_log_topic { SB_TOPIC_SERVER = 0, SB_TOPIC_AUTH = 1 };

/* Log lines are cut to this many bytes (NUL included), before and after escaping. */
#define SB_LOG_LINE_MAX 1024

/* Format a line and queue it for the Python logger of its topic.  The formatted text is cut
 * on a character boundary at SB_LOG_LINE_MAX, then escaped by text_log_escape: whatever bytes
 * the arguments hold (peer input, DB text), the queued line is valid UTF-8 with no control
 * character, so it can neither forge a line nor fail to decode. */
void sb_log_topic(struct event_queue *q, enum sb_log_topic topic, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define sb_log(q, level, ...) sb_log_topic((q), SB_TOPIC_SERVER, (level), __VA_ARGS__)

/* Route the warnings and errors libwebsockets logs on the calling thread to q, or stop
 * routing them with NULL.  lws 4.1.6 has one log callback for the whole process and tells
 * it nothing of the context, but each server's context lives and logs on that server's own
 * service thread: so each service thread routes to its own server's queue, and two servers
 * in one process keep their lines apart.  q must outlive the routing (call with NULL before
 * the thread ends).  Lines lws logs on a thread that routes nowhere are discarded. */
void sb_log_route_lws(struct event_queue *q);

/*
 * The errno of the last "ERROR on binding" line lws logged on this thread (0 if none), reset
 * to 0 by the call.  The log line is the only place lws 4.1.6 reports it: lws_create_vhost
 * creates and binds its listening socket itself (lws's _lws_vhost_init_server) and offers no
 * way to hand it one already bound; lws_socket_bind keeps only "busy" or "not usable" of the
 * errno, and closes the socket and logs before it returns, so errno after lws_create_vhost is
 * not reliable; a bind() of our own first, to probe, would race with other processes and
 * differ from lws's socket options.  Hence the log line.
 */
int sb_log_take_bind_errno(void);

/* lws reports a failed accept() only as the log line "accept: errno N".  On the calling thread
 * (the service thread), such a line calls hook(arg, N) instead of being logged; NULL removes it. */
void sb_log_set_accept_hook(void (*hook)(void *arg, int err), void *arg);

#endif
