/* event_queue.c - the thread -> asyncio event queue. */
#include "event_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* A stalled asyncio loop must not let log lines pile up forever. */
#define MAX_QUEUED_EVENTS 10000

int evq_init(struct event_queue *q)
{
    memset(q, 0, sizeof(*q));
    q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->fd < 0)
        return -1;
    pthread_mutex_init(&q->lock, NULL);
    return 0;
}

void evq_destroy(struct event_queue *q)
{
    struct event *e = q->head;
    while (e) {
        struct event *next = e->next;
        free(e);
        e = next;
    }
    q->head = q->tail = NULL;
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    pthread_mutex_destroy(&q->lock);
}

int evq_post(struct event_queue *q, enum ev_kind kind, int level, uint64_t value,
             const char *text)
{
    size_t tlen = text ? strlen(text) : 0;
    struct event *e = malloc(sizeof(*e) + tlen + 1);
    if (!e)
        return -1;
    e->next = NULL;
    e->kind = kind;
    e->level = level;
    e->value = value;
    memcpy(e->text, text ? text : "", tlen + 1);

    pthread_mutex_lock(&q->lock);
    if (kind == EV_LOG && q->count >= MAX_QUEUED_EVENTS) {
        q->dropped_logs++;
        pthread_mutex_unlock(&q->lock);
        free(e);
        return 0;
    }
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->count++;
    pthread_mutex_unlock(&q->lock);

    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the consumer is already woken. */
    while (write(q->fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
    return 0;
}

struct event *evq_take_all(struct event_queue *q, size_t *dropped_logs)
{
    uint64_t counter;
    while (read(q->fd, &counter, sizeof(counter)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&q->lock);
    struct event *head = q->head;
    q->head = q->tail = NULL;
    q->count = 0;
    *dropped_logs = q->dropped_logs;
    q->dropped_logs = 0;
    pthread_mutex_unlock(&q->lock);
    return head;
}
