/* inproc_session.h - _core.InProcessSession: the protocol state of one in-process client. */
#ifndef SB_INPROC_SESSION_H
#define SB_INPROC_SESSION_H

#include "module.h"

/*
 * An in-process client (one served by client_handler, or registered with register_client) runs
 * the same dispatcher as a network session: dispatch_message decides, and the subscription it
 * sets lives here.  The object is plain C state used with the GIL held on the asyncio thread; the
 * service thread never sees it.  Python keeps only the delivery (a queue and a sender task).
 */

/* Add InProcessSession to the module and keep it in st.  Returns 0, or -1 with an exception. */
int sb_session_type_add(PyObject *module, module_state *st);

#endif
