/* server_config.c - reads a CoreConfig's fields into a struct core_config, checking each type. */
#include "server_config.h"

#include <limits.h>
#include <string.h>

/* config.<name>, a new reference.  The name is interned, so each field's key string is made once
 * per process: with a fresh string per lookup (PyObject_GetAttrString), tracemalloc showed
 * hundreds of small blocks kept after repeated starts. */
static PyObject *get_attr(PyObject *config, const char *name)
{
    PyObject *key = PyUnicode_InternFromString(name);
    if (!key)
        return NULL;
    PyObject *v = PyObject_GetAttr(config, key);
    Py_DECREF(key);
    return v;
}

/* config.<name> as a new reference kept in hold (so that borrowed pointers into it stay valid),
 * or NULL with an exception set. */
static PyObject *field(PyObject *config, const char *name, struct config_hold *hold)
{
    if (hold->n == sizeof(hold->refs) / sizeof(hold->refs[0])) {
        PyErr_SetString(PyExc_SystemError, "CoreConfig: too many fields held");
        return NULL;
    }
    PyObject *v = get_attr(config, name);
    if (v)
        hold->refs[hold->n++] = v;
    return v;
}

/* Fields read once and not kept: ints, floats, bools. */
static PyObject *scalar(PyObject *config, const char *name)
{
    return get_attr(config, name);
}

static int take_size(PyObject *config, const char *name, long long lo, long long hi,
                     long long *out)
{
    PyObject *v = scalar(config, name);
    if (!v)
        return -1;
    int rc = -1;
    if (!PyLong_Check(v) || PyBool_Check(v)) {
        PyErr_Format(PyExc_TypeError, "CoreConfig.%s must be an int, not %.100s", name,
                     Py_TYPE(v)->tp_name);
    } else {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (!(x == -1 && PyErr_Occurred())) {
            if (overflow || x < lo || x > hi) {
                PyErr_Format(PyExc_ValueError, "CoreConfig.%s must be between %lld and %lld",
                             name, lo, hi);
            } else {
                *out = x;
                rc = 0;
            }
        }
    }
    Py_DECREF(v);
    return rc;
}

static int take_double(PyObject *config, const char *name, double *out)
{
    PyObject *v = scalar(config, name);
    if (!v)
        return -1;
    int rc = -1;
    if (!PyFloat_Check(v) && !(PyLong_Check(v) && !PyBool_Check(v))) {
        PyErr_Format(PyExc_TypeError, "CoreConfig.%s must be a float, not %.100s", name,
                     Py_TYPE(v)->tp_name);
    } else {
        *out = PyFloat_AsDouble(v);
        rc = (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
    }
    Py_DECREF(v);
    return rc;
}

static int take_bool(PyObject *config, const char *name, int *out)
{
    PyObject *v = scalar(config, name);
    if (!v)
        return -1;
    int rc = -1;
    if (!PyBool_Check(v))
        PyErr_Format(PyExc_TypeError, "CoreConfig.%s must be a bool, not %.100s", name,
                     Py_TYPE(v)->tp_name);
    else {
        *out = v == Py_True;
        rc = 0;
    }
    Py_DECREF(v);
    return rc;
}

/* A str field (None -> NULL when nullable).  Strings with NUL bytes are refused. */
static int take_str(PyObject *config, const char *name, int nullable, const char **out,
                    struct config_hold *hold)
{
    PyObject *v = field(config, name, hold);
    if (!v)
        return -1;
    *out = NULL;
    if (v == Py_None && nullable)
        return 0;
    if (!PyUnicode_Check(v)) {
        PyErr_Format(PyExc_TypeError, "CoreConfig.%s must be a str%s, not %.100s", name,
                     nullable ? " or None" : "", Py_TYPE(v)->tp_name);
        return -1;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(v, &len);
    if (!s)
        return -1;
    if ((size_t)len != strlen(s)) {
        PyErr_Format(PyExc_ValueError, "CoreConfig.%s must not contain NUL", name);
        return -1;
    }
    *out = s;
    return 0;
}

/* A tuple of str (None -> NULL list) into a PyMem array of borrowed pointers. */
static int take_str_tuple(PyObject *config, const char *name, const char ***out, size_t *n_out,
                          struct config_hold *hold)
{
    PyObject *v = field(config, name, hold);
    if (!v)
        return -1;
    *out = NULL;
    *n_out = 0;
    if (v == Py_None)
        return 0;
    if (!PyTuple_Check(v)) {
        PyErr_Format(PyExc_TypeError, "CoreConfig.%s must be a tuple of str or None", name);
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(v);
    const char **list = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (!list) {
        PyErr_NoMemory();
        return -1;
    }
    *out = list; /* owned by hold from here on */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyTuple_GET_ITEM(v, i);
        list[i] = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
        if (!list[i]) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "CoreConfig.%s must hold only str", name);
            return -1;
        }
    }
    *n_out = (size_t)n;
    return 0;
}

/* db_path: a str or PathLike, encoded with the file system encoding. */
static int take_path(PyObject *config, const char *name, const char **out, struct config_hold *hold)
{
    PyObject *v = field(config, name, hold);
    if (!v)
        return -1;
    PyObject *bytes = NULL;
    if (!PyUnicode_FSConverter(v, &bytes))
        return -1;
    hold->refs[hold->n - 1] = bytes; /* the bytes replace the object they were made from */
    Py_DECREF(v);
    *out = PyBytes_AS_STRING(bytes);
    return 0;
}

int server_config_from_py(PyObject *config, struct core_config *cfg, struct config_hold *hold)
{
    long long port, top_n, max_clients, max_msg, max_pending, min_level, role, rport, rdb;
    const char *secret = NULL;
    Py_ssize_t secret_len = 0;

    memset(cfg, 0, sizeof(*cfg));
    memset(hold, 0, sizeof(*hold));
    if (take_path(config, "db_path", &cfg->db_path, hold) < 0 ||
        take_str(config, "iface", 1, &cfg->iface, hold) < 0 ||
        take_bool(config, "disable_ipv6", &cfg->disable_ipv6) < 0 ||
        take_bool(config, "use_poll", &cfg->use_poll) < 0 ||
        take_size(config, "port", 0, 65535, &port) < 0 ||
        take_double(config, "interval_s", &cfg->interval_s) < 0 ||
        take_double(config, "recovery_window_s", &cfg->recovery_window_s) < 0 ||
        take_size(config, "top_n", 1, INT_MAX, &top_n) < 0 ||
        take_double(config, "anomaly_threshold", &cfg->anomaly_threshold) < 0 ||
        take_bool(config, "record_anomalies", &cfg->record_anomalies) < 0 ||
        take_size(config, "max_clients", 0, INT_MAX, &max_clients) < 0 ||
        take_size(config, "max_message_size", 1, INT_MAX, &max_msg) < 0 ||
        take_size(config, "max_pending", 0, INT_MAX, &max_pending) < 0 ||
        take_size(config, "min_log_level", 0, INT_MAX, &min_level) < 0 ||
        take_str(config, "static_dir", 1, &cfg->static_dir, hold) < 0 ||
        take_str(config, "ssl_certfile", 1, &cfg->ssl_cert, hold) < 0 ||
        take_str(config, "ssl_keyfile", 1, &cfg->ssl_key, hold) < 0 ||
        take_str_tuple(config, "allowed_origins", &hold->origins, &cfg->n_allowed_origins,
                       hold) < 0 ||
        take_str_tuple(config, "allowed_hosts", &hold->hosts, &cfg->n_allowed_hosts, hold) < 0 ||
        take_size(config, "role", SB_ROLE_STANDALONE, SB_ROLE_EDGE, &role) < 0 ||
        take_str(config, "redis_host", 1, &cfg->redis_host, hold) < 0 ||
        take_size(config, "redis_port", 0, 65535, &rport) < 0 ||
        take_size(config, "redis_db", 0, INT_MAX, &rdb) < 0 ||
        take_str(config, "redis_password", 1, &cfg->redis_password, hold) < 0 ||
        take_str(config, "redis_prefix", 0, &cfg->redis_prefix, hold) < 0 ||
        take_str(config, "graphql_schema", 1, &cfg->graphql_schema, hold) < 0)
        return -1;
    cfg->role = (enum sb_role)role;
    cfg->redis_port = (int)rport;
    cfg->redis_db = (int)rdb;
    if (cfg->role != SB_ROLE_STANDALONE && (!cfg->redis_host || !cfg->redis_port)) {
        PyErr_SetString(PyExc_ValueError, "CoreConfig: role publisher and edge need redis_host "
                        "and redis_port");
        return -1;
    }
    if (!(cfg->interval_s > 0) || !(cfg->anomaly_threshold > 0)) {
        PyErr_SetString(PyExc_ValueError, "CoreConfig.interval_s and anomaly_threshold must be > 0");
        return -1;
    }
    if (!(cfg->recovery_window_s >= 0 && cfg->recovery_window_s <= 86400)) {
        PyErr_SetString(PyExc_ValueError, "CoreConfig.recovery_window_s must be in 0..86400");
        return -1;
    }
    if ((cfg->ssl_cert == NULL) != (cfg->ssl_key == NULL)) {
        PyErr_SetString(PyExc_ValueError, "CoreConfig.ssl_certfile and ssl_keyfile go together");
        return -1;
    }
    PyObject *s = field(config, "jwt_secret", hold);
    if (!s)
        return -1;
    if (s != Py_None) {
        if (!PyBytes_Check(s)) {
            PyErr_Format(PyExc_TypeError, "CoreConfig.jwt_secret must be bytes or None, not %.100s",
                         Py_TYPE(s)->tp_name);
            return -1;
        }
        secret = PyBytes_AS_STRING(s);
        secret_len = PyBytes_GET_SIZE(s);
    }
    cfg->port = (int)port;
    cfg->top_n = (size_t)top_n;
    cfg->max_clients = (size_t)max_clients;
    cfg->max_message_size = (size_t)max_msg;
    cfg->max_pending = (size_t)max_pending;
    cfg->min_log_level = (int)min_level;
    cfg->jwt_secret = (const unsigned char *)secret;
    cfg->jwt_secret_len = (size_t)secret_len;
    cfg->allowed_origins = hold->origins;
    cfg->allowed_hosts = hold->hosts;
    return 0;
}

void config_hold_release(struct config_hold *hold)
{
    for (size_t i = 0; i < hold->n; i++)
        Py_XDECREF(hold->refs[i]);
    PyMem_Free(hold->origins);
    PyMem_Free(hold->hosts);
    memset(hold, 0, sizeof(*hold));
}
