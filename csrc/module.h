/* module.h - the module state that the types of _core (server_type.c, inproc_session.c) keep their types in. */
#ifndef SB_MODULE_H
#define SB_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject *server_type;   /* ServerBase (server_type.c) */
    PyObject *session_type;  /* InProcessSession (inproc_session.c) */
} module_state;

#endif
