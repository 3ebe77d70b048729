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

/*
 * ThreadSanitizer cannot see liburcu's grace periods (the library is not
 * instrumented), so under TSan every read-side section ends with a release
 * on one token and every deferred free begins with an acquire on it: the
 * happens-before that the grace period really provides, stated to TSan.
 */
#ifdef SM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char sm_rcu_tsan_token;
static inline void sm_rcu_read_lock(void) { rcu_read_lock(); }
static inline void sm_rcu_read_unlock(void)
{
	__tsan_release(&sm_rcu_tsan_token);
	rcu_read_unlock();
}
static inline void sm_rcu_gp_done(void *obj)
{
	__tsan_acquire(&sm_rcu_tsan_token);
	__tsan_acquire(obj);
}
static inline void sm_call_rcu(struct rcu_head *h, void (*fn)(struct rcu_head *))
{
	__tsan_release(h);
	call_rcu(h, fn);
}
#else
static inline void sm_rcu_read_lock(void) { rcu_read_lock(); }
static inline void sm_rcu_read_unlock(void) { rcu_read_unlock(); }
static inline void sm_rcu_gp_done(void *obj) { (void)obj; }
static inline void sm_call_rcu(struct rcu_head *h, void (*fn)(struct rcu_head *)) { call_rcu(h, fn); }
#endif
static inline void sm_synchronize_rcu(void)
{
	synchronize_rcu();
	sm_rcu_gp_done(&sm_rcu_registered);
}

#endif
