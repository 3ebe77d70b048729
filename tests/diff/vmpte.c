/*
 * VmPTE against the host: how much page-table memory a sequence costs, and
 * how much MADV_DONTNEED gives back (issue 5). The op sequences of exec.c
 * live in half a megabyte; these need gigabytes of address space, so they
 * run here, on their own: the host in a forked child (its own mm, nothing
 * else going on in it), softmm on a fresh machine per scenario.
 *
 * Each scenario maps a region that starts 1 GiB-aligned (its first page not
 * in the 1 GiB before it) inside a larger reservation whose first page is
 * touched first, so both sides start with the upper tables a process has
 * near its mappings. THP is off for the region on both sides (4 KiB pages,
 * PTE tables). Every figure is VmPTE's growth over its value just before the
 * region was touched, read from status on both sides; the host's and
 * softmm's must be equal at every point.
 *
 * A host without CONFIG_PT_RECLAIM (or older than 6.14) keeps the tables
 * MADV_DONTNEED empties; softmm is then compared with
 * SM_CFG_NO_PT_RECLAIM_ON_ZAP, which behaves that way, and says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "softmm.h"
#include "diff.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define GIB (1ul << 30)
#define MIB (1ul << 20)
#define SPAN_2M (2 * MIB)
#define MAX_POINTS 4

enum step_kind { TOUCH_WRITE, TOUCH_READ, POPULATE_WRITE, DONTNEED };

struct vmpte_step {
	enum step_kind kind;
	unsigned long off, len;    /* in the region */
	unsigned long stride;      /* TOUCH_*: one page every stride bytes */
};

struct vmpte_scenario {
	const char *name;
	unsigned long len;         /* the region */
	struct vmpte_step steps[MAX_POINTS];
	unsigned nsteps;           /* VmPTE is read after each */
};

static const struct vmpte_scenario scenarios[] = {
	/* Issue 5: the host goes 48 -> 2100 -> 52 kB. */
	{ "populated_1g_then_dontneed", GIB,
	  { { POPULATE_WRITE, 0, GIB, 0 }, { DONTNEED, 0, GIB, 0 } }, 2 },
	/* Issue 5: one page per 2 MiB of 32 GiB; the host goes to 65712, then 176 kB. */
	{ "sparse_32g_then_dontneed", 32 * GIB,
	  { { TOUCH_WRITE, 0, 32 * GIB, SPAN_2M }, { DONTNEED, 0, 32 * GIB, 0 } }, 2 },
	/* Only tables whose whole span the advice covers go; a zap of one page
	 * leaves its emptied table; one covering it all frees it. */
	{ "dontneed_partial_spans", 16 * MIB,
	  { { TOUCH_WRITE, 0, 16 * MIB, 64 * 1024 },
	    { DONTNEED, MIB, 14 * MIB, 0 },
	    { DONTNEED, 0, 4096, 0 },
	    { DONTNEED, 0, 16 * MIB, 0 } }, 4 },
	/* Entries of the shared zero page empty out like any other. */
	{ "zero_pages_then_dontneed", GIB,
	  { { TOUCH_READ, 0, GIB, SPAN_2M / 4 }, { DONTNEED, 0, GIB, 0 } }, 2 },
};

/* One side's system calls on its own address space. */
struct side {
	long (*mmap)(struct side *s, unsigned long len, unsigned long *addr);
	long (*munmap)(struct side *s, unsigned long addr, unsigned long len);
	long (*madvise)(struct side *s, unsigned long addr, unsigned long len, int advice);
	long (*access)(struct side *s, unsigned long addr, bool write);
	long (*vmpte_kb)(struct side *s);
	struct sm_mm *mm;          /* softmm */
	struct sm_cpu *cpu;
};

static long vmpte_of(const char *status)
{
	const char *p = strstr(status, "VmPTE:");

	return p ? strtol(p + 6, NULL, 10) : -ENOENT;
}

static long run_steps(struct side *s, const struct vmpte_scenario *sc, long *points)
{
	unsigned long reserved, region, rlen = sc->len + 2 * GIB;
	long ret, base;

	ret = s->mmap(s, rlen, &reserved);
	if (ret)
		return ret;
	region = (reserved + DIFF_PAGE + GIB - 1) & ~(GIB - 1);
	if ((ret = s->madvise(s, reserved, rlen, MADV_NOHUGEPAGE)) ||
	    (ret = s->access(s, reserved, true)) || (ret = base = s->vmpte_kb(s)) < 0)
		goto out;
	ret = 0;
	for (unsigned i = 0; i < sc->nsteps; i++) {
		const struct vmpte_step *st = &sc->steps[i];
		unsigned long a = region + st->off;

		switch (st->kind) {
		case TOUCH_WRITE:
		case TOUCH_READ:
			for (unsigned long o = 0; o < st->len && !ret; o += st->stride)
				ret = s->access(s, a + o, st->kind == TOUCH_WRITE);
			break;
		case POPULATE_WRITE:
			ret = s->madvise(s, a, st->len, MADV_POPULATE_WRITE);
			break;
		case DONTNEED:
			ret = s->madvise(s, a, st->len, MADV_DONTNEED);
			break;
		}
		if (ret || (ret = s->vmpte_kb(s)) < 0)
			goto out;
		points[i] = ret - base;
		ret = 0;
	}
out:
	s->munmap(s, reserved, rlen);
	return ret;
}

/* ---- the host: a child process ---- */

static long host_mmap(struct side *s, unsigned long len, unsigned long *addr)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	(void)s;
	*addr = (unsigned long)p;
	return p == MAP_FAILED ? -errno : 0;
}

static long host_munmap(struct side *s, unsigned long addr, unsigned long len)
{
	(void)s;
	return munmap((void *)addr, len) ? -errno : 0;
}

static long host_madvise(struct side *s, unsigned long addr, unsigned long len, int advice)
{
	(void)s;
	return madvise((void *)addr, len, advice) ? -errno : 0;
}

/* Uninstrumented: under ASan, checking the shadow of each page touched would
 * build page tables for the shadow too, and count in the host's VmPTE. */
__attribute__((no_sanitize("address")))
static long host_access(struct side *s, unsigned long addr, bool write)
{
	(void)s;
	if (write)
		*(volatile char *)addr = 1;
	else
		(void)*(volatile char *)addr;
	return 0;
}

/* With no allocation: a malloc between two readings may grow the tables. */
static long host_vmpte_kb(struct side *s)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY);
	ssize_t n;

	(void)s;
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = 0;
	return vmpte_of(buf);
}

/* The host's figures, from a child; its result (0 or -errno) in points[-1]. */
static long host_points(const struct vmpte_scenario *sc, long *points)
{
	long out[MAX_POINTS + 1] = { -EIO };
	int fd[2], status;
	pid_t pid;

	if (pipe(fd))
		return -errno;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return -errno;
	}
	if (pid == 0) {
		struct side s = { host_mmap, host_munmap, host_madvise, host_access,
				  host_vmpte_kb, NULL, NULL };

		close(fd[0]);
		out[0] = run_steps(&s, sc, out + 1);
		_exit(write(fd[1], out, sizeof(out)) == (ssize_t)sizeof(out) ? 0 : 1);
	}
	close(fd[1]);
	if (read(fd[0], out, sizeof(out)) != (ssize_t)sizeof(out))
		out[0] = -EIO;
	close(fd[0]);
	waitpid(pid, &status, 0);
	memcpy(points, out + 1, sizeof(long) * MAX_POINTS);
	return out[0];
}

/* ---- softmm: a machine of its own ---- */

static long sm_mmap_(struct side *s, unsigned long len, unsigned long *addr)
{
	long r = sm_mmap(s->mm, 0, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	*addr = (unsigned long)r;
	return r < 0 ? r : 0;
}

static long sm_munmap_(struct side *s, unsigned long addr, unsigned long len)
{
	return sm_munmap(s->mm, addr, len);
}

static long sm_madvise_(struct side *s, unsigned long addr, unsigned long len, int advice)
{
	return sm_madvise(s->mm, addr, len, advice);
}

static long sm_access_(struct side *s, unsigned long addr, bool write)
{
	char c = 1;

	return write ? sm_write(s->cpu, addr, &c, 1) : sm_read(s->cpu, addr, &c, 1);
}

static long sm_vmpte_kb_(struct side *s)
{
	char buf[4096];
	long n = sm_proc_read(s->mm, "status", buf, sizeof(buf) - 1);

	if (n < 0)
		return n;
	buf[n < (long)sizeof(buf) - 1 ? n : (long)sizeof(buf) - 1] = 0;
	return vmpte_of(buf);
}

static long softmm_points(const struct vmpte_scenario *sc, unsigned flags, long *points)
{
	/* The pages a scenario writes, two tables per 2 MiB at most, and slack. */
	struct sm_config cfg = { .ram_bytes = (sc->len > GIB ? sc->len / 256 : sc->len) +
					      sc->len / 256 + 64 * MIB,
				 .max_cpus = 2, .flags = flags | SM_CFG_POISON_FREED };
	struct sm_machine *m = sm_machine_create(&cfg);
	struct side s = { sm_mmap_, sm_munmap_, sm_madvise_, sm_access_, sm_vmpte_kb_, NULL, NULL };
	long ret = -ENOMEM;

	if (!m)
		return -errno;
	s.mm = sm_mm_create(m);
	s.cpu = sm_cpu_create(m);
	if (s.mm && s.cpu) {
		sm_cpu_switch_mm(s.cpu, s.mm);
		ret = run_steps(&s, sc, points);
		if (!ret && sm_mm_check(s.mm))
			ret = -EUCLEAN;
		sm_cpu_switch_mm(s.cpu, NULL);
	}
	if (s.cpu)
		sm_cpu_destroy(s.cpu);
	if (s.mm)
		sm_mm_destroy(s.mm);
	sm_machine_destroy(m);
	return ret;
}

static void format_points(char *buf, size_t size, const long *p, unsigned n)
{
	size_t len = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%+ld", i ? " -> " : "", p[i]);
}

/* Does the host free the tables MADV_DONTNEED empties? Asked of its own
 * figures for the first scenario: its DONTNEED gives back what populating
 * took, or not. */
static bool host_reclaims(const long *p)
{
	return p[1] < p[0] / 2;
}

void diff_run_vmpte_tests(struct diff_driver *d, const struct diff_opts *o,
			  unsigned *passed, unsigned *failed)
{
	bool reclaims = true;

	(void)d;
	for (unsigned i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct vmpte_scenario *sc = &scenarios[i];
		long host[MAX_POINTS] = { 0 }, sm[MAX_POINTS] = { 0 };
		char hs[128], ss[128];
		long hr = host_points(sc, host), sr;

		if (hr) {
			printf("vmpte %s: skipped, the host could not run it (%s)\n", sc->name,
			       strerror((int)-hr));
			(*passed)++;
			continue;
		}
		if (i == 0)
			reclaims = host_reclaims(host);
		sr = softmm_points(sc, reclaims ? 0 : SM_CFG_NO_PT_RECLAIM_ON_ZAP, sm);
		format_points(hs, sizeof(hs), host, sc->nsteps);
		format_points(ss, sizeof(ss), sm, sc->nsteps);
		if (!sr && !memcmp(host, sm, sizeof(long) * sc->nsteps)) {
			(*passed)++;
			if (o->verbose || !o->quiet)
				printf("vmpte %s: VmPTE growth %s kB on both sides%s\n", sc->name, hs,
				       reclaims ? "" : " (the host keeps emptied tables: softmm "
						       "with SM_CFG_NO_PT_RECLAIM_ON_ZAP)");
			continue;
		}
		(*failed)++;
		if (sr)
			printf("FAIL vmpte %s: softmm: %s\n", sc->name, strerror((int)-sr));
		else
			printf("FAIL vmpte %s: VmPTE growth, host %s kB, softmm %s kB\n", sc->name,
			       hs, ss);
	}
	fflush(stdout);
}
