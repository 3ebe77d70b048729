/*
 * liburcu glue. The memb flavour wants every thread that reads under
 * rcu_read_lock() or calls call_rcu() registered; softmm registers a thread
 * lazily the first time it enters the library, and unregisters it when the
 * thread exits, so embedders never have to know.
 */
#ifndef SM_BASE_RCU_H
#define SM_BASE_RCU_H

#include <urcu.h>
#include "base/compiler.h"

extern __thread bool sm_rcu_registered SM_TLS_IE;
void sm_rcu_register_slow(void);

static inline void sm_rcu_thread_online(void)
{
	if (unlikely(!sm_rcu_registered))
		sm_rcu_register_slow();
}

#endif
