/* inproc_session.c - _core.InProcessSession: dispatch and subscription state of an in-process client. */
#include "inproc_session.h"

#include <string.h>

#include "dispatch.h"
#include "recovery.h"
#include "server_type.h"
#include "snapshot.h"
#include "timeutil.h"

typedef struct {
    PyObject_HEAD
    ServerObject *server;        /* strong reference: whose snapshots answer this client */
    Py_ssize_t max_message_size;
    int subscribed;
    PyObject *skill;             /* the subscription's skill (str), or None for all skills */
    unsigned long long generation; /* counts the subscription's changes */
    uint64_t sent_seq;           /* the newest update handed out (next_update) */
    int replaying;               /* resumed: every retained update after sent_seq is owed */
} SessionObject;

static PyObject *session_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"", "", "", NULL};
    PyObject *server, *skill = Py_None;
    Py_ssize_t max_message_size;
    module_state *st = PyType_GetModuleState(type);

    if (!st || !PyArg_ParseTupleAndKeywords(args, kwds, "On|O:InProcessSession", kwlist, &server,
                                            &max_message_size, &skill))
        return NULL;
    if (skill != Py_None && !PyUnicode_Check(skill))
        return PyErr_Format(PyExc_TypeError, "skill must be a str or None, not %.100s",
                            Py_TYPE(skill)->tp_name);
    if (!PyObject_TypeCheck(server, (PyTypeObject *)st->server_type))
        return PyErr_Format(PyExc_TypeError, "InProcessSession needs a ServerBase, not %.100s",
                            Py_TYPE(server)->tp_name);
    if (max_message_size < 1)
        return PyErr_Format(PyExc_ValueError, "max_message_size must be >= 1");
    SessionObject *self = (SessionObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->server = (ServerObject *)Py_NewRef(server);
    self->max_message_size = max_message_size;
    self->subscribed = 1; /* a new client gets every skill's updates, as on the network path */
    self->skill = Py_NewRef(skill);
    /* ... from the next tick on: nothing unsolicited follows its greeting. */
    struct snapshot *latest = sb_server_latest(self->server);
    self->sent_seq = latest ? latest->seq : 0;
    snapshot_unref(latest);
    return (PyObject *)self;
}

/* message (str or bytes) as bytes to dispatch; *owned receives what the caller releases. */
static int message_bytes(PyObject *message, const char **data, Py_ssize_t *len, PyObject **owned)
{
    *owned = NULL;
    if (PyUnicode_Check(message)) {
        *owned = PyUnicode_AsEncodedString(message, "utf-8", "surrogatepass");
        if (!*owned)
            return -1;
        message = *owned;
    } else if (!PyBytes_Check(message)) {
        PyErr_Format(PyExc_TypeError, "message must be str or bytes, not %.100s",
                     Py_TYPE(message)->tp_name);
        return -1;
    }
    *data = PyBytes_AS_STRING(message);
    *len = PyBytes_GET_SIZE(message);
    return 0;
}

static PyObject *utf8_or_none(const char *s, size_t len)
{
    return s ? PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "replace") : Py_NewRef(Py_None);
}

/* Run the dispatcher on one message, applying the subscription it asks for.  Returns the reply
 * (str or None) and fills *res (the caller frees it), or NULL with an exception set. */
/* A garbage collection that cleared this session (tp_clear) leaves it without its server: it
 * then raises instead of using a NULL.  Returns 0, or -1 with RuntimeError set. */
static int require_server(SessionObject *self)
{
    if (self->server)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "this in-process session was cleared");
    return -1;
}

static PyObject *run_dispatch(SessionObject *self, PyObject *message, int auth_pending,
                              struct dispatch_result *res)
{
    const char *data;
    Py_ssize_t len;
    PyObject *encoded;
    jbuf reply;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    if (require_server(self) < 0 || message_bytes(message, &data, &len, &encoded) < 0)
        return NULL;
    if (jb_init(&reply, 0, 256) < 0) {
        Py_XDECREF(encoded);
        return PyErr_NoMemory();
    }
    if (len > self->max_message_size) {
        dispatch_write_error(&reply, SB_ERR_INVALID_REQUEST, "message larger than max_message_size",
                             NULL);
    } else {
        struct snapshot *snap = sb_server_latest(self->server);
        struct server_core *core = self->server->core;
        struct dispatch_env env = {
            .snap = snap,
            .epoch = sb_server_epoch(self->server),
            .recovery = core ? core_recovery(core) : NULL,
            .history = core ? core_history(core) : NULL,
            .auth_pending = auth_pending,
            .now_ms = now_unix_ms(),
        };
        /* is_binary: text from Python may hold lone surrogates, so its UTF-8 is checked. */
        rc = dispatch_message(data, (size_t)len, 1, &env, res, &reply);
        if (snap)
            snapshot_unref(snap);
    }
    Py_XDECREF(encoded);
    if (rc < 0) {
        jb_free(&reply);
        return PyErr_NoMemory();
    }
    if (res->action == DA_SUBSCRIBE || res->action == DA_UNSUBSCRIBE) {
        PyObject *skill = res->action == DA_SUBSCRIBE ? utf8_or_none(res->skill, res->skill_len)
                                                      : Py_NewRef(Py_None);
        if (!skill) {
            jb_free(&reply);
            return NULL;
        }
        Py_SETREF(self->skill, skill);
        self->subscribed = res->action == DA_SUBSCRIBE;
        self->generation++;
        /* As on the network path: every missed update after a resume, else the current one. */
        self->replaying = res->resume;
        self->sent_seq = res->resume ? res->resume_seq : 0;
    }
    if (!reply.len) {
        jb_free(&reply);
        Py_RETURN_NONE;
    }
    return sb_text_from_jbuf(&reply);
}

static PyObject *session_dispatch(SessionObject *self, PyObject *message)
{
    struct dispatch_result res;
    PyObject *reply = run_dispatch(self, message, 0, &res);
    int due = res.action == DA_SUBSCRIBE && self->server->core != NULL;
    dispatch_result_free(&res);
    if (!reply)
        return NULL;
    return Py_BuildValue("(NO)", reply, due ? Py_True : Py_False);
}

static PyObject *session_dispatch_before_auth(SessionObject *self, PyObject *message)
{
    struct dispatch_result res;
    PyObject *reply = run_dispatch(self, message, 1, &res);
    PyObject *token = reply ? utf8_or_none(res.token, res.token ? strlen(res.token) : 0) : NULL;
    dispatch_result_free(&res);
    if (!token) {
        Py_XDECREF(reply);
        return NULL;
    }
    return Py_BuildValue("(NN)", reply, token);
}

static PyObject *session_subscribe(SessionObject *self, PyObject *skill)
{
    Py_ssize_t len = 0;
    const char *name = NULL;
    jbuf b;

    if (skill != Py_None) {
        if (!PyUnicode_Check(skill))
            return PyErr_Format(PyExc_TypeError, "skill_name must be a str or None");
        name = PyUnicode_AsUTF8AndSize(skill, &len);
        if (!name)
            return NULL;
    }
    if (require_server(self) < 0)
        return NULL;
    if (jb_init(&b, 0, 256) < 0)
        return PyErr_NoMemory();
    struct snapshot *snap = sb_server_latest(self->server);
    uint64_t seq = snap ? snap->seq : 0;
    dispatch_write_subscribed(&b, name, (size_t)len, sb_server_epoch(self->server), seq, -1,
                              now_unix_ms());
    snapshot_unref(snap);
    PyObject *text = sb_text_from_jbuf(&b);
    if (text) {
        Py_SETREF(self->skill, Py_NewRef(skill));
        self->subscribed = 1;
        self->generation++;
        self->replaying = 0;
        self->sent_seq = seq; /* the next tick brings the first update in the new form */
    }
    return text;
}

static PyObject *session_update(SessionObject *self, PyObject *Py_UNUSED(ignored))
{
    if (require_server(self) < 0)
        return NULL;
    if (!self->subscribed)
        Py_RETURN_NONE;
    return sb_server_update_text(self->server, self->skill);
}

static PyObject *pair(PyObject *text, int behind)
{
    return text ? Py_BuildValue("(NO)", text, behind ? Py_True : Py_False) : NULL;
}

/* The next update owed, as next_update's docstring says. */
static PyObject *session_next_update(SessionObject *self, PyObject *Py_UNUSED(ignored))
{
    if (require_server(self) < 0)
        return NULL;
    struct snapshot *latest = self->subscribed ? sb_server_latest(self->server) : NULL;
    if (!latest)
        return pair(Py_NewRef(Py_None), 0);
    if (self->replaying && self->sent_seq + 1 < latest->seq) {
        int gap;
        struct snapshot *s = recovery_next(core_recovery(self->server->core), self->sent_seq, &gap);
        if (!s || gap) {
            snapshot_unref(s);
            snapshot_unref(latest);
            return pair(Py_NewRef(Py_None), 1);
        }
        if (s->seq < latest->seq) {
            PyObject *text = sb_server_snapshot_text(self->server, s, self->skill);
            if (text)
                self->sent_seq = s->seq;
            snapshot_unref(s);
            snapshot_unref(latest);
            return pair(text, 0);
        }
        snapshot_unref(s);
    }
    self->replaying = 0;
    PyObject *text = Py_NewRef(Py_None);
    if (latest->seq > self->sent_seq) {
        Py_SETREF(text, sb_server_snapshot_text(self->server, latest, self->skill));
        if (text)
            self->sent_seq = latest->seq;
    }
    snapshot_unref(latest);
    return pair(text, 0);
}

static PyObject *session_greeting(SessionObject *self, PyObject *authenticated)
{
    jbuf b;
    int yes = PyObject_IsTrue(authenticated);
    if (yes < 0 || require_server(self) < 0)
        return NULL;
    if (jb_init(&b, 0, 256) < 0)
        return PyErr_NoMemory();
    struct snapshot *snap = sb_server_latest(self->server);
    dispatch_write_connected(&b, yes, sb_server_epoch(self->server), snap ? snap->seq : 0,
                             now_unix_ms());
    snapshot_unref(snap);
    return sb_text_from_jbuf(&b);
}

static PyObject *get_subscribed(SessionObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->subscribed);
}

static PyObject *get_skill(SessionObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->subscribed ? self->skill : Py_None);
}

static PyObject *get_generation(SessionObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(self->generation);
}

static PyGetSetDef session_getset[] = {
    {"generation", (getter)get_generation, NULL,
     "Counts the subscription's changes (every subscribe and unsubscribe).", NULL},
    {"subscribed", (getter)get_subscribed, NULL, "False after unsubscribe, until a subscribe.",
     NULL},
    {"skill", (getter)get_skill, NULL, "The subscription's skill, or None for all skills.", NULL},
    {NULL},
};

static PyMethodDef session_methods[] = {
    {"dispatch", (PyCFunction)session_dispatch, METH_O,
     "dispatch($self, message, /)\n--\n\n"
     "Apply one protocol message as the network path does: return (reply or None, whether a "
     "metrics_update is due right after the reply, as after a subscribe while running)."},
    {"dispatch_before_auth", (PyCFunction)session_dispatch_before_auth, METH_O,
     "dispatch_before_auth($self, message, /)\n--\n\n"
     "Apply one message from a client that must authenticate first: return (reply or None, "
     "the token of an auth message or None)."},
    {"subscribe", (PyCFunction)session_subscribe, METH_O,
     "subscribe($self, skill, /)\n--\n\n"
     "Subscribe to skill (None: all skills) and return the subscription_confirmed text."},
    {"update", (PyCFunction)session_update, METH_NOARGS,
     "update($self, /)\n--\n\n"
     "The metrics_update text of the latest snapshot for this subscription, or None "
     "(unsubscribed, not running, or no snapshot yet)."},
    {"next_update", (PyCFunction)session_next_update, METH_NOARGS,
     "next_update($self, /)\n--\n\n"
     "(text, fell_behind): the next metrics_update owed to this session, counted as handed out, "
     "or None when nothing newer is due.  After a resumed subscribe, every retained update "
     "after the since seq, one per call and in order, then the latest ones; fell_behind is True "
     "when the next one owed has left the recovery window (close the client)."},
    {"greeting", (PyCFunction)session_greeting, METH_O,
     "greeting($self, authenticated, /)\n--\n\nThe connected message that opens a session."},
    {NULL},
};

static int session_traverse(SessionObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->server);
    Py_VISIT(self->skill);
    return 0;
}

static int session_clear(SessionObject *self)
{
    Py_CLEAR(self->server);
    Py_CLEAR(self->skill);
    return 0;
}

static void session_dealloc(SessionObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    session_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyType_Slot session_slots[] = {
    {Py_tp_doc, "InProcessSession(server, max_message_size, skill=None, /)\n--\n\n"
                "The protocol state of one in-process client of server (a ServerBase), "
                "subscribed to skill (None: all skills)."},
    {Py_tp_new, session_new},
    {Py_tp_dealloc, session_dealloc},
    {Py_tp_traverse, session_traverse},
    {Py_tp_clear, session_clear},
    {Py_tp_methods, session_methods},
    {Py_tp_getset, session_getset},
    {0, NULL},
};

static PyType_Spec session_spec = {
    .name = "session_buddy.realtime._core.InProcessSession",
    .basicsize = sizeof(SessionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = session_slots,
};

int sb_session_type_add(PyObject *module, module_state *st)
{
    st->session_type = PyType_FromModuleAndSpec(module, &session_spec, NULL);
    if (!st->session_type)
        return -1;
    return PyModule_AddObjectRef(module, "InProcessSession", st->session_type);
}
