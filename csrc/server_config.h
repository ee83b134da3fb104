/* server_config.h - one Python CoreConfig turned into the struct core_config that core_start takes. */
#ifndef SB_SERVER_CONFIG_H
#define SB_SERVER_CONFIG_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "server_core.h"

/* Python objects and arrays that the strings of a converted core_config point into. */
struct config_hold {
    PyObject *refs[24];
    size_t n;
    const char **origins;   /* PyMem array, or NULL */
    const char **hosts;     /* PyMem array, or NULL */
};

/*
 * Fill *cfg from config, an object with the attributes of session_buddy.realtime._startup.CoreConfig
 * (read as data: nothing of config is called).  The strings of *cfg borrow from objects kept
 * in *hold, valid until config_hold_release; core_start copies what it keeps.  Returns 0, or -1
 * with TypeError/ValueError naming the bad field.  Release *hold in both cases.
 */
int server_config_from_py(PyObject *config, struct core_config *cfg, struct config_hold *hold);

/* Release what server_config_from_py kept; *hold is zeroed.  Safe to call twice. */
void config_hold_release(struct config_hold *hold);

#endif
