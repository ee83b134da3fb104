/* id_map.h - a hash map from 64-bit ids to pointers (open addressing), for lookups by client id. */
#ifndef SB_ID_MAP_H
#define SB_ID_MAP_H

#include <stddef.h>
#include <stdint.h>

/* Zero-initialised it is empty.  Id 0 is not a valid key.  Not thread-safe. */
struct id_map {
    struct id_map_slot *slots;
    size_t cap;               /* a power of two, or 0 */
    size_t count;
};

/* Map id (nonzero, not present yet) to value (not NULL).  Returns 0, or -1 when out of memory
 * (the map is unchanged). */
int id_map_put(struct id_map *m, uint64_t id, void *value);

/* The value of id, or NULL. */
void *id_map_get(const struct id_map *m, uint64_t id);

/* Forget id (absent: no-op). */
void id_map_del(struct id_map *m, uint64_t id);

/* Free the table; the map is empty again. */
void id_map_free(struct id_map *m);

#endif
