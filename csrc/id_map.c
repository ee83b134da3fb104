/* id_map.c - a hash map from 64-bit ids to pointers (open addressing), for lookups by client id. */
#include "id_map.h"

#include <stdlib.h>

struct id_map_slot {
    uint64_t id;              /* 0: empty */
    void *value;
};

/* Ids are handed out in sequence, so a multiplicative hash spreads them over the table. */
static size_t home(const struct id_map *m, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 17) & (m->cap - 1);
}

static void insert(struct id_map *m, uint64_t id, void *value)
{
    size_t i = home(m, id);
    while (m->slots[i].id)
        i = (i + 1) & (m->cap - 1);
    m->slots[i].id = id;
    m->slots[i].value = value;
}

/* Keep the load at most one half: probes stay short. */
static int grow(struct id_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct id_map_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    struct id_map old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].id)
            insert(m, old.slots[i].id, old.slots[i].value);
    free(old.slots);
    return 0;
}

int id_map_put(struct id_map *m, uint64_t id, void *value)
{
    if ((m->count + 1) * 2 > m->cap && grow(m) < 0)
        return -1;
    insert(m, id, value);
    m->count++;
    return 0;
}

void *id_map_get(const struct id_map *m, uint64_t id)
{
    if (!m->cap || !id)
        return NULL;
    for (size_t i = home(m, id); m->slots[i].id; i = (i + 1) & (m->cap - 1))
        if (m->slots[i].id == id)
            return m->slots[i].value;
    return NULL;
}

void id_map_del(struct id_map *m, uint64_t id)
{
    if (!m->cap || !id)
        return;
    size_t mask = m->cap - 1, i = home(m, id);
    while (m->slots[i].id != id) {
        if (!m->slots[i].id)
            return;
        i = (i + 1) & mask;
    }
    /* Backward-shift deletion: move later entries of the probe run into the hole when their
     * home does not lie strictly between the hole and them, so no tombstones are needed. */
    for (size_t j = (i + 1) & mask; m->slots[j].id; j = (j + 1) & mask) {
        size_t h = home(m, m->slots[j].id);
        if (((j - h) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].id = 0;
    m->slots[i].value = NULL;
    m->count--;
}

void id_map_free(struct id_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}
