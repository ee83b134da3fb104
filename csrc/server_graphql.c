/* server_graphql.c - ServerBase's GraphQL methods: Python's answers, queued for the service thread. */
#include "server_graphql.h"

#include <stdlib.h>
#include <string.h>

#include "gql_command.h"
#include "gql_message.h"
#include "gql_selection.h"
#include "msgbuf.h"

static char *dup_bytes(const char *s, Py_ssize_t n)
{
    char *d = malloc((size_t)n + 1);
    if (d) {
        memcpy(d, s, (size_t)n);
        d[n] = '\0';
    }
    return d;
}

static struct msgbuf *text_message(const char *s, Py_ssize_t n)
{
    struct msgbuf *m = msgbuf_new((size_t)n);
    if (m) {
        jb_raw(&m->jb, s, (size_t)n);
        if (m->jb.failed) {
            msgbuf_unref(m);
            m = NULL;
        }
    }
    return m;
}

/* Queue cmd (ownership passes) for the running core: None, or NULL with RuntimeError. */
static PyObject *post(ServerObject *self, struct gql_command *cmd)
{
    if (!self->core || service_post_command(&self->core->service, cmd) < 0) {
        if (!self->core)
            gql_command_free(cmd);
        PyErr_SetString(PyExc_RuntimeError, "server is not running");
        return NULL;
    }
    Py_RETURN_NONE;
}

static int check_op_id(Py_ssize_t len)
{
    if (len > 0 && len <= GQL_MAX_ID_LEN)
        return 0;
    PyErr_Format(PyExc_ValueError, "op_id must be 1..%d bytes of UTF-8", GQL_MAX_ID_LEN);
    return -1;
}

PyObject *sb_server_gql_subscribe(ServerObject *self, PyObject *args)
{
    unsigned long long conn, since_seq;
    const char *op_id, *skill, *selection, *since_epoch;
    Py_ssize_t op_len, skill_len, sel_len;
    char err[160];
    if (!PyArg_ParseTuple(args, "Ks#z#s#zK:gql_subscribe", &conn, &op_id, &op_len, &skill,
                          &skill_len, &selection, &sel_len, &since_epoch, &since_seq) ||
        check_op_id(op_len) < 0)
        return NULL;
    struct gql_command *cmd = calloc(1, sizeof(*cmd));
    if (!cmd)
        return PyErr_NoMemory();
    cmd->kind = GQC_SUBSCRIBE;
    cmd->target = conn;
    cmd->sel = gql_selection_parse(selection, (size_t)sel_len, err, sizeof(err));
    if (!cmd->sel) {
        gql_command_free(cmd);
        PyErr_Format(PyExc_ValueError, "selection: %s", err);
        return NULL;
    }
    cmd->op_id = dup_bytes(op_id, op_len);
    cmd->op_id_len = (size_t)op_len;
    cmd->skill = skill ? dup_bytes(skill, skill_len) : NULL;
    cmd->skill_len = skill ? (size_t)skill_len : 0;
    cmd->since_epoch = since_epoch ? dup_bytes(since_epoch, (Py_ssize_t)strlen(since_epoch)) : NULL;
    cmd->since_seq = since_seq;
    if (!cmd->op_id || (skill && !cmd->skill) || (since_epoch && !cmd->since_epoch)) {
        gql_command_free(cmd);
        return PyErr_NoMemory();
    }
    return post(self, cmd);
}

PyObject *sb_server_gql_send(ServerObject *self, PyObject *args)
{
    unsigned long long conn;
    const char *op_id, *text;
    Py_ssize_t op_len, text_len;
    int done;
    if (!PyArg_ParseTuple(args, "Ks#s#p:gql_send", &conn, &op_id, &op_len, &text, &text_len,
                          &done) ||
        check_op_id(op_len) < 0)
        return NULL;
    struct gql_command *cmd = calloc(1, sizeof(*cmd));
    if (!cmd)
        return PyErr_NoMemory();
    cmd->kind = GQC_SEND;
    cmd->target = conn;
    cmd->done = done;
    cmd->op_id = dup_bytes(op_id, op_len);
    cmd->op_id_len = (size_t)op_len;
    cmd->body = text_message(text, text_len);
    if (!cmd->op_id || !cmd->body) {
        gql_command_free(cmd);
        return PyErr_NoMemory();
    }
    return post(self, cmd);
}

PyObject *sb_server_http_reply(ServerObject *self, PyObject *args)
{
    unsigned long long request;
    int status;
    const char *type, *body;
    Py_ssize_t type_len, body_len;
    if (!PyArg_ParseTuple(args, "Kis#y#:http_reply", &request, &status, &type, &type_len, &body,
                          &body_len))
        return NULL;
    if (status < 100 || status > 599 || type_len == 0 || type_len > 120 ||
        strpbrk(type, "\r\n")) {
        PyErr_SetString(PyExc_ValueError,
                        "http_reply: status must be 100..599 and content_type one header line");
        return NULL;
    }
    struct gql_command *cmd = calloc(1, sizeof(*cmd));
    if (!cmd)
        return PyErr_NoMemory();
    cmd->kind = GQC_HTTP_REPLY;
    cmd->target = request;
    cmd->status = status;
    cmd->content_type = dup_bytes(type, type_len);
    cmd->body = text_message(body, body_len);
    if (!cmd->content_type || !cmd->body) {
        gql_command_free(cmd);
        return PyErr_NoMemory();
    }
    return post(self, cmd);
}
