/*
 * stress_syscalls: guest accesses racing every system call that changes an
 * address space, in several address spaces of one machine at once.
 *
 * Two original mms and, at times, a fork child of each share one machine
 * (with SM_CFG_POISON_FREED) and map the same virtual region. Accessor
 * threads, each with its own sm_cpu, hop between the mms and sm_write /
 * sm_read self-describing words (stress_util.h) in the region; mutator
 * threads meanwhile mmap (MAP_FIXED, MAP_POPULATE, read-only), munmap,
 * mprotect, madvise (DONTNEED, FREE, HUGEPAGE, ...), mremap (away and back,
 * shrink and regrow) and fork pieces of the same region in the same mms.
 *
 * What must hold:
 *   - every word read is 0 or a word this mm wrote at this address; for a
 *     fork child also a word of its parent written before the fork
 *     returned. Poison (0x6b..) means an access reached a freed frame; a word
 *     of another mm means leakage through a TLB or a reused frame;
 *   - an access fails only with -EFAULT, a system call only as Linux would;
 *   - sm_mm_check(mm) == 0 at every quiescent point (all threads parked on a
 *     barrier every PHASE_SECONDS);
 *   - when every mm is gone, free_frames is back where it started.
 *
 * Each accessor owns one slice of every page (no two threads write the same
 * word, so a word never tears): it checks its own slice strictly and the
 * others' bytes loosely (no poison, no foreign serial).
 *
 * The run is split between two machines: Linux's default folio policy, then
 * large anonymous folios everywhere (so that the calls split them).
 *
 * Usage: stress_syscalls [seed]; SOFTMM_SOAK=1 for a long run,
 * SOFTMM_STRESS_SECONDS=n to choose the length.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include "stress_util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define REGION_BASE   0x200000000000ul          /* 2 MiB aligned */
#define REGION_PAGES  512ul
#define REGION_LEN    (REGION_PAGES * ST_PAGE_SIZE)
#define SCRATCH_BASE  0x300000000000ul          /* a mutator's mremap parking place */
#define SCRATCH_STEP  (8ul << 20)             /* > REGION_LEN: one parked piece fits */

#define N_ORIG        2
#define N_SLOTS       (2 * N_ORIG)              /* slot N_ORIG+i: fork child of slot i */
#define N_ACCESSORS   4
#define N_MUTATORS    2
#define SLICE_WORDS   (ST_WORDS_PAGE / N_ACCESSORS)
#define PHASE_SECONDS 0.1
#define MAX_REPORTS   20

struct slot {
	/* Changed only at quiescent points (by the controller, between barriers). */
	struct sm_mm *mm;
	unsigned serial;
	unsigned parent_serial;     /* 0 for an original mm */
	unsigned fork_epoch;        /* parent words up to this epoch predate the fork */

	/* Originals: a child forked during this phase, installed at the next
	 * quiescent point. The claim serializes forkers; the barrier publishes. */
	atomic_bool fork_claimed;
	struct sm_mm *pending;
	unsigned pending_epoch;
};

struct counters {
	uint64_t reads, writes, read_efault, write_efault;
	uint64_t words_checked, words_zero, words_data;
	uint64_t switches;
	uint64_t calls[16], call_errs[16];
};

enum { C_MMAP, C_MMAP_NOREPLACE, C_MUNMAP, C_MPROTECT, C_DONTNEED, C_FREE, C_MADV_OTHER,
       C_MREMAP_MOVE, C_MREMAP_RESIZE, C_FORK, C_NR };
static const char *const call_names[C_NR] = {
	"mmap", "mmap_noreplace", "munmap", "mprotect", "madv_dontneed", "madv_free",
	"madv_other", "mremap_move", "mremap_resize", "fork",
};

struct run {
	const char *name;
	uint64_t seed;
	struct sm_machine *m;
	struct slot slots[N_SLOTS];
	unsigned next_serial;

	atomic_uint epoch;
	atomic_bool stop;           /* park at the barrier */
	atomic_bool done;
	pthread_barrier_t barrier;

	atomic_int bad_words;       /* data failures */
	atomic_int bad_calls;       /* unexpected return values */
	atomic_int reports;
	int check_failures, checks;

	struct counters sum;
};

struct worker {
	struct run *r;
	unsigned id;
	struct st_rng rng;
	struct counters c;
};

static unsigned alloc_serial(struct run *r)
{
	unsigned s = r->next_serial;

	r->next_serial = r->next_serial % 255 + 1;
	return s;
}

static void report(struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&r->reports, 1) >= MAX_REPORTS)
		return;
	fprintf(stderr, "[%s seed=%" PRIu64 "] ", r->name, r->seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- Checking what was read ---- */

/* Is w a word that mm slot s may hold at word index idx? */
static const char *judge_word(const struct slot *s, unsigned idx, uint64_t w, unsigned now)
{
	struct st_word d;

	if (w == 0)
		return NULL;
	if (w == ST_POISON_WORD)
		return "poison: the access reached a freed frame";
	if (!st_word_parse(w, &d))
		return "garbage (bad magic or checksum)";
	if (d.index != idx)
		return "a word written at another address";
	if (d.epoch > now)
		return "a word from the future";
	if (d.serial == s->serial)
		return NULL;
	if (s->parent_serial && d.serial == s->parent_serial) {
		if (d.epoch <= s->fork_epoch)
			return NULL;
		return "a parent's write from after the fork reached the child";
	}
	return "another mm's word";
}

/* Another thread's slice: it may be mid-write (bytes of two words), so
 * only the bytes that cannot tear into something acceptable are judged. */
static const char *judge_foreign(const struct slot *s, uint64_t w)
{
	unsigned magic = (unsigned)(w >> 56), serial = (unsigned)(w >> 48) & 0xff;

	if (w == ST_POISON_WORD)
		return "poison: the access reached a freed frame";
	if (magic != 0 && magic != ST_MAGIC)
		return "garbage in another thread's slice";
	if (serial != 0 && serial != s->serial && serial != s->parent_serial)
		return "another mm's serial in another thread's slice";
	return NULL;
}

static void check_buffer(struct worker *w, int slot, unsigned long addr,
			 const uint64_t *buf, size_t nwords, const char *op)
{
	struct run *r = w->r;
	const struct slot *s = &r->slots[slot];
	unsigned now = atomic_load(&r->epoch);

	for (size_t i = 0; i < nwords; i++) {
		unsigned long a = addr + i * 8;
		unsigned idx = (unsigned)((a - REGION_BASE) / 8);
		unsigned in_page = idx % ST_WORDS_PAGE;
		bool mine = in_page / SLICE_WORDS == w->id;
		const char *why = mine ? judge_word(s, idx, buf[i], now) : judge_foreign(s, buf[i]);

		w->c.words_checked++;
		if (buf[i] == 0)
			w->c.words_zero++;
		else
			w->c.words_data++;
		if (why) {
			struct st_word d = { 0, 0, 0 };

			atomic_fetch_add(&r->bad_words, 1);
			st_word_parse(buf[i], &d);
			report(r, "accessor %u, %s in slot %d (mm serial %u, parent %u, forked at epoch %u):"
			       " addr %#lx (page %u word %u) read %#018" PRIx64 " [serial %u epoch %u index %u]:"
			       " %s; epoch now %u",
			       w->id, op, slot, s->serial, s->parent_serial, s->fork_epoch, a,
			       idx / (unsigned)ST_WORDS_PAGE, in_page, buf[i], d.serial, d.epoch, d.index,
			       why, now);
		}
	}
}

/* ---- Accessors ---- */

static int pick_slot(struct worker *w)
{
	struct run *r = w->r;

	for (;;) {
		int s = (int)st_below(&w->rng, N_SLOTS);

		if (r->slots[s].mm)
			return s;
	}
}

static void access_once(struct worker *w, struct sm_cpu *cpu, int slot)
{
	struct run *r = w->r;
	struct slot *s = &r->slots[slot];
	uint64_t buf[4 * ST_WORDS_PAGE];
	unsigned long page = st_below(&w->rng, REGION_PAGES);
	unsigned long pbase = REGION_BASE + page * ST_PAGE_SIZE;
	unsigned off = (unsigned)st_below(&w->rng, SLICE_WORDS);
	unsigned n = 1 + (unsigned)st_below(&w->rng, st_chance(&w->rng, 20) ? SLICE_WORDS : 16);
	unsigned long start = pbase + (w->id * SLICE_WORDS + off) * 8;
	unsigned op = (unsigned)st_below(&w->rng, 100);
	long ret;

	if (n > SLICE_WORDS - off)
		n = SLICE_WORDS - off;
	if (op < 45) {
		unsigned e = atomic_load(&r->epoch);
		unsigned idx0 = (unsigned)((start - REGION_BASE) / 8);

		for (unsigned i = 0; i < n; i++)
			buf[i] = st_word_make(s->serial, e, idx0 + i);
		ret = sm_write(cpu, start, buf, n * 8);
		w->c.writes++;
		if (ret == -EFAULT)
			w->c.write_efault++;
	} else {
		unsigned long len;

		if (op < 90) {
			len = n * 8;
		} else if (op < 97) {
			start = pbase;
			len = ST_PAGE_SIZE;
		} else {
			unsigned long pages = 2 + st_below(&w->rng, 3);

			start = pbase;
			if (page + pages > REGION_PAGES)
				pages = REGION_PAGES - page;
			len = pages * ST_PAGE_SIZE;
		}
		ret = sm_read(cpu, start, buf, len);
		w->c.reads++;
		if (ret == 0)
			check_buffer(w, slot, start, buf, len / 8, "read");
		else if (ret == -EFAULT)
			w->c.read_efault++;
	}
	if (ret != 0 && ret != -EFAULT) {
		atomic_fetch_add(&r->bad_calls, 1);
		report(r, "accessor %u: access at %#lx returned %ld", w->id, start, ret);
	}
}

static void *accessor_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	struct sm_cpu *cpu = sm_cpu_create(r->m);

	if (!cpu) {
		fprintf(stderr, "sm_cpu_create: %s\n", strerror(errno));
		abort();
	}
	for (;;) {
		int slot = -1;
		unsigned left = 0;

		while (!atomic_load_explicit(&r->stop, memory_order_acquire)) {
			if (left-- == 0) {
				slot = pick_slot(w);
				sm_cpu_switch_mm(cpu, r->slots[slot].mm);
				w->c.switches++;
				left = 16 + (unsigned)st_below(&w->rng, 64);
			}
			access_once(w, cpu, slot);
		}
		/* No CPU may run an mm the controller is about to destroy. */
		sm_cpu_switch_mm(cpu, NULL);
		pthread_barrier_wait(&r->barrier);
		pthread_barrier_wait(&r->barrier);
		if (atomic_load(&r->done))
			break;
	}
	sm_cpu_destroy(cpu);
	return NULL;
}

/* ---- Mutators ---- */

static void bad_call(struct worker *w, const char *what, unsigned long a, unsigned long len, long ret)
{
	atomic_fetch_add(&w->r->bad_calls, 1);
	report(w->r, "mutator %u: %s(%#lx, %#lx) returned %ld", w->id, what, a, len, ret);
}

static void count_call(struct worker *w, int call, long ret)
{
	w->c.calls[call]++;
	if (ret < 0)
		w->c.call_errs[call]++;
}

static int random_prot(struct worker *w)
{
	unsigned p = (unsigned)st_below(&w->rng, 100);

	return p < 10 ? PROT_NONE : p < 30 ? PROT_READ : PROT_READ | PROT_WRITE;
}

static void mutate_once(struct worker *w)
{
	struct run *r = w->r;
	int slot = pick_slot(w);
	struct sm_mm *mm = r->slots[slot].mm;
	unsigned long pg = st_below(&w->rng, REGION_PAGES), npages;
	unsigned size = (unsigned)st_below(&w->rng, 100);
	unsigned long a, len, scratch = SCRATCH_BASE + w->id * SCRATCH_STEP;
	unsigned op = (unsigned)st_below(&w->rng, 100);
	long ret;

	npages = size < 70 ? 1 + st_below(&w->rng, 16) : size < 95 ? 16 + st_below(&w->rng, 112) : REGION_PAGES;
	if (npages == REGION_PAGES)
		pg = 0;
	if (pg + npages > REGION_PAGES)
		npages = REGION_PAGES - pg;
	a = REGION_BASE + pg * ST_PAGE_SIZE;
	len = npages * ST_PAGE_SIZE;

	if (op < 26) {                  /* map afresh over whatever is there */
		int prot = st_chance(&w->rng, 85) ? PROT_READ | PROT_WRITE : PROT_READ;
		int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

		if (st_chance(&w->rng, 20))
			flags |= MAP_POPULATE;
		ret = sm_mmap(mm, a, len, prot, flags, -1, 0);
		count_call(w, C_MMAP, ret);
		if (ret != (long)a && ret != -ENOMEM)
			bad_call(w, "mmap(MAP_FIXED)", a, len, ret);
	} else if (op < 30) {
		ret = sm_mmap(mm, a, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		count_call(w, C_MMAP_NOREPLACE, ret);
		if (ret != (long)a && ret != -EEXIST && ret != -ENOMEM)
			bad_call(w, "mmap(MAP_FIXED_NOREPLACE)", a, len, ret);
	} else if (op < 40) {
		ret = sm_munmap(mm, a, len);
		count_call(w, C_MUNMAP, ret);
		if (ret != 0)
			bad_call(w, "munmap", a, len, ret);
	} else if (op < 56) {
		ret = sm_mprotect(mm, a, len, random_prot(w));
		count_call(w, C_MPROTECT, ret);
		if (ret != 0 && ret != -ENOMEM)
			bad_call(w, "mprotect", a, len, ret);
	} else if (op < 68) {
		ret = sm_madvise(mm, a, len, MADV_DONTNEED);
		count_call(w, C_DONTNEED, ret);
		if (ret != 0 && ret != -ENOMEM)
			bad_call(w, "madvise(DONTNEED)", a, len, ret);
	} else if (op < 75) {
		ret = sm_madvise(mm, a, len, MADV_FREE);
		count_call(w, C_FREE, ret);
		if (ret != 0 && ret != -ENOMEM)
			bad_call(w, "madvise(FREE)", a, len, ret);
	} else if (op < 82) {
		static const int advice[] = { MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_WILLNEED,
					      MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_WRITE,
					      MADV_RANDOM, MADV_NORMAL };
		int adv = advice[st_below(&w->rng, sizeof(advice) / sizeof(advice[0]))];

		ret = sm_madvise(mm, a, len, adv);
		count_call(w, C_MADV_OTHER, ret);
		/* POPULATE_WRITE fails on PROT_READ/NONE pieces: -EINVAL, as Linux. */
		if (ret != 0 && ret != -ENOMEM &&
		    !(adv == MADV_POPULATE_WRITE && (ret == -EINVAL || ret == -EFAULT)))
			bad_call(w, "madvise(other)", a, (unsigned long)adv, ret);
	} else if (op < 92) {
		/*
		 * Move the piece away and back: its words land where they were.
		 * The parking place must be empty first: a fork child inherits
		 * whatever was parked there while its parent's move was in
		 * flight, and a multi-VMA move unmaps at its destination only
		 * the spans of the source's VMAs, not the gaps between them, so
		 * the way back would carry that stale piece into the region, at
		 * the wrong address (Linux behaves the same).
		 */
		ret = sm_munmap(mm, scratch, SCRATCH_STEP);
		if (ret != 0)
			bad_call(w, "munmap(scratch)", scratch, SCRATCH_STEP, ret);
		ret = sm_mremap(mm, a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, scratch);
		count_call(w, C_MREMAP_MOVE, ret);
		if (ret == (long)scratch) {
			if (st_chance(&w->rng, 50))
				sched_yield();
			ret = sm_mremap(mm, scratch, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, a);
			count_call(w, C_MREMAP_MOVE, ret);
		}
		if (ret >= 0 && ret != (long)a && ret != (long)scratch)
			bad_call(w, "mremap(move)", a, len, ret);
		/* Whatever could not go back must not stay mapped elsewhere. */
		ret = sm_munmap(mm, scratch, SCRATCH_STEP);
		if (ret != 0)
			bad_call(w, "munmap(scratch)", scratch, SCRATCH_STEP, ret);
	} else if (op < 98) {
		unsigned long half = (npages / 2) * ST_PAGE_SIZE;

		if (!half)
			return;
		ret = sm_mremap(mm, a, len, half, 0, 0);
		count_call(w, C_MREMAP_RESIZE, ret);
		if (ret >= 0 && ret != (long)a)
			bad_call(w, "mremap(shrink)", a, half, ret);
		ret = sm_mremap(mm, a, half, len, 0, 0);
		count_call(w, C_MREMAP_RESIZE, ret);
		if (ret >= 0 && ret != (long)a)
			bad_call(w, "mremap(grow)", a, len, ret);
	} else {
		/* fork an original, racing its writers; installed at the next quiescent point */
		int o = (int)st_below(&w->rng, N_ORIG);
		struct slot *p = &r->slots[o];
		struct sm_mm *child = NULL;

		if (atomic_exchange(&p->fork_claimed, true))
			return;
		ret = sm_fork(p->mm, &child);
		count_call(w, C_FORK, ret);
		if (ret == 0) {
			p->pending = child;
			/* Writes that read a later epoch began after the fork returned. */
			p->pending_epoch = atomic_fetch_add(&r->epoch, 1);
		} else {
			if (ret != -ENOMEM)
				bad_call(w, "fork", 0, 0, ret);
			atomic_store(&p->fork_claimed, false);
		}
	}
}

static void *mutator_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;

	for (;;) {
		while (!atomic_load_explicit(&r->stop, memory_order_acquire)) {
			mutate_once(w);
			if (st_chance(&w->rng, 50))
				st_sleep_us((unsigned)st_below(&w->rng, 50));
		}
		pthread_barrier_wait(&r->barrier);
		pthread_barrier_wait(&r->barrier);
		if (atomic_load(&r->done))
			break;
	}
	return NULL;
}

/* ---- The controller: quiescent points ---- */

static void quiesce(struct run *r)
{
	for (int o = 0; o < N_ORIG; o++) {
		struct slot *p = &r->slots[o], *c = &r->slots[N_ORIG + o];

		if (!p->pending)
			continue;
		if (c->mm)
			sm_mm_destroy(c->mm);
		c->mm = p->pending;
		c->serial = alloc_serial(r);
		c->parent_serial = p->serial;
		c->fork_epoch = p->pending_epoch;
		p->pending = NULL;
		atomic_store(&p->fork_claimed, false);
	}
	for (int s = 0; s < N_SLOTS; s++) {
		int err;

		if (!r->slots[s].mm)
			continue;
		err = sm_mm_check(r->slots[s].mm);
		r->checks++;
		if (err) {
			r->check_failures++;
			report(r, "sm_mm_check(slot %d, serial %u) = %d at epoch %u", s,
			       r->slots[s].serial, err, atomic_load(&r->epoch));
		}
	}
	atomic_fetch_add(&r->epoch, 1);
}

static void add_counters(struct counters *sum, const struct counters *c)
{
	const uint64_t *src = (const uint64_t *)c;
	uint64_t *dst = (uint64_t *)sum;

	for (size_t i = 0; i < sizeof(*c) / sizeof(uint64_t); i++)
		dst[i] += src[i];
}

static void run_part(struct st_tally *t, const char *name, const struct sm_config *cfg,
		     uint64_t seed, double seconds)
{
	struct run *r = calloc(1, sizeof(*r));
	struct worker workers[N_ACCESSORS + N_MUTATORS];
	pthread_t tids[N_ACCESSORS + N_MUTATORS];
	struct sm_machine_stats st0, st1;
	uint64_t free_after;
	double t0 = st_now(), end = t0 + seconds;
	int phases = 0;
	bool setup_ok = true;

	r->name = name;
	r->seed = seed;
	r->next_serial = 1;
	atomic_init(&r->epoch, 1);
	r->m = sm_machine_create(cfg);
	if (!r->m) {
		st_result(t, false, "%s: sm_machine_create: %s", name, strerror(errno));
		free(r);
		return;
	}
	sm_machine_stats(r->m, &st0);
	for (int o = 0; o < N_ORIG; o++) {
		struct slot *s = &r->slots[o];
		long ret;

		s->mm = sm_mm_create(r->m);
		s->serial = alloc_serial(r);
		ret = s->mm ? sm_mmap(s->mm, REGION_BASE, REGION_LEN, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) : -ENOMEM;
		if (ret != (long)REGION_BASE)
			setup_ok = false;
	}
	st_result(t, setup_ok, "%s: create %d mms and map the region", name, N_ORIG);
	if (!setup_ok) {
		for (int o = 0; o < N_ORIG; o++)
			sm_mm_destroy(r->slots[o].mm);
		sm_machine_destroy(r->m);
		free(r);
		return;
	}

	pthread_barrier_init(&r->barrier, NULL, N_ACCESSORS + N_MUTATORS + 1);
	for (unsigned i = 0; i < N_ACCESSORS + N_MUTATORS; i++) {
		struct worker *w = &workers[i];

		memset(w, 0, sizeof(*w));
		w->r = r;
		w->id = i < N_ACCESSORS ? i : i - N_ACCESSORS;
		st_rng_init(&w->rng, seed, i);
		pthread_create(&tids[i], NULL, i < N_ACCESSORS ? accessor_main : mutator_main, w);
	}
	for (;;) {
		double next = st_now() + PHASE_SECONDS;

		while (st_now() < next)
			st_sleep_us(2000);
		atomic_store_explicit(&r->stop, true, memory_order_release);
		pthread_barrier_wait(&r->barrier);
		quiesce(r);
		phases++;
		if (st_now() >= end)
			atomic_store(&r->done, true);
		atomic_store(&r->stop, false);
		pthread_barrier_wait(&r->barrier);
		if (atomic_load(&r->done))
			break;
	}
	for (unsigned i = 0; i < N_ACCESSORS + N_MUTATORS; i++) {
		pthread_join(tids[i], NULL);
		add_counters(&r->sum, &workers[i].c);
	}
	/* Last look at every mm, then tear down. */
	quiesce(r);
	for (int s = 0; s < N_SLOTS; s++)
		if (r->slots[s].mm)
			sm_mm_destroy(r->slots[s].mm);
	free_after = st_wait_free_frames(r->m, st0.free_frames, 2.0);
	sm_machine_stats(r->m, &st1);

	printf("%s: seed %" PRIu64 ", %.2f s, %d quiescent points, %d sm_mm_check calls, epoch %u\n",
	       name, seed, st_now() - t0, phases, r->checks, atomic_load(&r->epoch));
	printf("%s: accesses %" PRIu64 " (reads %" PRIu64 ", -EFAULT %" PRIu64 "; writes %" PRIu64
	       ", -EFAULT %" PRIu64 "), words checked %" PRIu64 " (zero %" PRIu64 ", data %" PRIu64
	       "), mm switches %" PRIu64 "\n",
	       name, r->sum.reads + r->sum.writes, r->sum.reads, r->sum.read_efault, r->sum.writes,
	       r->sum.write_efault, r->sum.words_checked, r->sum.words_zero, r->sum.words_data,
	       r->sum.switches);
	printf("%s: syscalls", name);
	for (int c = 0; c < C_NR; c++)
		printf(" %s %" PRIu64 "/%" PRIu64 "err", call_names[c], r->sum.calls[c], r->sum.call_errs[c]);
	printf("\n%s: tlb shootdowns %" PRIu64 ", local flushes %" PRIu64 "\n",
	       name, st1.tlb_shootdowns, st1.tlb_local_flushes);

	st_result(t, atomic_load(&r->bad_words) == 0,
		  "%s: every word read is 0 or this mm's word for this address (%d bad)",
		  name, atomic_load(&r->bad_words));
	st_result(t, atomic_load(&r->bad_calls) == 0,
		  "%s: accesses and system calls return only what Linux would (%d unexpected)",
		  name, atomic_load(&r->bad_calls));
	st_result(t, r->check_failures == 0 && r->checks > 0,
		  "%s: sm_mm_check clean at every quiescent point (%d of %d failed)",
		  name, r->check_failures, r->checks);
	st_result(t, r->sum.words_data > 0 && r->sum.calls[C_FORK] > 0,
		  "%s: the run did real work (data words read, forks)", name);
	st_result(t, free_after == st0.free_frames && st1.pgtable_frames == 0,
		  "%s: no frame leaked (free frames %" PRIu64 " -> %" PRIu64 ", page tables left %" PRIu64 ")",
		  name, st0.free_frames, free_after, st1.pgtable_frames);

	sm_machine_destroy(r->m);
	pthread_barrier_destroy(&r->barrier);
	free(r);
}

int main(int argc, char **argv)
{
	uint64_t seed = st_seed(argc, argv);
	double seconds = st_budget(4.0);
	struct st_tally t = { 0, 0 };
	struct sm_config small = {
		.ram_bytes = 64ul << 20,
		.flags = SM_CFG_POISON_FREED,
	};
	struct sm_config large = {
		.ram_bytes = 64ul << 20,
		.flags = SM_CFG_POISON_FREED | SM_CFG_ANON_ORDERS,
		.anon_orders_always = 1u << 2 | 1u << 4,
		.anon_orders_madvise = 1u << 2 | 1u << 4 | 1u << 6 | 1u << 9,
	};

	printf("stress_syscalls: seed %" PRIu64 " (rerun: stress_syscalls %" PRIu64 "), %.1f s, "
	       "%d accessors, %d mutators, %d mms + fork children\n",
	       seed, seed, seconds, N_ACCESSORS, N_MUTATORS, N_ORIG);
	fflush(stdout);
	run_part(&t, "small-folios", &small, seed, seconds / 2);
	run_part(&t, "large-folios", &large, seed ^ 0x5eed, seconds / 2);
	return st_finish(&t);
}
