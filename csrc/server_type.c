/* server_type.c - _core.ServerBase: start, stop, events, ticks and client lists of one core. */
#include "server_type.h"

#include <stdlib.h>
#include <string.h>

#include <structmember.h>

#include "history.h"
#include "recovery.h"
#include "server_config.h"
#include "server_graphql.h"
#include "snapshot.h"

static PyObject *not_running(void)
{
    PyErr_SetString(PyExc_RuntimeError, "server is not running");
    return NULL;
}

/* Text from the C side as str.  sb_log already queues valid UTF-8; decoding with "replace"
 * anyway means that no event can fail to convert and take the rest of its batch with it. */
static PyObject *text_to_str(const char *s)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

PyObject *sb_text_from_jbuf(jbuf *b)
{
    if (b->failed) {
        jb_free(b);
        return PyErr_NoMemory();
    }
    PyObject *s = PyUnicode_DecodeUTF8(jb_text(b), (Py_ssize_t)b->len, "replace");
    jb_free(b);
    return s;
}

static void drop_cache(ServerObject *self)
{
    if (self->cache_snap)
        snapshot_unref(self->cache_snap);
    self->cache_snap = NULL;
    if (self->cache)
        PyDict_Clear(self->cache);
}

/* ---- start and stop ---- */

/* Raise what core_start reported: OSError(errno, text) for a bind failure, else RuntimeError. */
static void raise_start_error(int bind_errno, const char *err)
{
    if (!bind_errno) {
        PyErr_SetString(PyExc_RuntimeError, err);
        return;
    }
    /* PyErr_SetObject takes no reference: the args tuple is ours to release. */
    PyObject *exc_args = Py_BuildValue("(is)", bind_errno, err);
    if (exc_args)
        PyErr_SetObject(PyExc_OSError, exc_args);
    Py_XDECREF(exc_args);
}

static PyObject *server_start_core(ServerObject *self, PyObject *config)
{
    struct core_config cfg;
    struct config_hold hold;
    char err[512];
    int bind_errno = 0;

    if (self->core) {
        PyErr_SetString(PyExc_RuntimeError, "server is already running");
        return NULL;
    }
    if (server_config_from_py(config, &cfg, &hold) < 0) {
        config_hold_release(&hold);
        return NULL;
    }
    struct server_core *core;
    Py_BEGIN_ALLOW_THREADS
    core = core_start(&cfg, &bind_errno, err, sizeof(err));
    Py_END_ALLOW_THREADS
    config_hold_release(&hold);
    if (!core) {
        raise_start_error(bind_errno, err);
        return NULL;
    }
    self->core = core;
    core_epoch(core, self->epoch);
    return PyLong_FromLong(core_port(core));
}

static PyObject *server_request_stop(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->core)
        core_request_stop(self->core);
    Py_RETURN_NONE;
}

static void release_core(ServerObject *self)
{
    struct server_core *core = self->core;
    self->core = NULL;
    drop_cache(self);
    if (!core)
        return;
    core_epoch(core, self->epoch); /* the last one, kept after stop */
    Py_BEGIN_ALLOW_THREADS
    core_destroy(core);
    Py_END_ALLOW_THREADS
}

/* Every queued event as (kind, level, value, text) tuples; a note is added when log lines were
 * dropped because the consumer fell behind. */
static PyObject *take_events(struct server_core *core)
{
    PyObject *list = PyList_New(0);
    size_t dropped = 0;
    if (!list || !core)
        return list;
    struct event *e = core_take_events(core, &dropped);
    while (e) {
        struct event *next = e->next;
        if (list) {
            PyObject *text = text_to_str(e->text);
            PyObject *item = text ? Py_BuildValue("(iiKO)", (int)e->kind, e->level,
                                                  (unsigned long long)e->value, text)
                                  : NULL;
            Py_XDECREF(text);
            if (!item || PyList_Append(list, item) < 0)
                Py_CLEAR(list);
            Py_XDECREF(item);
        }
        free(e);
        e = next;
    }
    if (list && dropped) {
        PyObject *item = Py_BuildValue("(iiKs)", (int)EV_LOG, 30, 0ULL,
                                       "log lines were dropped because the event loop fell behind");
        if (!item || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

static PyObject *server_take_events(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return take_events(self->core);
}

/* Join the threads, free the core, and return the events they posted last. */
static PyObject *server_finish_stop(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    struct server_core *core = self->core;
    if (!core)
        return PyList_New(0);
    Py_BEGIN_ALLOW_THREADS
    core_join(core);
    Py_END_ALLOW_THREADS
    PyObject *events = take_events(core);
    release_core(self);
    return events;
}

/* ---- ticks and snapshots ---- */

static PyObject *server_request_tick(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->core)
        return not_running();
    return PyLong_FromUnsignedLongLong(core_request_tick(self->core));
}

/* {"ticks", "durations_us" (most recent last), "first_tick_us"}: the DB work of each tick. */
static PyObject *server_tick_stats(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    uint64_t ticks = 0;
    int64_t first = 0;
    if (!self->core)
        return not_running();
    uint32_t *durations = PyMem_Malloc(TICK_HISTORY * sizeof(*durations));
    if (!durations)
        return PyErr_NoMemory();
    size_t n = core_tick_stats(self->core, durations, TICK_HISTORY, &ticks, &first);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n && list; i++) {
        PyObject *v = PyLong_FromUnsignedLong(durations[i]);
        if (!v)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    PyMem_Free(durations);
    if (!list)
        return NULL;
    return Py_BuildValue("{sKsNsL}", "ticks", (unsigned long long)ticks, "durations_us", list,
                         "first_tick_us", (long long)first);
}

const char *sb_server_epoch(ServerObject *self)
{
    if (self->core)
        core_epoch(self->core, self->epoch);
    return self->epoch[0] ? self->epoch : NULL;
}

struct snapshot *sb_server_latest(ServerObject *self)
{
    return self->core ? core_latest_snapshot(self->core) : NULL;
}

/* skill (str or None) as UTF-8 into *name / *len (NULL for None).  Returns 0, or -1 with an
 * exception set. */
static int skill_utf8(PyObject *skill, const char **name, Py_ssize_t *len)
{
    *name = NULL;
    *len = 0;
    if (skill == Py_None)
        return 0;
    if (!PyUnicode_Check(skill)) {
        PyErr_Format(PyExc_TypeError, "skill must be a str or None, not %.100s",
                     Py_TYPE(skill)->tp_name);
        return -1;
    }
    *name = PyUnicode_AsUTF8AndSize(skill, len);
    return *name ? 0 : -1;
}

/* snap's metrics_update for skill, serialised with the GIL released. */
static PyObject *build_text(const struct snapshot *snap, PyObject *skill)
{
    const char *name;
    Py_ssize_t len;
    jbuf b;
    if (skill_utf8(skill, &name, &len) < 0)
        return NULL;
    if (jb_init(&b, 0, 4096) < 0)
        return PyErr_NoMemory();
    /* name points into skill's UTF-8 buffer: hold skill while the GIL is released, so that
     * another thread replacing the caller's reference (a session's subscribe) cannot free it. */
    Py_INCREF(skill);
    Py_BEGIN_ALLOW_THREADS
    snapshot_write_update(snap, name, (size_t)len, &b);
    Py_END_ALLOW_THREADS
    Py_DECREF(skill);
    return sb_text_from_jbuf(&b);
}

PyObject *sb_server_snapshot_text(ServerObject *self, struct snapshot *snap, PyObject *skill)
{
    const char *name;
    Py_ssize_t len;
    if (skill_utf8(skill, &name, &len) < 0)
        return NULL;
    struct snapshot *latest = sb_server_latest(self);
    int is_latest = latest == snap;
    snapshot_unref(latest);
    if (!is_latest)
        return build_text(snap, skill); /* a replayed one: built once, for its one reader */
    if (!self->cache && !(self->cache = PyDict_New()))
        return NULL;
    if (snap != self->cache_snap) {
        drop_cache(self);
        snapshot_ref(snap);
        self->cache_snap = snap; /* the cache's own reference */
    }
    PyObject *hit = PyDict_GetItemWithError(self->cache, skill);
    if (hit || PyErr_Occurred())
        return hit ? Py_NewRef(hit) : NULL;
    Py_INCREF(skill);
    PyObject *text = build_text(snap, skill);
    /* Stored only if the cache still belongs to this snapshot (another caller may have moved
     * it on, or a garbage collection cleared it, while the GIL was released). */
    if (text && self->cache && snap == self->cache_snap &&
        PyDict_SetItem(self->cache, skill, text) < 0)
        Py_CLEAR(text);
    Py_DECREF(skill);
    return text;
}

PyObject *sb_server_update_text(ServerObject *self, PyObject *skill)
{
    const char *name;
    Py_ssize_t len;
    if (skill_utf8(skill, &name, &len) < 0)
        return NULL;
    struct snapshot *snap = sb_server_latest(self);
    if (!snap)
        Py_RETURN_NONE;
    PyObject *text = sb_server_snapshot_text(self, snap, skill);
    snapshot_unref(snap);
    return text;
}

/* The retained updates after seq for skill, as texts oldest first, or None when seq cannot be
 * resumed (another epoch, or outside the window). */
static PyObject *server_retained_updates(ServerObject *self, PyObject *args)
{
    unsigned long long seq;
    PyObject *skill = Py_None;
    const char *epoch = NULL;
    if (!PyArg_ParseTuple(args, "K|Oz:retained_updates", &seq, &skill, &epoch))
        return NULL;
    if (skill != Py_None && !PyUnicode_Check(skill))
        return PyErr_Format(PyExc_TypeError, "skill must be a str or None, not %.100s",
                            Py_TYPE(skill)->tp_name);
    if (!self->core)
        return not_running();
    struct recovery *rec = core_recovery(self->core);
    if (!epoch)
        epoch = sb_server_epoch(self);
    if (!recovery_can_resume(rec, epoch, seq))
        Py_RETURN_NONE;
    PyObject *list = PyList_New(0);
    while (list) {
        int gap;
        struct snapshot *s = recovery_next(rec, seq, &gap);
        if (!s)
            break;
        if (gap) { /* fell out of the window while being read: what is left would skip some */
            snapshot_unref(s);
            Py_CLEAR(list);
            Py_RETURN_NONE;
        }
        PyObject *text = sb_server_snapshot_text(self, s, skill);
        seq = s->seq;
        snapshot_unref(s);
        if (!text || PyList_Append(list, text) < 0)
            Py_CLEAR(list);
        Py_XDECREF(text);
    }
    return list;
}

/* {"snapshots", "oldest_seq", "newest_seq", "metrics_bytes", "history_bytes"}. */
static PyObject *server_retention_stats(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    struct recovery_stats st;
    if (!self->core)
        return not_running();
    recovery_get_stats(core_recovery(self->core), &st);
    size_t history_bytes = history_heap_bytes(core_history(self->core));
    return Py_BuildValue("{snsKsKsnsn}", "snapshots", (Py_ssize_t)st.snapshots, "oldest_seq",
                         (unsigned long long)st.oldest_seq, "newest_seq",
                         (unsigned long long)st.newest_seq, "metrics_bytes",
                         (Py_ssize_t)st.metrics_bytes, "history_bytes",
                         (Py_ssize_t)history_bytes);
}

static PyObject *server_metrics_update(ServerObject *self, PyObject *skill)
{
    return sb_server_update_text(self, skill);
}

/* ---- webhooks ---- */

/* rows: a sequence of (key, deliveries, failures, retries, expired, overflowed, depth,
 * oldest_created) tuples, webhooks.py's figures per endpoint; /metrics shows them from now on. */
static PyObject *server_set_webhook_stats(ServerObject *self, PyObject *rows)
{
    PyObject *seq = PySequence_Fast(rows, "set_webhook_stats() takes a sequence of tuples");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    struct webhook_stat *stats = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*stats));
    if (!stats) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        struct webhook_stat *w = &stats[i];
        unsigned long long v[6];
        const char *key;
        Py_ssize_t key_len;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "s#KKKKKKd;set_webhook_stats() "
                              "rows are (key, deliveries, failures, retries, expired, overflowed, "
                              "depth, oldest_created)", &key, &key_len, &v[0], &v[1], &v[2], &v[3],
                              &v[4], &v[5], &w->oldest_created_s))
            goto error;
        if (key_len > WEBHOOK_KEY_MAX) {
            PyErr_Format(PyExc_ValueError, "set_webhook_stats(): a key is at most %d bytes",
                         WEBHOOK_KEY_MAX);
            goto error;
        }
        memcpy(w->key, key, (size_t)key_len);
        w->deliveries = v[0];
        w->failures = v[1];
        w->retries = v[2];
        w->expired = v[3];
        w->overflowed = v[4];
        w->depth = v[5];
    }
    Py_DECREF(seq);
    /* Not running: nothing shows them, and the next start pushes its own. */
    int rc = self->core ? core_set_webhook_stats(self->core, stats, (size_t)n) : 0;
    PyMem_Free(stats);
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;

error:
    Py_DECREF(seq);
    PyMem_Free(stats);
    return NULL;
}

/* ---- clients ---- */

/* Network clients as (id, remote_address, subscribed, subscription_skill, user_id) tuples.
 * The rows are copied in C first: building Python objects may run a garbage collection, and
 * Python code run by it may list the clients again. */
static PyObject *server_network_clients(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    struct client_row *rows = NULL;
    size_t n = 0;

    if (!self->core)
        return PyList_New(0);
    if (core_client_rows(self->core, &rows, &n) < 0)
        return PyErr_NoMemory();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n && list; i++) {
        const struct client_row *r = &rows[i];
        PyObject *peer = text_to_str(r->peer);
        PyObject *user = text_to_str(r->user_id);
        PyObject *skill = r->skill ? text_to_str(r->skill) : Py_NewRef(Py_None);
        PyObject *item = peer && user && skill
                             ? Py_BuildValue("(KOOOO)", (unsigned long long)r->id, peer,
                                             r->subscribed ? Py_True : Py_False, skill, user)
                             : NULL;
        Py_XDECREF(peer);
        Py_XDECREF(user);
        Py_XDECREF(skill);
        if (!item)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    client_rows_free(rows, n);
    return list;
}

/* ---- attributes ---- */

static PyObject *get_running(ServerObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->core != NULL);
}

static PyObject *get_event_fd(ServerObject *self, void *Py_UNUSED(c))
{
    if (!self->core)
        Py_RETURN_NONE;
    return PyLong_FromLong(core_event_fd(self->core));
}

static PyObject *get_epoch(ServerObject *self, void *Py_UNUSED(c))
{
    const char *epoch = sb_server_epoch(self);
    return epoch ? PyUnicode_FromString(epoch) : Py_NewRef(Py_None);
}

static PyGetSetDef server_getset[] = {
    {"epoch", (getter)get_epoch, NULL,
     "The epoch that names the current numbering of seq (a new random one at every start; on "
     "role publisher and edge the Redis stream's, which changes on a takeover or when Redis "
     "lost its data; the last one is kept after stop), or None before the first start.",
     NULL},
    {"running", (getter)get_running, NULL, "True while the core runs (start_core to finish_stop).",
     NULL},
    {"event_fd", (getter)get_event_fd, NULL,
     "The eventfd to watch for events while running (readable when take_events has some), "
     "else None.",
     NULL},
    {NULL},
};

static PyMethodDef server_methods[] = {
    {"start_core", (PyCFunction)server_start_core, METH_O,
     "start_core($self, config, /)\n--\n\n"
     "Bind and start the service and ticker threads from a CoreConfig; return the bound port.\n"
     "OSError(errno) when the port cannot be bound, RuntimeError for any other failure or when "
     "already running."},
    {"request_stop", (PyCFunction)server_request_stop, METH_NOARGS,
     "request_stop($self, /)\n--\n\n"
     "Ask the service thread to close every client with 1001; EV_STOPPED follows."},
    {"finish_stop", (PyCFunction)server_finish_stop, METH_NOARGS,
     "finish_stop($self, /)\n--\n\n"
     "Join the threads (the GIL released), free the core, and return its last events."},
    {"take_events", (PyCFunction)server_take_events, METH_NOARGS,
     "take_events($self, /)\n--\n\n"
     "Every queued event as (kind, level, value, text) tuples; kind is one of the EV_* "
     "constants."},
    {"request_tick", (PyCFunction)server_request_tick, METH_NOARGS,
     "request_tick($self, /)\n--\n\n"
     "Ask for a snapshot now; return the id the EV_TICK_DONE event will carry."},
    {"tick_stats", (PyCFunction)server_tick_stats, METH_NOARGS,
     "tick_stats($self, /)\n--\n\n"
     "The DB work of recent ticks: {'ticks', 'durations_us', 'first_tick_us'}."},
    {"metrics_update", (PyCFunction)server_metrics_update, METH_O,
     "metrics_update($self, skill, /)\n--\n\n"
     "The metrics_update text of the latest snapshot for skill (None: all skills), or None "
     "before the first one; built once per snapshot."},
    {"set_webhook_stats", (PyCFunction)server_set_webhook_stats, METH_O,
     "set_webhook_stats($self, rows, /)\n--\n\n"
     "Show these per-endpoint webhook figures on /metrics: (key, deliveries, failures, retries, "
     "expired, overflowed, depth, oldest_created) tuples."},
    {"retained_updates", (PyCFunction)server_retained_updates, METH_VARARGS,
     "retained_updates($self, seq, skill=None, epoch=None, /)\n--\n\n"
     "The metrics_update texts retained after seq for skill (None: all skills), oldest first, "
     "or None when seq of epoch (default: the current one) is outside the recovery window."},
    {"retention_stats", (PyCFunction)server_retention_stats, METH_NOARGS,
     "retention_stats($self, /)\n--\n\n"
     "What the recovery window and the history hold: {'snapshots', 'oldest_seq', 'newest_seq', "
     "'metrics_bytes', 'history_bytes'}."},
    {"network_clients", (PyCFunction)server_network_clients, METH_NOARGS,
     "network_clients($self, /)\n--\n\n"
     "The network clients as (id, remote_address, subscribed, skill, user_id) tuples."},
    {"gql_subscribe", (PyCFunction)sb_server_gql_subscribe, METH_VARARGS,
     "gql_subscribe($self, conn, op_id, skill, selection, since_epoch, since_seq, /)\n--\n\n"
     "Make a GraphQL operation handed over by EV_GQL_OPERATION a live metricsUpdate "
     "subscription of skill (None: all) with this compiled selection, resumed after "
     "(since_epoch, since_seq) when since_epoch is not None."},
    {"gql_send", (PyCFunction)sb_server_gql_send, METH_VARARGS,
     "gql_send($self, conn, op_id, text, done, /)\n--\n\n"
     "Send one whole frame for a GraphQL operation handed over by EV_GQL_OPERATION; with done "
     "the operation ends."},
    {"http_reply", (PyCFunction)sb_server_http_reply, METH_VARARGS,
     "http_reply($self, request, status, content_type, body, /)\n--\n\n"
     "Answer a /graphql request handed over by EV_GQL_HTTP."},
    {NULL},
};

/* ---- object protocol ---- */

static int server_traverse(ServerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->cache);
    return 0;
}

static int server_clear(ServerObject *self)
{
    Py_CLEAR(self->cache);
    return 0;
}

static void server_dealloc(ServerObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakrefs)
        PyObject_ClearWeakRefs((PyObject *)self);
    release_core(self); /* a server dropped while running still stops its threads */
    server_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMemberDef server_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ServerObject, weakrefs), READONLY, NULL},
    {NULL},
};

static PyType_Slot server_slots[] = {
    {Py_tp_doc, "ServerBase()\n--\n\n"
                "The C core of one real-time metrics server (libwebsockets and sqlite3 on their "
                "own threads).\nsession_buddy.realtime.RealTimeMetricsServer extends it with "
                "the arguments, the coroutines and the in-process clients."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, server_dealloc},
    {Py_tp_traverse, server_traverse},
    {Py_tp_clear, server_clear},
    {Py_tp_methods, server_methods},
    {Py_tp_getset, server_getset},
    {Py_tp_members, server_members},
    {0, NULL},
};

static PyType_Spec server_spec = {
    .name = "session_buddy.realtime._core.ServerBase",
    .basicsize = sizeof(ServerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = server_slots,
};

int sb_server_type_add(PyObject *module, module_state *st)
{
    st->server_type = PyType_FromModuleAndSpec(module, &server_spec, NULL);
    if (!st->server_type)
        return -1;
    return PyModule_AddObjectRef(module, "ServerBase", st->server_type);
}
