/*
 * bench ptreclaim: what page tables cost a sparse address space, and how much
 * of it comes back (issues 5 and 2). Every VmPTE figure is the increase over
 * the same mm's (process's) VmPTE just before the region was touched, read
 * from "status" (softmm) or /proc/self/status (host): the host process's own
 * tables (libc, stack, heap) would otherwise count on one side only.
 *
 *   VmPTE, 32G sparse        a 32 GiB MAP_NORESERVE region, 1 GiB-aligned,
 *                            one page written in every 2 MiB: one PTE table
 *                            per 2 MiB.
 *   MADV_DONTNEED 32G sparse the time of MADV_DONTNEED over the whole region;
 *   VmPTE after DONTNEED     and VmPTE after it. Both sides free the PTE
 *                            tables the zap empties (softmm by default, the
 *                            host with CONFIG_PT_RECLAIM) and keep the PMD
 *                            tables. Targets: softmm no slower, and VmPTE no
 *                            higher.
 *   ... keeping tables       the same on a machine with
 *                            SM_CFG_NO_PT_RECLAIM_ON_ZAP, for comparison:
 *                            what freeing the tables costs, and what it saves.
 *   VmPTE after PT_RECLAIM   then SM_MADV_PT_RECLAIM over the region (softmm
 *   PT_RECLAIM time          only: it frees the PMD and PUD tables left
 *                            empty). Target: below the host's after-figure.
 *   VmPTE, scanner settled   a fresh mm opted in (sm_mm_set_pt_reclaim), the
 *   scanner: time to settle  same sparse region, then MADV_DONTNEED of each
 *                            touched 4 KiB page alone, which frees no table
 *                            on either side (a zap shorter than 2 MiB does
 *                            not reclaim), so every PTE table lingers, empty.
 *                            The background scanner (sm_pt_scanner) is
 *                            started and VmPTE polled until it stops
 *                            dropping. The host column is the host after the
 *                            same page-by-page MADV_DONTNEED: Linux has no
 *                            scanner. Target: below the host's after-figure of
 *                            the whole-region MADV_DONTNEED.
 *   VmPTE, 1G populated      every page of a 1 GiB-aligned 1 GiB written:
 *                            equal to the host (issue 2).
 *
 * THP is off for every region on both sides (4 KiB pages, PTE tables).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <softmm.h>
#include "bench.h"

#define GIB (1ul << 30)
#define MIB (1ul << 20)
#define SPAN_2M (2 * MIB)
#define SPARSE_BYTES (32 * GIB)
#define QUICK_SPARSE_BYTES (2 * GIB)
#define DENSE_BYTES GIB
#define QUICK_DENSE_BYTES (64 * MIB)
#define SCANNER_INTERVAL_MS 100
#define QUICK_SCANNER_INTERVAL_MS 10

struct ptr_rows {
	struct bench_row *touched, *dontneed_ms, *after, *reclaim, *reclaim_ms;
	struct bench_row *dontneed_ms_keep, *after_keep;	/* SM_CFG_NO_PT_RECLAIM_ON_ZAP */
	struct bench_row *scanner, *scanner_ms, *dense;
};

/* The sparse rows one machine feeds; NULL: not this one's. */
struct sparse_rows {
	struct bench_row *touched, *dontneed_ms, *after, *reclaim, *reclaim_ms;
};

/* The side under test: softmm's mm or the host process. */
struct side {
	enum bench_side side;
	struct bench_sm *s;		/* softmm only */
	struct sm_mm *mm;		/* softmm: the mm in use (the scanner's is fresh) */
	struct sm_cpu *cpu;
};

static long vmpte_kb(struct side *sd)
{
	char buf[4096], *p;
	long len;

	if (sd->side == SIDE_SOFTMM) {
		len = sm_proc_read(sd->mm, "status", buf, sizeof(buf) - 1);
		if (len < 0)
			return len;
		buf[len < (long)sizeof(buf) - 1 ? len : (long)sizeof(buf) - 1] = 0;
	} else {
		FILE *f = fopen("/proc/self/status", "r");

		if (!f)
			return -errno;
		len = (long)fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = 0;
	}
	p = strstr(buf, "VmPTE:");
	return p ? strtol(p + 6, NULL, 10) : -ENOENT;
}

static long side_mmap(struct side *sd, unsigned long len, unsigned long *addr)
{
	long ret;
	void *p;

	if (sd->side == SIDE_SOFTMM) {
		ret = sm_mmap(sd->mm, 0, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (ret < 0)
			return ret;
		*addr = (unsigned long)ret;
		return sm_madvise(sd->mm, *addr, len, MADV_NOHUGEPAGE);
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	*addr = (unsigned long)p;
	return madvise(p, len, MADV_NOHUGEPAGE) ? -errno : 0;
}

static long side_munmap(struct side *sd, unsigned long addr, unsigned long len)
{
	if (sd->side == SIDE_SOFTMM)
		return sm_munmap(sd->mm, addr, len);
	return munmap((void *)addr, len) ? -errno : 0;
}

static long side_madvise(struct side *sd, unsigned long addr, unsigned long len, int advice)
{
	if (sd->side == SIDE_SOFTMM)
		return sm_madvise(sd->mm, addr, len, advice);
	return madvise((void *)addr, len, advice) ? -errno : 0;
}

static long side_touch(struct side *sd, unsigned long addr, unsigned long len, unsigned long step)
{
	unsigned char byte = 1;
	long ret;

	for (unsigned long off = 0; off < len; off += step) {
		if (sd->side == SIDE_HOST)
			((volatile unsigned char *)addr)[off] = byte;
		else if ((ret = sm_write(sd->cpu, addr + off, &byte, 1)))
			return ret;
	}
	return 0;
}

/*
 * A region of len bytes (a multiple of 1 GiB) that starts 1 GiB-aligned and
 * whose first page is not in the 1 GiB before it; the reservation from *reserved,
 * len + 2 GiB long, is what to munmap. Its first page is touched first, so
 * that both sides start from an mm that already has the upper tables a
 * process has near its mappings.
 */
static long side_aligned_region(struct side *sd, unsigned long len, unsigned long *reserved,
				unsigned long *region)
{
	long ret = side_mmap(sd, len + 2 * GIB, reserved);

	if (ret)
		return ret;
	*region = (*reserved + PAGE_4K + GIB - 1) & ~(GIB - 1);
	return side_touch(sd, *reserved, PAGE_4K, PAGE_4K);
}

#define CHECK(call) do { if ((ret = (call))) goto out; } while (0)
#define VMPTE(var) do { if ((var = vmpte_kb(sd)) < 0) { ret = var; goto out; } } while (0)

/* One rep of the sparse region: touched, MADV_DONTNEED, (softmm) PT_RECLAIM. */
static void sample(struct bench_row *r, enum bench_side side, double v)
{
	if (r)
		bench_row_sample(r, side, v);
}

static long sparse_rep(struct side *sd, unsigned long len, const struct sparse_rows *pr, bool warmup)
{
	unsigned long reserved = 0, region;
	long ret, base, touched, after, reclaimed;
	uint64_t t0, t1, t2 = 0;

	CHECK(side_aligned_region(sd, len, &reserved, &region));
	VMPTE(base);
	CHECK(side_touch(sd, region, len, SPAN_2M));
	VMPTE(touched);
	t0 = bench_now_ns();
	CHECK(side_madvise(sd, region, len, MADV_DONTNEED));
	t1 = bench_now_ns();
	VMPTE(after);
	if (sd->side == SIDE_SOFTMM && pr->reclaim) {
		CHECK(side_madvise(sd, region, len, SM_MADV_PT_RECLAIM));
		t2 = bench_now_ns();
		VMPTE(reclaimed);
		if (!warmup) {
			sample(pr->reclaim, SIDE_SOFTMM, reclaimed - base);
			sample(pr->reclaim_ms, SIDE_SOFTMM, (t2 - t1) / 1e6);
		}
	}
	if (!warmup) {
		sample(pr->touched, sd->side, touched - base);
		sample(pr->dontneed_ms, sd->side, (t1 - t0) / 1e6);
		sample(pr->after, sd->side, after - base);
		if (sd->side == SIDE_HOST)	/* what softmm's reclaim is held against */
			sample(pr->reclaim, SIDE_HOST, after - base);
	}
out:
	if (reserved)
		side_munmap(sd, reserved, len + 2 * GIB);
	return ret;
}

/* One rep of a dense region: VmPTE with every page written. */
static long dense_rep(struct side *sd, unsigned long len, struct ptr_rows *pr, bool warmup)
{
	unsigned long reserved = 0, region;
	long ret, base, populated;

	CHECK(side_aligned_region(sd, len < GIB ? GIB : len, &reserved, &region));
	VMPTE(base);
	CHECK(side_touch(sd, region, len, PAGE_4K));
	VMPTE(populated);
	if (!warmup)
		bench_row_sample(pr->dense, sd->side, populated - base);
out:
	if (reserved)
		side_munmap(sd, reserved, (len < GIB ? GIB : len) + 2 * GIB);
	return ret;
}

/*
 * The sparse region with empty PTE tables left behind by page-sized
 * MADV_DONTNEEDs. softmm: a fresh opted-in mm, then the scanner until VmPTE
 * stops dropping (unchanged for 3 scanner intervals). host: VmPTE as left.
 */
static long scanner_rep(struct side *sd, unsigned long len, unsigned interval_ms,
			struct ptr_rows *pr, bool warmup)
{
	struct sm_pt_scanner_config cfg = { .interval_ms = interval_ms,
					    /* the whole 47-bit address space in one pass */
					    .pages_per_pass = 1ul << (47 - 12) };
	unsigned long reserved = 0, region;
	long ret, base, lingering, now, last;
	uint64_t t0, last_drop, quiet_ns = 3ull * interval_ms * 1000000;
	bool scanning = false;

	if (sd->side == SIDE_SOFTMM) {
		sd->mm = sm_mm_create(sd->s->m);
		if (!sd->mm)
			return errno ? -errno : -ENOMEM;
		sm_cpu_switch_mm(sd->cpu, sd->mm);
		CHECK(sm_mm_set_pt_reclaim(sd->mm, 1));
	}
	CHECK(side_aligned_region(sd, len, &reserved, &region));
	VMPTE(base);
	CHECK(side_touch(sd, region, len, SPAN_2M));
	for (unsigned long off = 0; off < len; off += SPAN_2M)
		CHECK(side_madvise(sd, region + off, PAGE_4K, MADV_DONTNEED));
	VMPTE(lingering);
	if (sd->side == SIDE_HOST) {
		if (!warmup)
			bench_row_sample(pr->scanner, SIDE_HOST, lingering - base);
		goto out;
	}
	t0 = last_drop = bench_now_ns();
	CHECK(sm_pt_scanner(sd->s->m, &cfg));
	scanning = true;
	last = lingering;
	for (;;) {
		struct timespec ms = { 0, 1000000 };
		uint64_t t;

		nanosleep(&ms, NULL);
		VMPTE(now);
		t = bench_now_ns();
		if (now < last)
			last = now, last_drop = t;
		else if (t - last_drop >= quiet_ns)
			break;
	}
	if (!warmup) {
		bench_row_sample(pr->scanner, SIDE_SOFTMM, last - base);
		bench_row_sample(pr->scanner_ms, SIDE_SOFTMM, (last_drop - t0) / 1e6);
	}
out:
	if (scanning)
		sm_pt_scanner(sd->s->m, NULL);
	if (reserved)
		side_munmap(sd, reserved, len + 2 * GIB);
	if (sd->side == SIDE_SOFTMM) {
		sm_cpu_switch_mm(sd->cpu, sd->s->mm);
		if (sd->mm)
			sm_mm_destroy(sd->mm);
		sd->mm = sd->s->mm;
	}
	return ret;
}

#undef CHECK
#undef VMPTE

static void run_sparse(struct side *sd, unsigned long len, const struct bench_opts *opts,
		       const struct sparse_rows *sr)
{
	struct bench_row *rows[] = { sr->touched, sr->dontneed_ms, sr->after, sr->reclaim,
				     sr->reclaim_ms };
	long ret = 0;

	for (int i = -1; i < opts->reps && !ret; i++)
		ret = sparse_rep(sd, len, sr, i < 0);
	for (size_t k = 0; ret && k < sizeof(rows) / sizeof(rows[0]); k++)
		if (rows[k])
			bench_row_fail(rows[k], sd->side, "sparse region: %s", strerror((int)-ret));
}

static void run_side(struct side *sd, const struct bench_opts *opts, struct ptr_rows *pr)
{
	unsigned long sparse = opts->quick ? QUICK_SPARSE_BYTES : SPARSE_BYTES;
	unsigned long dense = opts->quick ? QUICK_DENSE_BYTES : DENSE_BYTES;
	unsigned interval = opts->quick ? QUICK_SCANNER_INTERVAL_MS : SCANNER_INTERVAL_MS;
	struct sparse_rows sr = { pr->touched, pr->dontneed_ms, pr->after, pr->reclaim,
				  sd->side == SIDE_SOFTMM ? pr->reclaim_ms : NULL };
	const char *who = sd->side == SIDE_SOFTMM ? "softmm" : "host";
	long ret;

	bench_progress("ptreclaim: %s, sparse region", who);
	run_sparse(sd, sparse, opts, &sr);

	bench_progress("ptreclaim: %s, tables left by page-sized MADV_DONTNEED%s", who,
		       sd->side == SIDE_SOFTMM ? ", then the scanner" : "");
	ret = 0;
	for (int i = -1; i < opts->reps && !ret; i++)
		ret = scanner_rep(sd, sparse, interval, pr, i < 0);
	if (ret) {
		bench_row_fail(pr->scanner, sd->side, "%s", strerror((int)-ret));
		if (sd->side == SIDE_SOFTMM)
			bench_row_fail(pr->scanner_ms, sd->side, "%s", strerror((int)-ret));
	}

	bench_progress("ptreclaim: %s, dense region", who);
	ret = 0;
	for (int i = -1; i < opts->reps && !ret; i++)
		ret = dense_rep(sd, dense, pr, i < 0);
	if (ret)
		bench_row_fail(pr->dense, sd->side, "%s", strerror((int)-ret));
}

/* The same sparse reps on a machine whose MADV_DONTNEED keeps the tables. */
static void run_softmm_keeping_tables(const struct sm_config *base, const struct bench_opts *opts,
				      struct ptr_rows *pr)
{
	unsigned long sparse = opts->quick ? QUICK_SPARSE_BYTES : SPARSE_BYTES;
	struct sparse_rows sr = { NULL, pr->dontneed_ms_keep, pr->after_keep, NULL, NULL };
	struct sm_config cfg = *base;
	struct bench_sm s;
	struct side sd;
	int err;

	cfg.flags |= SM_CFG_NO_PT_RECLAIM_ON_ZAP;
	bench_progress("ptreclaim: softmm with SM_CFG_NO_PT_RECLAIM_ON_ZAP, sparse region");
	err = bench_sm_open_cfg(&s, &cfg);
	if (err) {
		bench_row_fail(pr->dontneed_ms_keep, SIDE_SOFTMM, "creating the machine: %s", strerror(-err));
		bench_row_fail(pr->after_keep, SIDE_SOFTMM, "creating the machine: %s", strerror(-err));
		return;
	}
	sd = (struct side){ SIDE_SOFTMM, &s, s.mm, s.cpu };
	run_sparse(&sd, sparse, opts, &sr);
	bench_sm_close(&s);
}

/* softmm's VmPTE rows are held against the host's figures, known only now. */
static void set_host_targets(struct ptr_rows *pr)
{
	double host_after = bench_median(pr->after->samples[SIDE_HOST], pr->after->nsamples[SIDE_HOST]);
	double host_dense = bench_median(pr->dense->samples[SIDE_HOST], pr->dense->nsamples[SIDE_HOST]);

	if (!isnan(host_after)) {
		pr->after->target = host_after;
		pr->reclaim->target = host_after - 4;	/* below: at least one table less */
		pr->scanner->target = host_after - 4;
	}
	if (!isnan(host_dense))
		pr->dense->target = host_dense;
}

static void run_ptreclaim(const struct bench_opts *opts, struct bench_report *rep)
{
	unsigned long sparse = opts->quick ? QUICK_SPARSE_BYTES : SPARSE_BYTES;
	unsigned long dense = opts->quick ? QUICK_DENSE_BYTES : DENSE_BYTES;
	struct sm_config cfg = { .ram_bytes = dense + sparse / 256 + 256 * MIB, .max_cpus = 4,
				 .flags = SM_CFG_PREFAULT_RAM };
	const char *sz = opts->quick ? "2G" : "32G";
	struct ptr_rows pr;
	struct bench_sm s;
	struct side sd;
	char w[64];
	int err;

	snprintf(w, sizeof(w), "VmPTE, %s sparse touched", sz);
	pr.touched = bench_row_add(rep, opts, "ptreclaim", w, "kB", true, TARGET_NONE, 0);
	snprintf(w, sizeof(w), "MADV_DONTNEED %s sparse", sz);
	pr.dontneed_ms = bench_row_add(rep, opts, "ptreclaim", w, "ms", true,
				       TARGET_SPEEDUP_AT_LEAST, 1.0);
	pr.after = bench_row_add(rep, opts, "ptreclaim", "VmPTE after DONTNEED", "kB", true,
				 TARGET_VALUE_AT_MOST, NAN);
	pr.after->host_note = "the host's; target: the host's figure";
	snprintf(w, sizeof(w), "DONTNEED %s, tables kept", sz);
	pr.dontneed_ms_keep = bench_row_add(rep, opts, "ptreclaim", w, "ms", true, TARGET_NONE, 0);
	pr.dontneed_ms_keep->host_note = "none (softmm with SM_CFG_NO_PT_RECLAIM_ON_ZAP, for comparison)";
	pr.after_keep = bench_row_add(rep, opts, "ptreclaim", "VmPTE after, tables kept", "kB", true,
				      TARGET_NONE, 0);
	pr.after_keep->host_note = "none (softmm with SM_CFG_NO_PT_RECLAIM_ON_ZAP, for comparison)";
	pr.reclaim = bench_row_add(rep, opts, "ptreclaim", "VmPTE after PT_RECLAIM", "kB", true,
				   TARGET_VALUE_AT_MOST, NAN);
	pr.reclaim->host_note = "the host after MADV_DONTNEED (Linux has no SM_MADV_PT_RECLAIM); "
				"target: below it";
	pr.reclaim_ms = bench_row_add(rep, opts, "ptreclaim", "SM_MADV_PT_RECLAIM time", "ms", true,
				      TARGET_NONE, 0);
	pr.reclaim_ms->host_note = "none (no such advice on Linux)";
	pr.scanner = bench_row_add(rep, opts, "ptreclaim", "VmPTE, scanner settled", "kB", true,
				   TARGET_VALUE_AT_MOST, NAN);
	pr.scanner->host_note = "the host after the same page-sized MADV_DONTNEEDs (no scanner); "
				"target: below the host's VmPTE after the whole-region MADV_DONTNEED";
	pr.scanner_ms = bench_row_add(rep, opts, "ptreclaim", "scanner: time to settle", "ms", true,
				      TARGET_NONE, 0);
	pr.scanner_ms->host_note = "none (no scanner on Linux)";
	snprintf(w, sizeof(w), "VmPTE, %s populated", opts->quick ? "64M" : "1G");
	pr.dense = bench_row_add(rep, opts, "ptreclaim", w, "kB", true, TARGET_VALUE_AT_MOST, NAN);
	pr.dense->host_note = "the host's; target: the host's figure (issue 2)";
	bench_progress("ptreclaim: %lu GiB sparse region, one page per 2 MiB; %lu MiB dense; "
		       "scanner every %d ms; 1 warm-up + %d reps; VmPTE as the increase over "
		       "each side's own baseline", sparse / GIB, dense / MIB,
		       opts->quick ? QUICK_SCANNER_INTERVAL_MS : SCANNER_INTERVAL_MS, opts->reps);

	err = bench_sm_open_cfg(&s, &cfg);
	if (err) {
		struct bench_row *all[] = { pr.touched, pr.dontneed_ms, pr.after, pr.reclaim,
					    pr.reclaim_ms, pr.scanner, pr.scanner_ms, pr.dense };

		for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++)
			bench_row_fail(all[k], SIDE_SOFTMM, "creating the machine: %s", strerror(-err));
	} else {
		sd = (struct side){ SIDE_SOFTMM, &s, s.mm, s.cpu };
		run_side(&sd, opts, &pr);
		bench_sm_close(&s);
	}
	run_softmm_keeping_tables(&cfg, opts, &pr);
	sd = (struct side){ SIDE_HOST, NULL, NULL, NULL };
	run_side(&sd, opts, &pr);
	set_host_targets(&pr);
}

static struct bench ptreclaim_bench = {
	.name = "ptreclaim",
	.summary = "VmPTE of a sparse 32 GiB region: MADV_DONTNEED, PT_RECLAIM, scanner; 1 GiB",
	.run = run_ptreclaim,
};
BENCH_REGISTER(ptreclaim_bench);
