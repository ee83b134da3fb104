/* static_files.h - the dashboard's files, read once into memory and served by name. */
#ifndef SB_STATIC_FILES_H
#define SB_STATIC_FILES_H

#include <stddef.h>

struct static_file {
    char name[64];            /* file name, no directory */
    const char *content_type;
    char *data;               /* owned */
    size_t len;
};

struct static_files {
    struct static_file *files;
    size_t count;
};

/* Read the regular files of dir (at most 64, each at most 4 MiB, names of at
 * most 63 bytes; others are skipped).  A missing dir gives an empty set.
 * Returns 0, or -1 when out of memory. */
int static_files_load(struct static_files *set, const char *dir);

/* The file served at URL path (e.g. "/app.js"; "/" means index.html), or NULL. */
const struct static_file *static_files_find(const struct static_files *set, const char *path);

/* Free every loaded file; the set is left empty (zeroed). */
void static_files_free(struct static_files *set);

#endif
