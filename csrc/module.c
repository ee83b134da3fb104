/* module.c - the session_buddy.realtime._core extension module: state and initialisation. */
#include "module.h"

static int core_exec(PyObject *module)
{
    module_state *st = PyModule_GetState(module);
    return sb_server_type_add(module, st);
}

static int core_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = PyModule_GetState(module);
    Py_VISIT(st->server_type);
    Py_VISIT(st->bridge);
    return 0;
}

static int core_clear(PyObject *module)
{
    module_state *st = PyModule_GetState(module);
    Py_CLEAR(st->server_type);
    Py_CLEAR(st->bridge);
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

struct PyModuleDef sb_core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "session_buddy.realtime._core",
    .m_doc = "C core of the session-buddy real-time metrics server (libwebsockets + sqlite3).",
    .m_size = sizeof(module_state),
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

module_state *sb_state_for(PyObject *self)
{
    PyObject *module = PyType_GetModuleByDef(Py_TYPE(self), &sb_core_module);
    return module ? PyModule_GetState(module) : NULL;
}

PyObject *sb_bridge(PyObject *self)
{
    module_state *st = sb_state_for(self);
    if (!st)
        return NULL;
    if (!st->bridge) {
        st->bridge = PyImport_ImportModule("session_buddy.realtime._bridge");
        if (!st->bridge)
            return NULL;
    }
    return Py_NewRef(st->bridge);
}

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&sb_core_module);
}
