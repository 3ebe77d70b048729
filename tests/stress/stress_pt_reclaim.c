/*
 * Page-table reclaim under fire: CPUs fault, read and write in a region
 * while other threads empty it with MADV_DONTNEED (which frees the PTE
 * tables it empties, on the spot or through the locked recheck), free
 * tables with SM_MADV_PT_RECLAIM, and the background scanner reclaims too;
 * a /proc reader walks the tables (pagemap, smaps_rollup) and a forker
 * copies them into children that read and zap their own. Freed frames,
 * tables included, are poisoned: a walker that followed a freed table would
 * find PFNs beyond RAM and abort, a write through a stale translation into
 * a freed frame is caught when the frame is handed out again. Every word
 * read must be zero or what some thread wrote there for that address. The
 * invariant checker runs at pauses; at the end every frame is back, and the
 * zap must have freed tables itself. It runs twice: with 4 KiB folios, then
 * with large folios (whose size a fault picks under the PTE lock).
 *
 * SOFTMM_SOAK=1 runs it for a minute instead of a few seconds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <softmm.h>

#define REGION (64ul << 20)
#define ACCESSORS 3
#define MUTATORS 4   /* two zappers, the /proc reader, the forker */

static struct sm_machine *m;
static struct sm_mm *mm;
static unsigned long base;
static atomic_bool stop;
static atomic_int paused, pause_req;
static atomic_long accesses, efaults, bad, forks;

static uint64_t tag(unsigned long addr, unsigned t)
{
	return 0x5a00000000000000ull | ((uint64_t)t << 48) | (addr & 0xffffffffffffull);
}

static bool word_ok(uint64_t v, unsigned long addr)
{
	return !v || (v >> 56 == 0x5a && (v & 0xffffffffffffull) == (addr & 0xffffffffffffull));
}

static void pause_point(void)
{
	if (!atomic_load(&pause_req))
		return;
	atomic_fetch_add(&paused, 1);
	while (atomic_load(&pause_req))
		usleep(100);
	atomic_fetch_sub(&paused, 1);
}

static void *accessor(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	struct sm_cpu *c = sm_cpu_create(m);
	unsigned seed = t * 7919 + 1;

	sm_cpu_switch_mm(c, mm);
	while (!atomic_load(&stop)) {
		unsigned long addr = base + ((unsigned long)rand_r(&seed) % (REGION / 8)) * 8;
		uint64_t v = 0;

		pause_point();
		if (rand_r(&seed) & 1) {
			v = tag(addr, t);
			if (sm_write(c, addr, &v, 8))
				atomic_fetch_add(&efaults, 1);
		} else if (sm_read(c, addr, &v, 8)) {
			atomic_fetch_add(&efaults, 1);
		} else if (!word_ok(v, addr)) {
			fprintf(stderr, "bad word %llx at %lx\n", (unsigned long long)v, addr);
			atomic_fetch_add(&bad, 1);
		}
		atomic_fetch_add(&accesses, 1);
	}
	sm_cpu_switch_mm(c, NULL);
	sm_cpu_destroy(c);
	return NULL;
}


static void *zapper(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		unsigned long off = ((unsigned long)rand_r(&seed) % (REGION >> 21)) << 21;
		unsigned long len = ((unsigned long)rand_r(&seed) % 4 + 1) << 21;
		unsigned r = (unsigned)rand_r(&seed) % 8;

		pause_point();
		if (r == 0) {	/* unaligned: partly covered tables stay */
			off += ((unsigned long)rand_r(&seed) % 512) << 12;
			len -= ((unsigned long)rand_r(&seed) % 512) << 12;
		}
		if (off + len > REGION)
			len = REGION - off;
		sm_madvise(mm, base + off, len, r < 6 ? MADV_DONTNEED : SM_MADV_PT_RECLAIM);
	}
	return NULL;
}

/* Walks the tables through /proc while they come and go. */
static void *proc_reader(void *arg)
{
	static char buf[1 << 16];
	uint64_t pm[512];
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		unsigned long off = ((unsigned long)rand_r(&seed) % (REGION >> 21)) << 21;

		pause_point();
		if (rand_r(&seed) % 4)
			sm_pagemap_read(mm, base + off, pm, 512);
		else
			sm_proc_read(mm, "smaps_rollup", buf, sizeof(buf));
	}
	return NULL;
}

/* Forks the mm (copying tables as they are reclaimed), reads and zaps in
 * the child, and checks it. */
static void *forker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	struct sm_cpu *c = sm_cpu_create(m);

	while (!atomic_load(&stop)) {
		struct sm_mm *child = NULL;

		pause_point();
		usleep(10000);
		if (sm_fork(mm, &child))
			continue;
		atomic_fetch_add(&forks, 1);
		sm_cpu_switch_mm(c, child);
		for (int i = 0; i < 64; i++) {
			unsigned long addr = base + ((unsigned long)rand_r(&seed) % (REGION / 8)) * 8;
			uint64_t v = 0;

			if (sm_read(c, addr, &v, 8))
				atomic_fetch_add(&efaults, 1);
			else if (!word_ok(v, addr)) {
				fprintf(stderr, "child: bad word %llx at %lx\n", (unsigned long long)v, addr);
				atomic_fetch_add(&bad, 1);
			}
		}
		sm_madvise(child, base, REGION, MADV_DONTNEED);
		if (sm_mm_check(child))
			atomic_fetch_add(&bad, 1);
		sm_cpu_switch_mm(c, NULL);
		sm_mm_destroy(child);
	}
	sm_cpu_destroy(c);
	return NULL;
}

/* One run on a machine of this config; 0 if everything held. */
static int run(const char *name, const struct sm_config *cfg, double secs)
{
	struct sm_pt_scanner_config sc = { .interval_ms = 1, .pages_per_pass = REGION >> 12 };
	struct sm_machine_stats st0, st1;
	pthread_t th[ACCESSORS + MUTATORS];
	int failed = 0, checks = 0;
	struct timespec t0, now;

	atomic_store(&stop, 0);
	atomic_store(&accesses, 0);
	atomic_store(&efaults, 0);
	atomic_store(&bad, 0);
	atomic_store(&forks, 0);
	m = sm_machine_create(cfg);
	sm_machine_stats(m, &st0);
	mm = sm_mm_create(m);
	base = (unsigned long)sm_mmap(mm, 0, REGION, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sm_mm_set_pt_reclaim(mm, 1);
	sm_pt_scanner(m, &sc);
	for (int i = 0; i < ACCESSORS; i++)
		pthread_create(&th[i], NULL, accessor, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < 2; i++)
		pthread_create(&th[ACCESSORS + i], NULL, zapper, (void *)(uintptr_t)(i + 99));
	pthread_create(&th[ACCESSORS + 2], NULL, proc_reader, (void *)(uintptr_t)7);
	pthread_create(&th[ACCESSORS + 3], NULL, forker, (void *)(uintptr_t)11);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		usleep(200000);
		/* Quiesce the mutators and accessors, then check everything. */
		atomic_store(&pause_req, 1);
		while (atomic_load(&paused) < ACCESSORS + MUTATORS)
			usleep(100);
		if (sm_mm_check(mm)) {
			failed = 1;
			atomic_store(&stop, 1);
		}
		checks++;
		atomic_store(&pause_req, 0);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (!atomic_load(&stop) &&
		 (now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9 < secs);
	atomic_store(&stop, 1);
	for (int i = 0; i < ACCESSORS + MUTATORS; i++)
		pthread_join(th[i], NULL);
	sm_pt_scanner(m, NULL);
	sm_mm_destroy(mm);
	sm_machine_stats(m, &st1);
	if (st1.free_frames != st0.free_frames) {
		fprintf(stderr, "%s: leak: %llu frames\n", name,
			(unsigned long long)(st0.free_frames - st1.free_frames));
		failed = 1;
	}
	if (atomic_load(&bad))
		failed = 1;
	if (!st1.pt_zap_freed) {
		fprintf(stderr, "%s: the zap never freed a table itself\n", name);
		failed = 1;
	}
	sm_machine_destroy(m);
	printf("stress_pt_reclaim %s: %ld accesses, %ld EFAULT, %ld forks, %d checks, %ld bad words; "
	       "tables freed by the zap %llu, left to its recheck %llu\n", name,
	       atomic_load(&accesses), atomic_load(&efaults), atomic_load(&forks), checks,
	       atomic_load(&bad), (unsigned long long)st1.pt_zap_freed,
	       (unsigned long long)st1.pt_zap_rechecked);
	return failed;
}

int main(void)
{
	struct sm_config small = { .ram_bytes = 256 << 20, .flags = SM_CFG_POISON_FREED };
	struct sm_config large = { .ram_bytes = 256 << 20,
				   .flags = SM_CFG_POISON_FREED | SM_CFG_ANON_ORDERS,
				   .anon_orders_always = 1u << 2 | 1u << 4,
				   .anon_orders_madvise = 1u << 9 };
	double secs = getenv("SOFTMM_SOAK") ? 30 : 1.5;
	int failed = 0;

	failed += run("small-folios", &small, secs);
	failed += run("large-folios", &large, secs);
	printf("%d passed, %d failed\n", 2 - failed, failed);
	return failed != 0;
}
