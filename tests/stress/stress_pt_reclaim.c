/*
 * Page-table reclaim under fire: CPUs fault, read and write in a region
 * while other threads empty it with MADV_DONTNEED (which frees the PTE
 * tables it empties), free tables with SM_MADV_PT_RECLAIM, and the
 * background scanner reclaims too. Freed frames, tables included, are
 * poisoned: a walker that followed a freed table would find PFNs beyond RAM
 * and abort, a write through a stale translation into a freed frame is
 * caught when the frame is handed out again. Every word read must be zero
 * or what some thread wrote there for that address. The invariant checker
 * runs at pauses; at the end every frame is back.
 *
 * SOFTMM_SOAK=1 runs it for a minute instead of a few seconds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <softmm.h>

#define REGION (64ul << 20)
#define ACCESSORS 3

static struct sm_machine *m;
static struct sm_mm *mm;
static unsigned long base;
static atomic_bool stop;
static atomic_int paused, pause_req;
static atomic_long accesses, efaults, bad;

static uint64_t tag(unsigned long addr, unsigned t)
{
	return 0x5a00000000000000ull | ((uint64_t)t << 48) | (addr & 0xffffffffffffull);
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
		} else if (v && (v >> 56 != 0x5a || (v & 0xffffffffffffull) != (addr & 0xffffffffffffull))) {
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

		pause_point();
		if (off + len > REGION)
			len = REGION - off;
		sm_madvise(mm, base + off, len, (rand_r(&seed) % 3) ? MADV_DONTNEED : SM_MADV_PT_RECLAIM);
	}
	return NULL;
}

int main(void)
{
	struct sm_config cfg = { .ram_bytes = 256 << 20, .flags = SM_CFG_POISON_FREED };
	struct sm_pt_scanner_config sc = { .interval_ms = 1, .pages_per_pass = REGION >> 12 };
	struct sm_machine_stats st0, st1;
	pthread_t th[ACCESSORS + 2];
	double secs = getenv("SOFTMM_SOAK") ? 60 : 3;
	int failed = 0, checks = 0;
	struct timespec t0, now;

	m = sm_machine_create(&cfg);
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
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		usleep(200000);
		/* Quiesce the mutators and accessors, then check everything. */
		atomic_store(&pause_req, 1);
		while (atomic_load(&paused) < ACCESSORS + 2)
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
	for (int i = 0; i < ACCESSORS + 2; i++)
		pthread_join(th[i], NULL);
	sm_pt_scanner(m, NULL);
	sm_mm_destroy(mm);
	sm_machine_stats(m, &st1);
	if (st1.free_frames != st0.free_frames) {
		fprintf(stderr, "leak: %llu frames\n",
			(unsigned long long)(st0.free_frames - st1.free_frames));
		failed = 1;
	}
	if (atomic_load(&bad))
		failed = 1;
	sm_machine_destroy(m);
	printf("stress_pt_reclaim: %ld accesses, %ld EFAULT, %d checks, %ld bad words\n",
	       atomic_load(&accesses), atomic_load(&efaults), checks, atomic_load(&bad));
	printf("%d passed, %d failed\n", !failed, failed);
	return failed;
}
