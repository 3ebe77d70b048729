/*
 * KSM under fire. Each of several mms has a writer thread on its own CPU
 * that writes whole pages, either one of a few patterns common to every mm
 * (so that ksmd merges them, across mms and within one) or a pattern only
 * this mm writes, and keeps a shadow of what each page must hold; it reads
 * pages back and compares. Meanwhile ksmd runs flat out (sleep 0), another
 * thread toggles MADV_UNMERGEABLE/MADV_MERGEABLE on random ranges, flips
 * use_zero_pages and now and then unmerges everything (run = 2), and the
 * writers fork their mm, check the child and write into it.
 *
 * A write lost, or seen in another mm (a page with another mm's pattern or
 * the wrong contents), fails the run. At the end: every page matches its
 * shadow, the invariant checker holds for each mm, and once the mms are
 * gone every frame is back (KSM pages included).
 *
 * The seed is printed (argv[1] or SOFTMM_SEED replays it); half the seeds
 * turn the reuse of KSM pages off, and half set max_page_sharing to 4, so
 * that each common pattern has dozens of KSM pages (a stable node chain)
 * filling and emptying, and half back the regions with large folios (16
 * and 64 KiB), which ksmd splits as their pages merge. SOFTMM_SOAK=1 runs a
 * minute.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include "stress_util.h"

#define NMM 3
#define PAGES 192
#define BASE 0x40000000ul
#define COMMON 3

static struct sm_machine *m;
static struct sm_mm *mms[NMM];
static atomic_bool stop;
static atomic_long writes, reads, forks, bad;
static uint64_t seed;

/* Page content: one word repeated. Common patterns carry no mm; an mm's own
 * pattern carries its serial (1..NMM), the page and a counter. */
static uint64_t common_word(unsigned k)
{
	return 0xc0ffee0000000000ull | k;
}

static uint64_t own_word(unsigned serial, unsigned page, unsigned n)
{
	return st_word_make(serial, n & ST_EPOCH_MAX, page);
}

static void fill(uint64_t *buf, uint64_t w)
{
	for (size_t i = 0; i < ST_WORDS_PAGE; i++)
		buf[i] = w;
}

/* Compare a page read back with the word it must hold; report once. */
static bool page_ok(const uint64_t *buf, uint64_t want, unsigned serial, unsigned page, const char *who)
{
	for (size_t i = 0; i < ST_WORDS_PAGE; i++) {
		if (buf[i] == want)
			continue;
		if (atomic_fetch_add(&bad, 1) < 5) {
			struct st_word d;
			bool ours = st_word_parse(buf[i], &d);

			fprintf(stderr, "FAIL %s mm %u page %u word %zu: %#" PRIx64 " (%s%s), want %#" PRIx64 "\n",
				who, serial, page, i, buf[i], st_word_kind(buf[i]),
				ours && d.serial != serial ? ", ANOTHER mm's write" : "", want);
		}
		return false;
	}
	return true;
}

struct writer {
	unsigned serial;
	pthread_t thread;
	uint64_t shadow[PAGES];
};

static struct writer writers[NMM];

/* Fork the writer's mm: the child holds the parent's contents, a write in
 * the child stays there. */
static void fork_and_check(struct writer *w, struct sm_cpu *c, struct st_rng *r)
{
	static __thread uint64_t buf[ST_WORDS_PAGE];
	struct sm_mm *child;
	unsigned p = (unsigned)st_below(r, PAGES);
	long err = sm_fork(mms[w->serial - 1], &child);

	if (err) {
		atomic_fetch_add(&bad, 1);
		fprintf(stderr, "FAIL fork: %ld\n", err);
		return;
	}
	sm_cpu_switch_mm(c, child);
	for (unsigned q = 0; q < PAGES; q += 17)
		if (sm_read(c, BASE + q * ST_PAGE_SIZE, buf, ST_PAGE_SIZE) ||
		    !page_ok(buf, w->shadow[q], w->serial, q, "fork child"))
			break;
	fill(buf, own_word(w->serial, p, 0xfffff));
	if (sm_write(c, BASE + p * ST_PAGE_SIZE, buf, ST_PAGE_SIZE))
		atomic_fetch_add(&bad, 1);
	sm_cpu_switch_mm(c, mms[w->serial - 1]);
	sm_mm_destroy(child);
	if (sm_read(c, BASE + p * ST_PAGE_SIZE, buf, ST_PAGE_SIZE) == 0)
		page_ok(buf, w->shadow[p], w->serial, p, "fork parent");
	atomic_fetch_add(&forks, 1);
}

static void *writer_main(void *arg)
{
	static __thread uint64_t buf[ST_WORDS_PAGE];
	struct writer *w = arg;
	struct sm_cpu *c = sm_cpu_create(m);
	struct st_rng r;
	unsigned n = 0;

	st_rng_init(&r, seed, w->serial);
	sm_cpu_switch_mm(c, mms[w->serial - 1]);
	while (!atomic_load(&stop)) {
		unsigned p = (unsigned)st_below(&r, PAGES);
		unsigned long addr = BASE + p * ST_PAGE_SIZE;
		unsigned dice = (unsigned)st_below(&r, 1000);

		n++;
		/* Slow enough that pages hold still for a few of ksmd's scans. */
		if (n % 8 == 0)
			st_sleep_us(20);
		if (dice < 20) {
			/* Common to all mms: a few patterns for any page (KSM pages
			 * with many mappings), or a few for this page index (at most
			 * one mapping per mm: those come down to one, and reuse). */
			unsigned k = (unsigned)st_below(&r, COMMON);
			uint64_t want = st_chance(&r, 40) ? common_word(k)
				      : st_chance(&r, 70) ? common_word(COMMON + p * COMMON + k)
							  : own_word(w->serial, p, n);

			if (st_chance(&r, 10))
				want = 0;
			fill(buf, want);
			if (sm_write(c, addr, buf, ST_PAGE_SIZE)) {
				atomic_fetch_add(&bad, 1);
				continue;
			}
			w->shadow[p] = want;
			atomic_fetch_add(&writes, 1);
		} else if ((seed & 4) && dice == 997) {
			/* Drop a 64 KiB block and write it back as it was: it
			 * faults in as a new large folio for ksmd to split. */
			unsigned first = p & ~15u;

			if (first + 16 <= PAGES &&
			    sm_madvise(mms[w->serial - 1], BASE + first * ST_PAGE_SIZE, 16 * ST_PAGE_SIZE,
				       MADV_DONTNEED))
				atomic_fetch_add(&bad, 1);
			for (unsigned q = first; q < first + 16 && q < PAGES; q++) {
				fill(buf, w->shadow[q]);
				if (sm_write(c, BASE + q * ST_PAGE_SIZE, buf, ST_PAGE_SIZE))
					atomic_fetch_add(&bad, 1);
			}
		} else if (dice < 998) {
			if (sm_read(c, addr, buf, ST_PAGE_SIZE))
				atomic_fetch_add(&bad, 1);
			else
				page_ok(buf, w->shadow[p], w->serial, p, "read");
			atomic_fetch_add(&reads, 1);
		} else {
			fork_and_check(w, c, &r);
		}
	}
	sm_cpu_switch_mm(c, NULL);
	sm_cpu_destroy(c);
	return NULL;
}

/* Unmerge and re-advise ranges, flip the knobs, unmerge everything. */
static void *meddler_main(void *arg)
{
	struct st_rng r;
	struct sm_ksm_config cfg;

	(void)arg;
	st_rng_init(&r, seed, 100);
	sm_ksm_config(m, &cfg);
	while (!atomic_load(&stop)) {
		struct sm_mm *mm = mms[st_below(&r, NMM)];
		unsigned p = (unsigned)st_below(&r, PAGES), len = 1 + (unsigned)st_below(&r, PAGES - p);
		unsigned dice = (unsigned)st_below(&r, 100);
		long err = 0;

		if (dice < 40) {
			err = sm_madvise(mm, BASE + p * ST_PAGE_SIZE, len * ST_PAGE_SIZE, MADV_UNMERGEABLE);
			if (!err)
				err = sm_madvise(mm, BASE + p * ST_PAGE_SIZE, len * ST_PAGE_SIZE, MADV_MERGEABLE);
		} else if (dice < 45) {
			cfg.use_zero_pages = !cfg.use_zero_pages;
			err = sm_ksm_set(m, &cfg);
		} else if (dice < 48) {
			cfg.run = 2;
			err = sm_ksm_set(m, &cfg);
			cfg.run = 1;
			if (!err)
				err = sm_ksm_set(m, &cfg);
		} else if (dice < 50) {
			err = sm_mm_check(mm);
		}
		if (err) {
			atomic_fetch_add(&bad, 1);
			fprintf(stderr, "FAIL meddler: %ld\n", err);
		}
		st_sleep_us(200 + (unsigned)st_below(&r, 800));
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sm_config mcfg = { .ram_bytes = 128ul << 20, .flags = SM_CFG_POISON_FREED };
	struct sm_ksm_config kcfg = { .run = 1, .pages_to_scan = 64, .sleep_millisecs = 0 };
	double budget = st_budget(3.0);
	struct sm_machine_stats ms0, ms1;
	struct sm_ksm_stats ks;
	struct st_tally t = { 0 };
	pthread_t meddler;
	uint64_t buf[ST_WORDS_PAGE];
	struct sm_cpu *c;
	bool contents = true;

	seed = st_seed(argc, argv);
	if (seed & 1)
		mcfg.flags |= SM_CFG_NO_KSM_REUSE;
	if (seed & 2)
		kcfg.max_page_sharing = 4;
	if (seed & 4) {
		mcfg.flags |= SM_CFG_ANON_ORDERS;
		mcfg.anon_orders_madvise = 1u << 2 | 1u << 4;
	}
	printf("stress_ksm: seed %" PRIu64 ", %.0f s, reuse %s, max_page_sharing %u, %s folios\n",
	       seed, budget, seed & 1 ? "off" : "on", kcfg.max_page_sharing ? kcfg.max_page_sharing : 256,
	       seed & 4 ? "large" : "small");
	m = sm_machine_create(&mcfg);
	sm_machine_stats(m, &ms0);
	c = sm_cpu_create(m);
	for (unsigned i = 0; i < NMM; i++) {
		mms[i] = sm_mm_create(m);
		writers[i].serial = i + 1;
		if (sm_mmap(mms[i], BASE, PAGES * ST_PAGE_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (long)BASE ||
		    sm_madvise(mms[i], BASE, PAGES * ST_PAGE_SIZE, MADV_MERGEABLE) ||
		    ((seed & 4) && sm_madvise(mms[i], BASE, PAGES * ST_PAGE_SIZE, MADV_HUGEPAGE)))
			return 2;
		sm_cpu_switch_mm(c, mms[i]);
		for (unsigned p = 0; p < PAGES; p++) {
			writers[i].shadow[p] = common_word(p % COMMON);
			fill(buf, writers[i].shadow[p]);
			if (sm_write(c, BASE + p * ST_PAGE_SIZE, buf, ST_PAGE_SIZE))
				return 2;
		}
	}
	sm_cpu_switch_mm(c, NULL);
	if (sm_ksm_set(m, &kcfg))
		return 2;
	for (unsigned i = 0; i < NMM; i++)
		pthread_create(&writers[i].thread, NULL, writer_main, &writers[i]);
	pthread_create(&meddler, NULL, meddler_main, NULL);
	for (double end = st_now() + budget; st_now() < end; )
		st_sleep_us(10000);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < NMM; i++)
		pthread_join(writers[i].thread, NULL);
	pthread_join(meddler, NULL);
	sm_ksm_stats(m, &ks);
	printf("%ld writes, %ld page reads, %ld forks; ksmd: %" PRIu64 " full scans, %" PRIu64
	       " pages scanned, %" PRIu64 " shared, %" PRIu64 " sharing, %" PRIu64 " reused, %" PRIu64
	       " chains\n",
	       atomic_load(&writes), atomic_load(&reads), atomic_load(&forks), ks.full_scans,
	       ks.pages_scanned, ks.pages_shared, ks.pages_sharing, ks.pages_reused,
	       ks.stable_node_chains);
	sm_machine_stats(m, &ms1);
	printf("%" PRIu64 " large folios split\n", ms1.folios_split);
	st_result(&t, atomic_load(&bad) == 0, "no write lost, none seen in another mm (%ld bad)",
		  atomic_load(&bad));
	st_result(&t, ks.full_scans >= 1, "ksmd completed full scans");

	/* Merge once more with ksmd stopped, then check everything. */
	kcfg.run = 0;
	sm_ksm_set(m, &kcfg);
	sm_ksm_scan(m, 2);
	sm_ksm_stats(m, &ks);
	st_result(&t, ks.pages_shared > 0 && ks.pages_sharing > 0, "pages merged at the end (%" PRIu64
		  " shared, %" PRIu64 " sharing)", ks.pages_shared, ks.pages_sharing);
	for (unsigned i = 0; i < NMM; i++) {
		sm_cpu_switch_mm(c, mms[i]);
		for (unsigned p = 0; p < PAGES; p++)
			if (sm_read(c, BASE + p * ST_PAGE_SIZE, buf, ST_PAGE_SIZE) ||
			    !page_ok(buf, writers[i].shadow[p], i + 1, p, "final"))
				contents = false;
	}
	sm_cpu_switch_mm(c, NULL);
	st_result(&t, contents, "every page holds its last write");
	for (unsigned i = 0; i < NMM; i++)
		st_result(&t, sm_mm_check(mms[i]) == 0, "invariants hold in mm %u", i + 1);
	for (unsigned i = 0; i < NMM; i++)
		sm_mm_destroy(mms[i]);
	sm_ksm_stats(m, &ks);
	st_result(&t, ks.pages_shared == 0 && ks.pages_sharing == 0 && ks.ksm_zero_pages == 0,
		  "no KSM page left after the last mm");
	sm_cpu_destroy(c);
	sm_machine_stats(m, &ms1);
	st_result(&t, st_wait_free_frames(m, ms0.free_frames, 5.0) == ms0.free_frames,
		  "every frame back (%" PRIu64 " of %" PRIu64 ")", ms1.free_frames, ms0.free_frames);
	sm_machine_destroy(m);
	return st_finish(&t);
}
