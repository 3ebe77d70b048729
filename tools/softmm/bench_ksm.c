/*
 * bench ksm: what KSM costs and what the write fault on a KSM page costs
 * (issue 7), softmm against the host kernel's own KSM.
 *
 *   merge 1G identical      two mms (host: this process and a forked child)
 *   merge rate              of 512 MiB each, every page the same, all
 *                           MADV_MERGEABLE; then ksmd runs (run = 1,
 *                           pages_to_scan 10000, sleep_millisecs 0,
 *                           smart_scan 0) until
 *                           every page is merged (every page's frame is a
 *                           KSM page, polled every millisecond). Time, and
 *                           pages/s. Both keep max_page_sharing at 256, so
 *                           both make 1024 KSM pages of the 262144.
 *   wp fault, KSM x1 reuse  a write to each page of a range whose pages are
 *   wp fault, KSM x1 copy   KSM pages mapped by this one PTE (merged with a
 *   wp fault, KSM x2        second mapping that was then unmapped), with the
 *                           reuse (the default) and without it
 *                           (SM_CFG_NO_KSM_REUSE); and of pages still mapped
 *                           twice. ns per fault, and the bytes each copied
 *                           (the machine's cow_bytes_copied). The host column
 *                           is Linux's fault on the same KSM pages: since 5.9
 *                           it always copies.
 *
 * The host's ksmd is global: its knobs are set for the run and restored
 * after it, and it is not touched at all under --quick (the CI's diff_test
 * runs MADV_MERGEABLE on the host meanwhile). Where the host has no KSM, or
 * /sys/kernel/mm/ksm is not writable, the host column says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <softmm.h>
#include "bench.h"
#include "host_ksm.h"

#define MIB (1ul << 20)
#define MERGE_BYTES (512 * MIB)		/* per mm: 1 GiB in all */
#define QUICK_MERGE_BYTES (8 * MIB)
#define FAULT_PAGES 8192
#define QUICK_FAULT_PAGES 512
#define SCAN_BATCH 10000
#define MERGE_TIMEOUT_S 300

/* ---- the host's KSM ---- */

struct host_ksm {
	bool ok;
	long run, pages_to_scan, sleep_millisecs;
	long smart_scan;	/* < 0: the host has no such knob (before 6.7) */
	int kpageflags;		/* /proc/kpageflags, or -1 */
	int lock;		/* HOST_KSM_LOCK, held while we own the knobs; or -1 */
	char why[160];
};

/* What to put back if the run is interrupted (SIGINT, SIGTERM): the host's
 * ksmd must not keep running at full speed after us. */
static struct host_ksm *restore_on_signal;

static void write_knob_raw(const char *path, long v)
{
	char buf[24];
	int n = (int)sizeof(buf), fd = open(path, O_WRONLY);
	unsigned long x = (unsigned long)v;

	if (fd < 0)
		return;
	buf[--n] = '\n';
	do
		buf[--n] = (char)('0' + x % 10);
	while ((x /= 10) && n > 0);
	if (write(fd, buf + n, sizeof(buf) - (size_t)n) < 0)
		(void)0;
	close(fd);
}

static void restore_and_die(int sig)
{
	struct host_ksm *h = restore_on_signal;

	if (h) {
		write_knob_raw("/sys/kernel/mm/ksm/run", h->run);
		write_knob_raw("/sys/kernel/mm/ksm/pages_to_scan", h->pages_to_scan);
		write_knob_raw("/sys/kernel/mm/ksm/sleep_millisecs", h->sleep_millisecs);
		if (h->smart_scan >= 0)
			write_knob_raw("/sys/kernel/mm/ksm/smart_scan", h->smart_scan);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void host_ksm_open(struct host_ksm *h, bool quick)
{
	int err;

	memset(h, 0, sizeof(*h));
	h->kpageflags = -1;
	h->lock = -1;
	if (quick) {
		snprintf(h->why, sizeof(h->why), "not measured under --quick (the host's ksmd is global)");
		return;
	}
	/* Another softmm bench or diff_test may own the knobs now: wait. */
	h->lock = host_ksm_lock(LOCK_EX);
	h->run = host_ksm_knob("run");
	h->pages_to_scan = host_ksm_knob("pages_to_scan");
	h->sleep_millisecs = host_ksm_knob("sleep_millisecs");
	if (h->run < 0 || h->pages_to_scan < 0 || h->sleep_millisecs < 0) {
		snprintf(h->why, sizeof(h->why), "host KSM unavailable (/sys/kernel/mm/ksm: %s)",
			 strerror((int)-(h->run < 0 ? h->run : h->pages_to_scan < 0 ? h->pages_to_scan
										  : h->sleep_millisecs)));
		return;
	}
	err = host_ksm_set_knob("pages_to_scan", h->pages_to_scan);
	if (err) {
		snprintf(h->why, sizeof(h->why), "host KSM unavailable (/sys/kernel/mm/ksm not writable: %s)",
			 strerror(-err));
		return;
	}
	h->kpageflags = open("/proc/kpageflags", O_RDONLY);
	if (h->kpageflags < 0) {
		snprintf(h->why, sizeof(h->why), "cannot tell when the host has merged (/proc/kpageflags: %s)",
			 strerror(errno));
		return;
	}
	/*
	 * smart_scan skips, for a growing number of scans, pages that failed to
	 * merge before. It goes by the rmap items, and those of a region just
	 * unmapped are reused when the next rep maps at the same address: a
	 * rep's pages were then skipped for minutes. Off for the run.
	 */
	h->smart_scan = host_ksm_knob("smart_scan");
	if (h->smart_scan > 0)
		host_ksm_set_knob("smart_scan", 0);
	h->ok = true;
	restore_on_signal = h;
	signal(SIGINT, restore_and_die);
	signal(SIGTERM, restore_and_die);
}

static void host_ksm_close(struct host_ksm *h)
{
	if (!h->ok) {
		if (h->lock >= 0)
			close(h->lock);
		return;
	}
	host_ksm_set_knob("run", h->run);
	host_ksm_set_knob("pages_to_scan", h->pages_to_scan);
	host_ksm_set_knob("sleep_millisecs", h->sleep_millisecs);
	if (h->smart_scan >= 0)
		host_ksm_set_knob("smart_scan", h->smart_scan);
	close(h->kpageflags);
	close(h->lock);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	restore_on_signal = NULL;
}

static int host_ksm_run(unsigned run)
{
	int err = run ? host_ksm_set_knob("pages_to_scan", SCAN_BATCH) : 0;

	if (!err && run)
		err = host_ksm_set_knob("sleep_millisecs", 0);
	return err ? err : host_ksm_set_knob("run", run);
}

/*
 * Whether ksmd is done is read from the frames themselves: a page is merged
 * once the frame its PTE maps (/proc/PID/pagemap) has KPF_KSM in
 * /proc/kpageflags. The per-process ksm_merging_pages looks simpler but
 * counts rmap items, and those of a region already unmapped linger until
 * ksmd's next full scan: a wait on it ended before the next rep's pages had
 * merged, and the fault it then timed was no KSM fault at all.
 */
#define KPF_KSM_BIT (1ull << 21)
#define PM_PRESENT (1ull << 63)
#define PM_PFN_MASK ((1ull << 55) - 1)
#define PM_BATCH 512

struct host_span {
	pid_t pid;		/* 0: this process */
	unsigned long addr, pages;
	unsigned long merged;	/* pages [0, merged) are known KSM pages */
};

/* Move span->merged past the pages now merged. While ksmd runs and nobody
 * writes, a merged page stays merged, so each page is looked at until it
 * merges and never again. 0 or -errno. */
static long host_span_advance(struct host_span *s, int kpageflags)
{
	uint64_t pm[PM_BATCH], flags;
	char path[64];
	long ret = 0;
	int fd;

	if (s->pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)s->pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while (s->merged < s->pages) {
		size_t n = s->pages - s->merged < PM_BATCH ? s->pages - s->merged : PM_BATCH, i;
		off_t at = (off_t)((s->addr / PAGE_4K + s->merged) * sizeof(uint64_t));
		ssize_t got = pread(fd, pm, n * sizeof(uint64_t), at);

		if (got != (ssize_t)(n * sizeof(uint64_t))) {
			ret = got < 0 ? -errno : -EIO;
			break;
		}
		for (i = 0; i < n; i++) {
			uint64_t pfn = pm[i] & PM_PFN_MASK;

			if (!(pm[i] & PM_PRESENT) || !pfn)
				break;
			got = pread(kpageflags, &flags, sizeof(flags), (off_t)(pfn * sizeof(flags)));
			if (got != (ssize_t)sizeof(flags)) {
				ret = got < 0 ? -errno : -EIO;
				goto out;
			}
			if (!(flags & KPF_KSM_BIT))
				break;
		}
		s->merged += i;
		if (i < n)
			break;
	}
out:
	close(fd);
	return ret;
}

/* Wait until every page of the spans is a KSM page: 0, or -errno. */
static long host_wait_merged(const struct host_ksm *h, struct host_span *spans, int n)
{
	uint64_t end = bench_now_ns() + (uint64_t)MERGE_TIMEOUT_S * 1000000000ull;
	struct timespec ms = { 0, 1000000 };

	for (;;) {
		bool all = true;

		for (int i = 0; i < n; i++) {
			long ret = host_span_advance(&spans[i], h->kpageflags);

			if (ret)
				return ret;
			all &= spans[i].merged == spans[i].pages;
		}
		if (all)
			return 0;
		if (bench_now_ns() > end)
			return -ETIMEDOUT;
		nanosleep(&ms, NULL);
	}
}

/* ---- contents ---- */

static void fill_words(uint64_t *page, uint64_t w)
{
	for (size_t i = 0; i < PAGE_4K / 8; i++)
		page[i] = w;
}

static uint64_t pattern(unsigned long i)
{
	return 0x6b5d000000000000ull | i;
}

static long sm_fill(struct sm_cpu *cpu, unsigned long addr, unsigned long len, bool distinct)
{
	uint64_t buf[PAGE_4K / 8];
	long ret = 0;

	fill_words(buf, pattern(0));
	for (unsigned long off = 0; off < len && !ret; off += PAGE_4K) {
		if (distinct)
			fill_words(buf, pattern(off / PAGE_4K + 1));
		ret = sm_write(cpu, addr + off, buf, PAGE_4K);
	}
	return ret;
}

static void host_fill(char *p, unsigned long len, bool distinct)
{
	for (unsigned long off = 0; off < len; off += PAGE_4K)
		fill_words((uint64_t *)(p + off), pattern(distinct ? off / PAGE_4K + 1 : 0));
}

static long sm_region(struct sm_mm *mm, struct sm_cpu *cpu, unsigned long len, bool distinct,
		      unsigned long *addr)
{
	long a = sm_mmap(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (a < 0)
		return a;
	*addr = (unsigned long)a;
	sm_cpu_switch_mm(cpu, mm);
	if (sm_madvise(mm, *addr, len, MADV_NOHUGEPAGE) || sm_fill(cpu, *addr, len, distinct))
		return -EFAULT;
	return sm_madvise(mm, *addr, len, MADV_MERGEABLE);
}

static void *host_region(unsigned long len, bool distinct)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_NOHUGEPAGE);
	host_fill(p, len, distinct);
	if (madvise(p, len, MADV_MERGEABLE)) {
		munmap(p, len);
		return NULL;
	}
	return p;
}

/* ---- merging ---- */

struct merge_rows {
	struct bench_row *ms, *rate;
};

static void sample_merge(struct merge_rows *mr, enum bench_side side, unsigned long pages,
			 uint64_t ns, bool warmup)
{
	if (warmup)
		return;
	bench_row_sample(mr->ms, side, ns / 1e6);
	bench_row_sample(mr->rate, side, pages / (ns / 1e9));
}

static long softmm_merge_rep(struct bench_sm *s, unsigned long len, struct merge_rows *mr, bool warmup)
{
	struct sm_ksm_config cfg = { .run = 1, .pages_to_scan = SCAN_BATCH, .sleep_millisecs = 0 };
	struct sm_mm *other = sm_mm_create(s->m);
	unsigned long a = 0, b = 0, pages = 2 * len / PAGE_4K;
	struct timespec ms = { 0, 1000000 };
	uint64_t t0, t1, end;
	struct sm_ksm_stats st;
	long ret;

	if (!other)
		return -ENOMEM;
	if ((ret = sm_region(s->mm, s->cpu, len, false, &a)) ||
	    (ret = sm_region(other, s->cpu, len, false, &b)))
		goto out;
	sm_cpu_switch_mm(s->cpu, s->mm);
	t0 = bench_now_ns();
	end = t0 + (uint64_t)MERGE_TIMEOUT_S * 1000000000ull;
	if ((ret = sm_ksm_set(s->m, &cfg)))
		goto out;
	do {
		nanosleep(&ms, NULL);
		sm_ksm_stats(s->m, &st);
		t1 = bench_now_ns();
	} while (st.pages_shared + st.pages_sharing < pages && t1 < end);
	cfg.run = 0;
	sm_ksm_set(s->m, &cfg);
	if (st.pages_shared + st.pages_sharing < pages)
		ret = -ETIMEDOUT;
	else
		sample_merge(mr, SIDE_SOFTMM, pages, t1 - t0, warmup);
out:
	if (a)
		sm_munmap(s->mm, a, len);
	sm_cpu_switch_mm(s->cpu, s->mm);
	sm_mm_destroy(other);
	return ret;
}

/* The child maps its half after the fork, so that neither process has the
 * other's pages: each holds `len` of the identical pages. */
static long host_merge_rep(const struct host_ksm *h, unsigned long len, struct merge_rows *mr,
			   bool warmup)
{
	int ready[2], done[2];
	unsigned long pages = 2 * len / PAGE_4K;
	struct host_span spans[2];
	char *a = NULL, *theirs = NULL, c = 0;
	uint64_t t0;
	pid_t child;
	long ret;

	if (pipe(ready))
		return -errno;
	if (pipe(done)) {
		ret = -errno;
		close(ready[0]);
		close(ready[1]);
		return ret;
	}
	child = fork();
	if (child == 0) {
		close(ready[0]);
		close(done[1]);
		theirs = host_region(len, false);
		if (write(ready[1], &theirs, sizeof(theirs)) != (ssize_t)sizeof(theirs) ||
		    read(done[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(ready[1]);
	close(done[0]);
	if (child < 0) {
		ret = -errno;
		goto out;
	}
	a = host_region(len, false);
	if (!a || read(ready[0], &theirs, sizeof(theirs)) != (ssize_t)sizeof(theirs) || !theirs) {
		ret = -ENOMEM;
		goto out;
	}
	spans[0] = (struct host_span){ .pid = 0, .addr = (unsigned long)a, .pages = len / PAGE_4K };
	spans[1] = (struct host_span){ .pid = child, .addr = (unsigned long)theirs, .pages = len / PAGE_4K };
	t0 = bench_now_ns();
	ret = host_ksm_run(1);
	if (!ret)
		ret = host_wait_merged(h, spans, 2);
	if (!ret)
		sample_merge(mr, SIDE_HOST, pages, bench_now_ns() - t0, warmup);
	host_ksm_run(0);
out:
	close(done[1]);   /* the child's read returns: it exits */
	if (child > 0)
		waitpid(child, NULL, 0);
	close(ready[0]);
	if (a)
		munmap(a, len);
	return ret;
}

/* ---- the write fault on a KSM page ---- */

enum wp_case { WP_ONCE_REUSE, WP_ONCE_COPY, WP_TWICE, NR_WP };

struct wp_rows {
	struct bench_row *ns[NR_WP], *bytes[NR_WP];
};

/* One rep: pages KSM-merged between two mms, the second destroyed unless
 * the case maps them twice; then one write per page of the first. */
static long softmm_wp_rep(enum wp_case wc, unsigned long npages, struct wp_rows *wr, bool warmup)
{
	struct sm_config cfg = { .ram_bytes = 256 * MIB, .max_cpus = 4,
				 .flags = SM_CFG_PREFAULT_RAM | (wc == WP_ONCE_COPY ? SM_CFG_NO_KSM_REUSE : 0) };
	unsigned long len = npages * PAGE_4K, a, b;
	struct sm_machine_stats st0, st1;
	struct sm_ksm_stats ks;
	struct sm_mm *other;
	struct bench_sm s;
	unsigned char byte = 1;
	uint64_t t0, t1;
	long ret;

	ret = bench_sm_open_cfg(&s, &cfg);
	if (ret)
		return ret;
	other = sm_mm_create(s.m);
	if (!other) {
		bench_sm_close(&s);
		return -ENOMEM;
	}
	if ((ret = sm_region(s.mm, s.cpu, len, true, &a)) || (ret = sm_region(other, s.cpu, len, true, &b)))
		goto out;
	sm_ksm_scan(s.m, 2);
	sm_ksm_stats(s.m, &ks);
	if (ks.pages_sharing != npages) {
		ret = -EAGAIN;
		goto out;
	}
	sm_cpu_switch_mm(s.cpu, s.mm);
	if (wc != WP_TWICE) {
		sm_mm_destroy(other);
		other = NULL;
	}
	sm_machine_stats(s.m, &st0);
	t0 = bench_now_ns();
	for (unsigned long off = 0; off < len && !ret; off += PAGE_4K)
		ret = sm_write(s.cpu, a + off, &byte, 1);
	t1 = bench_now_ns();
	sm_machine_stats(s.m, &st1);
	if (!ret && !warmup) {
		bench_row_sample(wr->ns[wc], SIDE_SOFTMM, (double)(t1 - t0) / npages);
		bench_row_sample(wr->bytes[wc], SIDE_SOFTMM,
				 (double)(st1.cow_bytes_copied - st0.cow_bytes_copied) / npages);
	}
out:
	if (other)
		sm_mm_destroy(other);
	bench_sm_close(&s);
	return ret;
}

static long host_wp_rep(const struct host_ksm *h, enum wp_case wc, unsigned long npages,
			struct wp_rows *wr, bool warmup)
{
	unsigned long len = npages * PAGE_4K;
	char *a = host_region(len, true), *b = host_region(len, true);
	struct host_span spans[2] = {
		{ .addr = (unsigned long)a, .pages = npages },
		{ .addr = (unsigned long)b, .pages = npages },
	};
	uint64_t t0, t1;
	long ret = -ENOMEM;

	if (!a || !b)
		goto out;
	ret = host_ksm_run(1);
	if (!ret)
		ret = host_wait_merged(h, spans, 2);
	host_ksm_run(0);
	if (ret)
		goto out;
	if (wc != WP_TWICE) {
		munmap(b, len);
		b = NULL;
	}
	t0 = bench_now_ns();
	for (unsigned long off = 0; off < len; off += PAGE_4K)
		((volatile char *)a)[off] = 1;
	t1 = bench_now_ns();
	if (!warmup)
		bench_row_sample(wr->ns[wc], SIDE_HOST, (double)(t1 - t0) / npages);
out:
	if (a)
		munmap(a, len);
	if (b)
		munmap(b, len);
	return ret;
}

/* ---- the bench ---- */

static void run_ksm(const struct bench_opts *opts, struct bench_report *rep)
{
	static const char *const wp_names[NR_WP] = { "x1, reuse", "x1, copy", "x2" };
	static char host_why[160];
	unsigned long merge_len = opts->quick ? QUICK_MERGE_BYTES : MERGE_BYTES;
	unsigned long npages = opts->quick ? QUICK_FAULT_PAGES : FAULT_PAGES;
	struct sm_config cfg = { .ram_bytes = 2 * merge_len + 256 * MIB, .max_cpus = 4,
				 .flags = SM_CFG_PREFAULT_RAM };
	struct merge_rows mr;
	struct wp_rows wr;
	struct host_ksm h;
	struct bench_sm s;
	char w[64];
	long ret;
	int err;

	snprintf(w, sizeof(w), "merge %s identical, 2 mms", opts->quick ? "16M" : "1G");
	mr.ms = bench_row_add(rep, opts, "ksm", w, "ms", true, TARGET_NONE, 0);
	mr.rate = bench_row_add(rep, opts, "ksm", "merge rate", "pages/s", false, TARGET_NONE, 0);
	for (int c = 0; c < NR_WP; c++) {
		snprintf(w, sizeof(w), "wp fault, KSM %s", wp_names[c]);
		wr.ns[c] = bench_row_add(rep, opts, "ksm", w, "ns", true, TARGET_NONE, 0);
		snprintf(w, sizeof(w), "bytes copied/fault, %s", wp_names[c]);
		wr.bytes[c] = bench_row_add(rep, opts, "ksm", w, "B", true, TARGET_NONE, 0);
		wr.bytes[c]->host_note = "not measurable; Linux >= 5.9 copies every KSM page written (4096)";
	}
	wr.ns[WP_ONCE_REUSE]->host_note = wr.ns[WP_ONCE_COPY]->host_note =
		"Linux's write fault on a KSM page mapped once (it copies)";
	host_ksm_open(&h, opts->quick);
	if (!h.ok) {
		snprintf(host_why, sizeof(host_why), "%s", h.why);
		mr.ms->host_note = mr.rate->host_note = host_why;
		for (int c = 0; c < NR_WP; c++)
			wr.ns[c]->host_note = host_why;
	}
	bench_progress("ksm: merging %lu MiB of identical pages in each of 2 mms; write faults on %lu "
		       "KSM pages; ksmd pages_to_scan %d, sleep 0; 1 warm-up + %d reps%s", merge_len / MIB,
		       npages, SCAN_BATCH, opts->reps,
		       h.ok ? "; the host's ksmd runs (its knobs restored afterwards)" : "");

	err = bench_sm_open_cfg(&s, &cfg);
	if (err) {
		bench_row_fail(mr.ms, SIDE_SOFTMM, "creating the machine: %s", strerror(-err));
		bench_row_fail(mr.rate, SIDE_SOFTMM, "creating the machine: %s", strerror(-err));
	} else {
		bench_progress("ksm: softmm, merging");
		ret = 0;
		for (int i = -1; i < opts->reps && !ret; i++)
			ret = softmm_merge_rep(&s, merge_len, &mr, i < 0);
		if (ret) {
			bench_row_fail(mr.ms, SIDE_SOFTMM, "%s", strerror((int)-ret));
			bench_row_fail(mr.rate, SIDE_SOFTMM, "%s", strerror((int)-ret));
		}
		bench_sm_close(&s);
	}
	for (int c = 0; c < NR_WP; c++) {
		bench_progress("ksm: softmm, write faults on KSM pages %s", wp_names[c]);
		ret = 0;
		for (int i = -1; i < opts->reps && !ret; i++)
			ret = softmm_wp_rep((enum wp_case)c, npages, &wr, i < 0);
		if (ret) {
			bench_row_fail(wr.ns[c], SIDE_SOFTMM, "%s", strerror((int)-ret));
			bench_row_fail(wr.bytes[c], SIDE_SOFTMM, "%s", strerror((int)-ret));
		}
	}
	if (!h.ok)
		return;
	bench_progress("ksm: host, merging");
	ret = 0;
	for (int i = -1; i < opts->reps && !ret; i++)
		ret = host_merge_rep(&h, merge_len, &mr, i < 0);
	if (ret) {
		bench_row_fail(mr.ms, SIDE_HOST, "%s", strerror((int)-ret));
		bench_row_fail(mr.rate, SIDE_HOST, "%s", strerror((int)-ret));
	}
	for (int c = 0; c < NR_WP; c++) {
		if (c == WP_ONCE_COPY)
			continue;   /* the host has one way: the x1 figures serve both rows */
		bench_progress("ksm: host, write faults on KSM pages %s", wp_names[c]);
		ret = 0;
		for (int i = -1; i < opts->reps && !ret; i++)
			ret = host_wp_rep(&h, (enum wp_case)c, npages, &wr, i < 0);
		if (ret)
			bench_row_fail(wr.ns[c], SIDE_HOST, "%s", strerror((int)-ret));
	}
	for (int i = 0; i < wr.ns[WP_ONCE_REUSE]->nsamples[SIDE_HOST]; i++)
		bench_row_sample(wr.ns[WP_ONCE_COPY], SIDE_HOST, wr.ns[WP_ONCE_REUSE]->samples[SIDE_HOST][i]);
	host_ksm_close(&h);
}

static struct bench ksm_bench = {
	.name = "ksm",
	.summary = "KSM: merging 1 GiB across 2 mms; write fault on a KSM page, reuse vs copy",
	.run = run_ksm,
};
BENCH_REGISTER(ksm_bench);
