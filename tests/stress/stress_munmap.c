/*
 * munmap under fire (issue 4). Slots of 8 MiB side by side share their
 * upper page tables; two owner threads unmap their slots (munmap of all, of
 * a middle part, mremap shrink then munmap) and map and fill them again,
 * so neighbouring munmaps overlap. Meanwhile:
 *
 *   - toucher threads read and write random pages of the slots. A word read
 *     is 0 (not yet filled), or names the page it was read from; an access
 *     may also be -EFAULT. Never another page's word, never the poison of a
 *     freed frame (SM_CFG_POISON_FREED; a write into a freed frame is caught
 *     when the frame is handed out again);
 *   - an mmap thread maps small regions with a hint inside the slots, so
 *     that placement meets ranges a munmap is still zapping, fills them and
 *     reads them back: a page that a zap in flight took would read 0;
 *   - a checker thread runs sm_mm_check, which must hold throughout.
 *
 * The writers (owners, mmap thread, checker) make the zaps let go of the
 * mmap_lock between page tables, which is the point. At the end every page
 * table is gone and every frame is back.
 *
 * A few seconds by default; SOFTMM_SOAK=1 runs a minute. Seed: argv[1].
 */
#include <pthread.h>
#include <sys/mman.h>
#include "stress_util.h"

#define MIB (1ul << 20)
#define SLOT (8 * MIB)
#define NSLOTS 6
#define BASE (1ul << 40)                  /* 1 GiB aligned: the slots share a PMD table */
#define OWNERS 2
#define TOUCHERS 2
#define SMALL (64 * 1024ul)
#define MMAP_SERIAL 0xfe

static struct sm_machine *m;
static struct sm_mm *mm;
static uint64_t seed;
static int stop;                          /* atomic */
static long bad, efaults, reads, writes;  /* atomic */
static long in_holes;                     /* the mapper's regions placed among the slots */

static void fail(const char *what, unsigned long a, uint64_t v)
{
	if (__atomic_fetch_add(&bad, 1, __ATOMIC_RELAXED) < 10) {
		printf("FAIL at %#lx: %s (%#" PRIx64 ")\n", a, what, v);
		fflush(stdout);
	}
}

static bool stopping(void)
{
	return __atomic_load_n(&stop, __ATOMIC_ACQUIRE);
}

/* The word for the page at a: who wrote it and which page it is. */
static uint64_t page_word(unsigned serial, unsigned long a)
{
	return st_word_make(serial, 0, (unsigned)(a >> 12) & ST_INDEX_MAX);
}

static bool word_ok(uint64_t w, unsigned long a)
{
	struct st_word d;

	if (!st_word_parse(w, &d))
		return false;
	return d.index == ((a >> 12) & ST_INDEX_MAX) &&
	       (d.serial == MMAP_SERIAL || d.serial <= NSLOTS);
}

static struct sm_cpu *cpu_for_thread(void)
{
	struct sm_cpu *c = sm_cpu_create(m);

	if (!c) {
		printf("FAIL: sm_cpu_create: %d\n", errno);
		exit(1);
	}
	sm_cpu_switch_mm(c, mm);
	return c;
}

static void cpu_done(struct sm_cpu *c)
{
	sm_cpu_switch_mm(c, NULL);
	sm_cpu_destroy(c);
}

/* ---- owners ---- */

static unsigned long slot_addr(unsigned s)
{
	return BASE + s * SLOT;
}

static void map_slot(struct sm_cpu *c, unsigned s)
{
	unsigned long a = slot_addr(s);
	long r;

	/* The mmap thread may hold part of the slot for a moment. */
	while ((r = sm_mmap(mm, a, SLOT, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)) == -EEXIST)
		st_sleep_us(50);
	if (r != (long)a) {
		fail("map_slot: sm_mmap", a, (uint64_t)r);
		return;
	}
	for (unsigned long off = 0; off < SLOT; off += ST_PAGE_SIZE) {
		uint64_t w = page_word(s + 1, a + off);

		if (sm_write(c, a + off, &w, sizeof(w)))
			fail("map_slot: write failed", a + off, 0);
	}
}

static void expect_ok(long r, const char *what, unsigned long a)
{
	if (r < 0)
		fail(what, a, (uint64_t)r);
}

/* Only the slot's own VMAs: the mapper may have put a mapping in a hole. */
static void unmap_slot(struct st_rng *rng, unsigned s)
{
	unsigned long a = slot_addr(s);
	unsigned long mid = (1 + st_below(rng, SLOT / ST_PAGE_SIZE - 2)) * ST_PAGE_SIZE;

	switch (st_below(rng, 3)) {
	case 0:
		expect_ok(sm_munmap(mm, a, SLOT), "munmap", a);
		break;
	case 1:   /* a hole in the middle first (a split), then the two ends */
		mid = (1 + st_below(rng, SLOT / 2 / ST_PAGE_SIZE - 1)) * ST_PAGE_SIZE;
		expect_ok(sm_munmap(mm, a + mid, SLOT / 2), "munmap middle", a);
		expect_ok(sm_munmap(mm, a, mid), "munmap head", a);
		expect_ok(sm_munmap(mm, a + mid + SLOT / 2, SLOT / 2 - mid), "munmap tail", a);
		break;
	case 2:   /* shrink the tail away, then the rest */
		if (sm_mremap(mm, a, SLOT, mid, 0, 0) != (long)a)
			fail("mremap shrink failed", a, 0);
		expect_ok(sm_munmap(mm, a, mid), "munmap after mremap", a);
		break;
	}
}

static void *owner(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	struct sm_cpu *c = cpu_for_thread();
	struct st_rng rng;

	st_rng_init(&rng, seed, t);
	while (!stopping()) {
		/* Owner t has the slots s with s % OWNERS == t: neighbours differ. */
		unsigned s = t + OWNERS * (unsigned)st_below(&rng, NSLOTS / OWNERS);

		unmap_slot(&rng, s);
		map_slot(c, s);
	}
	cpu_done(c);
	return NULL;
}

/* ---- touchers ---- */

static void *toucher(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	struct sm_cpu *c = cpu_for_thread();
	struct st_rng rng;

	st_rng_init(&rng, seed, 100 + t);
	while (!stopping()) {
		unsigned s = (unsigned)st_below(&rng, NSLOTS);
		unsigned long a = slot_addr(s) + st_below(&rng, SLOT / ST_PAGE_SIZE) * ST_PAGE_SIZE;
		uint64_t w = 0;
		long r;

		if (st_chance(&rng, 30)) {
			w = page_word(s + 1, a);
			r = sm_write(c, a, &w, sizeof(w));
			__atomic_fetch_add(&writes, 1, __ATOMIC_RELAXED);
		} else {
			r = sm_read(c, a, &w, sizeof(w));
			__atomic_fetch_add(&reads, 1, __ATOMIC_RELAXED);
			if (!r && w == ST_POISON_WORD)
				fail("read the poison of a freed frame", a, w);
			else if (!r && w && !word_ok(w, a))
				fail("read another page's word", a, w);
		}
		if (r == -EFAULT)
			__atomic_fetch_add(&efaults, 1, __ATOMIC_RELAXED);
		else if (r)
			fail("access", a, (uint64_t)r);
	}
	cpu_done(c);
	return NULL;
}

/* ---- mmap thread ---- */

static void *mapper(void *arg)
{
	struct sm_cpu *c = cpu_for_thread();
	struct st_rng rng;

	(void)arg;
	st_rng_init(&rng, seed, 200);
	while (!stopping()) {
		unsigned long hint = slot_addr((unsigned)st_below(&rng, NSLOTS)) +
				     st_below(&rng, SLOT / SMALL) * SMALL;
		long a = sm_mmap(mm, hint, SMALL, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (a < 0) {
			fail("mmap with a hint", hint, (uint64_t)a);
			continue;
		}
		if ((unsigned long)a >= BASE && (unsigned long)a < slot_addr(NSLOTS))
			in_holes++;
		for (unsigned long off = 0; off < SMALL; off += ST_PAGE_SIZE) {
			uint64_t w = page_word(MMAP_SERIAL, (unsigned long)a + off);

			if (sm_write(c, (unsigned long)a + off, &w, sizeof(w)))
				fail("mapper: write failed", (unsigned long)a + off, 0);
		}
		for (unsigned long off = 0; off < SMALL; off += ST_PAGE_SIZE) {
			uint64_t w = 0;

			/* A toucher may have written its word for the page: fine.
			 * 0 means a zap still in flight took the page. */
			if (sm_read(c, (unsigned long)a + off, &w, sizeof(w)) ||
			    !word_ok(w, (unsigned long)a + off))
				fail("mapper: its own page changed under it",
				     (unsigned long)a + off, w);
		}
		expect_ok(sm_munmap(mm, (unsigned long)a, SMALL), "mapper munmap", (unsigned long)a);
	}
	cpu_done(c);
	return NULL;
}

/* ---- checker ---- */

static long checks;

static void *checker(void *arg)
{
	(void)arg;
	while (!stopping()) {
		if (sm_mm_check(mm))
			fail("sm_mm_check failed", 0, 0);
		checks++;
		st_sleep_us(20000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sm_config cfg = { .ram_bytes = 256 * MIB, .max_cpus = 8,
				 .flags = SM_CFG_POISON_FREED };
	double budget = st_budget(3.0), end;
	pthread_t th[OWNERS + TOUCHERS + 2];
	struct sm_machine_stats st0, st;
	struct st_tally tally = { 0, 0 };
	struct sm_cpu *c;
	int n = 0;

	seed = st_seed(argc, argv);
	printf("stress_munmap: seed %#" PRIx64 ", %.0f s\n", seed, budget);
	m = sm_machine_create(&cfg);
	if (!m)
		return 1;
	sm_machine_stats(m, &st0);
	mm = sm_mm_create(m);
	c = cpu_for_thread();
	for (unsigned s = 0; s < NSLOTS; s++)
		map_slot(c, s);
	for (unsigned t = 0; t < OWNERS; t++)
		pthread_create(&th[n++], NULL, owner, (void *)(uintptr_t)t);
	for (unsigned t = 0; t < TOUCHERS; t++)
		pthread_create(&th[n++], NULL, toucher, (void *)(uintptr_t)t);
	pthread_create(&th[n++], NULL, mapper, NULL);
	pthread_create(&th[n++], NULL, checker, NULL);
	end = st_now() + budget;
	while (st_now() < end && !__atomic_load_n(&bad, __ATOMIC_RELAXED))
		st_sleep_us(10000);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);

	sm_machine_stats(m, &st);
	printf("stress_munmap: %ld reads, %ld writes, %ld -EFAULT, %ld checks, %ld small "
	       "mappings placed among the slots; %" PRIu64 " zaps let the lock go, %" PRIu64
	       " mappings waited\n", reads, writes, efaults, checks, in_holes,
	       st.munmap_lock_drops, st.munmap_reserve_waits);
	st_result(&tally, bad == 0, "every access saw its own page, 0, or -EFAULT; checker held");
	st_result(&tally, sm_mm_check(mm) == 0, "checker holds at the end");
	st_result(&tally, sm_munmap(mm, BASE, NSLOTS * SLOT) == 0, "unmap everything");
	/* Tables go back after an RCU grace period. */
	for (end = st_now() + 10; ; st_sleep_us(1000)) {
		sm_machine_stats(m, &st);
		if (st.pgtable_frames == st0.pgtable_frames + 1 || st_now() > end)
			break;
	}
	st_result(&tally, st.pgtable_frames == st0.pgtable_frames + 1,
		  "no page table left but the PGD (%" PRIu64 " tables)", st.pgtable_frames);
	cpu_done(c);
	sm_mm_destroy(mm);
	st_result(&tally, st_wait_free_frames(m, st0.free_frames, 10) == st0.free_frames,
		  "every frame back");
	sm_machine_destroy(m);
	return st_finish(&tally);
}
