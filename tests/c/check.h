/* check.h - the failure-counting assertions every C unit test uses (header-only, one per test program). */
#ifndef SB_TEST_CHECK_H
#define SB_TEST_CHECK_H

#include <stdio.h>

static int failures;

/* Report a failure with its file and line; only the first 100 are printed, the count is always right. */
#define FAIL(...)                                                  \
    do {                                                           \
        if (failures < 100) {                                      \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                          \
            fputc('\n', stderr);                                   \
        }                                                          \
        failures++;                                                \
    } while (0)

/* Report a failure unless cond holds. */
#define CHECK(cond, ...)                                           \
    do {                                                           \
        if (!(cond))                                               \
            FAIL(__VA_ARGS__);                                     \
    } while (0)

#endif
