/*
 * The mmap_lock: a sleeping, fair reader-writer semaphore whose write hold
 * can be downgraded to a read hold atomically, with always-on hold-time and
 * wait-time instrumentation (struct sm_lock_stats, include/softmm.h).
 * Linux's names and semantics: down_read/up_read, down_write/up_write,
 * downgrade_write, the trylocks. rwsem.c explains the design.
 *
 * Rules, as in Linux: a hold is released by the thread that took it (the
 * hold-time records and the assertions are per thread); a holder may sleep;
 * taking a read hold on an rwsem this thread already holds can deadlock
 * behind a queued writer, because the lock is fair.
 *
 * wait_lock is a leaf: it is taken only inside rwsem.c, never across a call
 * out of it.
 */
#ifndef SM_BASE_RWSEM_H
#define SM_BASE_RWSEM_H

#include <pthread.h>
#include <stdint.h>
#include <softmm.h>
#include "base/compiler.h"
#include "base/list.h"

struct rwsem {
	uint64_t count;              /* atomic: the state word (rwsem.c); its RMWs order the holds */
	pthread_mutex_t wait_lock;   /* protects wait_list and every change of RWSEM_FLAG_WAITERS */
	struct list_head wait_list;  /* wait_lock: FIFO of struct rwsem_waiter, on the waiters' stacks */
	struct sm_lock_stats stats;  /* no lock: relaxed atomics, exact counts, approximate snapshot */
};

void rwsem_init(struct rwsem *s);
void rwsem_destroy(struct rwsem *s);   /* Precondition: nobody holds or waits */

void down_read(struct rwsem *s);
int  down_read_trylock(struct rwsem *s);   /* 1 if now held; 0 if held by a writer or contended */
void up_read(struct rwsem *s);
void down_write(struct rwsem *s);
int  down_write_trylock(struct rwsem *s);  /* 1 if now held; 0 if held at all */
void up_write(struct rwsem *s);
/* Write hold -> read hold, no writer in between; queued readers at the head
 * of the queue start. Precondition: held for writing by this thread. */
void downgrade_write(struct rwsem *s);

/* Snapshots, for assertions and heuristics (a racing down/up may change them). */
int  rwsem_is_locked(struct rwsem *s);         /* held by anybody, either mode */
int  rwsem_is_write_locked(struct rwsem *s);   /* held for writing by anybody */
int  rwsem_is_contended(struct rwsem *s);      /* somebody is queued */
/* Whether a writer is queued, for a reader that would let it in (munmap's
 * zap). Precondition: held for reading by this thread, so that whoever is
 * queued waits behind a writer: readers queue only behind one. */
int  rwsem_writer_waiting(struct rwsem *s);
/* Whether this thread holds it: for writing if write is set, else in either
 * mode. Exact while this thread holds at most 16 rwsem holds; beyond that
 * it falls back to rwsem_is_locked / rwsem_is_write_locked. */
int  rwsem_held_by_current(struct rwsem *s, int write);

#define rwsem_assert_held(s) \
	SM_ASSERT(rwsem_held_by_current((s), 0), "%s: rwsem %p not held by this thread", __func__, (void *)(s))
#define rwsem_assert_write_held(s) \
	SM_ASSERT(rwsem_held_by_current((s), 1), "%s: rwsem %p not write-held by this thread", __func__, (void *)(s))

/* Instrumentation: a relaxed snapshot of the counters, and their reset. */
void rwsem_get_stats(struct rwsem *s, struct sm_lock_stats *out);
void rwsem_reset_stats(struct rwsem *s);

#endif
