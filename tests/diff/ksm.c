/*
 * KSM against the host's. The same pages are merged by the host's ksmd (in a
 * child process of ours, so that its /proc/self/ksm_stat counts only them)
 * and by softmm's (sm_ksm_scan on a machine of its own); after each step
 * both sides log what a process can see: its ksm_stat, the Rss, Anonymous
 * and KSM fields of the region's smaps entry, and how the pages share frames
 * (pagemap), as the sizes of the groups of pages that map one frame. The
 * two logs must be equal line for line.
 *
 * The region holds 300 identical pages (more than max_page_sharing: two KSM
 * pages, a chain), 5 pairs, 30 unique pages and 20 zero-filled ones, and 40
 * never touched. The steps: merge; write to merged pages (the host's stale
 * rmap items and ours must agree before the next scan); merge again;
 * MADV_UNMERGEABLE on half; merge again; munmap. A second scenario merges
 * with use_zero_pages and unmerges the zero pages; a third forks merged
 * memory and writes in the child.
 *
 * The host's ksmd is global: its knobs are set for the test (run, pages to
 * scan, no sleep, smart_scan off, use_zero_pages) and put back after. Where
 * they cannot be written, or pagemap shows no frame numbers, the test says
 * so and counts as passed, as the other host-dependent tests do.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <softmm.h>
#include "diff.h"
#include "host_ksm.h"

#define KSM_BASE 0x3d0000000000UL
#define KPG 4096UL
#define NPAGES 400
#define LOG_CAP 16384
#define SCANS 5                 /* full scans per merge step: checksum, merge, chains */
#define HOST_WAIT_S 60
#define PFN_MASK ((1ull << 55) - 1)
#define PM_PRESENT (1ull << 63)

/* The page groups: [first, first + n). */
enum { SAME = 0, NSAME = 300, PAIRS = 300, NPAIRS = 10, UNIQUE = 310, NUNIQUE = 30,
       ZERO = 340, NZERO = 20 };

struct kside {
	bool host;
	char *log;              /* host: shared with the child that runs it */
	size_t len;
	struct sm_machine *m;
	struct sm_mm *mm;
	struct sm_cpu *cpu;
};

__attribute__((format(printf, 2, 3)))
static void klog(struct kside *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->log + s->len, LOG_CAP - s->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		s->len += (size_t)n < LOG_CAP - s->len ? (size_t)n : LOG_CAP - 1 - s->len;
}

static unsigned long kat(unsigned long page) { return KSM_BASE + page * KPG; }

/* ---------------------------------------------------------------- host knobs */

static const char *const knob_names[] = { "run", "pages_to_scan", "sleep_millisecs",
					  "smart_scan", "use_zero_pages", "max_page_sharing" };
enum { K_RUN, K_SCAN, K_SLEEP, K_SMART, K_ZERO, K_MAXSHARE, NR_KNOBS };

static long knob_read(int k)
{
	return host_ksm_knob(knob_names[k]);
}

static int knob_write(int k, long v)
{
	return host_ksm_set_knob(knob_names[k], v);
}

/* ---------------------------------------------------------------- the two sides */

static uint64_t word_of(unsigned long page)
{
	if (page >= ZERO && page < ZERO + NZERO)
		return 0;
	if (page < SAME + NSAME)
		return 0x5a5a0001;
	if (page < PAIRS + NPAIRS)
		return 0x5a5a1000 + (page - PAIRS) / 2;
	return 0x5a5a2000 + page;
}

static void kwrite(struct kside *s, unsigned long page, uint64_t word)
{
	uint64_t buf[KPG / 8];

	for (size_t i = 0; i < KPG / 8; i++)
		buf[i] = word ? word * 0x9e3779b97f4a7c15ull + i : 0;
	if (s->host)
		memcpy((void *)kat(page), buf, KPG);
	else if (sm_write(s->cpu, kat(page), buf, KPG))
		klog(s, "write page %lu failed\n", page);
}

static void kmadvise(struct kside *s, unsigned long page, unsigned long n, int advice)
{
	long r = s->host ? (madvise((void *)kat(page), n * KPG, advice) ? -errno : 0)
			 : sm_madvise(s->mm, kat(page), n * KPG, advice);

	klog(s, "madvise %lu +%lu %d -> %ld\n", page, n, advice, r);
}

static void kmunmap(struct kside *s, unsigned long page, unsigned long n)
{
	long r = s->host ? (munmap((void *)kat(page), n * KPG) ? -errno : 0)
			 : sm_munmap(s->mm, kat(page), n * KPG);

	klog(s, "munmap %lu +%lu -> %ld\n", page, n, r);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long read_view(struct kside *s, const char *view, char *buf, size_t size);

/*
 * Linux's ksmd forgets an mm whose full scan found no mergeable VMA (its
 * rmap items go, ksm_mergeable reads "no"); with no other mm registered it
 * then sleeps and full_scans stands still. Whether that happened to us.
 */
static bool host_forgot_us(struct kside *s)
{
	static char buf[4096];
	char *items;

	if (read_view(s, "ksm_stat", buf, sizeof(buf)) < 0 || !strstr(buf, "ksm_mergeable: no"))
		return false;
	items = strstr(buf, "ksm_rmap_items ");
	return items && strtol(items + strlen("ksm_rmap_items "), NULL, 10) == 0;
}

/* SCANS full scans. The host's ksmd runs only for these. */
static void kmerge(struct kside *s)
{
	double end = now_s() + HOST_WAIT_S;
	long first = -1, scans;
	bool done = false;
	FILE *f;

	if (!s->host) {
		long r = sm_ksm_scan(s->m, SCANS);

		klog(s, "merge -> %s\n", r < 0 ? "error" : "ok");
		return;
	}
	knob_write(K_RUN, 1);
	while (!done && now_s() < end) {
		scans = -1;
		f = fopen("/sys/kernel/mm/ksm/full_scans", "r");
		if (f) {
			if (fscanf(f, "%ld", &scans) != 1)
				scans = -1;
			fclose(f);
		}
		if (scans < 0)
			break;
		if (first < 0)
			first = scans;
		done = scans >= first + SCANS || (scans > first && host_forgot_us(s));
		if (!done)
			usleep(1000);
	}
	knob_write(K_RUN, 0);
	klog(s, "merge -> %s\n", done ? "ok" : "error");
}

/* A /proc view of the side's process into buf: its length, or -1. */
static long read_view(struct kside *s, const char *view, char *buf, size_t size)
{
	long len;

	if (s->host) {
		char path[64];
		int fd;

		snprintf(path, sizeof(path), "/proc/self/%s", view);
		fd = open(path, O_RDONLY);
		len = fd < 0 ? -1 : read(fd, buf, size - 1);
		if (fd >= 0)
			close(fd);
	} else {
		len = sm_proc_read(s->mm, view, buf, size - 1);
	}
	if (len >= 0)
		buf[len] = '\0';
	return len;
}

/* Rss, Anonymous and KSM of the region's VMA in smaps (the host's process
 * holds the test program's memory too, and under ASan its shadow grows),
 * and the whole of ksm_stat. */
static void log_counters(struct kside *s)
{
	static const char *const fields[] = { "Rss:", "Anonymous:", "KSM:" };
	static char buf[1 << 16];
	char head[32], *vma;

	if (read_view(s, "ksm_stat", buf, sizeof(buf)) < 0)
		klog(s, "  ksm_stat unreadable\n");
	else
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
			klog(s, "  %s\n", line);
	if (read_view(s, "smaps", buf, sizeof(buf)) < 0) {
		klog(s, "  smaps unreadable\n");
		return;
	}
	snprintf(head, sizeof(head), "%lx-", KSM_BASE);
	for (vma = strstr(buf, head); vma && vma != buf && vma[-1] != '\n'; vma = strstr(vma + 1, head))
		;
	if (!vma) {
		klog(s, "  no VMA at the region\n");
		return;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char *f = strstr(vma, fields[i]);

		klog(s, "  %s %ld kB\n", fields[i], f ? strtol(f + strlen(fields[i]), NULL, 10) : -1);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_int_desc(const void *a, const void *b)
{
	return *(const int *)b - *(const int *)a;
}

/* How the pages of a group share frames: the sizes of the sets of pages on
 * one frame, largest first, and how many are not present. */
static void log_sharing(struct kside *s, const char *name, unsigned long first, unsigned long n)
{
	uint64_t e[NPAGES], pfn[NPAGES];
	int sizes[NPAGES], nsizes = 0, absent = 0;
	size_t np = 0;

	if (s->host) {
		int fd = open("/proc/self/pagemap", O_RDONLY);
		ssize_t got = fd < 0 ? -1 : pread(fd, e, n * 8, (off_t)(kat(first) / KPG * 8));

		if (fd >= 0)
			close(fd);
		if (got != (ssize_t)(n * 8)) {
			klog(s, "  %s: pagemap unreadable\n", name);
			return;
		}
	} else if (sm_pagemap_read(s->mm, kat(first), e, n) != (long)n) {
		klog(s, "  %s: pagemap unreadable\n", name);
		return;
	}
	for (unsigned long i = 0; i < n; i++) {
		if (e[i] & PM_PRESENT)
			pfn[np++] = e[i] & PFN_MASK;
		else
			absent++;
	}
	qsort(pfn, np, sizeof(pfn[0]), cmp_u64);
	for (size_t i = 0; i < np; ) {
		size_t j = i;

		while (j < np && pfn[j] == pfn[i])
			j++;
		sizes[nsizes++] = (int)(j - i);
		i = j;
	}
	qsort(sizes, (size_t)nsizes, sizeof(sizes[0]), cmp_int_desc);
	klog(s, "  %s:", name);
	for (int i = 0; i < nsizes; ) {
		int j = i;

		while (j < nsizes && sizes[j] == sizes[i])
			j++;
		klog(s, " %dx%d", j - i, sizes[i]);
		i = j;
	}
	klog(s, absent ? " absent %d\n" : "\n", absent);
}

static void snapshot(struct kside *s, const char *label)
{
	klog(s, "== %s\n", label);
	log_counters(s);
	log_sharing(s, "same", SAME, NSAME);
	log_sharing(s, "pairs", PAIRS, NPAIRS);
	log_sharing(s, "unique", UNIQUE, NUNIQUE);
	log_sharing(s, "zero", ZERO, NZERO);
	if (!s->host && sm_mm_check(s->mm))
		klog(s, "sm_mm_check failed\n");
}

/* npages at KSM_BASE (2 MiB aligned), huge: MADV_HUGEPAGE (else
 * NOHUGEPAGE), then the groups' contents written. */
static void map_and_fill_n(struct kside *s, unsigned long npages, bool huge)
{
	long r = s->host ? (long)mmap((void *)KSM_BASE, npages * KPG, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
			 : sm_mmap(s->mm, KSM_BASE, npages * KPG, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	klog(s, "mmap -> %s\n", r == (long)KSM_BASE ? "ok" : "failed");
	kmadvise(s, 0, npages, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (unsigned long p = 0; p < ZERO + NZERO; p++)
		kwrite(s, p, word_of(p));
}

static void map_and_fill(struct kside *s)
{
	map_and_fill_n(s, NPAGES, false);
}

/* ---------------------------------------------------------------- scenarios */

static void merge_write_unmerge(struct kside *s)
{
	map_and_fill(s);
	snapshot(s, "filled");
	kmadvise(s, 0, NPAGES, MADV_MERGEABLE);
	kmerge(s);
	snapshot(s, "merged");
	kwrite(s, SAME, 0x77);          /* a page of the larger KSM page */
	kwrite(s, PAIRS, 0x78);         /* its pair's KSM page is left mapped once */
	snapshot(s, "written, before the next scan");
	kmerge(s);
	snapshot(s, "merged again");
	kmadvise(s, 0, NPAGES / 2, MADV_UNMERGEABLE);
	snapshot(s, "first half unmergeable");
	kmerge(s);
	snapshot(s, "merged after unmerging");
	kmunmap(s, 0, NPAGES);
	snapshot(s, "unmapped");
	kmerge(s);
	snapshot(s, "unmapped, scanned");
}

static void zero_pages(struct kside *s)
{
	map_and_fill(s);
	kmadvise(s, ZERO, NZERO, MADV_MERGEABLE);
	kmerge(s);
	snapshot(s, "zero pages merged");
	kmadvise(s, ZERO, NZERO / 2, MADV_UNMERGEABLE);
	snapshot(s, "half unmerged");
	kwrite(s, ZERO + NZERO - 1, 0x99);
	snapshot(s, "one written");
	kmunmap(s, 0, NPAGES);
}

/* A fork of merged memory: the child maps the KSM pages but has no rmap
 * items of its own until ksmd scans it; its write copies. */
static void fork_merged(struct kside *s)
{
	map_and_fill(s);
	kmadvise(s, 0, NPAGES, MADV_MERGEABLE);
	kmerge(s);
	snapshot(s, "merged");
	if (s->host) {
		pid_t pid = fork();

		if (pid == 0) {
			snapshot(s, "child");
			kwrite(s, SAME + 1, 0x55);
			kwrite(s, PAIRS + 1, 0x56);
			snapshot(s, "child written");
			_exit(0);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
		s->len = strlen(s->log);
	} else {
		struct sm_mm *parent = s->mm, *child = NULL;

		if (sm_fork(parent, &child)) {
			klog(s, "sm_fork failed\n");
			return;
		}
		s->mm = child;
		sm_cpu_switch_mm(s->cpu, child);
		snapshot(s, "child");
		kwrite(s, SAME + 1, 0x55);
		kwrite(s, PAIRS + 1, 0x56);
		snapshot(s, "child written");
		sm_cpu_switch_mm(s->cpu, parent);
		sm_mm_destroy(child);
		s->mm = parent;
	}
	snapshot(s, "parent, child gone");
	kmerge(s);
	snapshot(s, "parent, scanned");
	kmunmap(s, 0, NPAGES);
}

/* A 2 MiB MADV_HUGEPAGE region: on the host a PMD-mapped THP, here a
 * PTE-mapped 2 MiB folio; both are split when its pages merge, and the
 * 152 pages never written are zero-filled pages like the 20 written ones. */
static void thp_merged(struct kside *s)
{
	map_and_fill_n(s, 512, true);
	kmadvise(s, 0, 512, MADV_MERGEABLE);
	kmerge(s);
	snapshot(s, "huge region merged");
	kwrite(s, SAME + 7, 0x91);
	kmadvise(s, PAIRS, 2, MADV_UNMERGEABLE);
	snapshot(s, "written, a pair unmerged");
	kmunmap(s, 0, 512);
}

static const struct ksm_scenario {
	const char *name;
	void (*run)(struct kside *s);
	bool use_zero_pages;
} scenarios[] = {
	{ "ksm_merge_write_unmerge", merge_write_unmerge, false },
	{ "ksm_zero_pages", zero_pages, true },
	{ "ksm_fork_merged", fork_merged, false },
	{ "ksm_thp_merged", thp_merged, false },
};

/* ---------------------------------------------------------------- driver */

/* Run the host side in a child: a process of its own, whose ksm_stat counts
 * only this scenario's pages. */
static void run_host(const struct ksm_scenario *sc, struct kside *h)
{
	pid_t pid;

	h->len = 0;
	h->log[0] = '\0';
	pid = fork();
	if (pid == 0) {
		sc->run(h);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	h->len = strlen(h->log);
}

static void run_ksm_tests(const struct diff_opts *o, unsigned *passed, unsigned *failed)
{
	long saved[NR_KNOBS];
	struct kside host = { .host = true }, sm = { 0 };
	static char probe[4096];
	uint64_t e = 0;
	int fd;

	for (int k = 0; k < NR_KNOBS; k++)
		saved[k] = knob_read(k);
	if (saved[K_RUN] < 0 || saved[K_MAXSHARE] < 2 || knob_write(K_SCAN, saved[K_SCAN])) {
		printf("skip ksm scenarios: the host's /sys/kernel/mm/ksm is missing or not writable\n");
		(*passed)++;
		return;
	}
	/* ksm_stat as 6.18 prints it: older kernels lack lines. */
	if (read_view(&host, "ksm_stat", probe, sizeof(probe)) < 0 || !strstr(probe, "ksm_mergeable:")) {
		printf("skip ksm scenarios: the host's ksm_stat is older than Linux 6.18's\n");
		(*passed)++;
		return;
	}
	/* Frame numbers in pagemap need CAP_SYS_ADMIN. */
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0 || pread(fd, &e, 8, (off_t)((unsigned long)&saved / KPG * 8)) != 8 ||
	    !(e & PFN_MASK)) {
		if (fd >= 0)
			close(fd);
		printf("skip ksm scenarios: pagemap shows no frame numbers here\n");
		(*passed)++;
		return;
	}
	close(fd);
	host.log = mmap(NULL, LOG_CAP, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	sm.log = malloc(LOG_CAP);
	if (host.log == MAP_FAILED || !sm.log) {
		printf("FAIL ksm scenarios: no memory for the logs\n");
		(*failed)++;
		return;
	}
	knob_write(K_RUN, 0);
	knob_write(K_SCAN, 10000);
	knob_write(K_SLEEP, 0);
	if (saved[K_SMART] >= 0)
		knob_write(K_SMART, 0);
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct ksm_scenario *sc = &scenarios[i];
		struct sm_config cfg = { .ram_bytes = 64ul << 20 };
		struct sm_ksm_config kc;

		if (o->verbose)
			printf("ksm scenario %s\n", sc->name);
		knob_write(K_ZERO, sc->use_zero_pages);
		run_host(sc, &host);

		sm.len = 0;
		sm.log[0] = '\0';
		sm.m = sm_machine_create(&cfg);
		sm.cpu = sm.m ? sm_cpu_create(sm.m) : NULL;
		sm.mm = sm.cpu ? sm_mm_create(sm.m) : NULL;
		if (!sm.mm) {
			printf("FAIL ksm scenario %s: no machine\n", sc->name);
			(*failed)++;
			continue;
		}
		sm_ksm_config(sm.m, &kc);
		kc.use_zero_pages = sc->use_zero_pages;
		kc.max_page_sharing = (unsigned)saved[K_MAXSHARE];
		sm_ksm_set(sm.m, &kc);
		sm_cpu_switch_mm(sm.cpu, sm.mm);
		sc->run(&sm);
		sm_cpu_switch_mm(sm.cpu, NULL);
		sm_mm_destroy(sm.mm);
		sm_cpu_destroy(sm.cpu);
		sm_machine_destroy(sm.m);
		if (o->verbose)
			printf("%s", host.log);
		if (strcmp(host.log, sm.log)) {
			diff_log_report("ksm scenario", sc->name, host.log, sm.log);
			(*failed)++;
		} else {
			(*passed)++;
		}
	}
	for (int k = NR_KNOBS - 1; k >= 0; k--)
		if (saved[k] >= 0 && k != K_MAXSHARE)
			knob_write(k, saved[k]);
	munmap(host.log, LOG_CAP);
	free(sm.log);
}

/* The host's ksmd and its knobs are one for the whole machine: another
 * diff_test or `softmm bench ksm` running now would turn it off under us, or
 * save our settings as the ones to put back. They take this lock too. */
void diff_run_ksm_tests(const struct diff_opts *o, unsigned *passed, unsigned *failed)
{
	int lock = host_ksm_lock(LOCK_EX);

	run_ksm_tests(o, passed, failed);
	if (lock >= 0)
		close(lock);
}
