/*
 * bench fork: the time of fork() with 1 GiB of private anonymous memory
 * populated, and copy-on-write faults in the child afterwards.
 *
 *   (a) 4 KiB pages: softmm with SM_CFG_ANON_ORDERS and no orders, the host
 *       with MADV_NOHUGEPAGE on the region;
 *   (b) 2 MiB folios mapped by PTEs: softmm with anon_orders_always = 1<<9;
 *       the host with MADV_HUGEPAGE (PMD-mapped THPs), then each PMD mapping
 *       split while the folio stays whole: mprotect one 4 KiB page of every
 *       2 MiB to PROT_READ and back, then MADV_NOHUGEPAGE so that khugepaged
 *       leaves the range alone. Checked in /proc/self/smaps (AnonHugePages
 *       goes to 0, Rss stays) and, where pagemap shows frame numbers, by each
 *       2 MiB being 512 physically contiguous frames starting 2 MiB-aligned.
 *
 * softmm runs (a) and (b) with fork batching (folio_pte_batch: the PTEs of a
 * large folio copied as one) on, the default, and off (SM_CFG_NO_FORK_BATCH),
 * each on its own machine; the four machines fork in turn, rep by rep, and
 * are destroyed before the host side runs. Only the fork call is timed: sm_fork on softmm; fork() in
 * the parent on the host, from the call to its return in the parent, with the
 * child _exit(0)ing at once and the parent's waitpid outside the timed part.
 * Each rep forks a fresh child and destroys it (sm_mm_destroy / waitpid).
 *
 * Copy-on-write: after a fork of (a), the child writes one byte to every
 * page of the region: softmm through sm_write on a CPU switched to the child;
 * the host in a real child process, which times itself and reports through a
 * pipe.
 *
 * Targets (issue 3): (a) no slower than the host; (b) batched at least 35%
 * faster than softmm's own (a) (time <= 0.65x: a speedup >= 1.54) and no
 * slower than host (b); order-0 fork with batching on within 2% of batching
 * off; COW faults/s at least 2x the host's. Rows whose host column holds
 * another softmm configuration say so in their note.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <softmm.h>
#include "bench.h"

#define REGION_BYTES (1ul << 30)
#define QUICK_REGION_BYTES (32ul << 20)
#define FOLIO_2M (2ul << 20)

enum fork_cfg { CFG_4K, CFG_4K_NOBATCH, CFG_2M, CFG_2M_NOBATCH, NR_CFGS };

static const struct {
	const char *name;
	unsigned flags;
	unsigned orders;
} fork_cfgs[NR_CFGS] = {
	[CFG_4K]	 = { "4 KiB pages, batching on", 0, 0 },
	[CFG_4K_NOBATCH] = { "4 KiB pages, batching off", SM_CFG_NO_FORK_BATCH, 0 },
	[CFG_2M]	 = { "2 MiB folios, batching on", 0, 1u << 9 },
	[CFG_2M_NOBATCH] = { "2 MiB folios, batching off", SM_CFG_NO_FORK_BATCH, 1u << 9 },
};

/* Where each figure goes: a row and a side. A figure may feed two rows. */
struct fork_rows {
	struct bench_row *a, *b, *b_vs_a, *batch_2m, *batch_4k, *cow;
};

/* ---- softmm ---- */

/* A 2 MiB-aligned anonymous region of len bytes, every page written once. */
static long softmm_populate(struct bench_sm *s, unsigned long len, unsigned long *addrp)
{
	unsigned char byte = 1;
	long addr, ret;
	unsigned long a;

	addr = sm_mmap(s->mm, 0, len + FOLIO_2M, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (addr < 0)
		return addr;
	a = ((unsigned long)addr + FOLIO_2M - 1) & ~(FOLIO_2M - 1);
	if (a > (unsigned long)addr && (ret = sm_munmap(s->mm, addr, a - addr)))
		return ret;
	if ((ret = sm_munmap(s->mm, a + len, addr + len + FOLIO_2M - (a + len))))
		return ret;
	for (unsigned long off = 0; off < len; off += PAGE_4K)
		if ((ret = sm_write(s->cpu, a + off, &byte, 1)))
			return ret;
	*addrp = a;
	return 0;
}

/* Are the region's frames 2 MiB folios: each 2 MiB, 512 contiguous frames from
 * a 2 MiB-aligned one? -errno if pagemap cannot tell. */
static long softmm_region_is_2m_folios(struct bench_sm *s, unsigned long addr, unsigned long len)
{
	static uint64_t e[512];
	const uint64_t pfn_mask = (1ull << 55) - 1;

	for (unsigned long off = 0; off < len; off += FOLIO_2M) {
		long n = sm_pagemap_read(s->mm, addr + off, e, 512);

		if (n < 0)
			return n;
		if (n != 512 || (e[0] & pfn_mask) % 512)
			return 0;
		for (int i = 1; i < 512; i++)
			if ((e[i] & pfn_mask) != (e[0] & pfn_mask) + i)
				return 0;
	}
	return 1;
}

/* One fork of the configuration's machine, timed; false (and the rows
 * failed) on an error. */
static bool softmm_fork_once(struct bench_sm *s, enum fork_cfg c, bool sample,
			     struct bench_row **rows, enum bench_side *sides, int nrows)
{
	struct sm_mm *child = NULL;
	uint64_t t0 = bench_now_ns(), t1;
	long ret = sm_fork(s->mm, &child);

	t1 = bench_now_ns();
	if (ret) {
		for (int r = 0; r < nrows; r++)
			bench_row_fail(rows[r], sides[r], "sm_fork (%s): %s", fork_cfgs[c].name,
				       strerror((int)-ret));
		return false;
	}
	sm_mm_destroy(child);
	if (sample)
		for (int r = 0; r < nrows; r++)
			bench_row_sample(rows[r], sides[r], (t1 - t0) / 1e6);
	return true;
}

static void softmm_cow_reps(struct bench_sm *s, unsigned long addr, unsigned long len,
			    const struct bench_opts *opts, struct bench_row *r)
{
	unsigned char byte = 2;

	for (int i = -1; i < opts->reps; i++) {
		struct sm_mm *child = NULL;
		uint64_t t0, t1;
		long ret = sm_fork(s->mm, &child);

		if (ret) {
			bench_row_fail(r, SIDE_SOFTMM, "sm_fork: %s", strerror((int)-ret));
			return;
		}
		sm_cpu_switch_mm(s->cpu, child);
		t0 = bench_now_ns();
		for (unsigned long off = 0; off < len && !ret; off += PAGE_4K)
			ret = sm_write(s->cpu, addr + off, &byte, 1);
		t1 = bench_now_ns();
		sm_cpu_switch_mm(s->cpu, s->mm);
		sm_mm_destroy(child);
		if (ret) {
			bench_row_fail(r, SIDE_SOFTMM, "sm_write in the child: %s", strerror((int)-ret));
			return;
		}
		if (i >= 0)
			bench_row_sample(r, SIDE_SOFTMM, (len / PAGE_4K) / ((t1 - t0) / 1e9));
	}
}

/* One configuration's machine, its region populated, and the rows it feeds. */
struct fork_sm {
	struct bench_sm s;
	unsigned long addr;
	bool ok;
	struct bench_row *rows[4];
	enum bench_side sides[4];
	int nrows;
};

static void softmm_setup(struct fork_sm *f, enum fork_cfg c, unsigned long len,
			 struct fork_rows *fr)
{
	/* The 4 KiB machine also runs the COW bench: the child copies it all. */
	struct sm_config cfg = { .ram_bytes = (c == CFG_4K ? 2 : 1) * len + (64ul << 20),
				 .max_cpus = 4,
				 .flags = SM_CFG_PREFAULT_RAM | SM_CFG_ANON_ORDERS | fork_cfgs[c].flags,
				 .anon_orders_always = fork_cfgs[c].orders };
	long err;

	f->nrows = 0;
	f->ok = false;
#define FEEDS(row, side) (f->rows[f->nrows] = (row), f->sides[f->nrows++] = (side))
	switch (c) {	/* the rows this configuration's fork time feeds, and on which side */
	case CFG_4K:
		FEEDS(fr->a, SIDE_SOFTMM), FEEDS(fr->batch_4k, SIDE_SOFTMM);
		FEEDS(fr->b_vs_a, SIDE_HOST);
		break;
	case CFG_4K_NOBATCH:
		FEEDS(fr->batch_4k, SIDE_HOST);
		break;
	case CFG_2M:
		FEEDS(fr->b, SIDE_SOFTMM), FEEDS(fr->b_vs_a, SIDE_SOFTMM);
		FEEDS(fr->batch_2m, SIDE_SOFTMM);
		break;
	default:
		FEEDS(fr->batch_2m, SIDE_HOST);
		break;
	}
	bench_progress("fork: softmm, setting up %s", fork_cfgs[c].name);
	err = bench_sm_open_cfg(&f->s, &cfg);
	if (!err)
		err = softmm_populate(&f->s, len, &f->addr);
	if (!err && fork_cfgs[c].orders) {
		long is2m = softmm_region_is_2m_folios(&f->s, f->addr, len);

		if (is2m == 0)
			err = -EINVAL, bench_progress("fork: softmm did not map 2 MiB folios");
		else if (is2m < 0)
			bench_progress("fork: softmm pagemap: %s; 2 MiB folios not checked",
				       strerror((int)-is2m));
	}
	if (err) {
		if (c == CFG_4K)
			FEEDS(fr->cow, SIDE_SOFTMM);
		for (int r = 0; r < f->nrows; r++)
			bench_row_fail(f->rows[r], f->sides[r], "setting up (%s): %s",
				       fork_cfgs[c].name, strerror((int)-err));
		return;
	}
#undef FEEDS
	f->ok = true;
}

/*
 * All four machines stay up and their forks take turns, rep by rep: the
 * ratios between configurations (2 MiB vs 4 KiB, batching on vs off) then
 * compare forks taken moments apart, not minutes apart on a host whose load
 * and memory placement drift in between.
 */
static void softmm_side(unsigned long len, const struct bench_opts *opts, struct fork_rows *fr)
{
	static struct fork_sm f[NR_CFGS];

	for (enum fork_cfg c = 0; c < NR_CFGS; c++)
		softmm_setup(&f[c], c, len, fr);
	bench_progress("fork: softmm, the four configurations in turn");
	for (int i = -1; i < opts->reps; i++)		/* i == -1: the warm-up */
		for (enum fork_cfg c = 0; c < NR_CFGS; c++)
			if (f[c].ok)
				f[c].ok = softmm_fork_once(&f[c].s, c, i >= 0, f[c].rows,
							   f[c].sides, f[c].nrows);
	for (enum fork_cfg c = NR_CFGS; c-- > 0;) {
		if (c == CFG_4K && f[c].ok)
			softmm_cow_reps(&f[c].s, f[c].addr, len, opts, fr->cow);
		bench_sm_close(&f[c].s);
	}
}

/* ---- host ---- */

static volatile unsigned char *host_region(unsigned long len, int advice)
{
	unsigned char *p = mmap(NULL, len + FOLIO_2M, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long a;

	if (p == MAP_FAILED)
		return NULL;
	a = ((unsigned long)p + FOLIO_2M - 1) & ~(FOLIO_2M - 1);
	if (a > (unsigned long)p)
		munmap(p, a - (unsigned long)p);
	munmap((void *)(a + len), (unsigned long)p + len + FOLIO_2M - (a + len));
	madvise((void *)a, len, advice);
	for (unsigned long off = 0; off < len; off += PAGE_4K)
		((volatile unsigned char *)a)[off] = 1;
	return (volatile unsigned char *)a;
}

/* Rss and AnonHugePages of the VMA that starts at addr, in kB; false if not found. */
static bool host_smaps(unsigned long addr, long *rss_kb, long *anon_huge_kb)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	bool in = false, found = false;
	unsigned long start, end;
	char line[512];

	*rss_kb = *anon_huge_kb = -1;
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = start == addr;
			found |= in;
		} else if (in) {
			sscanf(line, "Rss: %ld kB", rss_kb);
			sscanf(line, "AnonHugePages: %ld kB", anon_huge_kb);
		}
	}
	if (f)
		fclose(f);
	return found;
}

/* 1 if every 2 MiB of the region is 512 contiguous frames from a 2 MiB-aligned
 * one, 0 if not, -1 if pagemap shows no frame numbers (not privileged). */
static int host_region_is_2m_folios(unsigned long addr, unsigned long len)
{
	static uint64_t e[512];
	const uint64_t pfn_mask = (1ull << 55) - 1;
	int fd = open("/proc/self/pagemap", O_RDONLY), ok = 1;

	if (fd < 0)
		return -1;
	for (unsigned long off = 0; off < len && ok == 1; off += FOLIO_2M) {
		if (pread(fd, e, sizeof(e), (off_t)((addr + off) / PAGE_4K * 8)) != sizeof(e))
			ok = -1;
		else if (!(e[0] & pfn_mask))
			ok = -1;
		else if ((e[0] & pfn_mask) % 512)
			ok = 0;
		for (int i = 1; i < 512 && ok == 1; i++)
			if ((e[i] & pfn_mask) != (e[0] & pfn_mask) + i)
				ok = 0;
	}
	close(fd);
	return ok;
}

/* PMD-mapped THPs, then every PMD mapping split to PTEs, the folios kept. */
static volatile unsigned char *host_region_2m_ptes(unsigned long len, struct bench_row *r)
{
	volatile unsigned char *p = host_region(len, MADV_HUGEPAGE);
	unsigned long a = (unsigned long)p;
	long rss, huge, rss2, huge2;
	int contiguous;

	if (!p) {
		bench_row_fail(r, SIDE_HOST, "mmap: %s", strerror(errno));
		return NULL;
	}
	host_smaps(a, &rss, &huge);
	for (unsigned long off = 0; off < len; off += FOLIO_2M)
		if (mprotect((void *)(a + off), PAGE_4K, PROT_READ) ||
		    mprotect((void *)(a + off), PAGE_4K, PROT_READ | PROT_WRITE)) {
			bench_row_fail(r, SIDE_HOST, "mprotect: %s", strerror(errno));
			return p;
		}
	madvise((void *)a, len, MADV_NOHUGEPAGE);
	host_smaps(a, &rss2, &huge2);
	contiguous = host_region_is_2m_folios(a, len);
	bench_progress("fork: host (b): after touching, Rss %ld kB, AnonHugePages %ld kB; after "
		       "splitting the PMD mappings, Rss %ld kB, AnonHugePages %ld kB; 2 MiB folios %s",
		       rss, huge, rss2, huge2, contiguous < 0 ? "not checked (pagemap shows no frames)"
		       : contiguous ? "kept (512 contiguous frames in every 2 MiB)" : "NOT kept");
	if (huge * 1024 != (long)len)
		bench_row_fail(r, SIDE_HOST, "THP gave only %ld of %lu kB PMD-mapped", huge, len >> 10);
	else if (huge2 != 0 || rss2 != rss)
		bench_row_fail(r, SIDE_HOST, "splitting left AnonHugePages %ld kB, Rss %ld kB",
			       huge2, rss2);
	else if (contiguous == 0)
		bench_row_fail(r, SIDE_HOST, "splitting the PMD mappings split the folios");
	return p;
}

static void host_fork_reps(const struct bench_opts *opts, struct bench_row *r)
{
	for (int i = -1; i < opts->reps; i++) {
		uint64_t t0 = bench_now_ns(), t1;
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		t1 = bench_now_ns();
		if (pid < 0) {
			bench_row_fail(r, SIDE_HOST, "fork: %s", strerror(errno));
			return;
		}
		waitpid(pid, NULL, 0);
		if (i >= 0)
			bench_row_sample(r, SIDE_HOST, (t1 - t0) / 1e6);
	}
}

static void host_cow_reps(volatile unsigned char *p, unsigned long len,
			  const struct bench_opts *opts, struct bench_row *r)
{
	for (int i = -1; i < opts->reps; i++) {
		double rate = 0;
		int fds[2], status = 0;
		pid_t pid;

		if (pipe(fds)) {
			bench_row_fail(r, SIDE_HOST, "pipe: %s", strerror(errno));
			return;
		}
		pid = fork();
		if (pid == 0) {
			uint64_t t0 = bench_now_ns();

			for (unsigned long off = 0; off < len; off += PAGE_4K)
				p[off] = 2;
			rate = (len / PAGE_4K) / ((bench_now_ns() - t0) / 1e9);
			_exit(write(fds[1], &rate, sizeof(rate)) == sizeof(rate) ? 0 : 1);
		}
		close(fds[1]);
		if (pid < 0 || read(fds[0], &rate, sizeof(rate)) != sizeof(rate)) {
			bench_row_fail(r, SIDE_HOST, "the child did not report");
			close(fds[0]);
			if (pid > 0)
				waitpid(pid, NULL, 0);
			return;
		}
		close(fds[0]);
		waitpid(pid, &status, 0);
		if (i >= 0)
			bench_row_sample(r, SIDE_HOST, rate);
	}
}

static void host_side(unsigned long len, const struct bench_opts *opts, struct fork_rows *fr)
{
	volatile unsigned char *p;

	bench_progress("fork: host, (a) 4 KiB pages");
	p = host_region(len, MADV_NOHUGEPAGE);
	if (!p) {
		bench_row_fail(fr->a, SIDE_HOST, "mmap: %s", strerror(errno));
		bench_row_fail(fr->cow, SIDE_HOST, "mmap: %s", strerror(errno));
	} else {
		host_fork_reps(opts, fr->a);
		host_cow_reps(p, len, opts, fr->cow);
		munmap((void *)p, len);
	}
	bench_progress("fork: host, (b) 2 MiB THPs mapped by PTEs");
	p = host_region_2m_ptes(len, fr->b);
	if (p && !bench_row_failed(fr->b, SIDE_HOST))
		host_fork_reps(opts, fr->b);
	if (p)
		munmap((void *)p, len);
}

static void run_fork(const struct bench_opts *opts, struct bench_report *rep)
{
	unsigned long len = opts->quick ? QUICK_REGION_BYTES : REGION_BYTES;
	const char *sz = opts->quick ? "32M" : "1G";
	struct fork_rows fr;
	char w[64];

	snprintf(w, sizeof(w), "fork %s, 4K pages", sz);
	fr.a = bench_row_add(rep, opts, "fork", w, "ms", true, TARGET_SPEEDUP_AT_LEAST, 1.0);
	snprintf(w, sizeof(w), "fork %s, 2M folios by PTEs", sz);
	fr.b = bench_row_add(rep, opts, "fork", w, "ms", true, TARGET_SPEEDUP_AT_LEAST, 1.0);
	fr.b->host_note = "2 MiB THPs whose PMD mappings were split (see progress)";
	fr.b_vs_a = bench_row_add(rep, opts, "fork", "fork 2M folios vs 4K pages", "ms", true,
				  TARGET_SPEEDUP_AT_LEAST, 1.54);
	fr.b_vs_a->host_note = "softmm's own fork of 4 KiB pages (target: 35% less time)";
	fr.batch_4k = bench_row_add(rep, opts, "fork", "fork 4K, batch on vs off", "ms", true,
				    TARGET_SPEEDUP_AT_LEAST, 0.98);
	fr.batch_4k->host_note = "softmm's 4 KiB fork with SM_CFG_NO_FORK_BATCH (target: within 2%)";
	fr.batch_2m = bench_row_add(rep, opts, "fork", "fork 2M, batch on vs off", "ms", true,
				    TARGET_NONE, 0);
	fr.batch_2m->host_note = "softmm's 2 MiB-folio fork with SM_CFG_NO_FORK_BATCH";
	snprintf(w, sizeof(w), "COW fault in child, %s 4K", sz);
	fr.cow = bench_row_add(rep, opts, "fork", w, "faults/s", false, TARGET_SPEEDUP_AT_LEAST, 2.0);
	bench_progress("fork: %lu MiB populated, 1 warm-up + %d reps per figure", len >> 20, opts->reps);

	softmm_side(len, opts, &fr);
	host_side(len, opts, &fr);
}

static struct bench fork_bench = {
	.name = "fork",
	.summary = "fork() of 1 GiB populated (4 KiB pages, 2 MiB folios by PTEs), COW faults/s",
	.run = run_fork,
};
BENCH_REGISTER(fork_bench);
