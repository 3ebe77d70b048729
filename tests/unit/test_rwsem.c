/*
 * test_rwsem — the mmap_lock (base/rwsem.c) and its clock (base/clock.h).
 *
 * What is proved: writers exclude everybody; readers share; the queue is
 * fair both ways (a writer is not starved by a stream of readers, nor a
 * reader by a stream of writers, and a reader arriving behind a queued
 * writer waits its turn); downgrade_write lets no writer in before the
 * downgrader's up_read and starts the readers queued behind it; the
 * trylocks; the assertions; the statistics. A randomized mix of every
 * operation checks the exclusion invariants under load; it prints its seed
 * and RWSEM_SEED=<n> replays one.
 *
 * Threads never call cmocka's assertions (they longjmp): they count
 * failures, and the main thread asserts on the counts. Every wait on another
 * thread is bounded, so a broken lock fails the test instead of hanging it.
 * Also prints the cost of an uncontended down_read+up_read and of the clock.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/clock.h"
#include "base/rwsem.h"

#define MS 1000000ull   /* ns */
#define SEC (1000 * MS)
#define PATIENCE (5 * SEC)   /* longest any bounded wait may take */

static uint64_t mono_ns(void)
{
	return sm_clock_monotonic_ns();
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / SEC), .tv_nsec = (long)(ns % SEC) };

	while (nanosleep(&ts, &ts))
		;
}

/* Poll until *flag >= want or PATIENCE passes; whether it got there. */
static bool wait_for(int *flag, int want)
{
	uint64_t deadline = mono_ns() + PATIENCE;

	while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < want) {
		if (mono_ns() > deadline)
			return false;
		sleep_ns(100000);
	}
	return true;
}

/* How many are queued: peeks at the lock's innards, under its wait_lock. */
static int queued(struct rwsem *s)
{
	struct list_head *p;
	int n = 0;

	pthread_mutex_lock(&s->wait_lock);
	for (p = s->wait_list.next; p != &s->wait_list; p = p->next)
		n++;
	pthread_mutex_unlock(&s->wait_lock);
	return n;
}

static bool wait_queued(struct rwsem *s, int want)
{
	uint64_t deadline = mono_ns() + PATIENCE;

	while (queued(s) < want) {
		if (mono_ns() > deadline)
			return false;
		sleep_ns(100000);
	}
	return true;
}

static pthread_t spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, fn, arg), 0);
	return t;
}

static int load(int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void store(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static int inc(int *p) { return __atomic_add_fetch(p, 1, __ATOMIC_ACQ_REL); }
static int dec(int *p) { return __atomic_sub_fetch(p, 1, __ATOMIC_ACQ_REL); }

/* ---------------------------------------------------------------- basics */

static void test_basics(void **state)
{
	struct rwsem s;

	(void)state;
	rwsem_init(&s);
	assert_false(rwsem_is_locked(&s));
	assert_false(rwsem_held_by_current(&s, 0));

	down_read(&s);
	assert_true(rwsem_is_locked(&s));
	assert_false(rwsem_is_write_locked(&s));
	assert_true(rwsem_held_by_current(&s, 0));
	assert_false(rwsem_held_by_current(&s, 1));
	rwsem_assert_held(&s);
	up_read(&s);
	assert_false(rwsem_is_locked(&s));

	down_write(&s);
	assert_true(rwsem_is_write_locked(&s));
	rwsem_assert_held(&s);
	rwsem_assert_write_held(&s);
	downgrade_write(&s);
	assert_false(rwsem_is_write_locked(&s));
	assert_true(rwsem_is_locked(&s));
	assert_false(rwsem_held_by_current(&s, 1));
	rwsem_assert_held(&s);
	up_read(&s);
	assert_false(rwsem_is_locked(&s));
	assert_false(rwsem_is_contended(&s));
	rwsem_destroy(&s);
}

/* ---------------------------------------------------------------- trylocks */

struct one_shot {
	struct rwsem *s;
	int write;
	int trying, in, done;
	uint64_t ticket;   /* order of entry, from a shared counter */
	uint64_t *order;
};

static void *one_shot_fn(void *arg)
{
	struct one_shot *o = arg;

	store(&o->trying, 1);
	if (o->write)
		down_write(o->s);
	else
		down_read(o->s);
	if (o->order)
		o->ticket = __atomic_fetch_add(o->order, 1, __ATOMIC_RELAXED);
	store(&o->in, 1);
	if (o->write)
		up_write(o->s);
	else
		up_read(o->s);
	store(&o->done, 1);
	return NULL;
}

static void test_trylocks(void **state)
{
	struct rwsem s;
	struct one_shot w = { .s = &s, .write = 1 };
	pthread_t t;

	(void)state;
	rwsem_init(&s);
	assert_int_equal(down_read_trylock(&s), 1);
	assert_int_equal(down_read_trylock(&s), 1);   /* readers share */
	assert_int_equal(down_write_trylock(&s), 0);
	up_read(&s);
	assert_int_equal(down_write_trylock(&s), 0);  /* one reader left */
	up_read(&s);

	assert_int_equal(down_write_trylock(&s), 1);
	assert_true(rwsem_held_by_current(&s, 1));
	assert_int_equal(down_read_trylock(&s), 0);
	assert_int_equal(down_write_trylock(&s), 0);
	up_write(&s);
	assert_false(rwsem_is_locked(&s));

	/* A read trylock does not jump a queued writer, though readers hold it. */
	down_read(&s);
	t = spawn(one_shot_fn, &w);
	assert_true(wait_queued(&s, 1));
	assert_true(rwsem_is_contended(&s));
	assert_int_equal(down_read_trylock(&s), 0);
	assert_int_equal(load(&w.in), 0);
	up_read(&s);
	pthread_join(t, NULL);
	assert_int_equal(load(&w.done), 1);
	assert_false(rwsem_is_locked(&s));
	assert_false(rwsem_is_contended(&s));
	rwsem_destroy(&s);
}

/* ---------------------------------------------------------------- exclusion */

#define EXCL_THREADS 4
#define EXCL_ITERS   20000

struct excl {
	struct rwsem s;
	long counter;          /* s: plain on purpose, for ThreadSanitizer */
	int writers_in;        /* atomic */
	int readers_in;        /* atomic */
	int violations;        /* atomic */
};

static void *excl_fn(void *arg)
{
	struct excl *e = arg;

	for (int i = 0; i < EXCL_ITERS; i++) {
		if (i % 8 == 7) {
			down_read(&e->s);
			inc(&e->readers_in);
			if (load(&e->writers_in) != 0)
				inc(&e->violations);
			(void)*(volatile long *)&e->counter;
			dec(&e->readers_in);
			up_read(&e->s);
			continue;
		}
		if (i % 4 != 1 || !down_write_trylock(&e->s))
			down_write(&e->s);
		if (inc(&e->writers_in) != 1 || load(&e->readers_in) != 0)
			inc(&e->violations);
		e->counter++;
		dec(&e->writers_in);
		up_write(&e->s);
	}
	return NULL;
}

static void test_writers_exclude(void **state)
{
	struct excl *e = calloc(1, sizeof(*e));
	pthread_t t[EXCL_THREADS];
	long writes = 0;

	(void)state;
	rwsem_init(&e->s);
	for (int i = 0; i < EXCL_THREADS; i++)
		t[i] = spawn(excl_fn, e);
	for (int i = 0; i < EXCL_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < EXCL_ITERS; i++)
		writes += i % 8 != 7;
	assert_int_equal(e->counter, writes * EXCL_THREADS);
	assert_int_equal(e->violations, 0);
	assert_false(rwsem_is_locked(&e->s));
	rwsem_destroy(&e->s);
	free(e);
}

/* ---------------------------------------------------------------- readers share */

struct share {
	struct rwsem s;
	int inside;        /* atomic: readers inside at once */
	int saw_both;      /* atomic */
};

static void *share_fn(void *arg)
{
	struct share *sh = arg;

	down_read(&sh->s);
	inc(&sh->inside);
	if (wait_for(&sh->inside, 2))
		inc(&sh->saw_both);
	up_read(&sh->s);
	return NULL;
}

static void test_readers_share(void **state)
{
	struct share sh = { 0 };
	pthread_t a, b;

	(void)state;
	rwsem_init(&sh.s);
	a = spawn(share_fn, &sh);
	b = spawn(share_fn, &sh);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	assert_int_equal(sh.saw_both, 2);
	rwsem_destroy(&sh.s);
}

/* ---------------------------------------------------------------- fairness */

struct stream {
	struct rwsem s;
	int write;           /* the stream's mode */
	uint64_t hold_ns;
	int stop;            /* atomic */
	int passes;          /* atomic: acquisitions by the stream */
};

static void *stream_fn(void *arg)
{
	struct stream *st = arg;

	while (!load(&st->stop)) {
		if (st->write)
			down_write(&st->s);
		else
			down_read(&st->s);
		inc(&st->passes);
		sleep_ns(st->hold_ns);
		if (st->write)
			up_write(&st->s);
		else
			up_read(&st->s);
	}
	return NULL;
}

/* The thread that must get through the stream, round after round. */
struct victim {
	struct stream *st;
	int rounds_done;     /* atomic */
	uint64_t worst_ns;   /* read after join */
};

static void *victim_fn(void *arg)
{
	struct victim *v = arg;
	struct rwsem *s = &v->st->s;

	for (int r = 0; r < 20; r++) {
		uint64_t t0 = mono_ns(), waited;

		if (v->st->write) {
			down_read(s);
			waited = mono_ns() - t0;
			up_read(s);
		} else {
			down_write(s);
			waited = mono_ns() - t0;
			up_write(s);
		}
		if (waited > v->worst_ns)
			v->worst_ns = waited;
		inc(&v->rounds_done);
	}
	return NULL;
}

/*
 * Four threads keep the lock read-held with overlapping holds (a reader-
 * preferring lock would never let the writer in); the writer must get in
 * round after round, each within a bounded wait, while the stream runs.
 * Then the same with a stream of writers and a reader. A starved victim
 * fails the test: the stream is stopped after PATIENCE regardless.
 */
static void starvation_case(int stream_writes)
{
	struct stream st = { .write = stream_writes, .hold_ns = stream_writes ? 200000 : 400000 };
	struct victim v = { .st = &st };
	pthread_t t[4], vt;
	int passes_before;
	bool finished, streamed;

	rwsem_init(&st.s);
	for (int i = 0; i < 4; i++) {
		t[i] = spawn(stream_fn, &st);
		sleep_ns(st.hold_ns / 4);
	}
	assert_true(wait_for(&st.passes, 8));
	passes_before = load(&st.passes);
	vt = spawn(victim_fn, &v);
	finished = wait_for(&v.rounds_done, 20);
	/* The stream kept going meanwhile: the lock was contended throughout. */
	streamed = load(&st.passes) > passes_before + 20;
	store(&st.stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	pthread_join(vt, NULL);
	assert_true(finished);
	assert_true(streamed);
	print_message("  %s behind a stream of %s: worst wait %.2f ms\n",
		      stream_writes ? "reader" : "writer", stream_writes ? "writers" : "readers",
		      v.worst_ns / 1e6);
	assert_true(v.worst_ns < 2 * SEC);
	rwsem_destroy(&st.s);
}

static void test_writer_not_starved(void **state)
{
	(void)state;
	starvation_case(0);
}

static void test_reader_not_starved(void **state)
{
	(void)state;
	starvation_case(1);
}

/* Held for reading, a writer queued, then a reader: the reader waits for the writer. */
static void test_fifo(void **state)
{
	struct rwsem s;
	uint64_t order = 0;
	struct one_shot w = { .s = &s, .write = 1, .order = &order };
	struct one_shot r = { .s = &s, .write = 0, .order = &order };
	pthread_t tw, tr;

	(void)state;
	rwsem_init(&s);
	down_read(&s);
	tw = spawn(one_shot_fn, &w);
	assert_true(wait_queued(&s, 1));
	tr = spawn(one_shot_fn, &r);
	assert_true(wait_queued(&s, 2));
	sleep_ns(10 * MS);
	assert_int_equal(load(&r.in), 0);   /* compatible with the holder, but queued */
	up_read(&s);
	pthread_join(tw, NULL);
	pthread_join(tr, NULL);
	assert_int_equal(w.ticket, 0);
	assert_int_equal(r.ticket, 1);
	rwsem_destroy(&s);
}

/* ---------------------------------------------------------------- downgrade */

struct dg {
	struct rwsem s;
	int data;            /* s */
	int released;        /* atomic: the downgrader is at its up_read */
	int readers_in;      /* atomic */
	int may_leave;       /* atomic */
	int seen_data, seen_released;   /* the writer's observations */
};

static void *dg_writer_fn(void *arg)
{
	struct dg *d = arg;

	down_write(&d->s);
	d->seen_data = d->data;
	d->seen_released = load(&d->released);
	d->data = 2;
	up_write(&d->s);
	return NULL;
}

static void *dg_reader_fn(void *arg)
{
	struct dg *d = arg;

	down_read(&d->s);
	inc(&d->readers_in);
	wait_for(&d->may_leave, 1);
	up_read(&d->s);
	return NULL;
}

/* A writer queued during the write hold gets in only after the downgrader's up_read. */
static void test_downgrade_excludes_writer(void **state)
{
	struct dg *d = calloc(1, sizeof(*d));
	pthread_t w;

	(void)state;
	rwsem_init(&d->s);
	down_write(&d->s);
	d->data = 1;
	w = spawn(dg_writer_fn, d);
	assert_true(wait_queued(&d->s, 1));
	d->data = 42;   /* the state the downgrade publishes */
	downgrade_write(&d->s);
	sleep_ns(20 * MS);
	assert_int_equal(d->data, 42);
	assert_int_equal(queued(&d->s), 1);
	store(&d->released, 1);
	up_read(&d->s);
	pthread_join(w, NULL);
	assert_int_equal(d->seen_data, 42);
	assert_int_equal(d->seen_released, 1);
	assert_int_equal(d->data, 2);
	rwsem_destroy(&d->s);
	free(d);
}

/* Readers queued behind the write hold run alongside the downgrader; a writer
 * queued behind them waits for all of them. */
static void test_downgrade_wakes_readers(void **state)
{
	struct dg *d = calloc(1, sizeof(*d));
	pthread_t r1, r2, w;

	(void)state;
	rwsem_init(&d->s);
	down_write(&d->s);
	r1 = spawn(dg_reader_fn, d);
	r2 = spawn(dg_reader_fn, d);
	assert_true(wait_queued(&d->s, 2));
	w = spawn(dg_writer_fn, d);
	assert_true(wait_queued(&d->s, 3));
	d->data = 7;
	downgrade_write(&d->s);
	assert_true(wait_for(&d->readers_in, 2));   /* both in, while we hold read */
	assert_true(rwsem_held_by_current(&d->s, 0));
	assert_int_equal(queued(&d->s), 1);         /* the writer still waits */
	store(&d->may_leave, 1);
	sleep_ns(10 * MS);
	assert_int_equal(queued(&d->s), 1);         /* ... for us too */
	store(&d->released, 1);
	up_read(&d->s);
	pthread_join(r1, NULL);
	pthread_join(r2, NULL);
	pthread_join(w, NULL);
	assert_int_equal(d->seen_data, 7);
	assert_int_equal(d->seen_released, 1);
	rwsem_destroy(&d->s);
	free(d);
}

/* The race itself, many times: writers hammer while the main thread
 * downgrades; a writer must never find a downgrade in progress. */
struct dg_race {
	struct rwsem s;
	int pending;          /* s: set under the write hold before each downgrade */
	int released;         /* atomic: that downgrader reached its up_read */
	int stop;             /* atomic */
	int violations;       /* atomic */
};

static void *dg_race_writer(void *arg)
{
	struct dg_race *d = arg;

	while (!load(&d->stop)) {
		down_write(&d->s);
		if (d->pending && !load(&d->released))
			inc(&d->violations);
		d->pending = 0;
		up_write(&d->s);
	}
	return NULL;
}

static void *dg_race_reader(void *arg)
{
	struct dg_race *d = arg;

	while (!load(&d->stop)) {
		down_read(&d->s);
		(void)*(volatile int *)&d->pending;
		up_read(&d->s);
	}
	return NULL;
}

static void test_downgrade_race(void **state)
{
	struct dg_race *d = calloc(1, sizeof(*d));
	pthread_t t[3];

	(void)state;
	rwsem_init(&d->s);
	t[0] = spawn(dg_race_writer, d);
	t[1] = spawn(dg_race_writer, d);
	t[2] = spawn(dg_race_reader, d);
	for (int i = 0; i < 2000; i++) {
		down_write(&d->s);
		d->pending = 1;
		store(&d->released, 0);
		downgrade_write(&d->s);
		for (int k = 0; k < 50; k++)
			if (*(volatile int *)&d->pending != 1)
				inc(&d->violations);
		store(&d->released, 1);
		up_read(&d->s);
	}
	store(&d->stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(d->violations, 0);
	rwsem_destroy(&d->s);
	free(d);
}

/* ---------------------------------------------------------------- statistics */

static unsigned log2_floor(uint64_t v)
{
	return v < 2 ? 0 : 63 - (unsigned)__builtin_clzll(v);
}

static uint64_t hist_sum(const struct sm_lock_stats *st, int mode)
{
	uint64_t n = 0;

	for (int b = 0; b < SM_LOCK_HIST_BUCKETS; b++)
		n += st->hold_hist[mode][b];
	return n;
}

static void test_stats(void **state)
{
	struct rwsem s;
	struct sm_lock_stats st, zero;
	struct one_shot w = { .s = &s, .write = 1 };
	unsigned b;
	pthread_t t;

	(void)state;
	memset(&zero, 0, sizeof(zero));
	rwsem_init(&s);
	rwsem_get_stats(&s, &st);
	assert_memory_equal(&st, &zero, sizeof(st));

	/* A 2 ms write hold. */
	down_write(&s);
	sleep_ns(2 * MS);
	up_write(&s);
	rwsem_get_stats(&s, &st);
	assert_int_equal(st.acquisitions[SM_LOCK_WRITE], 1);
	assert_true(st.hold_max_ns[SM_LOCK_WRITE] >= 2 * MS);
	assert_int_equal(st.hold_total_ns[SM_LOCK_WRITE], st.hold_max_ns[SM_LOCK_WRITE]);
	b = log2_floor(st.hold_max_ns[SM_LOCK_WRITE]);
	assert_true(b >= 20);   /* 2 ms >= 2^20 ns */
	assert_int_equal(st.hold_hist[SM_LOCK_WRITE][b < 31 ? b : 31], 1);
	assert_int_equal(hist_sum(&st, SM_LOCK_WRITE), 1);
	assert_int_equal(st.acquisitions[SM_LOCK_READ], 0);
	assert_int_equal(st.contended[SM_LOCK_WRITE], 0);

	/* Reads. */
	for (int i = 0; i < 3; i++) {
		down_read(&s);
		up_read(&s);
	}
	rwsem_get_stats(&s, &st);
	assert_int_equal(st.acquisitions[SM_LOCK_READ], 3);
	assert_int_equal(hist_sum(&st, SM_LOCK_READ), 3);
	assert_true(st.hold_max_ns[SM_LOCK_READ] < 2 * MS);

	/* Reset. */
	rwsem_reset_stats(&s);
	rwsem_get_stats(&s, &st);
	assert_memory_equal(&st, &zero, sizeof(st));

	/* A writer kept waiting 5 ms by a reader. */
	down_read(&s);
	t = spawn(one_shot_fn, &w);
	assert_true(wait_queued(&s, 1));
	sleep_ns(5 * MS);
	up_read(&s);
	pthread_join(t, NULL);
	rwsem_get_stats(&s, &st);
	assert_int_equal(st.contended[SM_LOCK_WRITE], 1);
	assert_int_equal(st.contended[SM_LOCK_READ], 0);
	assert_true(st.wait_max_ns[SM_LOCK_WRITE] >= 5 * MS);
	assert_int_equal(st.wait_total_ns[SM_LOCK_WRITE], st.wait_max_ns[SM_LOCK_WRITE]);
	assert_true(st.hold_max_ns[SM_LOCK_READ] >= 5 * MS);

	/* A downgrade ends the write hold and starts a read hold. */
	rwsem_reset_stats(&s);
	down_write(&s);
	sleep_ns(2 * MS);
	downgrade_write(&s);
	sleep_ns(1 * MS);
	up_read(&s);
	rwsem_get_stats(&s, &st);
	assert_int_equal(st.acquisitions[SM_LOCK_WRITE], 1);
	assert_int_equal(st.acquisitions[SM_LOCK_READ], 1);
	assert_true(st.hold_max_ns[SM_LOCK_WRITE] >= 2 * MS);
	assert_true(st.hold_max_ns[SM_LOCK_READ] >= 1 * MS);
	assert_int_equal(hist_sum(&st, SM_LOCK_WRITE), 1);
	assert_int_equal(hist_sum(&st, SM_LOCK_READ), 1);
	rwsem_destroy(&s);
}

/* More holds than the per-thread stack records: counted, untimed, no harm. */
static void test_hold_stack_overflow(void **state)
{
	enum { N = 20 };
	struct rwsem *s = calloc(N, sizeof(*s));
	struct sm_lock_stats st;

	(void)state;
	for (int i = 0; i < N; i++)
		rwsem_init(&s[i]);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < N; i++)
			down_read(&s[i]);
		for (int i = 0; i < N; i++)
			assert_true(rwsem_held_by_current(&s[i], 0));
		for (int i = 0; i < N; i++)   /* innermost first, then outermost first */
			up_read(&s[round ? i : N - 1 - i]);
	}
	for (int i = 0; i < N; i++) {
		rwsem_get_stats(&s[i], &st);
		assert_int_equal(st.acquisitions[SM_LOCK_READ], 2);
		assert_int_equal(hist_sum(&st, SM_LOCK_READ), i < 16 ? 2 : 0);
		/* Exact again once the stack has room: nothing held. */
		assert_false(rwsem_held_by_current(&s[i], 0));
		rwsem_destroy(&s[i]);
	}
	free(s);
}

/* ---------------------------------------------------------------- assertions */

static int dies_of_assertion(void (*fn)(struct rwsem *), struct rwsem *s)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (!freopen("/dev/null", "w", stderr))
			_exit(2);
		fn(s);
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void assert_write_held_fn(struct rwsem *s) { rwsem_assert_write_held(s); }
static void assert_held_fn(struct rwsem *s) { rwsem_assert_held(s); }

static void *hold_read_fn(void *arg)
{
	struct one_shot *o = arg;

	down_read(o->s);
	store(&o->in, 1);
	wait_for(&o->done, 1);
	up_read(o->s);
	return NULL;
}

static void test_assertions(void **state)
{
	struct rwsem s;
	struct one_shot other = { .s = &s };
	pthread_t t;

	(void)state;
	rwsem_init(&s);
	assert_true(dies_of_assertion(assert_held_fn, &s));
	assert_true(dies_of_assertion(assert_write_held_fn, &s));
	down_read(&s);
	assert_false(dies_of_assertion(assert_held_fn, &s));
	assert_true(dies_of_assertion(assert_write_held_fn, &s));
	up_read(&s);
	down_write(&s);
	assert_false(dies_of_assertion(assert_write_held_fn, &s));
	up_write(&s);

	/* Held by another thread is not held by this one. */
	t = spawn(hold_read_fn, &other);
	assert_true(wait_for(&other.in, 1));
	assert_false(rwsem_held_by_current(&s, 0));
	store(&other.done, 1);
	pthread_join(t, NULL);
	rwsem_destroy(&s);
}

/* ---------------------------------------------------------------- random mix */

struct mix {
	struct rwsem s;
	uint64_t seed;
	uint64_t deadline;
	long shared;          /* s */
	int readers_in, writers_in, violations;   /* atomic */
	long ops[8];          /* atomic */
};

struct mix_thread {
	struct mix *m;
	uint64_t rng;
};

static uint64_t rnd(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void mix_read_side(struct mix *m)
{
	inc(&m->readers_in);
	if (load(&m->writers_in) != 0)
		inc(&m->violations);
	(void)*(volatile long *)&m->shared;
	dec(&m->readers_in);
}

static void mix_write_side(struct mix *m)
{
	if (inc(&m->writers_in) != 1 || load(&m->readers_in) != 0)
		inc(&m->violations);
	if (!rwsem_held_by_current(&m->s, 1))
		inc(&m->violations);
	m->shared++;
	dec(&m->writers_in);
}

static void *mix_fn(void *arg)
{
	struct mix_thread *mt = arg;
	struct mix *m = mt->m;

	while (mono_ns() < m->deadline) {
		unsigned op = (unsigned)(rnd(&mt->rng) % 6);

		switch (op) {
		case 0:
			down_read(&m->s);
			mix_read_side(m);
			up_read(&m->s);
			break;
		case 1:
			if (!down_read_trylock(&m->s))
				break;
			mix_read_side(m);
			up_read(&m->s);
			break;
		case 2:
			down_write(&m->s);
			mix_write_side(m);
			up_write(&m->s);
			break;
		case 3:
			if (!down_write_trylock(&m->s))
				break;
			mix_write_side(m);
			up_write(&m->s);
			break;
		default:
			down_write(&m->s);
			mix_write_side(m);
			downgrade_write(&m->s);
			mix_read_side(m);
			if (!rwsem_held_by_current(&m->s, 0) || rwsem_held_by_current(&m->s, 1))
				inc(&m->violations);
			up_read(&m->s);
			break;
		}
		__atomic_fetch_add(&m->ops[op], 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_random_mix(void **state)
{
	enum { T = 4 };
	struct mix *m = calloc(1, sizeof(*m));
	struct mix_thread mt[T];
	pthread_t t[T];
	const char *env = getenv("RWSEM_SEED");
	struct sm_lock_stats st;
	long total = 0;

	(void)state;
	m->seed = env ? strtoull(env, NULL, 0) : (uint64_t)mono_ns();
	print_message("  random mix: seed %" PRIu64 " (RWSEM_SEED=%" PRIu64 " replays)\n",
		      m->seed, m->seed);
	rwsem_init(&m->s);
	m->deadline = mono_ns() + 400 * MS;
	for (int i = 0; i < T; i++) {
		mt[i] = (struct mix_thread){ .m = m, .rng = m->seed + (uint64_t)i * 7919 };
		t[i] = spawn(mix_fn, &mt[i]);
	}
	for (int i = 0; i < T; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 6; i++)
		total += m->ops[i];
	rwsem_get_stats(&m->s, &st);
	print_message("  random mix: %ld ops, %" PRIu64 " contended reads, %" PRIu64
		      " contended writes\n", total, st.contended[0], st.contended[1]);
	assert_int_equal(m->violations, 0);
	assert_false(rwsem_is_locked(&m->s));
	assert_false(rwsem_is_contended(&m->s));
	assert_int_equal(hist_sum(&st, SM_LOCK_READ), st.acquisitions[SM_LOCK_READ]);
	assert_int_equal(hist_sum(&st, SM_LOCK_WRITE), st.acquisitions[SM_LOCK_WRITE]);
	rwsem_destroy(&m->s);
	free(m);
}

/* ---------------------------------------------------------------- the clock */

static void test_clock(void **state)
{
	uint64_t a, b, m0, m1, c0, c1, prev;

	(void)state;
	/* Get past calibration (20 ms after the first read). */
	(void)sm_now_ns();
	sleep_ns(25 * MS);
	(void)sm_now_ns();
	print_message("  clock: %s\n", __atomic_load_n(&sm_clock.mode, __ATOMIC_ACQUIRE) ==
		      SM_CLOCK_TSC ? "scaled TSC" : "CLOCK_MONOTONIC");

	prev = sm_now_ns();
	for (int i = 0; i < 100000; i++) {
		uint64_t now = sm_now_ns();

		assert_true(now >= prev);
		prev = now;
	}

	/* Agrees with CLOCK_MONOTONIC over 50 ms, to 1% (one sleep's sampling error). */
	m0 = mono_ns();
	c0 = sm_now_ns();
	sleep_ns(50 * MS);
	c1 = sm_now_ns();
	m1 = mono_ns();
	a = c1 - c0;
	b = m1 - m0;
	assert_true(a >= 50 * MS - 50 * MS / 100);
	assert_true(a <= b + b / 100);
}

/* ---------------------------------------------------------------- costs */

static double best_ns_per_op(void (*fn)(struct rwsem *, int), struct rwsem *s, int n)
{
	double best = 1e18;

	for (int round = 0; round < 7; round++) {
		uint64_t t0 = mono_ns();

		fn(s, n);
		double per = (double)(mono_ns() - t0) / n;
		if (per < best)
			best = per;
	}
	return best;
}

static void loop_read(struct rwsem *s, int n)
{
	for (int i = 0; i < n; i++) {
		down_read(s);
		up_read(s);
	}
}

static void loop_write(struct rwsem *s, int n)
{
	for (int i = 0; i < n; i++) {
		down_write(s);
		up_write(s);
	}
}

static void loop_clock(struct rwsem *s, int n)
{
	uint64_t sum = 0;

	(void)s;
	for (int i = 0; i < n; i++)
		sum += sm_now_ns();
	__asm__ volatile("" : : "r"(sum));
}

static void test_costs(void **state)
{
	struct rwsem s;
	double r, w, c;

	(void)state;
	rwsem_init(&s);
	r = best_ns_per_op(loop_read, &s, 200000);
	w = best_ns_per_op(loop_write, &s, 200000);
	c = best_ns_per_op(loop_clock, &s, 200000);
	print_message("  uncontended down_read+up_read %.1f ns, down_write+up_write %.1f ns, "
		      "sm_now_ns %.1f ns\n", r, w, c);
	rwsem_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics),
		cmocka_unit_test(test_trylocks),
		cmocka_unit_test(test_writers_exclude),
		cmocka_unit_test(test_readers_share),
		cmocka_unit_test(test_writer_not_starved),
		cmocka_unit_test(test_reader_not_starved),
		cmocka_unit_test(test_fifo),
		cmocka_unit_test(test_downgrade_excludes_writer),
		cmocka_unit_test(test_downgrade_wakes_readers),
		cmocka_unit_test(test_downgrade_race),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_hold_stack_overflow),
		cmocka_unit_test(test_assertions),
		cmocka_unit_test(test_random_mix),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_costs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
