/*
 * bench mmap: 4 KiB anonymous mmap + munmap pairs per second, never touched,
 * so no page tables or frames are involved: the cost is finding a gap, the VMA
 * tree insert and removal, and the mmap_lock. Target: softmm >= 5x the host.
 *
 * Each rep times a run of pairs; one untimed warm-up rep first lets both sides
 * fill their VMA allocation caches (the host's slab, softmm's malloc arenas).
 *
 * Same workload, same address-space shape: in this process the host places the
 * page next to an anonymous mapping of libc's and merges it into that VMA, so
 * each munmap splits it again. When the host does that (checked at run time in
 * /proc/self/maps), softmm's mm gets such a neighbour too, written once so that
 * it has an anon_vma like the host's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <softmm.h>
#include "bench.h"

#define PAIRS 50000
#define QUICK_PAIRS 2000

static void softmm_pairs(struct bench_sm *s, int pairs, struct bench_row *r, bool warmup)
{
	uint64_t t0 = bench_now_ns(), t1;
	long addr = 0, ret;
	unsigned char byte;

	for (int i = 0; i < pairs; i++) {
		addr = sm_mmap(s->mm, 0, PAGE_4K, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (addr < 0) {
			bench_row_fail(r, SIDE_SOFTMM, "sm_mmap: %s", strerror((int)-addr));
			return;
		}
		ret = sm_munmap(s->mm, addr, PAGE_4K);
		if (ret) {
			bench_row_fail(r, SIDE_SOFTMM, "sm_munmap: %s", strerror((int)-ret));
			return;
		}
	}
	t1 = bench_now_ns();
	/* A fast munmap that unmapped nothing is not a result. */
	if (sm_read(s->cpu, addr, &byte, 1) != -EFAULT) {
		bench_row_fail(r, SIDE_SOFTMM, "sm_munmap left %#lx mapped", addr);
		return;
	}
	if (!warmup)
		bench_row_sample(r, SIDE_SOFTMM, pairs / ((t1 - t0) / 1e9));
}

static void host_pairs(int pairs, struct bench_row *r, bool warmup)
{
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < pairs; i++) {
		void *p = mmap(NULL, PAGE_4K, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			bench_row_fail(r, SIDE_HOST, "mmap: %s", strerror(errno));
			return;
		}
		if (munmap(p, PAGE_4K)) {
			bench_row_fail(r, SIDE_HOST, "munmap: %s", strerror(errno));
			return;
		}
	}
	if (!warmup)
		bench_row_sample(r, SIDE_HOST, pairs / ((bench_now_ns() - t0) / 1e9));
}

/* Does a fresh 4 KiB mapping on the host share its VMA with a neighbour? */
static bool host_pair_merges(void)
{
	void *p = mmap(NULL, PAGE_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long start, end, addr = (unsigned long)p;
	bool merged = false;
	char line[512];
	FILE *f;

	if (p == MAP_FAILED)
		return false;
	f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &start, &end) == 2 && start <= addr && addr < end) {
			merged = end - start > PAGE_4K;
			break;
		}
	if (f)
		fclose(f);
	munmap(p, PAGE_4K);
	return merged;
}

static long softmm_add_neighbour(struct bench_sm *s)
{
	unsigned char byte = 1;
	long addr = sm_mmap(s->mm, 0, 4 * PAGE_4K, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return addr < 0 ? addr : sm_write(s->cpu, addr, &byte, 1);
}

static void run_mmap(const struct bench_opts *opts, struct bench_report *rep)
{
	int pairs = opts->quick ? QUICK_PAIRS : PAIRS;
	struct bench_row *r;
	struct bench_sm s;
	int err;

	r = bench_row_add(rep, opts, "mmap", "4 KiB mmap+munmap, untouched", "pairs/s",
			  false, TARGET_SPEEDUP_AT_LEAST, 5.0);
	bench_progress("mmap: %d pairs a rep, 1 warm-up + %d reps", pairs, opts->reps);

	err = bench_sm_open(&s, 64ul << 20);
	if (err)
		bench_row_fail(r, SIDE_SOFTMM, "creating the machine: %s", strerror(-err));
	else if (host_pair_merges()) {
		bench_progress("mmap: the host merges the page into a neighbouring VMA; "
			       "softmm's mm gets a neighbour too");
		err = (int)softmm_add_neighbour(&s);
		if (err)
			bench_row_fail(r, SIDE_SOFTMM, "mapping the neighbour: %s", strerror(-err));
	}
	for (int i = -1; i < opts->reps; i++) {		/* i == -1: the warm-up */
		if (!bench_row_failed(r, SIDE_SOFTMM))
			softmm_pairs(&s, pairs, r, i < 0);
		if (!bench_row_failed(r, SIDE_HOST))
			host_pairs(pairs, r, i < 0);
	}
	bench_sm_close(&s);
}

static struct bench mmap_bench = {
	.name = "mmap",
	.summary = "4 KiB mmap+munmap pairs/s, untouched",
	.run = run_mmap,
};
BENCH_REGISTER(mmap_bench);
