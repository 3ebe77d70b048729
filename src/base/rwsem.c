/*
 * A fair, sleeping reader-writer semaphore with downgrade.
 *
 * State word (count):
 *   bit 31  RWSEM_WRITER   a writer holds it
 *   bit 30  RWSEM_WAITERS  the wait queue is not empty
 *   0..29                  number of readers holding it
 *
 * Uncontended acquisitions and releases are one compare-and-swap (or one
 * atomic add) on count. Once anybody waits, WAITERS is set and every new
 * arrival takes the slow path and queues behind: the queue is FIFO, so a
 * stream of readers cannot starve a writer, nor writers the readers. A
 * release that sees WAITERS hands the lock over directly, under wait_lock,
 * to the head of the queue: one writer, or every reader up to the next
 * queued writer. Handing over (rather than waking waiters to compete) is
 * what makes it fair, and it means a woken waiter already owns the lock.
 *
 * downgrade_write turns WRITER into one reader in a single atomic step, so
 * no other writer can slip in between; the readers queued at the front are
 * then granted and run alongside the downgrader.
 *
 * Waiters sleep on a futex in their own stack-allocated record after a
 * short spin. The granter sets `granted` with release semantics after
 * unlinking the record and never touches it again but for the futex wake.
 *
 * Instrumentation: every acquisition records its start time in a small
 * per-thread stack, so the matching release (in the same thread, as with
 * Linux's rwsems) can account the hold time; downgrade ends the write hold
 * and starts a read hold. Waits are timed on the slow path only.
 */
#include <errno.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "base/clock.h"
#include "base/rwsem.h"

#define RWSEM_WRITER  0x80000000u
#define RWSEM_WAITERS 0x40000000u
#define RWSEM_READERS 0x3fffffffu

enum { MODE_READ = SM_LOCK_READ, MODE_WRITE = SM_LOCK_WRITE };

struct rwsem_waiter {
	struct list_head list;   /* wait_lock */
	int mode;
	uint32_t granted;        /* atomic: 1 once the lock is ours */
};

/* ---- instrumentation ---- */

#define HOLD_STACK 16
struct hold {
	const struct rwsem *s;
	uint64_t start;
	int mode;
};
static __thread struct hold holds[HOLD_STACK] SM_TLS_IE;
static __thread int nholds SM_TLS_IE;

static void stat_max(uint64_t *p, uint64_t v)
{
	uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (v > old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED,
						       __ATOMIC_RELAXED))
		;
}

static unsigned hist_bucket(uint64_t ns)
{
	unsigned b = ns < 2 ? 0 : 63u - (unsigned)__builtin_clzll(ns);

	return b < SM_LOCK_HIST_BUCKETS ? b : SM_LOCK_HIST_BUCKETS - 1;
}

static void hold_begin(struct rwsem *s, int mode, uint64_t now)
{
	__atomic_fetch_add(&s->stats.acquisitions[mode], 1, __ATOMIC_RELAXED);
	if (nholds < HOLD_STACK)
		holds[nholds] = (struct hold){ s, now, mode };
	nholds++;
}

static void hold_end(struct rwsem *s, int mode)
{
	uint64_t ns;
	int i;

	nholds--;
	if (nholds >= HOLD_STACK)
		return;   /* deeper than we track: not recorded */
	for (i = nholds; i >= 0 && holds[i].s != s; i--)
		;
	if (i < 0)
		return;   /* released by another thread than took it */
	ns = sm_now_ns() - holds[i].start;
	holds[i] = holds[nholds];
	__atomic_fetch_add(&s->stats.hold_total_ns[mode], ns, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->stats.hold_hist[mode][hist_bucket(ns)], 1, __ATOMIC_RELAXED);
	stat_max(&s->stats.hold_max_ns[mode], ns);
}

static void wait_account(struct rwsem *s, int mode, uint64_t t0, uint64_t t1)
{
	__atomic_fetch_add(&s->stats.contended[mode], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->stats.wait_total_ns[mode], t1 - t0, __ATOMIC_RELAXED);
	stat_max(&s->stats.wait_max_ns[mode], t1 - t0);
}

/* ---- futex ---- */

static void futex_wait(uint32_t *addr, uint32_t val)
{
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ---- the lock ---- */

void rwsem_init(struct rwsem *s)
{
	s->count = 0;
	pthread_mutex_init(&s->wait_lock, NULL);
	INIT_LIST_HEAD(&s->waiters);
	memset(&s->stats, 0, sizeof(s->stats));
}

void rwsem_destroy(struct rwsem *s)
{
	pthread_mutex_destroy(&s->wait_lock);
}

static bool try_read(struct rwsem *s, uint32_t forbid)
{
	uint32_t c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);

	while (!(c & forbid))
		if (__atomic_compare_exchange_n(&s->count, &c, c + 1, true, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return true;
	return false;
}

static bool try_write(struct rwsem *s, uint32_t keep)
{
	uint32_t c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);

	while ((c & ~keep) == 0)
		if (__atomic_compare_exchange_n(&s->count, &c, c | RWSEM_WRITER, true,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return true;
	return false;
}

/* Hand the lock to the queue's head (writer) or leading readers.
 * Precondition: wait_lock held. */
static void grant_waiters(struct rwsem *s)
{
	while (!list_empty(&s->waiters)) {
		struct rwsem_waiter *w = list_first_entry(&s->waiters, struct rwsem_waiter, list);
		bool ok = w->mode == MODE_WRITE ? try_write(s, RWSEM_WAITERS)
						: try_read(s, RWSEM_WRITER);

		if (!ok)
			break;
		list_del(&w->list);
		__atomic_store_n(&w->granted, 1, __ATOMIC_RELEASE);
		futex_wake(&w->granted);
		if (w->mode == MODE_WRITE)
			break;
	}
	if (list_empty(&s->waiters))
		__atomic_fetch_and(&s->count, ~RWSEM_WAITERS, __ATOMIC_RELAXED);
}

static void slow_acquire(struct rwsem *s, int mode)
{
	struct rwsem_waiter w = { .mode = mode, .granted = 0 };
	uint64_t t0 = sm_now_ns();

	pthread_mutex_lock(&s->wait_lock);
	__atomic_fetch_or(&s->count, RWSEM_WAITERS, __ATOMIC_ACQUIRE);
	/* With nobody queued the lock may have come free meanwhile. */
	if (list_empty(&s->waiters) &&
	    (mode == MODE_WRITE ? try_write(s, RWSEM_WAITERS) : try_read(s, RWSEM_WRITER))) {
		grant_waiters(s);   /* only clears WAITERS: the queue is empty */
		pthread_mutex_unlock(&s->wait_lock);
		wait_account(s, mode, t0, sm_now_ns());
		return;
	}
	list_add_tail(&w.list, &s->waiters);
	pthread_mutex_unlock(&s->wait_lock);
	for (int spin = 0; !__atomic_load_n(&w.granted, __ATOMIC_ACQUIRE); spin++) {
		if (spin < 100)
			cpu_relax();
		else
			futex_wait(&w.granted, 0);
	}
	wait_account(s, mode, t0, sm_now_ns());
}

void down_read(struct rwsem *s)
{
	if (!try_read(s, RWSEM_WRITER | RWSEM_WAITERS))
		slow_acquire(s, MODE_READ);
	hold_begin(s, MODE_READ, sm_now_ns());
}

int down_read_trylock(struct rwsem *s)
{
	if (!try_read(s, RWSEM_WRITER | RWSEM_WAITERS))
		return 0;
	hold_begin(s, MODE_READ, sm_now_ns());
	return 1;
}

void down_write(struct rwsem *s)
{
	if (!try_write(s, 0))
		slow_acquire(s, MODE_WRITE);
	hold_begin(s, MODE_WRITE, sm_now_ns());
}

int down_write_trylock(struct rwsem *s)
{
	if (!try_write(s, 0))
		return 0;
	hold_begin(s, MODE_WRITE, sm_now_ns());
	return 1;
}

static void wake_if_waiters(struct rwsem *s)
{
	pthread_mutex_lock(&s->wait_lock);
	grant_waiters(s);
	pthread_mutex_unlock(&s->wait_lock);
}

void up_read(struct rwsem *s)
{
	uint32_t c;

	hold_end(s, MODE_READ);
	c = __atomic_sub_fetch(&s->count, 1, __ATOMIC_RELEASE);
	if (unlikely(c == RWSEM_WAITERS))
		wake_if_waiters(s);
}

void up_write(struct rwsem *s)
{
	uint32_t c = RWSEM_WRITER;

	hold_end(s, MODE_WRITE);
	if (__atomic_compare_exchange_n(&s->count, &c, 0, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return;
	__atomic_fetch_and(&s->count, ~RWSEM_WRITER, __ATOMIC_RELEASE);
	wake_if_waiters(s);
}

void downgrade_write(struct rwsem *s)
{
	uint32_t c = RWSEM_WRITER;

	hold_end(s, MODE_WRITE);
	hold_begin(s, MODE_READ, sm_now_ns());
	/* WRITER becomes one reader in one step: no writer can get between. */
	if (__atomic_compare_exchange_n(&s->count, &c, 1, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&s->wait_lock);
	__atomic_fetch_add(&s->count, 1 - RWSEM_WRITER, __ATOMIC_RELEASE);
	grant_waiters(s);
	pthread_mutex_unlock(&s->wait_lock);
}

int rwsem_is_locked(struct rwsem *s)
{
	return (__atomic_load_n(&s->count, __ATOMIC_RELAXED) & (RWSEM_WRITER | RWSEM_READERS)) != 0;
}

int rwsem_is_write_locked(struct rwsem *s)
{
	return (__atomic_load_n(&s->count, __ATOMIC_RELAXED) & RWSEM_WRITER) != 0;
}

void rwsem_get_stats(struct rwsem *s, struct sm_lock_stats *out)
{
	const uint64_t *src = (const uint64_t *)&s->stats;
	uint64_t *dst = (uint64_t *)out;

	_Static_assert(sizeof(struct rwsem_stats) == sizeof(struct sm_lock_stats), "stats layout");
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void rwsem_reset_stats(struct rwsem *s)
{
	uint64_t *p = (uint64_t *)&s->stats;

	for (size_t i = 0; i < sizeof(s->stats) / sizeof(uint64_t); i++)
		__atomic_store_n(&p[i], 0, __ATOMIC_RELAXED);
}
