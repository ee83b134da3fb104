/* module.h - module state shared by the files that implement Python objects. */
#ifndef SB_MODULE_H
#define SB_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject *server_type;
    PyObject *bridge;   /* session_buddy.realtime._bridge, imported on first use */
} module_state;

extern struct PyModuleDef sb_core_module;

/* The module state for an instance of one of our types (subclasses included). */
module_state *sb_state_for(PyObject *self);

/* The _bridge module (new reference), importing it on first use; NULL with an exception. */
PyObject *sb_bridge(PyObject *self);

/* Add RealTimeMetricsServer to the module (server_type.c). Returns 0 or -1. */
int sb_server_type_add(PyObject *module, module_state *st);

#endif
