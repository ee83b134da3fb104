/* module.h - module state shared by the files that implement Python objects. */
#ifndef SB_MODULE_H
#define SB_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject *server_type;   /* ServerBase (server_type.c) */
    PyObject *session_type;  /* InProcessSession (inproc_session.c) */
} module_state;

extern struct PyModuleDef sb_core_module;


#endif
