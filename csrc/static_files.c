/* static_files.c - loads the dashboard folder into memory, so requests never touch the disk. */
#include "static_files.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FILES 64
#define MAX_FILE_BYTES (4 * 1024 * 1024)

static const char *content_type_for(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    if (!strcmp(dot, ".png"))
        return "image/png";
    if (!strcmp(dot, ".ico"))
        return "image/x-icon";
    return "application/octet-stream";
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    struct stat sb;

    if (!f)
        return NULL;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size <= MAX_FILE_BYTES) {
        data = malloc((size_t)sb.st_size + 1);
        if (data && fread(data, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
            free(data);
            data = NULL;
        }
        if (data)
            *len = (size_t)sb.st_size;
    }
    fclose(f);
    return data;
}

int static_files_load(struct static_files *set, const char *dir)
{
    DIR *d;
    struct dirent *ent;
    char path[4096];

    memset(set, 0, sizeof(*set));
    if (!dir || !(d = opendir(dir)))
        return 0;
    set->files = calloc(MAX_FILES, sizeof(*set->files));
    if (!set->files) {
        closedir(d);
        return -1;
    }
    while ((ent = readdir(d)) && set->count < MAX_FILES) {
        size_t name_len = strlen(ent->d_name);
        if (ent->d_name[0] == '.' || name_len >= sizeof(set->files[0].name))
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name) >= sizeof(path))
            continue;
        struct static_file *f = &set->files[set->count];
        f->data = read_file(path, &f->len);
        if (!f->data)
            continue; /* a folder, a special file, or too large */
        memcpy(f->name, ent->d_name, name_len + 1);
        f->content_type = content_type_for(f->name);
        set->count++;
    }
    closedir(d);
    return 0;
}

const struct static_file *static_files_find(const struct static_files *set, const char *path)
{
    if (!path || path[0] != '/')
        return NULL;
    const char *name = path[1] ? path + 1 : "index.html";
    for (size_t i = 0; i < set->count; i++)
        if (!strcmp(set->files[i].name, name))
            return &set->files[i];
    return NULL;
}

void static_files_free(struct static_files *set)
{
    for (size_t i = 0; i < set->count; i++)
        free(set->files[i].data);
    free(set->files);
    memset(set, 0, sizeof(*set));
}
