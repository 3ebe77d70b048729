/*
 * Spinlocks for the short critical sections of the page-table layer (PTE and
 * PMD table locks, the zone lock). Test-and-test-and-set: waiters spin on a
 * plain load so the line stays shared until the holder releases it. Four
 * bytes, so a page-table page can carry its own lock in its struct page.
 * Holders never sleep and never take the mmap_lock.
 */
#ifndef SM_BASE_SPINLOCK_H
#define SM_BASE_SPINLOCK_H

#include <sched.h>
#include "base/compiler.h"

typedef struct spinlock {
	uint32_t locked;
} spinlock_t;

static inline void spin_lock_init(spinlock_t *l) { l->locked = 0; }

static inline bool spin_trylock(spinlock_t *l)
{
	return !__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE);
}

static inline void spin_lock(spinlock_t *l)
{
	unsigned spins = 0;

	while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED)) {
			/* The host may have descheduled the holder: yield
			 * rather than burn a whole time slice. */
			if (++spins > 1000) {
				sched_yield();
				spins = 0;
			} else {
				cpu_relax();
			}
		}
	}
}

static inline void spin_unlock(spinlock_t *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

static inline bool spin_is_locked(spinlock_t *l)
{
	return __atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0;
}

#endif
