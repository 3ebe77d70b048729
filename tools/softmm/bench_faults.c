/*
 * bench faults: steady-state page-fault throughput.
 *
 *   anon write fault      a write to an untouched anonymous page: allocate and
 *                         zero a frame, map it.
 *   zero-page read fault  a read of an untouched anonymous page: map the shared
 *                         zero page read-only.
 *
 * One rep mmaps a region, touches one byte in every 4 KiB page, and munmaps it;
 * only the touching loop is timed. softmm touches through sm_write/sm_read on a
 * CPU switched to the mm; the host through a volatile pointer into a real
 * mapping. Target: softmm >= 2x the host's faults/s, for both.
 *
 * What is warmed, and why: simulated RAM is one big host mapping backed lazily,
 * so the first touch of a simulated frame costs a host page fault on top of the
 * simulated one. The machine is created with SM_CFG_PREFAULT_RAM so every frame
 * is already backed. Each side then runs one untimed warm-up rep of the same
 * workload: afterwards softmm's frames and page-table pages have been through
 * its allocator once, as the host's have been through the kernel's (freed pages
 * go back to the per-CPU and buddy free lists and the next rep's faults reuse
 * them). Both sides then measure steady-state faults on warm frames.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <softmm.h>
#include "bench.h"

#define REGION_BYTES (64ul << 20)
#define QUICK_REGION_BYTES (8ul << 20)

static volatile unsigned char sink;

/* One rep on softmm; records pages/s of the touching loop unless warming up. */
static void softmm_touch(struct bench_sm *s, unsigned long len, bool write,
			 struct bench_row *r, bool warmup)
{
	unsigned char byte = 1;
	uint64_t t0, t1;
	long addr, ret = 0;

	addr = sm_mmap(s->mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (addr < 0) {
		bench_row_fail(r, SIDE_SOFTMM, "sm_mmap: %s", strerror((int)-addr));
		return;
	}
	sm_madvise(s->mm, addr, len, MADV_NOHUGEPAGE);	/* as the host side */
	t0 = bench_now_ns();
	for (unsigned long off = 0; off < len && !ret; off += PAGE_4K)
		ret = write ? sm_write(s->cpu, addr + off, &byte, 1)
			    : sm_read(s->cpu, addr + off, &byte, 1);
	t1 = bench_now_ns();
	if (ret)
		bench_row_fail(r, SIDE_SOFTMM, "%s: %s", write ? "sm_write" : "sm_read",
			       strerror((int)-ret));
	else if (!warmup)
		bench_row_sample(r, SIDE_SOFTMM, (len / PAGE_4K) / ((t1 - t0) / 1e9));
	ret = sm_munmap(s->mm, addr, len);
	if (ret)
		bench_row_fail(r, SIDE_SOFTMM, "sm_munmap: %s", strerror((int)-ret));
}

/* The same on the host kernel. THP is turned off for the region on both sides,
 * so that each takes 4 KiB faults (and maps the 4 KiB zero page) whatever the
 * THP setting is: one fault per page on both. */
static void host_touch(unsigned long len, bool write, struct bench_row *r, bool warmup)
{
	volatile unsigned char *p;
	unsigned char sum = 0;
	uint64_t t0, t1;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		bench_row_fail(r, SIDE_HOST, "mmap: %s", strerror(errno));
		return;
	}
	madvise((void *)p, len, MADV_NOHUGEPAGE);
	t0 = bench_now_ns();
	if (write)
		for (unsigned long off = 0; off < len; off += PAGE_4K)
			p[off] = 1;
	else
		for (unsigned long off = 0; off < len; off += PAGE_4K)
			sum += p[off];
	t1 = bench_now_ns();
	sink = sum;
	if (!warmup)
		bench_row_sample(r, SIDE_HOST, (len / PAGE_4K) / ((t1 - t0) / 1e9));
	if (munmap((void *)p, len))
		bench_row_fail(r, SIDE_HOST, "munmap: %s", strerror(errno));
}

static void run_faults(const struct bench_opts *opts, struct bench_report *rep)
{
	unsigned long len = opts->quick ? QUICK_REGION_BYTES : REGION_BYTES;
	struct bench_row *rows[2];
	struct bench_sm s;
	int err;

	rows[0] = bench_row_add(rep, opts, "faults", "anon write fault", "faults/s",
				false, TARGET_SPEEDUP_AT_LEAST, 2.0);
	rows[1] = bench_row_add(rep, opts, "faults", "zero-page read fault", "faults/s",
				false, TARGET_SPEEDUP_AT_LEAST, 2.0);
	bench_progress("faults: %lu MiB region, 1 warm-up + %d reps", len >> 20, opts->reps);

	/* Room for the region's frames and page tables, with plenty to spare. */
	err = bench_sm_open(&s, len * 4);
	if (err)
		for (int w = 0; w < 2; w++)
			bench_row_fail(rows[w], SIDE_SOFTMM, "creating the machine: %s",
				       strerror(-err));

	for (int i = -1; i < opts->reps; i++) {		/* i == -1: the warm-up */
		for (int w = 0; w < 2; w++) {
			if (!bench_row_failed(rows[w], SIDE_SOFTMM))
				softmm_touch(&s, len, w == 0, rows[w], i < 0);
			if (!bench_row_failed(rows[w], SIDE_HOST))
				host_touch(len, w == 0, rows[w], i < 0);
		}
	}
	bench_sm_close(&s);
}

static struct bench faults_bench = {
	.name = "faults",
	.summary = "anonymous write faults/s and zero-page read faults/s",
	.run = run_faults,
};
BENCH_REGISTER(faults_bench);
