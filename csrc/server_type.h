/* server_type.h - _core.ServerBase: the C base type that RealTimeMetricsServer extends in Python. */
#ifndef SB_SERVER_TYPE_H
#define SB_SERVER_TYPE_H

#include "module.h"

#include "json_writer.h"
#include "server_core.h"

/*
 * One server's C half.  Python calls down into it (start the core, request and finish the
 * stop, take events, request a tick, list the network clients, build metrics_update text);
 * it never calls Python.  Everything here is touched with the GIL held, on the thread that
 * runs the server's event loop; the core's own threads never see this object.
 */
typedef struct {
    PyObject_HEAD
    struct server_core *core;      /* NULL unless running */
    char epoch[SB_EPOCH_LEN + 1];  /* the last epoch read (sb_server_epoch), "" before the first start */
    struct snapshot *cache_snap;   /* the snapshot `cache` was built from (a reference), or NULL */
    PyObject *cache;               /* dict: skill (str, or None for all) -> metrics_update text */
    PyObject *weakrefs;
} ServerObject;

/* Add ServerBase to the module and keep it in st.  Returns 0, or -1 with an exception set. */
int sb_server_type_add(PyObject *module, module_state *st);

/* The metrics_update text of the latest snapshot for skill (a str, or None for all skills): a new
 * reference, Py_None when not running or before the first tick, NULL with an exception set.
 * Built once per snapshot and subscription, and shared by every caller until the next one. */
PyObject *sb_server_update_text(ServerObject *self, PyObject *skill);

/* The metrics_update text of snap for skill (a str, or None for all skills): cached like
 * sb_server_update_text when snap is the latest, else built for this call.  A new reference, or
 * NULL with an exception set. */
PyObject *sb_server_snapshot_text(ServerObject *self, struct snapshot *snap, PyObject *skill);

/* The latest snapshot (a reference the caller releases), or NULL when not running or before the
 * first tick. */
struct snapshot *sb_server_latest(ServerObject *self);

/* The current epoch of the running server, or the last one of the last run once stopped; NULL
 * before the first start.  The text lives in self until the next call (GIL held). */
const char *sb_server_epoch(ServerObject *self);

/* b's text as a str (invalid UTF-8 replaced), freeing b: a new reference, or NULL with
 * MemoryError when b ran out of memory while being written. */
PyObject *sb_text_from_jbuf(jbuf *b);

#endif
