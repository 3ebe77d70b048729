/*
 * The lost write: dirty file pages whose rmap goes before the TLB flush.
 *
 * Writer CPUs fill a shared file mapping with sequence words, each writer
 * its own pages, two words a page, while a zapper empties the mapping
 * (MADV_DONTNEED, and sometimes a MAP_FIXED mapping over it, which unmaps
 * the old one) and a cleaner writes it back (msync) after every zap starts.
 * A writer writes a page's first word, waits until a zap has started and a
 * writeback pass has run after it, then writes the second: the moment the
 * race needs, found with the public API alone. Every write that sm_write
 * reported done must be in the host file after the round's final
 * msync(MS_SYNC); a page is never written again, so a lost write stays lost.
 *
 * The hazard (Linux 6.2's "delay the rmap removal until after the TLB
 * flush"): zap clears a dirty PTE and, without the delay, drops the
 * folio's mapcount before the flush; writeback then sees the folio
 * unmapped, skips folio_mkclean's walk (which would wait on the PTE lock
 * until the flush), cleans the folio and copies it out, while a writer still
 * writes through its stale, writable TLB entry. The folio stays clean: that
 * write never reaches the file. softmm's TLB, like hardware, lets a CPU
 * write through a cached writable+dirty entry without a walk, so the bug is
 * real here.
 *
 * Default: a few seconds with the delay (no write may be lost).
 * SOFTMM_SOAK=1: a minute with the delay, then the same without it
 * (SM_CFG_NO_DELAY_RMAP) until a loss is seen, which must happen: the test
 * proves it can see the bug it guards against. --no-delay runs only that.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "stress_util.h"

#define WRITERS 2
#define PAGES_PER_WRITER 256
#define WORDS_PER_PAGE 2
#define WAIT_SPINS 2000   /* most a writer waits for a zap and a writeback after it */
#define NPAGES (WRITERS * PAGES_PER_WRITER)
#define LEN (NPAGES * ST_PAGE_SIZE)
#define BASE 0x7e0000000000ul
/* After the file, in the same MADV_DONTNEED (one mmu_gather): 256 PTE
 * tables the zap must scan, empty after the first (and kept: the machine
 * runs with SM_CFG_NO_PT_RECLAIM_ON_ZAP), so that the flush comes a while
 * after the file's PTEs were cleared, as in a big unmap. */
#define BALLAST (256 * (2ul << 20))

struct run {
	struct sm_machine *m;
	struct sm_mm *mm;
	int fd;
	unsigned round;
	atomic_bool stop_noise;      /* zapper and cleaner: the round is over */
	atomic_int writers_left;
	atomic_long zaps, remaps, msyncs, writes, refaults;
	/* The rhythm of the race: the zapper counts the zaps it starts, the
	 * cleaner runs one writeback pass after each and says which zap it
	 * followed; a writer that wrote a page's first word waits for a pass
	 * that followed a later zap before it writes the second, so that the
	 * second lands while that zap's TLB flush may still be to come. */
	atomic_ulong zap_seq, clean_seq;
	/* writer w completed done[w][p] words of page p this round */
	unsigned done[WRITERS][PAGES_PER_WRITER];
	struct st_rng rng;
};

static uint64_t word_of(unsigned round, unsigned w, unsigned page, unsigned i)
{
	return 0xa5ull << 56 | (uint64_t)(round & 0xffffff) << 32 | (uint64_t)w << 24 |
	       (uint64_t)page << 8 | i;
}

struct writer_arg {
	struct run *r;
	unsigned w;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	struct run *r = a->r;
	struct sm_cpu *cpu = sm_cpu_create(r->m);

	sm_cpu_switch_mm(cpu, r->mm);
	for (unsigned pg = 0; pg < PAGES_PER_WRITER; pg++) {
		unsigned page = a->w * PAGES_PER_WRITER + pg;

		for (unsigned i = 0; i < WORDS_PER_PAGE; i++) {
			uint64_t v = word_of(r->round, a->w, page, i);
			unsigned long addr = BASE + page * ST_PAGE_SIZE + i * 8;
			long err;

			/* -EFAULT while the zapper has it unmapped: again. */
			while ((err = sm_write(cpu, addr, &v, 8)) == -EFAULT)
				atomic_fetch_add(&r->refaults, 1);
			if (err) {
				fprintf(stderr, "writer %u: sm_write %ld\n", a->w, err);
				abort();
			}
			r->done[a->w][pg] = i + 1;
			atomic_fetch_add_explicit(&r->writes, 1, memory_order_relaxed);
			if (i + 1 < WORDS_PER_PAGE) {
				unsigned long z = atomic_load(&r->zap_seq);

				for (unsigned spin = 0; spin < WAIT_SPINS &&
				     atomic_load(&r->clean_seq) <= z && !atomic_load(&r->stop_noise); spin++)
					sched_yield();
			}
		}
	}
	sm_cpu_switch_mm(cpu, NULL);
	sm_cpu_destroy(cpu);
	atomic_fetch_sub(&r->writers_left, 1);
	return NULL;
}

static long map_region(struct run *r)
{
	return sm_mmap(r->mm, BASE, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, 0);
}

static void *zapper(void *p)
{
	struct run *r = p;
	struct st_rng rng;

	st_rng_init(&rng, r->rng.s, 99);
	while (!atomic_load(&r->stop_noise)) {
		atomic_fetch_add(&r->zap_seq, 1);
		if (st_chance(&rng, 98)) {
			if (sm_madvise(r->mm, BASE, LEN + BALLAST, MADV_DONTNEED))
				abort();
			atomic_fetch_add(&r->zaps, 1);
		} else {
			/* munmap and map again in one step (MAP_FIXED over the
			 * old mapping): a preempted zapper leaves no hole. */
			if (map_region(r) != (long)BASE)
				abort();
			atomic_fetch_add(&r->remaps, 1);
		}
		if (st_chance(&rng, 50))
			sched_yield();
	}
	return NULL;
}

/* One writeback pass of the whole mapping after each zap starts. */
static void *cleaner(void *p)
{
	struct run *r = p;
	unsigned long seen = 0;

	while (!atomic_load(&r->stop_noise)) {
		unsigned long z = atomic_load(&r->zap_seq);
		long e;

		if (z == seen) {
			sched_yield();
			continue;
		}
		e = sm_msync(r->mm, BASE, LEN, MS_ASYNC);
		/* -ENOMEM: the zapper's munmap left a hole for a moment. */
		if (e && e != -ENOMEM)
			abort();
		atomic_fetch_add(&r->msyncs, 1);
		atomic_store(&r->clean_seq, z);
		seen = z;
	}
	return NULL;
}

/* Words completed this round but missing from the host file. */
static long check_file(struct run *r, uint64_t *file, long *checked)
{
	long lost = 0;

	if (pread(r->fd, file, LEN, 0) != (ssize_t)LEN)
		abort();
	for (unsigned w = 0; w < WRITERS; w++) {
		for (unsigned pg = 0; pg < PAGES_PER_WRITER; pg++) {
			unsigned page = w * PAGES_PER_WRITER + pg;

			for (unsigned i = 0; i < r->done[w][pg]; i++) {
				uint64_t want = word_of(r->round, w, page, i);
				uint64_t got = file[page * ST_WORDS_PAGE + i];

				(*checked)++;
				if (got != want) {
					if (lost++ < 5)
						printf("  round %u: writer %u page %u word %u: file has "
						       "%#" PRIx64 ", the write of %#" PRIx64 " was lost\n",
						       r->round, w, page, i, got, want);
				}
			}
		}
	}
	return lost;
}

struct phase_result {
	unsigned rounds;
	long lost, checked;
	unsigned lossy_rounds;
};

/* Rounds until the budget runs out (or, with until_loss, the first loss). */
static struct phase_result run_phase(const char *name, bool delay, double seconds,
				     bool until_loss, uint64_t seed, const char *dir)
{
	struct sm_config cfg = { .ram_bytes = 64ul << 20,
				 .flags = SM_CFG_POISON_FREED | SM_CFG_NO_PT_RECLAIM_ON_ZAP |
					  (delay ? 0 : SM_CFG_NO_DELAY_RMAP) };
	static struct run r;
	struct phase_result res = { 0 };
	char path[256];
	uint64_t *file = malloc(LEN);
	double end = st_now() + seconds;
	struct sm_machine_stats st0, st1;
	struct sm_mm *keep;

	memset(&r, 0, sizeof(r));
	st_rng_init(&r.rng, seed, delay);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	r.fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (r.fd < 0 || ftruncate(r.fd, LEN) || !file)
		abort();
	r.m = sm_machine_create(&cfg);
	sm_flusher(r.m, NULL);
	sm_machine_stats(r.m, &st0);
	r.mm = sm_mm_create(r.m);
	/* A second mm keeps the file's page cache alive across munmap. */
	keep = sm_mm_create(r.m);
	if (!r.m || !r.mm || !keep || map_region(&r) != (long)BASE ||
	    sm_mmap(keep, BASE, LEN, PROT_READ, MAP_SHARED | MAP_FIXED, r.fd, 0) != (long)BASE ||
	    sm_mmap(r.mm, BASE + LEN, BALLAST, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		    -1, 0) != (long)(BASE + LEN))
		abort();
	{
		struct sm_cpu *cpu = sm_cpu_create(r.m);
		char c;

		sm_cpu_switch_mm(cpu, r.mm);
		for (unsigned long off = 0; off < BALLAST; off += 2ul << 20)
			sm_read(cpu, BASE + LEN + off, &c, 1);   /* a PTE table each */
		sm_cpu_switch_mm(cpu, NULL);
		sm_cpu_destroy(cpu);
	}
	while (st_now() < end) {
		pthread_t wt[WRITERS], zt, ct;
		struct writer_arg wa[WRITERS];
		long lost;

		r.round++;
		memset(r.done, 0, sizeof(r.done));
		atomic_store(&r.stop_noise, false);
		atomic_store(&r.zap_seq, 0);
		atomic_store(&r.clean_seq, 0);
		atomic_store(&r.writers_left, WRITERS);
		pthread_create(&zt, NULL, zapper, &r);
		pthread_create(&ct, NULL, cleaner, &r);
		for (unsigned w = 0; w < WRITERS; w++) {
			wa[w] = (struct writer_arg){ &r, w };
			pthread_create(&wt[w], NULL, writer, &wa[w]);
		}
		for (unsigned w = 0; w < WRITERS; w++)
			pthread_join(wt[w], NULL);
		atomic_store(&r.stop_noise, true);
		pthread_join(zt, NULL);
		pthread_join(ct, NULL);
		if (sm_msync(r.mm, BASE, LEN, MS_SYNC))
			abort();
		lost = check_file(&r, file, &res.checked);
		res.rounds++;
		res.lost += lost;
		res.lossy_rounds += lost > 0;
		if (until_loss && res.lost)
			break;
	}
	printf("%s: %u rounds, %ld writes checked, %ld lost (%u rounds with a loss); zaps %ld, "
	       "remaps %ld, msyncs %ld, writes %ld, -EFAULT retries %ld\n",
	       name, res.rounds, res.checked, res.lost, res.lossy_rounds, atomic_load(&r.zaps),
	       atomic_load(&r.remaps), atomic_load(&r.msyncs), atomic_load(&r.writes),
	       atomic_load(&r.refaults));
	if (sm_mm_check(r.mm))
		res.lost = -1;
	sm_mm_destroy(keep);
	sm_mm_destroy(r.mm);
	sm_machine_stats(r.m, &st1);
	if (st_wait_free_frames(r.m, st0.free_frames, 5.0) != st0.free_frames)
		res.lost = -1;
	sm_machine_destroy(r.m);
	close(r.fd);
	unlink(path);
	free(file);
	return res;
}

int main(int argc, char **argv)
{
	bool no_delay_only = argc > 1 && !strcmp(argv[1], "--no-delay");
	bool soak = getenv("SOFTMM_SOAK") && strcmp(getenv("SOFTMM_SOAK"), "0");
	uint64_t seed;
	double budget = st_budget(2.0);
	char dir[] = "/tmp/stress_lost_write.XXXXXX";
	struct st_tally t = { 0 };
	struct phase_result res;

	if (no_delay_only) {
		argc--;
		argv++;
	}
	seed = st_seed(argc, argv);
	printf("stress_lost_write: seed %" PRIu64 ", %.0f s a phase\n", seed, budget);
	if (!mkdtemp(dir))
		return 2;
	if (!no_delay_only) {
		res = run_phase("delay", true, budget, false, seed, dir);
		st_result(&t, res.lost == 0 && res.rounds > 0,
			  "delayed rmap: no write lost (%ld of %ld, %u rounds), invariants and frames intact",
			  res.lost, res.checked, res.rounds);
	}
	if (no_delay_only || soak) {
		res = run_phase("no-delay", false, budget, true, seed, dir);
		st_result(&t, res.lost > 0,
			  "without the delay (SM_CFG_NO_DELAY_RMAP) the test sees a lost write "
			  "(%ld lost after %u rounds)", res.lost, res.rounds);
	}
	rmdir(dir);
	return st_finish(&t);
}
