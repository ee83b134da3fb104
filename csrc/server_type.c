/* server_type.c - the RealTimeMetricsServer Python type: arguments, attributes, and the core's lifecycle. */
#include <math.h>
#include <string.h>

#include "module.h"
#include <structmember.h>

#include "client_list.h"
#include "dispatch.h"
#include "server_core.h"
#include "timeutil.h"

typedef struct {
    PyObject_HEAD
    PyObject *host;             /* str */
    int port;                   /* as configured; the bound port while running */
    PyObject *db_path;          /* pathlib.Path */
    double update_interval;
    int require_auth;
    Py_ssize_t max_clients;
    Py_ssize_t max_message_size;
    Py_ssize_t top_n;
    double anomaly_threshold;
    int record_anomalies;
    PyObject *logger;
    PyObject *security;         /* _bridge.SecurityOptions: origins, TLS files, JWT secret */
    PyObject *state;            /* _bridge.ServerState: in-process clients, subscribers, futures */
    PyObject *storage;          /* SkillsStorage, created on first access */
    struct server_core *core;   /* NULL unless running */
    PyObject *weakrefs;
    Py_ssize_t max_pending;
    PyObject *allowed_hosts;    /* tuple of str, or None */
} ServerObject;

/* ---- argument validation ---- */

static int take_int(PyObject *v, const char *name, long long lo, long long hi, long long *out)
{
    if (!PyLong_Check(v) || PyBool_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name, Py_TYPE(v)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (overflow || x < lo || x > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be between %lld and %lld, got %R", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int take_positive_float(PyObject *v, const char *name, double *out)
{
    if (PyBool_Check(v) || !(PyFloat_Check(v) || PyLong_Check(v))) {
        PyErr_Format(PyExc_TypeError, "%s must be a number, not %.100s", name, Py_TYPE(v)->tp_name);
        return -1;
    }
    double x = PyFloat_AsDouble(v);
    if (x == -1.0 && PyErr_Occurred())
        return -1;
    if (!isfinite(x) || x <= 0) {
        PyErr_Format(PyExc_ValueError, "%s must be a finite number > 0, got %R", name, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int take_bool(PyObject *v, const char *name, int *out)
{
    if (!PyBool_Check(v) && !PyLong_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be a bool, not %.100s", name, Py_TYPE(v)->tp_name);
        return -1;
    }
    *out = PyObject_IsTrue(v);
    return *out < 0 ? -1 : 0;
}

/* Call _bridge.<name>(*args) and return its result (new reference) or NULL. */
static PyObject *bridge_call(PyObject *self, const char *name, PyObject *const *args, size_t nargs)
{
    PyObject *bridge = sb_bridge(self);
    if (!bridge)
        return NULL;
    PyObject *fn = PyObject_GetAttrString(bridge, name);
    Py_DECREF(bridge);
    if (!fn)
        return NULL;
    PyObject *res = PyObject_Vectorcall(fn, args, nargs, NULL);
    Py_DECREF(fn);
    return res;
}

static int server_init(ServerObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"host", "port", "db_path", "update_interval", "require_auth",
                             "max_clients", "max_message_size", "anomaly_threshold", "top_n",
                             "record_anomalies", "logger", "allowed_origins", "ssl_certfile",
                             "ssl_keyfile", "jwt_secret", "allowed_hosts", "max_pending", NULL};
    PyObject *host = NULL, *port = NULL, *db_path = Py_None, *interval = NULL, *auth = Py_False;
    PyObject *max_clients = NULL, *max_msg = NULL, *threshold = NULL, *top_n = NULL;
    PyObject *record = Py_True, *logger = Py_None;
    PyObject *origins = Py_None, *certfile = Py_None, *keyfile = Py_None, *secret = Py_None;
    PyObject *hosts = Py_None, *max_pending = NULL;
    long long v;

    if (self->core) {
        PyErr_SetString(PyExc_RuntimeError, "cannot re-initialise a running server");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOOOO$OOOOOOOOOOOO:RealTimeMetricsServer", kwlist,
                                     &host, &port, &db_path, &interval, &auth, &max_clients,
                                     &max_msg, &threshold, &top_n, &record, &logger, &origins,
                                     &certfile, &keyfile, &secret, &hosts, &max_pending))
        return -1;

    if (host && !PyUnicode_Check(host)) {
        PyErr_Format(PyExc_TypeError, "host must be a str, not %.100s", Py_TYPE(host)->tp_name);
        return -1;
    }
    if (host && PyUnicode_GetLength(host) == 0) {
        PyErr_SetString(PyExc_ValueError, "host must not be empty");
        return -1;
    }
    Py_XSETREF(self->host, host ? Py_NewRef(host) : PyUnicode_FromString("localhost"));
    if (!self->host)
        return -1;

    self->port = 8765;
    if (port) {
        if (take_int(port, "port", 0, 65535, &v) < 0)
            return -1;
        self->port = (int)v;
    }
    self->update_interval = 1.0;
    if (interval && take_positive_float(interval, "update_interval", &self->update_interval) < 0)
        return -1;
    if (take_bool(auth, "require_auth", &self->require_auth) < 0)
        return -1;
    self->max_clients = 100;
    if (max_clients) {
        if (take_int(max_clients, "max_clients", 0, 10000000, &v) < 0)
            return -1;
        self->max_clients = (Py_ssize_t)v;
    }
    self->max_message_size = 65536;
    if (max_msg) {
        if (take_int(max_msg, "max_message_size", 1, 64LL * 1024 * 1024, &v) < 0)
            return -1;
        self->max_message_size = (Py_ssize_t)v;
    }
    self->top_n = 10;
    if (top_n) {
        if (take_int(top_n, "top_n", 1, 100000, &v) < 0)
            return -1;
        self->top_n = (Py_ssize_t)v;
    }
    self->anomaly_threshold = 2.0;
    if (threshold && take_positive_float(threshold, "anomaly_threshold", &self->anomaly_threshold) < 0)
        return -1;
    if (take_bool(record, "record_anomalies", &self->record_anomalies) < 0)
        return -1;
    self->max_pending = 256;
    if (max_pending) {
        if (take_int(max_pending, "max_pending", 1, 10000000, &v) < 0)
            return -1;
        self->max_pending = (Py_ssize_t)v;
    }
    PyObject *host_names = bridge_call((PyObject *)self, "validate_allowed_hosts", &hosts, 1);
    if (!host_names)
        return -1;
    Py_XSETREF(self->allowed_hosts, host_names);

    PyObject *path = bridge_call((PyObject *)self, "normalize_db_path", &db_path, 1);
    if (!path)
        return -1;
    Py_XSETREF(self->db_path, path);
    PyObject *lg = bridge_call((PyObject *)self, "resolve_logger", &logger, 1);
    if (!lg)
        return -1;
    Py_XSETREF(self->logger, lg);
    PyObject *sec_args[4] = {origins, certfile, keyfile, secret};
    PyObject *security = bridge_call((PyObject *)self, "security_options", sec_args, 4);
    if (!security)
        return -1;
    Py_XSETREF(self->security, security);
    PyObject *state = bridge_call((PyObject *)self, "ServerState", NULL, 0);
    if (!state)
        return -1;
    Py_XSETREF(self->state, state);
    Py_CLEAR(self->storage);
    return 0;
}

/* ---- lifecycle (called by _bridge's coroutines) ---- */

/* The UTF-8 strings of a tuple of str, in a PyMem array the caller frees (pointers into the
 * tuple's items).  Returns 0, or -1 with an exception set. */
static int string_tuple(PyObject *tuple, const char *what, const char ***out, Py_ssize_t *n_out)
{
    if (!PyTuple_Check(tuple)) {
        PyErr_Format(PyExc_TypeError, "_start_core: %s must be a tuple or None", what);
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    const char **list = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (!list) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyTuple_GET_ITEM(tuple, i);
        list[i] = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
        if (!list[i]) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "_start_core: %s must be strings", what);
            PyMem_Free(list);
            return -1;
        }
    }
    *out = list;
    *n_out = n;
    return 0;
}

static PyObject *server_start_core(ServerObject *self, PyObject *args)
{
    const char *iface = NULL, *static_dir = NULL, *secret = NULL, *certfile = NULL, *keyfile = NULL;
    Py_ssize_t secret_len = 0;
    PyObject *origins = Py_None, *hosts = Py_None;
    int disable_ipv6 = 0, use_poll = 0, min_level = 0;
    char err[512];
    int bind_errno = 0;

    if (!PyArg_ParseTuple(args, "zppizz#Ozz|O:_start_core", &iface, &disable_ipv6, &use_poll,
                          &min_level, &static_dir, &secret, &secret_len, &origins, &certfile,
                          &keyfile, &hosts))
        return NULL;
    const char **host_list = NULL;
    Py_ssize_t n_hosts = 0;
    if (hosts != Py_None && string_tuple(hosts, "hosts", &host_list, &n_hosts) < 0)
        return NULL;
    if (origins != Py_None && !PyTuple_Check(origins)) {
        PyErr_SetString(PyExc_TypeError, "_start_core: origins must be a tuple or None");
        PyMem_Free(host_list);
        return NULL;
    }
    Py_ssize_t n_origins = origins == Py_None ? 0 : PyTuple_GET_SIZE(origins);
    const char **origin_list = PyMem_Calloc((size_t)n_origins + 1, sizeof(char *));
    if (!origin_list) {
        PyMem_Free(host_list);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n_origins; i++) {
        PyObject *o = PyTuple_GET_ITEM(origins, i);
        origin_list[i] = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
        if (!origin_list[i]) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "_start_core: origins must be strings");
            PyMem_Free(origin_list);
            PyMem_Free(host_list);
            return NULL;
        }
    }
    if (self->core) {
        PyErr_SetString(PyExc_RuntimeError, "server is already running");
        PyMem_Free(origin_list);
        PyMem_Free(host_list);
        return NULL;
    }
    PyObject *path_str = PyOS_FSPath(self->db_path);
    if (!path_str) {
        PyMem_Free(origin_list);
        PyMem_Free(host_list);
        return NULL;
    }
    PyObject *path_bytes = NULL;
    if (!PyUnicode_FSConverter(path_str, &path_bytes)) {
        Py_DECREF(path_str);
        PyMem_Free(origin_list);
        PyMem_Free(host_list);
        return NULL;
    }
    Py_DECREF(path_str);

    struct core_config cfg = {
        .db_path = PyBytes_AS_STRING(path_bytes),
        .iface = iface,
        .disable_ipv6 = disable_ipv6,
        .use_poll = use_poll,
        .port = self->port,
        .interval_s = self->update_interval,
        .top_n = (size_t)self->top_n,
        .anomaly_threshold = self->anomaly_threshold,
        .record_anomalies = self->record_anomalies,
        .max_clients = (size_t)self->max_clients,
        .max_message_size = (size_t)self->max_message_size,
        .min_log_level = min_level,
        .static_dir = static_dir,
        .jwt_secret = (const unsigned char *)secret,
        .jwt_secret_len = (size_t)secret_len,
        .allowed_origins = origins == Py_None ? NULL : origin_list,
        .n_allowed_origins = (size_t)n_origins,
        .ssl_cert = certfile,
        .ssl_key = keyfile,
        .max_pending = (size_t)self->max_pending,
        .allowed_hosts = host_list,
        .n_allowed_hosts = (size_t)n_hosts,
    };
    struct server_core *core;
    Py_BEGIN_ALLOW_THREADS
    core = core_start(&cfg, &bind_errno, err, sizeof(err));
    Py_END_ALLOW_THREADS
    Py_DECREF(path_bytes);
    PyMem_Free(origin_list);
    PyMem_Free(host_list);

    if (!core) {
        if (bind_errno) {
            /* PyErr_SetObject takes no reference: the args tuple is ours to release. */
            PyObject *exc_args = Py_BuildValue("(is)", bind_errno, err);
            if (exc_args)
                PyErr_SetObject(PyExc_OSError, exc_args);
            Py_XDECREF(exc_args);
        } else {
            PyErr_SetString(PyExc_RuntimeError, err);
        }
        return NULL;
    }
    self->core = core;
    self->port = core_port(core);
    Py_RETURN_NONE;
}

static PyObject *server_request_stop(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->core)
        core_request_stop(self->core);
    Py_RETURN_NONE;
}

static void release_core_ptr(struct server_core *core)
{
    if (!core)
        return;
    Py_BEGIN_ALLOW_THREADS
    core_destroy(core);
    Py_END_ALLOW_THREADS
}

static void release_core(ServerObject *self)
{
    struct server_core *core = self->core;
    self->core = NULL;
    release_core_ptr(core);
}

static PyObject *not_running(void)
{
    PyErr_SetString(PyExc_RuntimeError, "server is not running");
    return NULL;
}

/* Text from the C side as str.  sb_log already queues valid UTF-8; decoding with "replace"
 * anyway means that no event can fail to convert and take the rest of its batch with it. */
static PyObject *text_to_str(const char *s, size_t len)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "replace");
}

/* Every queued event as (kind, level, value, text) tuples. */
static PyObject *take_events(struct server_core *core)
{
    PyObject *list = PyList_New(0);
    size_t dropped = 0;
    if (!list || !core)
        return list;
    struct event *e = evq_take_all(&core->events, &dropped);
    while (e) {
        struct event *next = e->next;
        if (list) {
            PyObject *text = text_to_str(e->text, strlen(e->text));
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
    self->core = NULL;
    release_core_ptr(core);
    return events;
}

static PyObject *server_event_fd(ServerObject *self, void *Py_UNUSED(closure))
{
    if (!self->core)
        Py_RETURN_NONE;
    return PyLong_FromLong(self->core->events.fd);
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
    size_t n = ticker_tick_stats(&self->core->ticker, durations, TICK_HISTORY, &ticks, &first);
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list) {
        PyMem_Free(durations);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLong(durations[i]);
        if (!v) {
            PyMem_Free(durations);
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    PyMem_Free(durations);
    PyObject *out = Py_BuildValue("{sKsNsL}", "ticks", (unsigned long long)ticks, "durations_us",
                                  list, "first_tick_us", (long long)first);
    return out;
}

static PyObject *server_request_tick(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->core)
        return not_running();
    return PyLong_FromUnsignedLongLong(ticker_request_tick(&self->core->ticker));
}

static PyObject *text_from_jbuf(jbuf *b)
{
    if (b->failed) {
        jb_free(b);
        return PyErr_NoMemory();
    }
    PyObject *s = PyUnicode_DecodeUTF8(jb_text(b), (Py_ssize_t)b->len, "replace");
    jb_free(b);
    return s;
}

/* The metrics_update message of the latest snapshot for one subscription, or None. */
static PyObject *server_update_message(ServerObject *self, PyObject *skill)
{
    Py_ssize_t len = 0;
    const char *name = NULL;
    jbuf b;

    if (!self->core)
        return not_running();
    if (skill != Py_None) {
        if (!PyUnicode_Check(skill))
            return PyErr_Format(PyExc_TypeError, "skill must be a str or None");
        name = PyUnicode_AsUTF8AndSize(skill, &len);
        if (!name)
            return NULL;
    }
    struct snapshot *snap = ticker_latest(&self->core->ticker);
    if (!snap)
        Py_RETURN_NONE;
    if (jb_init(&b, 0, 4096) < 0) {
        snapshot_unref(snap);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    snapshot_write_update(snap, name, (size_t)len, &b);
    Py_END_ALLOW_THREADS
    snapshot_unref(snap);
    return text_from_jbuf(&b);
}

/* Apply one message from an in-process client, as the network path does:
 * _dispatch(message, auth_pending=False) -> (reply or None, action, value), where value is the
 * skill of "subscribe" and the token of "auth" (only while auth_pending), else None. */
static PyObject *server_dispatch(ServerObject *self, PyObject *args)
{
    static const char *actions[] = {"none", "subscribe", "unsubscribe", "auth"};
    const char *data;
    Py_ssize_t len;
    PyObject *message, *encoded = NULL;
    int auth_pending = 0;
    struct dispatch_result res;
    jbuf reply;

    if (!PyArg_ParseTuple(args, "O|p:_dispatch", &message, &auth_pending))
        return NULL;
    if (PyUnicode_Check(message)) {
        encoded = PyUnicode_AsEncodedString(message, "utf-8", "surrogatepass");
        if (!encoded)
            return NULL;
        data = PyBytes_AS_STRING(encoded);
        len = PyBytes_GET_SIZE(encoded);
    } else if (PyBytes_Check(message)) {
        data = PyBytes_AS_STRING(message);
        len = PyBytes_GET_SIZE(message);
    } else {
        return PyErr_Format(PyExc_TypeError, "message must be str or bytes, not %.100s",
                            Py_TYPE(message)->tp_name);
    }
    if (jb_init(&reply, 0, 256) < 0) {
        Py_XDECREF(encoded);
        return PyErr_NoMemory();
    }
    int rc = 0;
    memset(&res, 0, sizeof(res));
    if (len > self->max_message_size) {
        dispatch_write_error(&reply, "invalid_request", "message larger than max_message_size",
                             NULL);
    } else {
        struct snapshot *snap = self->core ? ticker_latest(&self->core->ticker) : NULL;
        rc = dispatch_message(data, (size_t)len, 1, snap, auth_pending, now_unix_ms(), &res,
                              &reply);
        snapshot_unref(snap);
    }
    Py_XDECREF(encoded);
    if (rc < 0) {
        jb_free(&reply);
        return PyErr_NoMemory();
    }
    PyObject *text = reply.len ? text_from_jbuf(&reply) : (jb_free(&reply), Py_NewRef(Py_None));
    PyObject *value = res.skill   ? PyUnicode_DecodeUTF8(res.skill, (Py_ssize_t)res.skill_len,
                                                         "replace")
                      : res.token ? PyUnicode_DecodeUTF8(res.token, (Py_ssize_t)strlen(res.token),
                                                         "replace")
                                  : Py_NewRef(Py_None);
    PyObject *out = (text && value) ? Py_BuildValue("(OsO)", text, actions[res.action], value)
                                    : NULL;
    Py_XDECREF(text);
    Py_XDECREF(value);
    dispatch_result_free(&res);
    return out;
}

static PyObject *server_subscribed_message(ServerObject *self, PyObject *skill)
{
    Py_ssize_t len = 0;
    const char *name = NULL;
    jbuf b;
    (void)self;
    if (skill != Py_None) {
        if (!PyUnicode_Check(skill))
            return PyErr_Format(PyExc_TypeError, "skill must be a str or None");
        name = PyUnicode_AsUTF8AndSize(skill, &len);
        if (!name)
            return NULL;
    }
    if (jb_init(&b, 0, 256) < 0)
        return PyErr_NoMemory();
    dispatch_write_subscribed(&b, name, (size_t)len, now_unix_ms());
    return text_from_jbuf(&b);
}

/* _connected_message(authenticated=False): the greeting. */
static PyObject *server_connected_message(ServerObject *self, PyObject *args)
{
    jbuf b;
    int authenticated = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "|p:_connected_message", &authenticated))
        return NULL;
    if (jb_init(&b, 0, 256) < 0)
        return PyErr_NoMemory();
    dispatch_write_connected(&b, authenticated, now_unix_ms());
    return text_from_jbuf(&b);
}

/* Network clients as (id, remote_address, subscribed, subscription_skill, user_id) tuples.
 * The service lock is held only while the rows are copied in C: building Python objects
 * may run a garbage collection, and Python code run by it may read `clients` again. */
static PyObject *server_network_clients(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    struct client_row *rows = NULL;
    size_t n = 0;

    if (!self->core)
        return PyList_New(0);
    if (client_rows_take(&self->core->service, &rows, &n) < 0)
        return PyErr_NoMemory();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n && list; i++) {
        const struct client_row *r = &rows[i];
        PyObject *peer = text_to_str(r->peer, strlen(r->peer));
        PyObject *user = text_to_str(r->user_id, strlen(r->user_id));
        PyObject *skill = r->skill ? text_to_str(r->skill, strlen(r->skill)) : Py_NewRef(Py_None);
        PyObject *item = peer && user && skill
                             ? Py_BuildValue("(KOiOO)", (unsigned long long)r->id, peer,
                                             r->subscribed, skill, user)
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

/* ---- methods that delegate to _bridge (the asyncio side) ---- */

#define BRIDGE_METHOD0(cname, pyname)                                                 \
    static PyObject *cname(PyObject *self, PyObject *Py_UNUSED(ignored))              \
    {                                                                                  \
        return bridge_call(self, pyname, &self, 1);                                    \
    }
#define BRIDGE_METHOD1(cname, pyname)                                                 \
    static PyObject *cname(PyObject *self, PyObject *arg)                             \
    {                                                                                  \
        PyObject *args[2] = {self, arg};                                               \
        return bridge_call(self, pyname, args, 2);                                     \
    }

BRIDGE_METHOD0(server_start, "start")
BRIDGE_METHOD0(server_stop, "stop")
BRIDGE_METHOD0(server_aenter, "aenter")
BRIDGE_METHOD0(server_broadcast_metrics, "broadcast_metrics")
BRIDGE_METHOD1(server_register_client, "register_client")
BRIDGE_METHOD1(server_unregister_client, "unregister_client")
BRIDGE_METHOD1(server_register_subscriber, "register_metrics_subscriber")
BRIDGE_METHOD1(server_unregister_subscriber, "unregister_metrics_subscriber")
BRIDGE_METHOD1(server_client_handler, "client_handler")

static PyObject *server_aexit(PyObject *self, PyObject *args)
{
    (void)args;
    return bridge_call(self, "stop", &self, 1);
}

static PyObject *server_handle_client_message(PyObject *self, PyObject *const *args,
                                              Py_ssize_t nargs)
{
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError,
                            "handle_client_message() takes 2 arguments (ws, message)");
    PyObject *full[3] = {self, args[0], args[1]};
    return bridge_call(self, "handle_client_message", full, 3);
}

static PyObject *server_handle_subscription(PyObject *self, PyObject *const *args,
                                            Py_ssize_t nargs)
{
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError,
                            "handle_subscription() takes 2 arguments (ws, skill_name)");
    PyObject *full[3] = {self, args[0], args[1]};
    return bridge_call(self, "handle_subscription", full, 3);
}

/* ---- attributes ---- */

static PyObject *get_running(ServerObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->core != NULL);
}

static PyObject *get_url(ServerObject *self, void *Py_UNUSED(c))
{
    PyObject *bridge_args[1] = {(PyObject *)self};
    return bridge_call((PyObject *)self, "format_url", bridge_args, 1);
}

static PyObject *get_storage(ServerObject *self, void *Py_UNUSED(c))
{
    if (!self->storage) {
        PyObject *storage = bridge_call((PyObject *)self, "open_storage", &self->db_path, 1);
        if (!storage)
            return NULL;
        self->storage = storage;
    }
    return Py_NewRef(self->storage);
}

static PyObject *get_clients(ServerObject *self, void *Py_UNUSED(c))
{
    PyObject *a[1] = {(PyObject *)self};
    return bridge_call((PyObject *)self, "clients", a, 1);
}

static PyObject *get_server_compat(ServerObject *self, void *Py_UNUSED(c))
{
    if (!self->core)
        Py_RETURN_NONE;
    return Py_BuildValue("(Oi)", self->host, self->port);
}

static PyObject *get_port(ServerObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->port);
}

static PyObject *get_update_interval(ServerObject *self, void *Py_UNUSED(c))
{
    return PyFloat_FromDouble(self->update_interval);
}

/* An attribute of the SecurityOptions (closure: its name), or the object itself (NULL). */
static PyObject *get_security_option(ServerObject *self, void *name)
{
    if (!self->security) {
        PyErr_SetString(PyExc_RuntimeError, "RealTimeMetricsServer.__init__ was not called");
        return NULL;
    }
    if (!name)
        return Py_NewRef(self->security);
    return PyObject_GetAttrString(self->security, (const char *)name);
}

static PyObject *get_require_auth(ServerObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->require_auth);
}

static PyObject *get_record_anomalies(ServerObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->record_anomalies);
}

static PyObject *get_anomaly_threshold(ServerObject *self, void *Py_UNUSED(c))
{
    return PyFloat_FromDouble(self->anomaly_threshold);
}

static PyObject *get_max_clients(ServerObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(self->max_clients);
}

static PyObject *get_max_message_size(ServerObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(self->max_message_size);
}

static PyObject *get_top_n(ServerObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(self->top_n);
}

static PyObject *get_max_pending(ServerObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(self->max_pending);
}

static PyObject *get_obj(PyObject *obj)
{
    return Py_NewRef(obj ? obj : Py_None);
}

static PyObject *get_host(ServerObject *self, void *Py_UNUSED(c)) { return get_obj(self->host); }
static PyObject *get_db_path(ServerObject *self, void *Py_UNUSED(c)) { return get_obj(self->db_path); }
static PyObject *get_logger(ServerObject *self, void *Py_UNUSED(c)) { return get_obj(self->logger); }
static PyObject *get_state(ServerObject *self, void *Py_UNUSED(c)) { return get_obj(self->state); }
static PyObject *get_allowed_hosts(ServerObject *self, void *Py_UNUSED(c)) { return get_obj(self->allowed_hosts); }

static PyObject *get_broadcast_task(ServerObject *self, void *Py_UNUSED(c))
{
    if (!self->core)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->update_interval);
}

static PyGetSetDef server_getset[] = {
    {"host", (getter)get_host, NULL, "Host the server binds.", NULL},
    {"port", (getter)get_port, NULL, "Port: as configured, or the bound port once started.", NULL},
    {"db_path", (getter)get_db_path, NULL, "Path of the skills database (pathlib.Path).", NULL},
    {"update_interval", (getter)get_update_interval, NULL, "Seconds between broadcasts.", NULL},
    {"require_auth", (getter)get_require_auth, NULL,
     "Whether clients must authenticate (SESSION_BUDDY_AUTH_ENABLED=true also turns it on).", NULL},
    {"allowed_origins", (getter)get_security_option, NULL,
     "Origins allowed to open a WebSocket (a tuple), or None for all.", "allowed_origins"},
    {"ssl_certfile", (getter)get_security_option, NULL, "TLS certificate (a Path), or None.",
     "ssl_certfile"},
    {"ssl_keyfile", (getter)get_security_option, NULL, "TLS private key (a Path), or None.",
     "ssl_keyfile"},
    {"max_clients", (getter)get_max_clients, NULL, "Connection limit (0 = unlimited).", NULL},
    {"max_message_size", (getter)get_max_message_size, NULL, "Largest accepted message in bytes.", NULL},
    {"top_n", (getter)get_top_n, NULL, "Number of skills in top_skills.", NULL},
    {"anomaly_threshold", (getter)get_anomaly_threshold, NULL, "z-score threshold for anomalies.", NULL},
    {"record_anomalies", (getter)get_record_anomalies, NULL, "Whether anomalies are written to the DB.", NULL},
    {"logger", (getter)get_logger, NULL, "The logging.Logger the server reports to.", NULL},
    {"running", (getter)get_running, NULL, "True between start() and stop().", NULL},
    {"url", (getter)get_url, NULL, "ws://host:port of the server.", NULL},
    {"storage", (getter)get_storage, NULL, "A SkillsStorage on db_path (opened on first use).", NULL},
    {"clients", (getter)get_clients, NULL, "A new set of the connected clients, network and in-process.", NULL},
    {"_running", (getter)get_running, NULL, "Compatibility alias of running.", NULL},
    {"_server", (getter)get_server_compat, NULL, "Compatibility: (host, port) while running, else None.", NULL},
    {"_broadcast_task", (getter)get_broadcast_task, NULL, "Compatibility: the broadcast interval while running, else None.", NULL},
    {"_state", (getter)get_state, NULL, "Asyncio-side state (internal).", NULL},
    {"_security", (getter)get_security_option, NULL, "Validated security options (internal).", NULL},
    {"_event_fd", (getter)server_event_fd, NULL, "eventfd the asyncio loop watches (internal).", NULL},
    {"allowed_hosts", (getter)get_allowed_hosts, NULL,
     "Extra Host names accepted while bound to loopback (a tuple), or None.", NULL},
    {"max_pending", (getter)get_max_pending, NULL,
     "Connections allowed to be still handshaking or authenticating at once.", NULL},
    {NULL},
};

static PyMethodDef server_methods[] = {
    {"start", (PyCFunction)server_start, METH_NOARGS,
     "start()\n--\n\nCoroutine: bind, start the service thread, return once listening."},
    {"stop", (PyCFunction)server_stop, METH_NOARGS,
     "stop()\n--\n\nCoroutine: close every client with 1001, join the threads, release port and DB."},
    {"__aenter__", (PyCFunction)server_aenter, METH_NOARGS, NULL},
    {"__aexit__", (PyCFunction)server_aexit, METH_VARARGS, NULL},
    {"broadcast_metrics", (PyCFunction)server_broadcast_metrics, METH_NOARGS,
     "broadcast_metrics()\n--\n\nCoroutine: build and broadcast a snapshot now."},
    {"register_client", (PyCFunction)server_register_client, METH_O,
     "register_client(obj)\n--\n\nAdd an in-process client (an object with async send(text))."},
    {"unregister_client", (PyCFunction)server_unregister_client, METH_O,
     "unregister_client(obj)\n--\n\nRemove an in-process client."},
    {"register_metrics_subscriber", (PyCFunction)server_register_subscriber, METH_O,
     "register_metrics_subscriber(cb)\n--\n\nCall cb(payload) (sync or async) with every snapshot."},
    {"unregister_metrics_subscriber", (PyCFunction)server_unregister_subscriber, METH_O,
     "unregister_metrics_subscriber(cb)\n--\n\nStop calling cb."},
    {"client_handler", (PyCFunction)server_client_handler, METH_O,
     "client_handler(ws)\n--\n\nCoroutine: serve a websocket-like object through the full protocol."},
    {"handle_client_message", (PyCFunction)(void (*)(void))server_handle_client_message,
     METH_FASTCALL,
     "handle_client_message(ws, message)\n--\n\nCoroutine: apply one protocol message from ws."},
    {"handle_subscription", (PyCFunction)(void (*)(void))server_handle_subscription, METH_FASTCALL,
     "handle_subscription(ws, skill_name)\n--\n\nCoroutine: set ws's subscription and confirm it."},
    {"_start_core", (PyCFunction)server_start_core, METH_VARARGS, NULL},
    {"_request_stop", (PyCFunction)server_request_stop, METH_NOARGS, NULL},
    {"_finish_stop", (PyCFunction)server_finish_stop, METH_NOARGS, NULL},
    {"_take_events", (PyCFunction)server_take_events, METH_NOARGS, NULL},
    {"_request_tick", (PyCFunction)server_request_tick, METH_NOARGS, NULL},
    {"_tick_stats", (PyCFunction)server_tick_stats, METH_NOARGS, NULL},
    {"_update_message", (PyCFunction)server_update_message, METH_O, NULL},
    {"_dispatch", (PyCFunction)server_dispatch, METH_VARARGS, NULL},
    {"_subscribed_message", (PyCFunction)server_subscribed_message, METH_O, NULL},
    {"_connected_message", (PyCFunction)server_connected_message, METH_VARARGS, NULL},
    {"_network_clients", (PyCFunction)server_network_clients, METH_NOARGS, NULL},
    {NULL},
};

/* ---- object protocol ---- */

static int server_traverse(ServerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->host);
    Py_VISIT(self->db_path);
    Py_VISIT(self->logger);
    Py_VISIT(self->security);
    Py_VISIT(self->state);
    Py_VISIT(self->storage);
    Py_VISIT(self->allowed_hosts);
    return 0;
}

static int server_clear(ServerObject *self)
{
    Py_CLEAR(self->host);
    Py_CLEAR(self->db_path);
    Py_CLEAR(self->logger);
    Py_CLEAR(self->security);
    Py_CLEAR(self->state);
    Py_CLEAR(self->storage);
    Py_CLEAR(self->allowed_hosts);
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

static PyObject *server_repr(ServerObject *self)
{
    return PyUnicode_FromFormat("<RealTimeMetricsServer %U:%d %s>", self->host, self->port,
                                self->core ? "running" : "stopped");
}

static PyMemberDef server_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ServerObject, weakrefs), READONLY, NULL},
    {NULL},
};

static PyType_Slot server_slots[] = {
    {Py_tp_doc, "RealTimeMetricsServer(host='localhost', port=8765, db_path=None, "
                "update_interval=1.0, require_auth=False, *, max_clients=100, "
                "max_message_size=65536, allowed_origins=None, ssl_certfile=None, "
                "ssl_keyfile=None, jwt_secret=None, anomaly_threshold=2.0, top_n=10, "
                "record_anomalies=True, logger=None, allowed_hosts=None, max_pending=256)\n--\n\n"
                "Real-time skill metrics over WebSocket; libwebsockets runs on its own thread."},
    {Py_tp_init, server_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, server_dealloc},
    {Py_tp_traverse, server_traverse},
    {Py_tp_clear, server_clear},
    {Py_tp_repr, server_repr},
    {Py_tp_methods, server_methods},
    {Py_tp_getset, server_getset},
    {Py_tp_members, server_members},
    {0, NULL},
};

static PyType_Spec server_spec = {
    .name = "session_buddy.realtime._core.RealTimeMetricsServer",
    .basicsize = sizeof(ServerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = server_slots,
};

int sb_server_type_add(PyObject *module, module_state *st)
{
    st->server_type = PyType_FromModuleAndSpec(module, &server_spec, NULL);
    if (!st->server_type)
        return -1;
    return PyModule_AddObjectRef(module, "RealTimeMetricsServer", st->server_type);
}
