/* event_queue.h - events from the extension's threads to the asyncio thread, signalled by an eventfd. */
#ifndef SB_EVENT_QUEUE_H
#define SB_EVENT_QUEUE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum ev_kind {
    EV_LOG = 1,       /* level (Python logging level), text */
    EV_SNAPSHOT,      /* a new snapshot was published; value = its seq */
    EV_TICK_DONE,     /* an on-demand tick finished; value = the request id */
    EV_STOPPED,       /* the service thread left its loop and destroyed its context */
    EV_ANOMALIES,     /* the active anomaly set changed (anomaly_watch.h); value = the seq of
                       * the snapshot that carries it, text = its JSON array */
    EV_GQL_OPERATION, /* a GraphQL subscribe message (gql_protocol.h); value = the connection
                       * id, text = {"id":..,"user":..,"message":"<the message, as a string>"} */
    EV_GQL_HTTP,      /* a /graphql request (http_protocol.h); value = the request id, text =
                       * {"method":..,"query_string":..,"body":..,"content_type":..,"user":..} */
};

struct event {
    struct event *next;
    enum ev_kind kind;
    int level;
    uint64_t value;
    char text[];      /* NUL-terminated; empty for non-log events */
};

/* A multi-producer, single-consumer queue.  Producers are any thread; the
 * consumer is the asyncio thread, woken through `fd` (an eventfd). */
struct event_queue {
    pthread_mutex_t lock;
    struct event *head, *tail;
    size_t count;
    size_t dropped_logs;  /* log events refused because the queue was full */
    int min_level;        /* log events below this Python level are not queued */
    int fd;
};

/* Create the eventfd. Returns 0, or -1 with errno set. */
int evq_init(struct event_queue *q);

/* Free every queued event and close the eventfd. */
void evq_destroy(struct event_queue *q);

/* Queue an event and wake the consumer. Never blocks on the consumer.
 * Log events are dropped (and counted) beyond a bound so that a stalled
 * asyncio loop cannot make a chatty thread grow memory without limit;
 * other kinds are always queued.  Returns 0, or -1 when out of memory. */
int evq_post(struct event_queue *q, enum ev_kind kind, int level, uint64_t value,
             const char *text);

/* Detach and return every queued event (oldest first, linked by next) after
 * clearing the eventfd.  The caller frees each with free().  *dropped_logs
 * receives the number of log events dropped since the previous call. */
struct event *evq_take_all(struct event_queue *q, size_t *dropped_logs);

#endif
