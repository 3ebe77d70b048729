/*
 * stress_shootdown: once a system call has returned, no CPU may still reach
 * what it took away, however hot that CPU's TLB was a moment before.
 *
 * Rounds. Each round maps the whole region afresh (MAP_FIXED, so nothing of
 * the last round may survive), lets every accessor thread hammer it until
 * all have warm TLBs, then one mutator takes a range [a, b) away while they
 * keep going, and publishes that the call has returned. Any access an
 * accessor starts after seeing that must behave as the new state says:
 *
 *   munmap, mremap away,  -> reads and writes of [a, b) are -EFAULT
 *   mprotect(PROT_NONE)
 *   mprotect(PROT_READ)   -> reads succeed with this round's data, writes -EFAULT
 *   madvise(DONTNEED)     -> every word of [a, b) reads 0
 *   mmap(MAP_FIXED) over  -> every word of [a, b) reads 0
 *
 * For the last two, writers to [a, b) are quiesced around the call (each
 * accessor acknowledges that it stopped writing there), so a nonzero word
 * can only be stale data seen through a TLB entry or a page table that
 * outlived the call. Outside [a, b) every access must succeed, in every
 * phase: a split or a zap must not disturb its neighbours.
 *
 * Every word read must be 0 or a word written in this round at this address
 * (stress_util.h's format). The machine poisons freed frames, so a read
 * through a stale translation shows 0x6b..; a write through one trips the
 * allocator's poison check.
 *
 * Usage: stress_shootdown [seed]; SOFTMM_SOAK=1 for a long run,
 * SOFTMM_STRESS_SECONDS=n to choose the length.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include "stress_util.h"

#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif

#define REGION_BASE  0x200000000000ul     /* 2 MiB aligned: one PTE table */
#define REGION_PAGES 512ul
#define REGION_LEN   (REGION_PAGES * ST_PAGE_SIZE)
#define SCRATCH      0x300000000000ul
#define N_ACC        3
#define SLICE_WORDS  (ST_WORDS_PAGE / 4)
#define SERIAL       1
#define WARM_ACCESSES 48                  /* per accessor before the call */
#define DONE_CHECKS  24                   /* strict accesses per accessor after it */
#define MAX_REPORTS  20

enum op { OP_MUNMAP, OP_MREMAP_AWAY, OP_PROT_NONE, OP_PROT_READ, OP_DONTNEED, OP_MAP_FIXED, OP_NR };
static const char *const op_names[OP_NR] = {
	"munmap", "mremap-away", "mprotect(NONE)", "mprotect(READ)", "madvise(DONTNEED)", "mmap(FIXED)",
};

enum phase { PH_RUN = 1, PH_QUIESCE = 2, PH_DONE = 3, PH_STOP = 4 };

/* state: round << 16 | op << 8 | phase. The range is written before the
 * RUN state that carries it is published, and not changed in the round. */
static inline uint64_t mkstate(uint64_t round, int op, int phase)
{
	return round << 16 | (uint64_t)op << 8 | (uint64_t)phase;
}
#define ST_ROUND(s) ((s) >> 16)
#define ST_OP(s)    ((int)((s) >> 8) & 0xff)
#define ST_PHASE(s) ((int)(s) & 0xff)

struct run {
	const char *name;
	uint64_t seed;
	struct sm_machine *m;
	struct sm_mm *mm;

	atomic_uint_fast64_t state;
	atomic_ulong lo, hi;                /* [lo, hi) pages taken away this round */
	atomic_uint_fast64_t ack[N_ACC];    /* last (round, phase) each accessor finished */

	atomic_int violations, reports;
	atomic_ulong strict_checks, efaults, accesses, words;
	unsigned long rounds[OP_NR];
};

struct acc {
	struct run *r;
	unsigned id;
	struct st_rng rng;
};

static void violation(struct run *r, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&r->violations, 1);
	if (atomic_fetch_add(&r->reports, 1) >= MAX_REPORTS)
		return;
	fprintf(stderr, "[%s seed=%" PRIu64 "] ", r->name, r->seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static unsigned word_index(unsigned long addr)
{
	return (unsigned)((addr - REGION_BASE) / 8);
}

/* mine: the words of this accessor's slice, or a range nobody writes. */
static void check_words(struct acc *x, uint64_t st, unsigned long addr, const uint64_t *buf,
			size_t n, bool strict_all, bool must_be_zero, const char *when)
{
	struct run *r = x->r;
	unsigned round = (unsigned)ST_ROUND(st) & ST_EPOCH_MAX;

	atomic_fetch_add_explicit(&r->words, n, memory_order_relaxed);
	for (size_t i = 0; i < n; i++) {
		unsigned long a = addr + i * 8;
		unsigned idx = word_index(a);
		bool mine = strict_all || (idx % ST_WORDS_PAGE) / SLICE_WORDS == x->id;
		uint64_t w = buf[i];
		struct st_word d = { 0, 0, 0 };
		const char *why = NULL;

		if (w == 0)
			continue;
		if (must_be_zero)
			why = "nonzero after the call returned";
		else if (w == ST_POISON_WORD)
			why = "poison: a freed frame";
		else if (!mine)
			why = (w >> 56 != 0 && w >> 56 != ST_MAGIC) ? "garbage in another slice" : NULL;
		else if (!st_word_parse(w, &d))
			why = "garbage";
		else if (d.serial != SERIAL || d.index != idx)
			why = "a word of another address";
		else if (d.epoch != round)
			why = "a word from an earlier round (survived MAP_FIXED)";
		if (why) {
			st_word_parse(w, &d);
			violation(r, "round %u %s, %s: accessor %u read %#018" PRIx64 " at %#lx (page %lu word %u)"
				  " [serial %u epoch %u index %u]: %s (%s)",
				  round, op_names[ST_OP(st)], when, x->id, w, a,
				  (a - REGION_BASE) / ST_PAGE_SIZE, idx % (unsigned)ST_WORDS_PAGE,
				  d.serial, d.epoch, d.index, why,
				  w == ST_POISON_WORD ? "poison" : st_word_kind(w));
		}
	}
}

static bool in_range(unsigned long page, unsigned long lo, unsigned long hi)
{
	return page >= lo && page < hi;
}

/* What may an access of page `page` return in this state, from a call
 * that may be in progress (RUN/QUIESCE) or has returned (DONE)? */
static bool read_may_fault(int op, int phase, bool inside)
{
	if (!inside || op == OP_PROT_READ || op == OP_DONTNEED || op == OP_MAP_FIXED)
		return false;
	(void)phase;
	return true;
}

static bool read_must_fault(int op, int phase, bool inside)
{
	return inside && phase == PH_DONE &&
	       (op == OP_MUNMAP || op == OP_MREMAP_AWAY || op == OP_PROT_NONE);
}

static bool write_may_fault(int op, int phase, bool inside)
{
	return inside && !(op == OP_DONTNEED || op == OP_MAP_FIXED) && (phase >= PH_RUN);
}

static bool write_must_fault(int op, int phase, bool inside)
{
	return inside && phase == PH_DONE && op != OP_DONTNEED && op != OP_MAP_FIXED;
}

/* May this accessor write into [lo, hi) now? Not once the quiesce began. */
static bool write_allowed(int op, int phase, bool inside)
{
	return !inside || phase == PH_RUN || !(op == OP_DONTNEED || op == OP_MAP_FIXED);
}

static void one_access(struct acc *x, struct sm_cpu *cpu, uint64_t st, bool force_inside, bool strict)
{
	struct run *r = x->r;
	int op = ST_OP(st), phase = ST_PHASE(st);
	unsigned round = (unsigned)ST_ROUND(st) & ST_EPOCH_MAX;
	unsigned long lo = atomic_load(&r->lo), hi = atomic_load(&r->hi);
	unsigned long page = (force_inside || st_chance(&x->rng, 50)) ? lo + st_below(&x->rng, hi - lo)
								       : st_below(&x->rng, REGION_PAGES);
	bool inside = in_range(page, lo, hi);
	unsigned long pbase = REGION_BASE + page * ST_PAGE_SIZE;
	unsigned off = (unsigned)st_below(&x->rng, SLICE_WORDS);
	unsigned n = 1 + (unsigned)st_below(&x->rng, 8);
	unsigned long addr = pbase + (x->id * SLICE_WORDS + off) * 8;
	uint64_t buf[ST_WORDS_PAGE];
	/* After the call nobody writes [lo, hi) (all acknowledged the quiesce
	 * before it): every word there is judged, not just our slice. */
	bool quiet = inside && (op == OP_DONTNEED || op == OP_MAP_FIXED) && phase == PH_DONE;
	const char *when = phase == PH_DONE ? "after the call returned" : "while the call may run";
	long ret;

	if (n > SLICE_WORDS - off)
		n = SLICE_WORDS - off;
	atomic_fetch_add_explicit(&r->accesses, 1, memory_order_relaxed);
	if (strict)
		atomic_fetch_add_explicit(&r->strict_checks, 1, memory_order_relaxed);

	if (write_allowed(op, phase, inside) && st_chance(&x->rng, 50)) {
		unsigned idx0 = word_index(addr);

		for (unsigned i = 0; i < n; i++)
			buf[i] = st_word_make(SERIAL, round, idx0 + i);
		ret = sm_write(cpu, addr, buf, n * 8);
		if (ret == -EFAULT)
			atomic_fetch_add_explicit(&r->efaults, 1, memory_order_relaxed);
		if (ret == 0 && write_must_fault(op, phase, inside))
			violation(r, "round %u %s: accessor %u wrote page %lu after the call returned",
				  round, op_names[op], x->id, page);
		else if (ret != 0 && !(ret == -EFAULT && write_may_fault(op, phase, inside)))
			violation(r, "round %u %s %s: accessor %u write of page %lu (%s [%lu,%lu)) returned %ld",
				  round, op_names[op], when, x->id, page, inside ? "inside" : "outside",
				  lo, hi, ret);
		return;
	}
	/* Where nobody writes, read the whole page and judge every word. */
	if (quiet) {
		addr = pbase;
		n = ST_WORDS_PAGE;
	}
	ret = sm_read(cpu, addr, buf, n * 8);
	if (ret == -EFAULT)
		atomic_fetch_add_explicit(&r->efaults, 1, memory_order_relaxed);
	if (ret == 0 && read_must_fault(op, phase, inside)) {
		violation(r, "round %u %s: accessor %u read page %lu after the call returned (%#018" PRIx64 ")",
			  round, op_names[op], x->id, page, buf[0]);
	} else if (ret != 0 && !(ret == -EFAULT && read_may_fault(op, phase, inside))) {
		violation(r, "round %u %s %s: accessor %u read of page %lu (%s [%lu,%lu)) returned %ld",
			  round, op_names[op], when, x->id, page, inside ? "inside" : "outside",
			  lo, hi, ret);
	} else if (ret == 0) {
		check_words(x, st, addr, buf, n, quiet, quiet && phase == PH_DONE, when);
	}
}

static void *accessor_main(void *arg)
{
	struct acc *x = arg;
	struct run *r = x->r;
	struct sm_cpu *cpu = sm_cpu_create(r->m);
	uint64_t last = mkstate(0, 0, PH_DONE);     /* round 0: nothing mapped yet */
	uint64_t warm_round = ST_ROUND(last);
	unsigned warm = 0, idle = 0;

	if (!cpu) {
		fprintf(stderr, "sm_cpu_create: %s\n", strerror(errno));
		abort();
	}
	sm_cpu_switch_mm(cpu, r->mm);
	for (;;) {
		uint64_t st = atomic_load_explicit(&r->state, memory_order_acquire);
		int phase = ST_PHASE(st);

		if (phase == PH_STOP)
			break;
		if (ST_ROUND(st) != warm_round) {
			warm_round = ST_ROUND(st);
			warm = 0;
		}
		if (st == last) {
			/* This phase's duty done: keep the TLB warm, but stay off [lo, hi)
			 * in a quiet phase and after DONE wait for the next round. */
			if (phase == PH_DONE || ++idle % 8 == 0)
				sched_yield();      /* let the mutator run: we outnumber the cores */
			else
				one_access(x, cpu, st, false, false);
			continue;
		}
		switch (phase) {
		case PH_RUN:
			one_access(x, cpu, st, false, false);
			if (++warm >= WARM_ACCESSES) {
				atomic_store_explicit(&x->r->ack[x->id], st, memory_order_release);
				last = st;
			}
			break;
		case PH_QUIESCE:
			/* Program order: every write of ours to [lo, hi) has returned. */
			atomic_store_explicit(&r->ack[x->id], st, memory_order_release);
			last = st;
			break;
		case PH_DONE:
			for (unsigned i = 0; i < DONE_CHECKS; i++)
				one_access(x, cpu, st, i % 3 != 2, true);
			atomic_store_explicit(&r->ack[x->id], st, memory_order_release);
			last = st;
			break;
		}
	}
	sm_cpu_destroy(cpu);
	return NULL;
}

static void wait_acks(struct run *r, uint64_t st)
{
	for (unsigned i = 0; i < N_ACC; i++)
		while (atomic_load_explicit(&r->ack[i], memory_order_acquire) != st)
			sched_yield();
}

static long do_op(struct run *r, int op, unsigned long lo, unsigned long hi)
{
	unsigned long a = REGION_BASE + lo * ST_PAGE_SIZE, len = (hi - lo) * ST_PAGE_SIZE;
	long ret;

	switch (op) {
	case OP_MUNMAP:
		return sm_munmap(r->mm, a, len);
	case OP_MREMAP_AWAY:
		ret = sm_mremap(r->mm, a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, SCRATCH);
		return ret == (long)SCRATCH ? 0 : ret ? ret : -1;
	case OP_PROT_NONE:
		return sm_mprotect(r->mm, a, len, PROT_NONE);
	case OP_PROT_READ:
		return sm_mprotect(r->mm, a, len, PROT_READ);
	case OP_DONTNEED:
		return sm_madvise(r->mm, a, len, MADV_DONTNEED);
	case OP_MAP_FIXED:
		ret = sm_mmap(r->mm, a, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		return ret == (long)a ? 0 : ret ? ret : -1;
	}
	return -1;
}

static void run_part(struct st_tally *t, const char *name, const struct sm_config *cfg,
		     uint64_t seed, double seconds)
{
	struct run *r = calloc(1, sizeof(*r));
	struct acc accs[N_ACC];
	pthread_t tids[N_ACC];
	struct st_rng rng;
	struct sm_machine_stats st0, st1;
	double t0 = st_now(), end = t0 + seconds;
	uint64_t round = 0, free_after;
	int setup_errors = 0, check_errors = 0, checks = 0;

	r->name = name;
	r->seed = seed;
	st_rng_init(&rng, seed, 1000);
	r->m = sm_machine_create(cfg);
	if (!r->m) {
		st_result(t, false, "%s: sm_machine_create: %s", name, strerror(errno));
		free(r);
		return;
	}
	sm_machine_stats(r->m, &st0);
	r->mm = sm_mm_create(r->m);
	if (!r->mm) {
		st_result(t, false, "%s: sm_mm_create: %s", name, strerror(errno));
		return;
	}
	atomic_store(&r->state, mkstate(0, 0, PH_DONE));
	for (unsigned i = 0; i < N_ACC; i++) {
		accs[i] = (struct acc){ .r = r, .id = i };
		st_rng_init(&accs[i].rng, seed, i);
		atomic_store(&r->ack[i], mkstate(0, 0, PH_DONE));
		pthread_create(&tids[i], NULL, accessor_main, &accs[i]);
	}

	while (st_now() < end) {
		int op = (int)st_below(&rng, OP_NR);
		unsigned long lo, hi, npages;
		uint64_t st;
		long ret;

		round++;
		if (round > ST_EPOCH_MAX)
			break;
		/* Everyone is parked after DONE: start afresh. */
		ret = sm_mmap(r->mm, REGION_BASE, REGION_LEN, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
			      (st_chance(&rng, 20) ? MAP_POPULATE : 0), -1, 0);
		if (ret != (long)REGION_BASE) {
			setup_errors++;
			break;
		}
		npages = st_chance(&rng, 25) ? REGION_PAGES : 1 + st_below(&rng, 64);
		lo = npages == REGION_PAGES ? 0 : st_below(&rng, REGION_PAGES - npages + 1);
		hi = lo + npages;
		atomic_store(&r->lo, lo);
		atomic_store(&r->hi, hi);
		st = mkstate(round, op, PH_RUN);
		atomic_store_explicit(&r->state, st, memory_order_release);
		wait_acks(r, st);       /* every TLB is warm */

		if (op == OP_DONTNEED || op == OP_MAP_FIXED) {
			st = mkstate(round, op, PH_QUIESCE);
			atomic_store_explicit(&r->state, st, memory_order_release);
			wait_acks(r, st);
		}
		ret = do_op(r, op, lo, hi);
		if (ret != 0) {
			violation(r, "round %" PRIu64 ": %s of pages [%lu,%lu) returned %ld",
				  round, op_names[op], lo, hi, ret);
		}
		r->rounds[op]++;
		st = mkstate(round, op, PH_DONE);
		atomic_store_explicit(&r->state, st, memory_order_release);
		wait_acks(r, st);
		if (op == OP_MREMAP_AWAY)
			sm_munmap(r->mm, SCRATCH, REGION_LEN);
		if (round % 16 == 0) {
			checks++;
			if (sm_mm_check(r->mm))
				check_errors++;
		}
	}
	atomic_store_explicit(&r->state, mkstate(round, 0, PH_STOP), memory_order_release);
	for (unsigned i = 0; i < N_ACC; i++)
		pthread_join(tids[i], NULL);
	checks++;
	if (sm_mm_check(r->mm))
		check_errors++;
	sm_mm_destroy(r->mm);
	free_after = st_wait_free_frames(r->m, st0.free_frames, 2.0);
	sm_machine_stats(r->m, &st1);

	printf("%s: seed %" PRIu64 ", %.2f s, %" PRIu64 " rounds (", name, seed, st_now() - t0, round);
	for (int op = 0; op < OP_NR; op++)
		printf("%s%s %lu", op ? ", " : "", op_names[op], r->rounds[op]);
	printf("), accesses %lu (-EFAULT %lu), strict after-call accesses %lu, words checked %lu,"
	       " tlb shootdowns %" PRIu64 "\n",
	       atomic_load(&r->accesses), atomic_load(&r->efaults), atomic_load(&r->strict_checks),
	       atomic_load(&r->words), st1.tlb_shootdowns);
	st_result(t, setup_errors == 0 && round > 1, "%s: rounds ran (%d setup errors)", name, setup_errors);
	st_result(t, atomic_load(&r->violations) == 0,
		  "%s: nothing reachable after munmap/mremap/mprotect returns; zero after DONTNEED/MAP_FIXED"
		  " (%d violations)", name, atomic_load(&r->violations));
	st_result(t, check_errors == 0, "%s: sm_mm_check clean (%d of %d failed)", name, check_errors, checks);
	st_result(t, free_after == st0.free_frames && st1.pgtable_frames == 0,
		  "%s: no frame leaked (free frames %" PRIu64 " -> %" PRIu64 ", page tables left %" PRIu64 ")",
		  name, st0.free_frames, free_after, st1.pgtable_frames);
	sm_machine_destroy(r->m);
	free(r);
}

int main(int argc, char **argv)
{
	uint64_t seed = st_seed(argc, argv);
	double seconds = st_budget(3.0);
	struct st_tally t = { 0, 0 };
	struct sm_config small = { .ram_bytes = 32ul << 20, .flags = SM_CFG_POISON_FREED };
	struct sm_config large = {
		.ram_bytes = 32ul << 20,
		.flags = SM_CFG_POISON_FREED | SM_CFG_ANON_ORDERS,
		.anon_orders_always = 1u << 2 | 1u << 4,
	};

	printf("stress_shootdown: seed %" PRIu64 " (rerun: stress_shootdown %" PRIu64 "), %.1f s, %d accessors\n",
	       seed, seed, seconds, N_ACC);
	fflush(stdout);
	run_part(&t, "small-folios", &small, seed, seconds / 2);
	run_part(&t, "large-folios", &large, seed ^ 0x5eed, seconds / 2);
	return st_finish(&t);
}
