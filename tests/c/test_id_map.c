/* test_id_map.c - id_map against a plain array model, through inserts, lookups and deletions. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "id_map.h"

#define N 5000

int main(void)
{
    struct id_map m = {0};
    static int present[N + 1];
    static int values[N + 1];

    CHECK(id_map_get(&m, 1) == NULL, "empty map");
    id_map_del(&m, 1); /* absent from an empty map: no-op */
    for (uint64_t id = 1; id <= N; id++) {
        CHECK(id_map_put(&m, id, &values[id]) == 0, "put %llu", (unsigned long long)id);
        present[id] = 1;
    }
    CHECK(m.count == N, "count %zu", m.count);
    /* Delete in a scattered order, checking everything after each step of a pass. */
    srand(7);
    for (int round = 0; round < 3 * N; round++) {
        uint64_t id = 1 + (uint64_t)(rand() % N);
        if (present[id]) {
            id_map_del(&m, id);
            present[id] = 0;
        } else {
            CHECK(id_map_put(&m, id, &values[id]) == 0, "re-put");
            present[id] = 1;
        }
        if (round % 997 == 0) {
            size_t live = 0;
            for (uint64_t k = 1; k <= N; k++) {
                void *v = id_map_get(&m, k);
                CHECK(present[k] ? v == &values[k] : v == NULL, "id %llu after round %d",
                      (unsigned long long)k, round);
                live += present[k];
            }
            CHECK(m.count == live, "count %zu, want %zu", m.count, live);
        }
    }
    CHECK(id_map_get(&m, 0) == NULL && id_map_get(&m, N + 1) == NULL, "ids never put");
    id_map_free(&m);
    CHECK(id_map_get(&m, 1) == NULL && m.count == 0, "freed map is empty");
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
