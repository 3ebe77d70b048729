/*
 * The mmap_lock: a sleeping, fair reader-writer semaphore that can
 * downgrade a write hold to a read hold atomically, with hold-time and
 * wait-time instrumentation (include/softmm.h: struct sm_lock_stats).
 * See rwsem.c for the design.
 */
#ifndef SM_BASE_RWSEM_H
#define SM_BASE_RWSEM_H

#include <pthread.h>
#include <softmm.h>
#include "base/list.h"

struct rwsem_stats {
	uint64_t acquisitions[2];
	uint64_t hold_max_ns[2];
	uint64_t hold_total_ns[2];
	uint64_t hold_hist[2][SM_LOCK_HIST_BUCKETS];
	uint64_t wait_max_ns[2];
	uint64_t wait_total_ns[2];
	uint64_t contended[2];
};

struct rwsem {
	uint32_t count;              /* atomic: RWSEM_WRITER | RWSEM_WAITERS | readers */
	pthread_mutex_t wait_lock;   /* protects waiters and every WAITERS change */
	struct list_head waiters;    /* FIFO of struct rwsem_waiter; wait_lock */
	struct rwsem_stats stats;    /* relaxed atomics */
};

void rwsem_init(struct rwsem *s);
void rwsem_destroy(struct rwsem *s);
void down_read(struct rwsem *s);
int  down_read_trylock(struct rwsem *s);
void up_read(struct rwsem *s);
void down_write(struct rwsem *s);
int  down_write_trylock(struct rwsem *s);
void up_write(struct rwsem *s);
void downgrade_write(struct rwsem *s);
int  rwsem_is_locked(struct rwsem *s);
int  rwsem_is_write_locked(struct rwsem *s);
void rwsem_get_stats(struct rwsem *s, struct sm_lock_stats *out);
void rwsem_reset_stats(struct rwsem *s);

#define rwsem_assert_held(s) SM_ASSERT(rwsem_is_locked(s), "rwsem not held")
#define rwsem_assert_write_held(s) SM_ASSERT(rwsem_is_write_locked(s), "rwsem not write-held")

#endif
