/*
 * The mmap_lock: a fair, sleeping reader-writer semaphore with downgrade,
 * and its instrumentation.
 *
 * The state word, count (64 bits, changed only by atomic RMWs):
 *
 *   bit 0     RWSEM_WRITER_LOCKED  a writer holds it
 *   bit 1     RWSEM_FLAG_WAITERS   wait_list is not empty
 *   bits 8..  readers, in units of RWSEM_READER_BIAS
 *
 * Fast paths, one RMW each: down_read adds a reader bias and looks at what
 * was there before; up_read subtracts it; down_write swaps 0 for WRITER;
 * up_write subtracts WRITER. A down_read that finds WRITER or WAITERS set
 * has added a bias it does not own; it takes it back in the slow path, under
 * wait_lock. Such a transient bias can make a writer's attempt fail, never
 * succeed wrongly, and it is why the reader count is 56 bits wide.
 *
 * Fairness. Once anybody waits, WAITERS is set, every new arrival fails its
 * fast path and joins the tail of one FIFO queue, readers and writers alike,
 * so a stream of readers cannot starve a writer nor writers the readers.
 * The lock is then handed over, not fought for: whoever makes it free while
 * WAITERS is set (the count becomes exactly WAITERS, or a downgrade leaves
 * only readers) calls rwsem_wake, which, under wait_lock, takes the lock in
 * the name of the head of the queue, one writer or every reader up to the
 * next writer, with an RMW on count, and only then tells them. A woken
 * waiter already owns the lock. The price is a convoy: under contention the
 * lock sits idle while the next owner wakes up, which is why waiters spin a
 * little before they sleep.
 *
 * Invariants, under wait_lock: WAITERS is set exactly when wait_list is not
 * empty; WRITER is set only by a fast-path down_write (which needs count 0,
 * so no WAITERS) or by a grant, so a grant that sees WRITER clear can rely
 * on it staying clear.
 *
 * downgrade_write adds one reader bias and takes WRITER away in a single
 * RMW: there is no moment at which the lock is free, so no writer, queued or
 * arriving, can get in between. If anyone is queued it then grants the
 * readers at the head of the queue, which run alongside the downgrader; a
 * writer at the head keeps waiting for every reader, the downgrader too.
 *
 * Waiting. A waiter's record (struct rwsem_waiter) lives on its stack. The
 * granter unlinks it under wait_lock onto a private list, drops wait_lock,
 * then sets the record's state to GRANTED with release semantics (which
 * carries the happens-before from the previous holder's release on count,
 * through the granter's acquire on count, to the new owner's acquire load
 * of state, and is all that ThreadSanitizer needs to see) and, if the waiter
 * had gone to sleep, FUTEX_WAKEs it. After that store the record may be
 * gone: the granter reads nothing from it, and the wake may land on a dead
 * stack address, where at worst it is a spurious wakeup for a futex that
 * happens to live there, which every futex user tolerates (glibc's own
 * mutex unlock has the same shape).
 *
 * Instrumentation (struct sm_lock_stats, relaxed atomics, no lock). Each
 * acquisition pushes (lock, mode, start time) on a per-thread stack of 16;
 * the release by the same thread finds its entry and accounts the hold. A
 * hold taken with the stack full is counted in acquisitions but its time is
 * not recorded. downgrade_write ends the write hold and begins a read hold
 * (counted as a read acquisition). Waits are timed on the slow path only,
 * from the failed fast path to the moment of ownership. An uncontended
 * down_read+up_read costs about 28 ns on a 2020s x86 server, of which the
 * two clock reads are 17 and the lock word alone 10.
 */
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "base/clock.h"
#include "base/rwsem.h"

#define RWSEM_WRITER_LOCKED  (1ull << 0)
#define RWSEM_FLAG_WAITERS   (1ull << 1)
#define RWSEM_READER_SHIFT   8
#define RWSEM_READER_BIAS    (1ull << RWSEM_READER_SHIFT)
#define RWSEM_READER_MASK    (~(RWSEM_READER_BIAS - 1))

#define RWSEM_SPINS          100   /* cpu_relax()es before a waiter sleeps: a few us */
#define RWSEM_HOLD_DEPTH     16

enum rwsem_waiter_state {
	RWSEM_WAITER_SPINNING,   /* queued, not yet asleep */
	RWSEM_WAITER_SLEEPING,   /* queued, in (or entering) FUTEX_WAIT */
	RWSEM_WAITER_GRANTED,    /* owns the lock; the record is the waiter's again */
};

struct rwsem_waiter {
	struct list_head list;   /* wait_lock while on wait_list; then the granter's */
	int mode;                /* SM_LOCK_READ or SM_LOCK_WRITE; set before queueing */
	uint32_t state;          /* atomic; futex word: enum rwsem_waiter_state */
};

/* ---------------------------------------------------------------- instrumentation */

struct rwsem_hold {
	struct rwsem *sem;
	uint64_t start_ns;
	int mode;
};

/* This thread's holds, innermost last. */
struct rwsem_holds {
	int depth;                      /* entries in use */
	int untracked;                  /* holds taken while full, not yet released */
	struct rwsem_hold h[RWSEM_HOLD_DEPTH];
};
static __thread struct rwsem_holds rwsem_holds SM_TLS_IE;

static void stat_add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static void stat_max(uint64_t *p, uint64_t v)
{
	uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (v > old &&
	       !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* Bucket i holds [2^i, 2^(i+1)) ns; 0 also takes 0 and 1; the last is open. */
static unsigned hold_bucket(uint64_t ns)
{
	unsigned b = ns < 2 ? 0 : 63 - (unsigned)__builtin_clzll(ns);

	return b < SM_LOCK_HIST_BUCKETS ? b : SM_LOCK_HIST_BUCKETS - 1;
}

static void hold_begin(struct rwsem *s, int mode, uint64_t now)
{
	struct rwsem_holds *hs = &rwsem_holds;

	stat_add(&s->stats.acquisitions[mode], 1);
	if (likely(hs->depth < RWSEM_HOLD_DEPTH))
		hs->h[hs->depth++] = (struct rwsem_hold){ .sem = s, .start_ns = now, .mode = mode };
	else
		hs->untracked++;
}

/* This thread's entry for a hold of s in mode, or -1. */
static int hold_find(struct rwsem *s, int mode)
{
	struct rwsem_holds *hs = &rwsem_holds;

	for (int i = hs->depth - 1; i >= 0; i--)
		if (hs->h[i].sem == s && hs->h[i].mode == mode)
			return i;
	return -1;
}

static void hold_account(struct rwsem *s, int mode, uint64_t start, uint64_t end)
{
	uint64_t ns = end > start ? end - start : 0;

	stat_add(&s->stats.hold_total_ns[mode], ns);
	stat_add(&s->stats.hold_hist[mode][hold_bucket(ns)], 1);
	stat_max(&s->stats.hold_max_ns[mode], ns);
}

static void hold_end(struct rwsem *s, int mode)
{
	struct rwsem_holds *hs = &rwsem_holds;
	int i = hold_find(s, mode);

	if (unlikely(i < 0)) {
		if (hs->untracked > 0)
			hs->untracked--;
		return;
	}
	hold_account(s, mode, hs->h[i].start_ns, sm_now_ns());
	hs->depth--;
	memmove(&hs->h[i], &hs->h[i + 1], (size_t)(hs->depth - i) * sizeof(hs->h[0]));
}

/* The write hold ends and a read hold begins, at the same instant. */
static void hold_downgrade(struct rwsem *s)
{
	int i = hold_find(s, SM_LOCK_WRITE);
	uint64_t now = sm_now_ns();

	stat_add(&s->stats.acquisitions[SM_LOCK_READ], 1);
	if (i < 0)
		return;   /* untracked, and stays so as a read hold */
	hold_account(s, SM_LOCK_WRITE, rwsem_holds.h[i].start_ns, now);
	rwsem_holds.h[i].mode = SM_LOCK_READ;
	rwsem_holds.h[i].start_ns = now;
}

static void wait_account(struct rwsem *s, int mode, uint64_t start, uint64_t end)
{
	uint64_t ns = end > start ? end - start : 0;

	stat_add(&s->stats.contended[mode], 1);
	stat_add(&s->stats.wait_total_ns[mode], ns);
	stat_max(&s->stats.wait_max_ns[mode], ns);
}

/* ---------------------------------------------------------------- waiting */

static void futex_wait(uint32_t *word, uint32_t val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Returns once the lock has been granted to w. */
static void rwsem_wait_granted(struct rwsem_waiter *w)
{
	for (int spins = 0;; spins++) {
		uint32_t st = __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);

		if (st == RWSEM_WAITER_GRANTED)
			return;
		if (spins < RWSEM_SPINS) {
			cpu_relax();
			continue;
		}
		if (st == RWSEM_WAITER_SPINNING &&
		    !__atomic_compare_exchange_n(&w->state, &st, RWSEM_WAITER_SLEEPING, false,
						 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			continue;   /* granted meanwhile */
		futex_wait(&w->state, RWSEM_WAITER_SLEEPING);
	}
}

/* Tell the waiters on `granted` (already owners) to run. Call without wait_lock. */
static void rwsem_wake_granted(struct list_head *granted)
{
	struct list_head *p = granted->next;

	while (p != granted) {
		struct rwsem_waiter *w = list_entry(p, struct rwsem_waiter, list);

		p = p->next;   /* now: after the store below, w may be gone */
		if (__atomic_exchange_n(&w->state, RWSEM_WAITER_GRANTED, __ATOMIC_RELEASE) ==
		    RWSEM_WAITER_SLEEPING)
			futex_wake(&w->state);
	}
}

static void waiter_move(struct rwsem_waiter *w, struct list_head *to)
{
	list_del(&w->list);
	list_add_tail(&w->list, to);
}

/*
 * Take the lock for the head of the queue if it is free for it: one writer,
 * or every reader up to the next writer. The granted waiters go on `granted`
 * for rwsem_wake_granted. If the lock is not free, its holder's release will
 * call this again.
 * Precondition: wait_lock held.
 */
static void rwsem_grant_locked(struct rwsem *s, struct list_head *granted)
{
	struct rwsem_waiter *w;
	uint64_t c, adjust = 0;

	if (list_empty(&s->wait_list))
		return;
	w = list_first_entry(&s->wait_list, struct rwsem_waiter, list);
	c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
	if (w->mode == SM_LOCK_WRITE) {
		uint64_t next = RWSEM_WRITER_LOCKED;

		if (w->list.next != &s->wait_list)
			next |= RWSEM_FLAG_WAITERS;
		do {
			if (c & (RWSEM_WRITER_LOCKED | RWSEM_READER_MASK))
				return;
		} while (!__atomic_compare_exchange_n(&s->count, &c, next, true, __ATOMIC_ACQUIRE,
						      __ATOMIC_RELAXED));
		waiter_move(w, granted);
		return;
	}
	if (c & RWSEM_WRITER_LOCKED)
		return;
	do {
		waiter_move(w, granted);
		adjust += RWSEM_READER_BIAS;
		if (list_empty(&s->wait_list)) {
			adjust -= RWSEM_FLAG_WAITERS;
			break;
		}
		w = list_first_entry(&s->wait_list, struct rwsem_waiter, list);
	} while (w->mode == SM_LOCK_READ);
	__atomic_fetch_add(&s->count, adjust, __ATOMIC_ACQUIRE);
}

/* The lock has just become free for the head of the queue: hand it over. */
static void rwsem_wake(struct rwsem *s)
{
	struct list_head granted;

	INIT_LIST_HEAD(&granted);
	pthread_mutex_lock(&s->wait_lock);
	rwsem_grant_locked(s, &granted);
	pthread_mutex_unlock(&s->wait_lock);
	rwsem_wake_granted(&granted);
}

/* With nobody queued, whether count lets this mode in. */
static bool rwsem_free_for(uint64_t c, int mode)
{
	return mode == SM_LOCK_READ ? !(c & RWSEM_WRITER_LOCKED) : c == 0;
}

/*
 * Acquire by queueing, or at once if nobody is queued and the lock is free
 * for mode. A reader comes with the bias its fast path added, taken back
 * here. Returns the time the lock became ours.
 */
static uint64_t rwsem_down_slowpath(struct rwsem *s, int mode, bool reader_bias)
{
	struct rwsem_waiter w = { .mode = mode, .state = RWSEM_WAITER_SPINNING };
	struct list_head granted;
	uint64_t start = sm_now_ns(), c, now;
	bool queue = true;

	INIT_LIST_HEAD(&granted);
	pthread_mutex_lock(&s->wait_lock);
	if (reader_bias) {
		c = __atomic_sub_fetch(&s->count, RWSEM_READER_BIAS, __ATOMIC_RELAXED);
		if (c == RWSEM_FLAG_WAITERS)
			rwsem_grant_locked(s, &granted);   /* our bias may have stalled a grant */
	}
	if (list_empty(&s->wait_list)) {
		uint64_t take = mode == SM_LOCK_READ ? RWSEM_READER_BIAS : RWSEM_WRITER_LOCKED;

		c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
		SM_ASSERT(!(c & RWSEM_FLAG_WAITERS), "rwsem %p: WAITERS without waiters", (void *)s);
		for (;;) {
			if (rwsem_free_for(c, mode)) {
				if (__atomic_compare_exchange_n(&s->count, &c, c + take, true,
								__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
					queue = false;
					break;
				}
			} else if (__atomic_compare_exchange_n(&s->count, &c, c | RWSEM_FLAG_WAITERS,
							       true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
				break;
			}
		}
	}
	if (queue)
		list_add_tail(&w.list, &s->wait_list);
	pthread_mutex_unlock(&s->wait_lock);
	rwsem_wake_granted(&granted);
	if (queue)
		rwsem_wait_granted(&w);
	now = sm_now_ns();
	wait_account(s, mode, start, now);
	return now;
}

/* ---------------------------------------------------------------- the API */

void rwsem_init(struct rwsem *s)
{
	s->count = 0;
	pthread_mutex_init(&s->wait_lock, NULL);
	INIT_LIST_HEAD(&s->wait_list);
	memset(&s->stats, 0, sizeof(s->stats));
}

void rwsem_destroy(struct rwsem *s)
{
	SM_ASSERT(__atomic_load_n(&s->count, __ATOMIC_RELAXED) == 0 && list_empty(&s->wait_list),
		  "rwsem %p destroyed while held or awaited", (void *)s);
	pthread_mutex_destroy(&s->wait_lock);
}

void down_read(struct rwsem *s)
{
	uint64_t c = __atomic_fetch_add(&s->count, RWSEM_READER_BIAS, __ATOMIC_ACQUIRE);

	if (likely(!(c & (RWSEM_WRITER_LOCKED | RWSEM_FLAG_WAITERS))))
		hold_begin(s, SM_LOCK_READ, sm_now_ns());
	else
		hold_begin(s, SM_LOCK_READ, rwsem_down_slowpath(s, SM_LOCK_READ, true));
}

int down_read_trylock(struct rwsem *s)
{
	uint64_t c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);

	while (!(c & (RWSEM_WRITER_LOCKED | RWSEM_FLAG_WAITERS)))
		if (__atomic_compare_exchange_n(&s->count, &c, c + RWSEM_READER_BIAS, true,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			hold_begin(s, SM_LOCK_READ, sm_now_ns());
			return 1;
		}
	return 0;
}

void up_read(struct rwsem *s)
{
	uint64_t c;

	hold_end(s, SM_LOCK_READ);
	c = __atomic_sub_fetch(&s->count, RWSEM_READER_BIAS, __ATOMIC_RELEASE);
	SM_ASSERT((int64_t)c >= 0, "rwsem %p: up_read without a read hold", (void *)s);
	if (unlikely(c == RWSEM_FLAG_WAITERS))
		rwsem_wake(s);
}

void down_write(struct rwsem *s)
{
	uint64_t c = 0;

	if (likely(__atomic_compare_exchange_n(&s->count, &c, RWSEM_WRITER_LOCKED, false,
					       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)))
		hold_begin(s, SM_LOCK_WRITE, sm_now_ns());
	else
		hold_begin(s, SM_LOCK_WRITE, rwsem_down_slowpath(s, SM_LOCK_WRITE, false));
}

int down_write_trylock(struct rwsem *s)
{
	uint64_t c = 0;

	if (!__atomic_compare_exchange_n(&s->count, &c, RWSEM_WRITER_LOCKED, false,
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return 0;
	hold_begin(s, SM_LOCK_WRITE, sm_now_ns());
	return 1;
}

void up_write(struct rwsem *s)
{
	uint64_t old;

	hold_end(s, SM_LOCK_WRITE);
	old = __atomic_fetch_sub(&s->count, RWSEM_WRITER_LOCKED, __ATOMIC_RELEASE);
	SM_ASSERT(old & RWSEM_WRITER_LOCKED, "rwsem %p: up_write without a write hold", (void *)s);
	if (unlikely(old == (RWSEM_WRITER_LOCKED | RWSEM_FLAG_WAITERS)))
		rwsem_wake(s);
}

void downgrade_write(struct rwsem *s)
{
	uint64_t old;

	hold_downgrade(s);
	old = __atomic_fetch_add(&s->count, RWSEM_READER_BIAS - RWSEM_WRITER_LOCKED,
				 __ATOMIC_RELEASE);
	SM_ASSERT(old & RWSEM_WRITER_LOCKED, "rwsem %p: downgrade without a write hold", (void *)s);
	if (old & RWSEM_FLAG_WAITERS)
		rwsem_wake(s);
}

int rwsem_is_locked(struct rwsem *s)
{
	return (__atomic_load_n(&s->count, __ATOMIC_RELAXED) &
		(RWSEM_WRITER_LOCKED | RWSEM_READER_MASK)) != 0;
}

int rwsem_is_write_locked(struct rwsem *s)
{
	return (__atomic_load_n(&s->count, __ATOMIC_RELAXED) & RWSEM_WRITER_LOCKED) != 0;
}

int rwsem_is_contended(struct rwsem *s)
{
	return (__atomic_load_n(&s->count, __ATOMIC_RELAXED) & RWSEM_FLAG_WAITERS) != 0;
}

int rwsem_writer_waiting(struct rwsem *s)
{
	/* Held for reading, the lock is free for readers: a reader that
	 * queued had found a writer ahead of it, and grants run every reader
	 * up to the next writer, so the queue's head is a writer. */
	return rwsem_is_contended(s);
}

int rwsem_held_by_current(struct rwsem *s, int write)
{
	if (hold_find(s, SM_LOCK_WRITE) >= 0 || (!write && hold_find(s, SM_LOCK_READ) >= 0))
		return 1;
	if (rwsem_holds.untracked == 0)
		return 0;
	return write ? rwsem_is_write_locked(s) : rwsem_is_locked(s);
}

void rwsem_get_stats(struct rwsem *s, struct sm_lock_stats *out)
{
	const struct sm_lock_stats *st = &s->stats;

	for (int m = 0; m < 2; m++) {
		out->acquisitions[m] = __atomic_load_n(&st->acquisitions[m], __ATOMIC_RELAXED);
		out->hold_max_ns[m] = __atomic_load_n(&st->hold_max_ns[m], __ATOMIC_RELAXED);
		out->hold_total_ns[m] = __atomic_load_n(&st->hold_total_ns[m], __ATOMIC_RELAXED);
		for (int b = 0; b < SM_LOCK_HIST_BUCKETS; b++)
			out->hold_hist[m][b] = __atomic_load_n(&st->hold_hist[m][b], __ATOMIC_RELAXED);
		out->wait_max_ns[m] = __atomic_load_n(&st->wait_max_ns[m], __ATOMIC_RELAXED);
		out->wait_total_ns[m] = __atomic_load_n(&st->wait_total_ns[m], __ATOMIC_RELAXED);
		out->contended[m] = __atomic_load_n(&st->contended[m], __ATOMIC_RELAXED);
	}
}

void rwsem_reset_stats(struct rwsem *s)
{
	struct sm_lock_stats *st = &s->stats;

	for (int m = 0; m < 2; m++) {
		__atomic_store_n(&st->acquisitions[m], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&st->hold_max_ns[m], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&st->hold_total_ns[m], 0, __ATOMIC_RELAXED);
		for (int b = 0; b < SM_LOCK_HIST_BUCKETS; b++)
			__atomic_store_n(&st->hold_hist[m][b], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&st->wait_max_ns[m], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&st->wait_total_ns[m], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&st->contended[m], 0, __ATOMIC_RELAXED);
	}
}
