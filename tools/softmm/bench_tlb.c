/*
 * bench tlb: the cost of a guest access that hits in the CPU's software TLB,
 * an 8-byte sm_read of a page that is mapped and already translated. Target:
 * <= 10 ns. The host column is an 8-byte memcpy from ordinary memory through a
 * volatile pointer, for scale: what the same load costs without a simulation.
 *
 * Reads are timed in batches (clock_gettime costs tens of ns, so one read
 * cannot be timed alone); a rep's figure is the median batch, and the row's
 * the median rep, so a batch that an interrupt or a preemption hit drops out.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <softmm.h>
#include "bench.h"

#define READS_PER_BATCH 1000
#define BATCHES 2000
#define QUICK_BATCHES 200

static volatile uint64_t sink;

static void softmm_reads(struct bench_sm *s, unsigned long addr, double *batch_ns,
			 int batches, struct bench_row *r, bool warmup)
{
	uint64_t v = 0;
	long ret = 0;

	for (int b = 0; b < batches; b++) {
		uint64_t t0 = bench_now_ns();

		for (int i = 0; i < READS_PER_BATCH; i++)
			ret |= sm_read(s->cpu, addr, &v, sizeof(v));
		batch_ns[b] = (double)(bench_now_ns() - t0) / READS_PER_BATCH;
	}
	sink = v;
	if (ret)
		bench_row_fail(r, SIDE_SOFTMM, "sm_read: %s", strerror((int)-ret));
	else if (!warmup)
		bench_row_sample(r, SIDE_SOFTMM, bench_median(batch_ns, batches));
}

static void host_reads(void *page, double *batch_ns, int batches, struct bench_row *r,
		       bool warmup)
{
	void *volatile src = page;	/* reloaded every time: each memcpy really loads */
	uint64_t v = 0;

	for (int b = 0; b < batches; b++) {
		uint64_t t0 = bench_now_ns();

		for (int i = 0; i < READS_PER_BATCH; i++) {
			memcpy(&v, src, sizeof(v));
			sink = v;
		}
		batch_ns[b] = (double)(bench_now_ns() - t0) / READS_PER_BATCH;
	}
	if (!warmup)
		bench_row_sample(r, SIDE_HOST, bench_median(batch_ns, batches));
}

/* Map one page and translate it once, so that every timed read is a TLB hit. */
static long softmm_map_one_page(struct bench_sm *s, unsigned long *addr)
{
	uint64_t v = 0x5a5a5a5a5a5a5a5aull;
	long ret = sm_mmap(s->mm, 0, PAGE_4K, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (ret < 0)
		return ret;
	*addr = (unsigned long)ret;
	ret = sm_write(s->cpu, *addr, &v, sizeof(v));
	return ret ? ret : sm_read(s->cpu, *addr, &v, sizeof(v));
}

static void run_tlb(const struct bench_opts *opts, struct bench_report *rep)
{
	int batches = opts->quick ? QUICK_BATCHES : BATCHES;
	unsigned long addr = 0;
	struct bench_row *r;
	struct bench_sm s;
	double *batch_ns;
	void *page;
	long err;

	r = bench_row_add(rep, opts, "tlb", "TLB-hit sm_read, 8 B", "ns/read",
			  true, TARGET_VALUE_AT_MOST, 10.0);
	r->host_note = "an 8 B memcpy through a volatile pointer, for scale";
	bench_progress("tlb: %d batches of %d reads a rep, 1 warm-up + %d reps", batches,
		       READS_PER_BATCH, opts->reps);
	batch_ns = calloc(batches, sizeof(*batch_ns));
	page = aligned_alloc(PAGE_4K, PAGE_4K);
	if (!batch_ns || !page)
		abort();
	memset(page, 0x5a, PAGE_4K);

	err = bench_sm_open(&s, 64ul << 20);
	if (err)
		bench_row_fail(r, SIDE_SOFTMM, "creating the machine: %s", strerror((int)-err));
	else if ((err = softmm_map_one_page(&s, &addr)))
		bench_row_fail(r, SIDE_SOFTMM, "mapping the page: %s", strerror((int)-err));

	for (int i = -1; i < opts->reps; i++) {		/* i == -1: the warm-up */
		if (!bench_row_failed(r, SIDE_SOFTMM))
			softmm_reads(&s, addr, batch_ns, batches, r, i < 0);
		host_reads(page, batch_ns, batches, r, i < 0);
	}
	bench_sm_close(&s);
	free(page);
	free(batch_ns);
}

static struct bench tlb_bench = {
	.name = "tlb",
	.summary = "ns per 8-byte sm_read that hits in the TLB",
	.run = run_tlb,
};
BENCH_REGISTER(tlb_bench);
