/*
 * bench munmap: unmapping big populated regions, and what it costs everyone
 * else in the address space while it runs (issue 4).
 *
 *   munmap N populated      munmap of N GiB, every 4 KiB page written once
 *                           (N = 1 and 4; 16 too with --full). Target: no
 *                           slower than the host.
 *   munmap N zero-page      munmap of N GiB whose every page was read once,
 *                           so that each PTE maps the shared zero page (4 GiB;
 *                           16 with --full).
 *   write hold, ...         the longest hold of the mmap_lock for writing
 *                           during that munmap, from sm_mm_lock_stats (reset
 *                           just before the call). Target: <= 50 us at every
 *                           size, so flat as the size grows. softmm only.
 *   fault stall, ...        while the munmap of 1 GiB (4 with --full) runs, a second
 *   mmap stall, ...         thread writes one byte per page of another VMA of
 *                           the same mm (sm_write on its own sm_cpu; each
 *                           access timed; the VMA is emptied before each rep,
 *                           so every access is a fault) and a third maps
 *                           and unmaps 4 KiB in a loop (each call timed). The
 *                           longest single access or call is the stall.
 *                           Each thread sleeps 20 us (untimed) between
 *                           operations, so that 3 threads on this 2-CPU host
 *                           measure waits on the mm rather than for a CPU.
 *                           Target: <= 1 ms. Measured with the default zap
 *                           (downgraded to the read lock) and with
 *                           SM_CFG_MUNMAP_ZAP_WRITE_LOCKED; the host runs the
 *                           same three threads natively.
 *
 * A stall is wall-clock time, so it still includes whatever the host
 * scheduler adds (a preemption in the middle of an operation), on both sides
 * alike.
 *
 * Each rep populates afresh (untimed) and times one munmap. softmm runs
 * first, on a machine whose RAM holds the largest region; the machine is
 * destroyed before the host side runs so that the two never hold the memory
 * at once. Both sides turn THP off for the regions (4 KiB pages, as asked).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <softmm.h>
#include "bench.h"

#define GIB (1ul << 30)
#define MIB (1ul << 20)
#define FAULT_REGION (16 * MIB)	/* the stall thread's VMA, recycled by MADV_DONTNEED */
#define MAX_SIZES 3
#define PACE_NS 20000		/* the stall threads' sleep between operations */

struct munmap_plan {
	unsigned long populated[MAX_SIZES];
	int nsizes;
	unsigned long zero;		/* bytes of zero-page PTEs */
	unsigned long stall;		/* the populated size the stall threads run against */
};

struct munmap_rows {
	struct bench_row *time[MAX_SIZES], *zero_time;
	struct bench_row *hold[MAX_SIZES], *zero_hold;
	struct bench_row *fault_stall, *mmap_stall;		/* default zap */
	struct bench_row *fault_stall_wl, *mmap_stall_wl, *hold_wl;	/* zap write-locked */
};

static void size_text(char *buf, size_t n, unsigned long bytes)
{
	if (bytes >= GIB)
		snprintf(buf, n, "%luG", bytes / GIB);
	else
		snprintf(buf, n, "%luM", bytes / MIB);
}

/* ---- The two other threads, on either side ---- */

/*
 * The threads run from before the munmap starts until each has begun an
 * operation after it ended; an operation counts if it overlaps the munmap
 * [win_start, win_end]: one that began before and was held up by it, or one
 * that began during it.
 */
struct stall_worker {
	uint64_t max_ns;		/* the longest operation that overlapped the munmap */
	unsigned long ops;		/* operations done, all told */
	unsigned long in_window;	/* of which overlapped the munmap */
	uint64_t last_start;		/* when the latest operation began */
};

struct stall_run {
	enum bench_side side;
	struct sm_machine *m;		/* softmm: the machine and the mm under test */
	struct sm_mm *mm;
	unsigned long fault_addr;	/* the fault thread's VMA */
	uint64_t win_start, win_end;	/* 0 and UINT64_MAX until known */
	int stop;
	struct stall_worker fault, mmap;
	char error[128];
};

static void stall_error(struct stall_run *run, const char *what, long err)
{
	if (!__atomic_exchange_n(&run->error[0], 'x', __ATOMIC_ACQ_REL))
		snprintf(run->error, sizeof(run->error), "%s: %s", what, strerror((int)err));
}

/* Untimed, between operations: the threads pace themselves rather than spin,
 * so that 3 threads on a 2-CPU host measure waits on the mm and not mostly
 * waits for a CPU; a thread that wakes up gets one promptly. */
static bool stall_pace_and_go_on(struct stall_run *run)
{
	struct timespec ts = { 0, PACE_NS };

	nanosleep(&ts, NULL);
	return !__atomic_load_n(&run->stop, __ATOMIC_ACQUIRE);
}

static void stall_account(struct stall_run *run, struct stall_worker *w, uint64_t t0, uint64_t t1)
{
	uint64_t ws = __atomic_load_n(&run->win_start, __ATOMIC_ACQUIRE);
	uint64_t we = __atomic_load_n(&run->win_end, __ATOMIC_ACQUIRE);

	if (ws && t1 >= ws && t0 <= we) {
		w->max_ns = t1 - t0 > w->max_ns ? t1 - t0 : w->max_ns;
		w->in_window++;
	}
	__atomic_store_n(&w->ops, w->ops + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&w->last_start, t0, __ATOMIC_RELEASE);
}

static void *fault_thread(void *arg)
{
	struct stall_run *run = arg;
	unsigned char byte = 1;
	struct sm_cpu *cpu = NULL;
	unsigned long off = 0;

	if (run->side == SIDE_SOFTMM) {
		cpu = sm_cpu_create(run->m);
		if (!cpu) {
			stall_error(run, "sm_cpu_create", errno);
			return NULL;
		}
		sm_cpu_switch_mm(cpu, run->mm);
	}
	while (stall_pace_and_go_on(run)) {
		uint64_t t0 = bench_now_ns();
		long ret = 0;

		if (cpu)
			ret = sm_write(cpu, run->fault_addr + off, &byte, 1);
		else
			((volatile unsigned char *)run->fault_addr)[off] = byte;
		stall_account(run, &run->fault, t0, bench_now_ns());
		if (ret) {
			stall_error(run, "sm_write", -ret);
			break;
		}
		off += PAGE_4K;
		if (off == FAULT_REGION) {	/* untimed: start over on fresh pages */
			off = 0;
			if (cpu)
				ret = sm_madvise(run->mm, run->fault_addr, FAULT_REGION, MADV_DONTNEED);
			else
				ret = madvise((void *)run->fault_addr, FAULT_REGION, MADV_DONTNEED) ? -errno : 0;
			if (ret) {
				stall_error(run, "madvise", -ret);
				break;
			}
		}
	}
	if (cpu) {
		sm_cpu_switch_mm(cpu, NULL);
		sm_cpu_destroy(cpu);
	}
	return NULL;
}

static long stall_map(struct stall_run *run, long *addr)
{
	void *p;

	if (run->side == SIDE_SOFTMM) {
		*addr = sm_mmap(run->mm, 0, PAGE_4K, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return *addr < 0 ? *addr : 0;
	}
	p = mmap(NULL, PAGE_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	*addr = (long)p;
	return p == MAP_FAILED ? -errno : 0;
}

static long stall_unmap(struct stall_run *run, long addr)
{
	if (run->side == SIDE_SOFTMM)
		return sm_munmap(run->mm, addr, PAGE_4K);
	return munmap((void *)addr, PAGE_4K) ? -errno : 0;
}

static void *mmap_thread(void *arg)
{
	struct stall_run *run = arg;

	while (stall_pace_and_go_on(run)) {
		uint64_t t0 = bench_now_ns(), t1;
		long addr, ret = stall_map(run, &addr);

		t1 = bench_now_ns();
		stall_account(run, &run->mmap, t0, t1);
		if (ret) {
			stall_error(run, "mmap", -ret);
			break;
		}
		ret = stall_unmap(run, addr);
		stall_account(run, &run->mmap, t1, bench_now_ns());
		if (ret) {
			stall_error(run, "munmap", -ret);
			break;
		}
	}
	return NULL;
}

static bool stall_worker_past(struct stall_run *run, struct stall_worker *w, unsigned long ops,
			      uint64_t when)
{
	return run->error[0] || (__atomic_load_n(&w->ops, __ATOMIC_ACQUIRE) >= ops &&
				 __atomic_load_n(&w->last_start, __ATOMIC_ACQUIRE) > when);
}

/*
 * Runs unmap() (one munmap of the big region) once both threads are going,
 * and stops them once each has begun an operation after it; fills run's
 * maxima. 0, or -errno from unmap or a thread (-EIO: see run->error).
 */
static long stall_measure(struct stall_run *run, long (*unmap)(void *), void *arg)
{
	pthread_t th[2];
	long ret;

	run->win_end = UINT64_MAX;
	if (pthread_create(&th[0], NULL, fault_thread, run))
		return -EAGAIN;
	if (pthread_create(&th[1], NULL, mmap_thread, run)) {
		__atomic_store_n(&run->stop, 1, __ATOMIC_RELEASE);
		pthread_join(th[0], NULL);
		return -EAGAIN;
	}
	while (!stall_worker_past(run, &run->fault, 64, 0) || !stall_worker_past(run, &run->mmap, 64, 0))
		sched_yield();
	__atomic_store_n(&run->win_start, bench_now_ns(), __ATOMIC_RELEASE);
	ret = unmap(arg);
	__atomic_store_n(&run->win_end, bench_now_ns(), __ATOMIC_RELEASE);
	while (!stall_worker_past(run, &run->fault, 0, run->win_end) ||
	       !stall_worker_past(run, &run->mmap, 0, run->win_end))
		sched_yield();
	__atomic_store_n(&run->stop, 1, __ATOMIC_RELEASE);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	if (!ret && run->error[0])
		ret = -EIO;
	return ret;
}

/* ---- softmm ---- */

struct sm_region {
	struct bench_sm *s;
	unsigned long addr, len;
};

static long softmm_fill(struct bench_sm *s, unsigned long len, bool write, unsigned long *addrp)
{
	unsigned char byte = 1;
	long addr = sm_mmap(s->mm, 0, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	long ret;

	if (addr < 0)
		return addr;
	sm_madvise(s->mm, addr, len, MADV_NOHUGEPAGE);
	for (unsigned long off = 0; off < len; off += PAGE_4K) {
		ret = write ? sm_write(s->cpu, addr + off, &byte, 1)
			    : sm_read(s->cpu, addr + off, &byte, 1);
		if (ret)
			return ret;
	}
	*addrp = addr;
	return 0;
}

static long softmm_unmap(void *arg)
{
	struct sm_region *r = arg;

	return sm_munmap(r->s->mm, r->addr, r->len);
}

/* Populate, reset the lock statistics, time one munmap; ms and the longest write hold in us. */
static long softmm_one_munmap(struct bench_sm *s, unsigned long len, bool write,
			      double *ms, double *hold_us)
{
	struct sm_lock_stats st;
	struct sm_region r = { s, 0, len };
	uint64_t t0;
	long ret = softmm_fill(s, len, write, &r.addr);

	if (ret)
		return ret;
	sm_mm_lock_stats_reset(s->mm);
	t0 = bench_now_ns();
	ret = sm_munmap(s->mm, r.addr, len);
	*ms = (bench_now_ns() - t0) / 1e6;
	sm_mm_lock_stats(s->mm, &st);
	*hold_us = st.hold_max_ns[SM_LOCK_WRITE] / 1e3;
	return ret;
}

static void softmm_timed(struct bench_sm *s, unsigned long len, bool write,
			 const struct bench_opts *opts, struct bench_row *time, struct bench_row *hold)
{
	char sz[16];

	size_text(sz, sizeof(sz), len);
	bench_progress("munmap: softmm, %s %s", sz, write ? "populated" : "zero-page PTEs");
	for (int i = -1; i < opts->reps; i++) {
		double ms, hold_us;
		long ret = softmm_one_munmap(s, len, write, &ms, &hold_us);

		if (ret) {
			bench_row_fail(time, SIDE_SOFTMM, "%s %s: %s", sz, write ? "populated" : "zero",
				       strerror((int)-ret));
			bench_row_fail(hold, SIDE_SOFTMM, "%s", strerror((int)-ret));
			return;
		}
		if (i >= 0) {
			bench_row_sample(time, SIDE_SOFTMM, ms);
			bench_row_sample(hold, SIDE_SOFTMM, hold_us);
		}
	}
}

static void softmm_stalls(struct bench_sm *s, unsigned long len, const struct bench_opts *opts,
			  struct bench_row *fault, struct bench_row *mm_row, struct bench_row *hold)
{
	unsigned long fault_addr = 0;
	unsigned long fops = 0, mops = 0;
	long ret = softmm_fill(s, FAULT_REGION, true, &fault_addr);

	for (int i = -1; i < opts->reps && !ret; i++) {
		struct stall_run run = { .side = SIDE_SOFTMM, .m = s->m, .mm = s->mm,
					 .fault_addr = fault_addr };
		struct sm_region r = { s, 0, len };
		struct sm_lock_stats st;

		ret = softmm_fill(s, len, true, &r.addr);
		if (!ret)
			ret = sm_madvise(s->mm, fault_addr, FAULT_REGION, MADV_DONTNEED);
		if (ret)
			break;
		sm_mm_lock_stats_reset(s->mm);
		ret = stall_measure(&run, softmm_unmap, &r);
		sm_mm_lock_stats(s->mm, &st);
		if (ret == -EIO)
			bench_progress("munmap: softmm stall thread: %s", run.error);
		if (!ret && i >= 0) {
			bench_row_sample(fault, SIDE_SOFTMM, run.fault.max_ns / 1e3);
			bench_row_sample(mm_row, SIDE_SOFTMM, run.mmap.max_ns / 1e3);
			if (hold)
				bench_row_sample(hold, SIDE_SOFTMM, st.hold_max_ns[SM_LOCK_WRITE] / 1e3);
			fops += run.fault.in_window, mops += run.mmap.in_window;
		}
	}
	if (ret) {
		bench_row_fail(fault, SIDE_SOFTMM, "%s", strerror((int)-ret));
		bench_row_fail(mm_row, SIDE_SOFTMM, "%s", strerror((int)-ret));
		if (hold)
			bench_row_fail(hold, SIDE_SOFTMM, "%s", strerror((int)-ret));
		return;
	}
	bench_progress("munmap: softmm stall threads overlapped the munmaps with %lu accesses and "
		       "%lu mmap/munmap calls in %d reps", fops, mops, opts->reps);
	sm_munmap(s->mm, fault_addr, FAULT_REGION);
}

static void softmm_side(const struct munmap_plan *p, const struct bench_opts *opts,
			struct munmap_rows *mr, bool zap_write_locked)
{
	unsigned long biggest = p->populated[p->nsizes - 1] > p->zero ?
				p->populated[p->nsizes - 1] : p->zero;
	struct sm_config cfg = { .ram_bytes = biggest + 256 * MIB, .max_cpus = 4,
				 .flags = SM_CFG_PREFAULT_RAM |
					  (zap_write_locked ? SM_CFG_MUNMAP_ZAP_WRITE_LOCKED : 0) };
	struct bench_sm s;
	int err;

	bench_progress("munmap: softmm machine with %lu MiB of RAM%s", cfg.ram_bytes / MIB,
		       zap_write_locked ? ", SM_CFG_MUNMAP_ZAP_WRITE_LOCKED" : "");
	err = bench_sm_open_cfg(&s, &cfg);
	if (err) {
		struct bench_row *rows[2 * MAX_SIZES + 5];
		int n = 0;

		if (zap_write_locked) {
			rows[n++] = mr->fault_stall_wl, rows[n++] = mr->mmap_stall_wl;
			rows[n++] = mr->hold_wl;
		} else {
			for (int i = 0; i < p->nsizes; i++)
				rows[n++] = mr->time[i], rows[n++] = mr->hold[i];
			rows[n++] = mr->zero_time, rows[n++] = mr->zero_hold;
			rows[n++] = mr->fault_stall, rows[n++] = mr->mmap_stall;
		}
		for (int i = 0; i < n; i++)
			bench_row_fail(rows[i], SIDE_SOFTMM, "creating the machine: %s", strerror(-err));
		return;
	}
	if (zap_write_locked) {
		bench_progress("munmap: softmm, stalls during munmap of the stall size, zap write-locked");
		softmm_stalls(&s, p->stall, opts, mr->fault_stall_wl, mr->mmap_stall_wl, mr->hold_wl);
	} else {
		for (int i = 0; i < p->nsizes; i++)
			softmm_timed(&s, p->populated[i], true, opts, mr->time[i], mr->hold[i]);
		softmm_timed(&s, p->zero, false, opts, mr->zero_time, mr->zero_hold);
		bench_progress("munmap: softmm, stalls during munmap of the stall size, default zap");
		softmm_stalls(&s, p->stall, opts, mr->fault_stall, mr->mmap_stall, NULL);
	}
	bench_sm_close(&s);
}

/* ---- host ---- */

struct host_region {
	void *p;
	unsigned long len;
};

static void *host_fill(unsigned long len, bool write)
{
	volatile unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	unsigned char sum = 0;

	if (p == MAP_FAILED)
		return NULL;
	madvise((void *)p, len, MADV_NOHUGEPAGE);
	if (write)
		for (unsigned long off = 0; off < len; off += PAGE_4K)
			p[off] = 1;
	else
		for (unsigned long off = 0; off < len; off += PAGE_4K)
			sum += p[off];
	(void)sum;
	return (void *)p;
}

static long host_unmap(void *arg)
{
	struct host_region *r = arg;

	return munmap(r->p, r->len) ? -errno : 0;
}

static void host_timed(unsigned long len, bool write, const struct bench_opts *opts,
		       struct bench_row *time)
{
	char sz[16];

	size_text(sz, sizeof(sz), len);
	bench_progress("munmap: host, %s %s", sz, write ? "populated" : "zero-page PTEs");
	for (int i = -1; i < opts->reps; i++) {
		void *p = host_fill(len, write);
		uint64_t t0;
		int ret;

		if (!p) {
			bench_row_fail(time, SIDE_HOST, "mmap %s: %s", sz, strerror(errno));
			return;
		}
		t0 = bench_now_ns();
		ret = munmap(p, len);
		if (ret) {
			bench_row_fail(time, SIDE_HOST, "munmap %s: %s", sz, strerror(errno));
			return;
		}
		if (i >= 0)
			bench_row_sample(time, SIDE_HOST, (bench_now_ns() - t0) / 1e6);
	}
}

static void host_stalls(unsigned long len, const struct bench_opts *opts, struct munmap_rows *mr)
{
	struct bench_row *rows[4] = { mr->fault_stall, mr->mmap_stall,
				      mr->fault_stall_wl, mr->mmap_stall_wl };
	void *fault_region = host_fill(FAULT_REGION, true);
	long ret = fault_region ? 0 : -errno;

	unsigned long fops = 0, mops = 0;

	bench_progress("munmap: host, stalls during munmap of the stall size");
	for (int i = -1; i < opts->reps && !ret; i++) {
		struct stall_run run = { .side = SIDE_HOST, .fault_addr = (unsigned long)fault_region };
		struct host_region r = { host_fill(len, true), len };

		if (!r.p || madvise(fault_region, FAULT_REGION, MADV_DONTNEED)) {
			ret = -errno;
			break;
		}
		ret = stall_measure(&run, host_unmap, &r);
		if (ret == -EIO)
			bench_progress("munmap: host stall thread: %s", run.error);
		for (int k = 0; !ret && i >= 0 && k < 4; k++)
			bench_row_sample(rows[k], SIDE_HOST,
					 (k % 2 ? run.mmap.max_ns : run.fault.max_ns) / 1e3);
		if (!ret && i >= 0)
			fops += run.fault.in_window, mops += run.mmap.in_window;
	}
	if (!ret)
		bench_progress("munmap: host stall threads overlapped the munmaps with %lu accesses "
			       "and %lu mmap/munmap calls in %d reps", fops, mops, opts->reps);
	for (int k = 0; ret && k < 4; k++)
		bench_row_fail(rows[k], SIDE_HOST, "%s", strerror((int)-ret));
	if (fault_region)
		munmap(fault_region, FAULT_REGION);
}

/* ---- the bench ---- */

static void plan_sizes(const struct bench_opts *opts, struct munmap_plan *p)
{
	memset(p, 0, sizeof(*p));
	if (opts->quick) {
		p->populated[p->nsizes++] = 16 * MIB;
		p->populated[p->nsizes++] = 64 * MIB;
		p->zero = 64 * MIB;
	} else {
		p->populated[p->nsizes++] = 1 * GIB;
		p->populated[p->nsizes++] = 4 * GIB;
		if (opts->full)
			p->populated[p->nsizes++] = 16 * GIB;
		p->zero = opts->full ? 16 * GIB : 4 * GIB;
	}
	/* The stall runs repopulate for every rep: the 1 GiB munmap by default
	 * (a few minutes for every bench), 4 GiB with --full. */
	p->stall = opts->quick ? 64 * MIB : opts->full ? 4 * GIB : 1 * GIB;
}

static void run_munmap(const struct bench_opts *opts, struct bench_report *rep)
{
	struct munmap_plan p;
	struct munmap_rows mr;
	char w[64], sz[16], stall_sz[16];

	plan_sizes(opts, &p);
	size_text(stall_sz, sizeof(stall_sz), p.stall);
	for (int i = 0; i < p.nsizes; i++) {
		size_text(sz, sizeof(sz), p.populated[i]);
		snprintf(w, sizeof(w), "munmap %s populated", sz);
		mr.time[i] = bench_row_add(rep, opts, "munmap", w, "ms", true,
					   TARGET_SPEEDUP_AT_LEAST, 1.0);
	}
	size_text(sz, sizeof(sz), p.zero);
	snprintf(w, sizeof(w), "munmap %s zero-page PTEs", sz);
	mr.zero_time = bench_row_add(rep, opts, "munmap", w, "ms", true, TARGET_SPEEDUP_AT_LEAST, 1.0);
	for (int i = 0; i < p.nsizes; i++) {
		size_text(sz, sizeof(sz), p.populated[i]);
		snprintf(w, sizeof(w), "write hold, munmap %s", sz);
		mr.hold[i] = bench_row_add(rep, opts, "munmap", w, "us", true, TARGET_VALUE_AT_MOST, 50);
		mr.hold[i]->host_note = "not measurable (softmm's mmap_lock statistics only)";
	}
	size_text(sz, sizeof(sz), p.zero);
	snprintf(w, sizeof(w), "write hold, munmap %s zero", sz);
	mr.zero_hold = bench_row_add(rep, opts, "munmap", w, "us", true, TARGET_VALUE_AT_MOST, 50);
	mr.zero_hold->host_note = mr.hold[0]->host_note;
	snprintf(w, sizeof(w), "fault stall, munmap %s", stall_sz);
	mr.fault_stall = bench_row_add(rep, opts, "munmap", w, "us", true, TARGET_VALUE_AT_MOST, 1000);
	snprintf(w, sizeof(w), "mmap stall, munmap %s", stall_sz);
	mr.mmap_stall = bench_row_add(rep, opts, "munmap", w, "us", true, TARGET_VALUE_AT_MOST, 1000);
	snprintf(w, sizeof(w), "fault stall, %s zap wlocked", stall_sz);
	mr.fault_stall_wl = bench_row_add(rep, opts, "munmap", w, "us", true, TARGET_VALUE_AT_MOST, 1000);
	mr.fault_stall_wl->host_note = "the host's stall of the row without \"zap wlocked\" (the same samples)";
	snprintf(w, sizeof(w), "mmap stall, %s zap wlocked", stall_sz);
	mr.mmap_stall_wl = bench_row_add(rep, opts, "munmap", w, "us", true, TARGET_VALUE_AT_MOST, 1000);
	mr.mmap_stall_wl->host_note = mr.fault_stall_wl->host_note;
	snprintf(w, sizeof(w), "write hold, %s zap wlocked", stall_sz);
	mr.hold_wl = bench_row_add(rep, opts, "munmap", w, "us", true, TARGET_NONE, 0);
	mr.hold_wl->host_note = "not measurable; softmm's figure is from the stall runs "
				"(SM_CFG_MUNMAP_ZAP_WRITE_LOCKED, for comparison)";

	size_text(sz, sizeof(sz), p.populated[p.nsizes - 1]);
	bench_progress("munmap: populated sizes up to %s%s, 1 warm-up + %d reps per figure; "
		       "stall threads against the %s munmap", sz,
		       opts->full ? " (--full)" : opts->quick ? "" :
		       " (--full adds 16 GiB, and stalls against 4 GiB)", opts->reps, stall_sz);
	softmm_side(&p, opts, &mr, false);
	softmm_side(&p, opts, &mr, true);
	for (int i = 0; i < p.nsizes; i++)
		host_timed(p.populated[i], true, opts, mr.time[i]);
	host_timed(p.zero, false, opts, mr.zero_time);
	host_stalls(p.stall, opts, &mr);
}

static struct bench munmap_bench = {
	.name = "munmap",
	.summary = "munmap of 1-16 GiB populated or zero-page PTEs; mmap_lock write hold; stalls",
	.run = run_munmap,
};
BENCH_REGISTER(munmap_bench);
