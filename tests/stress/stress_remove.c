/*
 * MADV_REMOVE against faults: no page-cache folio a hole punch dropped may
 * stay mapped, or be mapped again, once the punch returned.
 *
 * One host file, mapped MAP_SHARED in two mms (A and B) and MAP_PRIVATE in
 * B. Faulting threads read and write the shared mappings and read the
 * private one (which maps the cache folios until a write copies them); a
 * remover punches random ranges through A or B and now and then runs the
 * invariant checker on both mms, which fails on any mapped file folio that
 * is not its file's cached folio; a shaper splits and merges B's shared VMA
 * (mprotect) and forks B (checking some children), so that the file rmap the
 * punch walks keeps changing under it. A fault that looked a folio up before a punch and
 * maps it after is the race (do_file_fault's recheck under the PTE lock
 * exists for it); machine stats count how often a fault backed off.
 *
 * Every word written is a stress word of its page (stress_util.h): a word
 * read back must be 0 (a hole) or such a word of that page. At the end,
 * quiet: both mms pass the checker; a word written through A at every page
 * reads back through B (one cache, or the stale folio would show); a last
 * punch of the whole file leaves zeros in both mappings and in the host
 * file; every frame comes back.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "stress_util.h"

#define NPAGES 64
#define LEN (NPAGES * ST_PAGE_SIZE)
#define SHARED 0x7e1000000000ul   /* A and B */
#define PRIV   0x7e2000000000ul   /* B */
#define FAULTERS 2

struct run {
	struct sm_machine *m;
	struct sm_mm *a, *b;
	int fd;
	atomic_bool stop;
	atomic_long reads, writes, punches, checks, shapes, forks, bad;
	uint64_t seed;
};

static void report_bad(struct run *r, const char *where, unsigned page, uint64_t w)
{
	if (atomic_fetch_add(&r->bad, 1) < 5)
		printf("FAIL %s page %u: word %016" PRIx64 " (%s)\n", where, page, w, st_word_kind(w));
}

/* 0, or a stress word of this page written by mm serial 1 (A) or 2 (B). */
static bool word_ok(uint64_t w, unsigned page)
{
	struct st_word d;

	if (!w)
		return true;
	return st_word_parse(w, &d) && d.index == page && (d.serial == 1 || d.serial == 2);
}

static void *faulter(void *arg)
{
	struct run *r = ((void **)arg)[0];
	unsigned id = (unsigned)(uintptr_t)((void **)arg)[1];
	struct sm_cpu *cpu = sm_cpu_create(r->m);
	struct st_rng rng;
	unsigned epoch = 0;

	st_rng_init(&rng, r->seed, id);
	while (!atomic_load(&r->stop)) {
		bool use_b = st_chance(&rng, 50);
		struct sm_mm *mm = use_b ? r->b : r->a;
		unsigned page = (unsigned)st_below(&rng, NPAGES);
		/* Each faulter its own words: under TSan guest copies go byte by
		 * byte, and a read racing a write of one word would tear it. */
		unsigned slot = id + FAULTERS * (unsigned)st_below(&rng, ST_WORDS_PAGE / FAULTERS);
		unsigned long base = use_b && st_chance(&rng, 30) ? PRIV : SHARED;
		unsigned long addr = base + page * ST_PAGE_SIZE + slot * 8;
		uint64_t w = 0;
		long ret;

		sm_cpu_switch_mm(cpu, mm);
		if (base == SHARED && st_chance(&rng, 40)) {
			w = st_word_make(use_b ? 2 : 1, ++epoch & ST_EPOCH_MAX, page);
			ret = sm_write(cpu, addr, &w, 8);
			/* The shaper may have made B's page read-only for a moment. */
			if (ret && ret != -EFAULT)
				report_bad(r, "write failed", page, (uint64_t)ret);
			atomic_fetch_add(&r->writes, 1);
		} else {
			ret = sm_read(cpu, addr, &w, 8);
			if (ret)
				report_bad(r, "read failed", page, (uint64_t)ret);
			else if (!word_ok(w, page))
				report_bad(r, base == PRIV ? "private read" : "shared read", page, w);
			atomic_fetch_add(&r->reads, 1);
		}
	}
	sm_cpu_switch_mm(cpu, NULL);
	sm_cpu_destroy(cpu);
	return NULL;
}

static void *remover(void *arg)
{
	struct run *r = arg;
	struct st_rng rng;

	st_rng_init(&rng, r->seed, 100);
	while (!atomic_load(&r->stop)) {
		unsigned first = (unsigned)st_below(&rng, NPAGES);
		unsigned n = 1 + (unsigned)st_below(&rng, st_chance(&rng, 20) ? NPAGES - first : 4);
		long ret;

		if (first + n > NPAGES)
			n = NPAGES - first;   /* beyond the mapping: -ENOMEM */
		struct sm_mm *mm = st_chance(&rng, 50) ? r->a : r->b;

		ret = sm_madvise(mm, SHARED + first * ST_PAGE_SIZE, n * ST_PAGE_SIZE, MADV_REMOVE);

		if (ret)
			report_bad(r, "MADV_REMOVE failed", first, (uint64_t)ret);
		atomic_fetch_add(&r->punches, 1);
		if (st_chance(&rng, 5)) {
			if (sm_mm_check(r->a) || sm_mm_check(r->b))
				report_bad(r, "sm_mm_check failed", first, 0);
			atomic_fetch_add(&r->checks, 1);
		}
	}
	return NULL;
}

static void *shaper(void *arg)
{
	struct run *r = arg;
	struct st_rng rng;

	st_rng_init(&rng, r->seed, 200);
	while (!atomic_load(&r->stop)) {
		unsigned page = 1 + (unsigned)st_below(&rng, NPAGES - 2);
		unsigned long addr = SHARED + page * ST_PAGE_SIZE;

		if (st_chance(&rng, 25)) {
			struct sm_mm *child;

			if (sm_fork(r->b, &child) == 0) {
				/* A page-cache PTE fork copied past a punch's walk
				 * would be a folio no longer cached. */
				if (st_chance(&rng, 20) && sm_mm_check(child))
					report_bad(r, "sm_mm_check of a fork child failed", page, 0);
				sm_mm_destroy(child);
				atomic_fetch_add(&r->forks, 1);
			}
			continue;
		}
		/* Split B's shared VMA around one page, then merge it back. */
		if (sm_mprotect(r->b, addr, ST_PAGE_SIZE, PROT_READ) ||
		    sm_mprotect(r->b, addr, ST_PAGE_SIZE, PROT_READ | PROT_WRITE))
			report_bad(r, "mprotect failed", page, 0);
		atomic_fetch_add(&r->shapes, 1);
	}
	return NULL;
}

static void check_quiet(struct run *r, struct st_tally *t)
{
	struct sm_cpu *cpu = sm_cpu_create(r->m);
	bool coherent = true, zeros = true;
	char buf[ST_PAGE_SIZE];

	st_result(t, sm_mm_check(r->a) == 0 && sm_mm_check(r->b) == 0,
		  "both mms pass the checker after the race");
	for (unsigned p = 0; p < NPAGES; p++) {
		uint64_t w = st_word_make(1, ST_EPOCH_MAX, p), back = 0;

		sm_cpu_switch_mm(cpu, r->a);
		sm_write(cpu, SHARED + p * ST_PAGE_SIZE + 8, &w, 8);
		sm_cpu_switch_mm(cpu, r->b);
		sm_read(cpu, SHARED + p * ST_PAGE_SIZE + 8, &back, 8);
		coherent &= back == w;
	}
	st_result(t, coherent, "a word written through A reads back through B at every page");
	st_result(t, sm_madvise(r->b, SHARED, LEN, MADV_REMOVE) == 0, "a last punch of the whole file");
	for (unsigned p = 0; p < NPAGES; p++) {
		for (int side = 0; side < 2; side++) {
			sm_cpu_switch_mm(cpu, side ? r->b : r->a);
			sm_read(cpu, SHARED + p * ST_PAGE_SIZE, buf, sizeof(buf));
			for (size_t i = 0; i < sizeof(buf); i++)
				zeros &= buf[i] == 0;
		}
		if (pread(r->fd, buf, sizeof(buf), (off_t)(p * ST_PAGE_SIZE)) != (ssize_t)sizeof(buf))
			zeros = false;
		for (size_t i = 0; i < sizeof(buf); i++)
			zeros &= buf[i] == 0;
	}
	st_result(t, zeros, "then zeros in A, in B and in the host file");
	st_result(t, sm_mm_check(r->a) == 0 && sm_mm_check(r->b) == 0, "both mms pass the checker");
	sm_cpu_switch_mm(cpu, NULL);
	sm_cpu_destroy(cpu);
}

int main(int argc, char **argv)
{
	struct sm_config cfg = { .ram_bytes = 64ul << 20, .flags = SM_CFG_POISON_FREED };
	double budget = st_budget(3.0);
	struct run r = { .seed = st_seed(argc, argv) };
	pthread_t th[FAULTERS + 2];
	void *args[FAULTERS][2];
	struct sm_machine_stats st;
	char dir[] = "/tmp/stress_remove.XXXXXX", path[64];
	static char data[LEN];
	uint64_t free0;
	struct st_tally t = { 0 };

	printf("stress_remove: seed %" PRIu64 ", %.0f s\n", r.seed, budget);
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/f", dir);
	r.fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	for (unsigned p = 0; p < NPAGES; p++)
		for (unsigned i = 0; i < ST_WORDS_PAGE; i++) {
			uint64_t w = st_word_make(1, 0, p);

			memcpy(data + p * ST_PAGE_SIZE + i * 8, &w, 8);
		}
	if (r.fd < 0 || pwrite(r.fd, data, LEN, 0) != LEN)
		return 1;
	r.m = sm_machine_create(&cfg);
	sm_flusher(r.m, &(struct sm_flusher_config){ .interval_ms = 5 });   /* writeback races too */
	sm_machine_stats(r.m, &st);
	free0 = st.free_frames;
	r.a = sm_mm_create(r.m);
	r.b = sm_mm_create(r.m);
	if (sm_mmap(r.a, SHARED, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r.fd, 0) < 0 ||
	    sm_mmap(r.b, SHARED, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r.fd, 0) < 0 ||
	    sm_mmap(r.b, PRIV, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, r.fd, 0) < 0)
		return 1;
	{
		/* B's private mapping gets an anon_vma (a COW page), so fork
		 * copies its page-cache PTEs too. */
		struct sm_cpu *cpu = sm_cpu_create(r.m);
		uint64_t w = st_word_make(2, 0, NPAGES - 1);

		sm_cpu_switch_mm(cpu, r.b);
		sm_write(cpu, PRIV + (NPAGES - 1) * ST_PAGE_SIZE, &w, 8);
		sm_cpu_switch_mm(cpu, NULL);
		sm_cpu_destroy(cpu);
	}
	for (unsigned i = 0; i < FAULTERS; i++) {
		args[i][0] = &r;
		args[i][1] = (void *)(uintptr_t)i;
		pthread_create(&th[i], NULL, faulter, args[i]);
	}
	pthread_create(&th[FAULTERS], NULL, remover, &r);
	pthread_create(&th[FAULTERS + 1], NULL, shaper, &r);
	st_sleep_us((unsigned)(budget * 1e6));
	atomic_store(&r.stop, true);
	for (unsigned i = 0; i < FAULTERS + 2; i++)
		pthread_join(th[i], NULL);
	sm_flusher(r.m, NULL);
	sm_machine_stats(r.m, &st);
	printf("reads %ld, writes %ld, punches %ld (%" PRIu64 " folios), checks %ld, splits %ld, "
	       "forks %ld; faults that found their folio punched: %" PRIu64 "\n",
	       atomic_load(&r.reads), atomic_load(&r.writes), atomic_load(&r.punches),
	       st.punched_pages, atomic_load(&r.checks), atomic_load(&r.shapes),
	       atomic_load(&r.forks), st.punch_fault_retries);
	st_result(&t, atomic_load(&r.bad) == 0, "no bad word, failed call or checker failure in the race");
	check_quiet(&r, &t);
	sm_mm_destroy(r.a);
	sm_mm_destroy(r.b);
	st_result(&t, st_wait_free_frames(r.m, free0, 5.0) == free0, "every frame came back");
	sm_machine_destroy(r.m);
	close(r.fd);
	unlink(path);
	rmdir(dir);
	return st_finish(&t);
}
