/* Lazy liburcu thread registration; see rcu.h. */
#include <pthread.h>
#include "base/rcu.h"

__thread bool sm_rcu_registered SM_TLS_IE;
#ifdef SM_TSAN
char sm_rcu_tsan_token;
#endif
static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;

static void rcu_thread_exit(void *arg)
{
	(void)arg;
	if (sm_rcu_registered) {
		rcu_unregister_thread();
		sm_rcu_registered = false;
	}
}

static void rcu_key_init(void)
{
	pthread_key_create(&rcu_key, rcu_thread_exit);
}

void sm_rcu_register_slow(void)
{
	pthread_once(&rcu_once, rcu_key_init);
	rcu_register_thread();
	sm_rcu_registered = true;
	/* Any non-NULL value makes the destructor run at thread exit. */
	pthread_setspecific(rcu_key, (void *)1);
}
