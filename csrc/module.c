/* module.c - the session_buddy.realtime._core extension module: state and initialisation. */
#include "module.h"

#include <string.h>

#include "event_queue.h"
#include "inproc_session.h"
#include "jwt.h"
#include "log.h"
#include "pmdeflate.h"
#include "protocol_codes.h"
#include "service.h"
#include "server_type.h"

/* The arguments (token, secret, now) of both verify functions, verified with the GIL released.
 * Returns 0 with claims filled (the caller frees them), or -1 with an exception set:
 * ValueError(reason) when the token is refused. */
static int verify_args(PyObject *args, const char *format, struct jwt_claims *claims)
{
    const char *token, *secret;
    Py_ssize_t token_len, secret_len;
    double now;

    if (!PyArg_ParseTuple(args, format, &token, &token_len, &secret, &secret_len, &now))
        return -1;
    if (secret_len == 0) {
        PyErr_SetString(PyExc_ValueError, "the secret must not be empty");
        return -1;
    }
    enum jwt_status st;
    Py_BEGIN_ALLOW_THREADS
    st = jwt_verify(token, (size_t)token_len, (const unsigned char *)secret, (size_t)secret_len,
                    now, claims);
    Py_END_ALLOW_THREADS
    if (st == JWT_NOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    if (st != JWT_OK) {
        PyErr_SetString(PyExc_ValueError, jwt_status_text(st));
        return -1;
    }
    return 0;
}

/* verify_jwt(token, secret, now) -> payload bytes of a valid HS256 token. */
static PyObject *core_verify_jwt(PyObject *Py_UNUSED(module), PyObject *args)
{
    struct jwt_claims claims;
    if (verify_args(args, "s#y#d:verify_jwt", &claims) < 0)
        return NULL;
    PyObject *payload = PyBytes_FromStringAndSize(claims.payload, (Py_ssize_t)claims.payload_len);
    jwt_claims_free(&claims);
    return payload;
}

/* verify_jwt_user(token, secret, now) -> (user_id, payload bytes): the user a valid token names,
 * taken as the network path takes it ("user_id", else "sub", cut to JWT_MAX_USER_ID bytes), and
 * the payload JSON; ValueError(reason) when the token is refused. */
static PyObject *core_verify_jwt_user(PyObject *Py_UNUSED(module), PyObject *args)
{
    struct jwt_claims claims;
    if (verify_args(args, "s#y#d:verify_jwt_user", &claims) < 0)
        return NULL;
    PyObject *user = PyUnicode_DecodeUTF8(claims.user_id, (Py_ssize_t)strlen(claims.user_id),
                                          "replace");
    PyObject *out = user ? Py_BuildValue("(Oy#)", user, claims.payload,
                                         (Py_ssize_t)claims.payload_len)
                         : NULL;
    Py_XDECREF(user);
    jwt_claims_free(&claims);
    return out;
}

/* zlib streams alive in the process: the tests' check that no connection keeps one. */
static PyObject *core_zlib_streams(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    return PyLong_FromLong(pmd_live_streams());
}

static PyMethodDef core_methods[] = {
    {"verify_jwt", core_verify_jwt, METH_VARARGS,
     "verify_jwt($module, token, secret, now, /)\n--\n\n"
     "Verify an HS256 JWT at Unix time now; return its payload JSON or raise ValueError."},
    {"verify_jwt_user", core_verify_jwt_user, METH_VARARGS,
     "verify_jwt_user($module, token, secret, now, /)\n--\n\n"
     "Verify an HS256 JWT at Unix time now; return the user it names and its payload JSON, "
     "or raise ValueError."},
    {"zlib_streams", core_zlib_streams, METH_NOARGS,
     "zlib_streams($module, /)\n--\n\n"
     "The permessage-deflate zlib streams alive in this process: the servers' shared deflaters "
     "(one per window size in use) and the inflaters of client messages being received."},
    {NULL, NULL, 0, NULL},
};

/* The C side's enums, exported so that Python reads them instead of copying them. */
static int add_constants(PyObject *module)
{
    static const struct {
        const char *name;
        long value;
    } constants[] = {
        {"EV_LOG", EV_LOG},
        {"EV_SNAPSHOT", EV_SNAPSHOT},
        {"EV_TICK_DONE", EV_TICK_DONE},
        {"EV_STOPPED", EV_STOPPED},
        {"EV_ANOMALIES", EV_ANOMALIES},
        {"EV_GQL_OPERATION", EV_GQL_OPERATION},
        {"EV_GQL_HTTP", EV_GQL_HTTP},
        {"LOG_TOPIC_SERVER", SB_TOPIC_SERVER},
        {"LOG_TOPIC_AUTH", SB_TOPIC_AUTH},
        {"MAX_QUEUED_REPLY_BYTES", SB_MAX_QUEUED_REPLY_BYTES},
        {"CLOSE_GRACE_S", SB_CLOSE_GRACE_S},
        {"ROLE_STANDALONE", SB_ROLE_STANDALONE},
        {"ROLE_PUBLISHER", SB_ROLE_PUBLISHER},
        {"ROLE_EDGE", SB_ROLE_EDGE},
    };
    /* The closes the asyncio side makes itself, as (code, reason) from the one table. */
    static const struct {
        const char *name;
        enum sb_close_why why;
    } closes[] = {
        {"CLOSE_BAD_TOKEN", SB_CLOSE_BAD_TOKEN},
        {"CLOSE_SLOW_CONSUMER", SB_CLOSE_SLOW_CONSUMER},
        {"CLOSE_REPLAY_BEHIND", SB_CLOSE_REPLAY_BEHIND},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0)
            return -1;
    for (size_t i = 0; i < sizeof(closes) / sizeof(closes[0]); i++) {
        const struct sb_close_code *c = &sb_close_codes[closes[i].why];
        PyObject *pair = Py_BuildValue("(is)", (int)c->code, c->reason);
        if (!pair || PyModule_AddObject(module, closes[i].name, pair) < 0) {
            Py_XDECREF(pair);
            return -1;
        }
    }
    return 0;
}

static int core_exec(PyObject *module)
{
    module_state *st = PyModule_GetState(module);
    if (sb_server_type_add(module, st) < 0 || sb_session_type_add(module, st) < 0)
        return -1;
    return add_constants(module);
}

static int core_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = PyModule_GetState(module);
    Py_VISIT(st->server_type);
    Py_VISIT(st->session_type);
    return 0;
}

static int core_clear(PyObject *module)
{
    module_state *st = PyModule_GetState(module);
    Py_CLEAR(st->server_type);
    Py_CLEAR(st->session_type);
    return 0;
}

static void core_free(void *module)
{
    core_clear(module);
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    {0, NULL},
};

static struct PyModuleDef sb_core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "session_buddy.realtime._core",
    .m_doc = "C core of the session-buddy real-time metrics server (libwebsockets + sqlite3).",
    .m_size = sizeof(module_state),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&sb_core_module);
}
