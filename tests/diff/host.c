/*
 * The host backend: the reference, Linux itself.
 *
 * host_start() forks a small fork server first thing in main(), before the
 * test allocates anything or creates a softmm machine, so that the children
 * it forks have a small address space (smaps is read after every step and
 * walks all of it). For each sequence the parent writes the ops into a
 * MAP_SHARED job area and sends one byte; the server forks a child, which
 * runs the ops with raw system calls through exec.c and writes its records
 * straight into the job area, then exits. The parent meanwhile runs softmm.
 *
 * Inside the child nothing allocates: buffers are static or in the job area.
 * Guest memory is touched only through a pipe: write(2) from guest memory
 * and read(2) into it make the kernel copy like the CPU would, returning
 * -EFAULT or a short count instead of raising SIGSEGV, which is the
 * semantics of sm_read/sm_write. Page snapshots read the pages that maps
 * says are accessible with plain loads: process_vm_readv would take a
 * read-only GUP pin, which unshares (copies) a copy-on-write page and so
 * changes what pagemap says. The window is fixed (WIN_BASE, far below
 * where the kernel places mappings); the heap region starts at the child's
 * start_brk, and brk is reset to it so every child starts with no heap.
 *
 * Procs: the child for a sequence is proc 0; an OP_FORK forks for real, and
 * every process runs exec.c's loop. One token, a byte in per-proc pipes,
 * says whose turn it is: enter(p) in the process that holds it passes it to
 * p, and p's process waits for it. A proc's exit is its unmapping of every
 * region (the process itself lingers, without turns, until the end, so that
 * the token protocol needs no repair); the pages' mapcounts drop as on exit.
 * At the end every process waits for the ones it forked. A process that
 * fails kills the whole process group, which proc 0 leads.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "diff.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* Shared between the parent and the host children. */
struct host_job {
	struct diff_layout layout;
	char note[256];           /* from the server's start */
	char fatal[128];          /* why a host process gave up on the sequence */
	bool window_taken;        /* fatal: something already lies in the window */
	unsigned nops;
	struct diff_op ops[MAX_STEPS];
	struct diff_step steps[DIFF_SLOTS(MAX_STEPS)];
};

struct host_server {
	struct host_job *job;
	pid_t pid;
	int cmd_fd;     /* parent -> server */
	int reply_fd;   /* server -> parent */
};

static struct host_server server = { .pid = -1, .cmd_fd = -1, .reply_fd = -1 };

/* Only the host children touch it. */
static struct diff_work host_work;

struct host_ctx {
	struct host_job *job;
	int pipe_rd, pipe_wr;
	size_t pipe_cap;
	int maps_fd, smaps_fd, pagemap_fd;
	unsigned self;               /* which proc this process is */
	bool has_token;
	int token[MAX_PROCS][2];     /* proc p waits on token[p][0] */
	pid_t forked[MAX_PROCS];     /* the procs this process forked */
	unsigned nforked;
	unsigned char scratch[DIFF_PAGE];
};

static struct host_ctx *fatal_ctx;

/* Give up on the sequence: every process of it dies, and the server says why. */
static _Noreturn void die(const char *why)
{
	if (fatal_ctx && !fatal_ctx->job->fatal[0])
		snprintf(fatal_ctx->job->fatal, sizeof(fatal_ctx->job->fatal), "proc %u: %s",
			 fatal_ctx->self, why);
	kill(0, SIGKILL);
	_exit(74);
}

static void on_fault(int sig)
{
	die(sig == SIGSEGV ? "SIGSEGV" : "SIGBUS");
}

static long sys_ret(long r)
{
	return r == -1 ? -errno : r;
}

/* ---- System calls ---- */

static long host_mmap(void *ctx, unsigned long addr, unsigned long len, int prot, int flags,
		      int fd, long offset)
{
	(void)ctx;
	return sys_ret(syscall(SYS_mmap, addr, len, (unsigned long)(unsigned)prot,
			       (unsigned long)(unsigned)flags, (long)fd, offset));
}

static long host_munmap(void *ctx, unsigned long addr, unsigned long len)
{
	(void)ctx;
	return sys_ret(syscall(SYS_munmap, addr, len));
}

static long host_mprotect(void *ctx, unsigned long addr, unsigned long len, int prot)
{
	(void)ctx;
	return sys_ret(syscall(SYS_mprotect, addr, len, (unsigned long)(unsigned)prot));
}

static long host_madvise(void *ctx, unsigned long addr, unsigned long len, int advice)
{
	(void)ctx;
	return sys_ret(syscall(SYS_madvise, addr, len, (long)advice));
}

static long host_mremap(void *ctx, unsigned long old_addr, unsigned long old_len,
			unsigned long new_len, int flags, unsigned long new_addr)
{
	(void)ctx;
	return sys_ret(syscall(SYS_mremap, old_addr, old_len, new_len,
			       (unsigned long)(unsigned)flags, new_addr));
}

static long host_brk(void *ctx, unsigned long brk)
{
	(void)ctx;
	return syscall(SYS_brk, brk);   /* the break, never an error */
}

/* ---- Guest memory through the pipe ---- */

static long raw_read(int fd, void *buf, size_t len)
{
	return syscall(SYS_read, fd, buf, len);
}

static long raw_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len);
}

static void drain_into(struct host_ctx *h, unsigned char *buf, size_t len)
{
	while (len) {
		long n = raw_read(h->pipe_rd, buf, len);

		if (n <= 0)
			die("the pipe lost data");   /* the data we just wrote must be there */
		buf += n;
		len -= (size_t)n;
	}
}

static void drain_discard(struct host_ctx *h)
{
	while (raw_read(h->pipe_rd, h->scratch, sizeof(h->scratch)) > 0)
		;
}

/* Copy guest memory at addr into buf; the bytes copied before a fault. */
static size_t copy_from_guest(struct host_ctx *h, unsigned long addr, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		size_t chunk = len - done < h->pipe_cap ? len - done : h->pipe_cap;
		long n = raw_write(h->pipe_wr, (const void *)(addr + done), chunk);

		if (n <= 0)
			break;
		drain_into(h, (unsigned char *)buf + done, (size_t)n);
		done += (size_t)n;
		if ((size_t)n < chunk)
			break;
	}
	return done;
}

/* Copy buf to guest memory at addr; the bytes counted before a fault. */
static size_t copy_to_guest(struct host_ctx *h, unsigned long addr, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		size_t chunk = len - done < h->pipe_cap ? len - done : h->pipe_cap;
		long m;

		if (raw_write(h->pipe_wr, (const unsigned char *)buf + done, chunk) != (long)chunk)
			die("the pipe took less than asked");
		m = raw_read(h->pipe_rd, (void *)(addr + done), chunk);
		if (m < 0)
			m = 0;
		done += (size_t)m;
		if ((size_t)m < chunk) {
			drain_discard(h);
			break;
		}
	}
	return done;
}

static long host_read(void *ctx, unsigned long addr, void *buf, size_t len)
{
	return copy_from_guest(ctx, addr, buf, len) == len ? 0 : -EFAULT;
}

static long host_write(void *ctx, unsigned long addr, const void *buf, size_t len)
{
	return copy_to_guest(ctx, addr, buf, len) == len ? 0 : -EFAULT;
}

/* Called only for pages that maps says a CPU can read (x86 reads write-only
 * and exec-only pages too), so a plain load is safe, and it faults exactly
 * like the guest's read would. */
static size_t host_read_prefix(void *ctx, unsigned long addr, void *buf, size_t len)
{
	(void)ctx;
	memcpy(buf, (const void *)addr, len);
	return len;
}

static size_t host_write_prefix(void *ctx, unsigned long addr, const void *buf, size_t len)
{
	return copy_to_guest(ctx, addr, buf, len) & ~(DIFF_PAGE - 1);
}

/* ---- /proc/self ---- */

static long host_proc_read(void *ctx, const char *name, char *buf, size_t size)
{
	struct host_ctx *h = ctx;
	int fd = !strcmp(name, "smaps") ? h->smaps_fd : h->maps_fd;
	size_t used = 0;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	while (used < size) {
		long n = raw_read(fd, buf + used, size - used);

		if (n < 0)
			return -errno;
		if (n == 0)
			return (long)used;
		used += (size_t)n;
	}
	return (long)size + 1;
}

static void host_check(void *ctx, char *problem, size_t size)
{
	(void)ctx;
	(void)problem;
	(void)size;
}

static long host_pagemap(void *ctx, unsigned long addr, uint64_t *entries, size_t n)
{
	struct host_ctx *h = ctx;
	size_t want = n * sizeof(*entries);
	long r = pread(h->pagemap_fd, entries, want, (off_t)(addr / DIFF_PAGE * 8));

	return r < 0 ? -errno : (size_t)r == want ? 0 : -EIO;
}

/* ---- Procs ---- */

static void wait_token(struct host_ctx *h)
{
	struct pollfd pfd = { .fd = h->token[h->self][0], .events = POLLIN };
	char t;

	if (poll(&pfd, 1, 60000) != 1 || read(pfd.fd, &t, 1) != 1)
		die("no turn came in a minute");
	h->has_token = true;
}

static bool host_enter(void *ctx, unsigned proc)
{
	struct host_ctx *h = ctx;

	if (proc == h->self) {
		if (!h->has_token)
			wait_token(h);
		return true;
	}
	if (h->has_token) {
		h->has_token = false;
		if (write(h->token[proc][1], "t", 1) != 1)
			die("cannot pass the turn");
	}
	return false;
}

static int host_ctx_open(struct host_ctx *h);

static long host_fork(void *ctx, unsigned child)
{
	struct host_ctx *h = ctx;
	pid_t pid = fork();

	if (pid < 0)
		die("fork failed");
	if (pid > 0) {
		h->forked[h->nforked++] = pid;
		return 0;
	}
	close(h->pipe_rd);
	close(h->pipe_wr);
	close(h->maps_fd);
	close(h->smaps_fd);
	close(h->pagemap_fd);
	h->self = child;
	h->has_token = false;
	h->nforked = 0;
	if (host_ctx_open(h) < 0)   /* /proc/self of this process, and its own pipe */
		die("cannot open /proc/self files");
	return DIFF_FORK_CHILD;
}

/* Unmap every region (and its guards): what exit does to the pages. */
static long host_exit(void *ctx)
{
	const struct diff_layout *lay = &((struct host_ctx *)ctx)->job->layout;

	syscall(SYS_munmap, lay->win_base - REGION_GUARD, WIN_PAGES * DIFF_PAGE + 2 * REGION_GUARD);
	if (lay->heap_ok)
		syscall(SYS_munmap, lay->heap_base, HEAP_PAGES * DIFF_PAGE + REGION_GUARD);
	if (lay->big_ok)
		syscall(SYS_munmap, lay->big_base - REGION_GUARD,
			BIG_PAGES * DIFF_PAGE + 2 * REGION_GUARD);
	return 0;
}

/* Wait for the processes this one forked; nonzero if any failed. */
static int reap_forked(struct host_ctx *h)
{
	int bad = 0;

	for (unsigned i = 0; i < h->nforked; i++) {
		int status;

		if (waitpid(h->forked[i], &status, 0) != h->forked[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			bad = 1;
	}
	return bad;
}

/* ---- The child ---- */

static int host_ctx_open(struct host_ctx *h)
{
	int fds[2];
	long cap;

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	h->pipe_rd = fds[0];
	h->pipe_wr = fds[1];
	fcntl(h->pipe_wr, F_SETPIPE_SZ, 1 << 20);
	cap = fcntl(h->pipe_wr, F_GETPIPE_SZ);
	if (cap < (long)DIFF_PAGE)
		return -1;
	h->pipe_cap = (size_t)cap & ~(DIFF_PAGE - 1);
	h->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	h->smaps_fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	h->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return h->maps_fd < 0 || h->smaps_fd < 0 || h->pagemap_fd < 0 ? -1 : 0;
}

static _Noreturn void run_child(struct host_job *job)
{
	static struct host_ctx h;
	struct diff_backend b = {
		.ctx = &h, .trust_maps = true,
		.mmap = host_mmap, .munmap = host_munmap, .mprotect = host_mprotect,
		.madvise = host_madvise, .mremap = host_mremap, .brk = host_brk,
		.read = host_read, .write = host_write,
		.read_prefix = host_read_prefix, .write_prefix = host_write_prefix,
		.proc_read = host_proc_read, .check = host_check, .pagemap = host_pagemap,
		.enter = host_enter, .fork = host_fork, .exit = host_exit,
	};

	setpgid(0, 0);   /* die() kills this group: the sequence's processes */
	h.job = job;
	fatal_ctx = &h;
	signal(SIGSEGV, on_fault);
	signal(SIGBUS, on_fault);
	for (unsigned p = 0; p < MAX_PROCS; p++)
		if (pipe2(h.token[p], O_CLOEXEC) < 0)
			_exit(73);
	h.has_token = true;
	if (host_ctx_open(&h) < 0)
		_exit(72);
	diff_run(&b, &job->layout, job->ops, job->nops, job->steps, &host_work);
	_exit(reap_forked(&h) ? 75 : 0);
}

/* ---- The fork server ---- */

static bool range_is_free(unsigned long start, unsigned long len)
{
	long r = syscall(SYS_mmap, start, len, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1L, 0L);

	if (r == -1)
		return false;
	syscall(SYS_munmap, r, len);
	return (unsigned long)r == start;
}

/* Field 47 of /proc/self/stat: where the heap starts. */
static unsigned long read_start_brk(void)
{
	static char buf[4096];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	long n = fd < 0 ? -1 : raw_read(fd, buf, sizeof(buf) - 1);
	const char *p;
	unsigned field = 2;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');   /* the command name may hold spaces */
	for (; p && *p && field < 47; p++)
		if (*p == ' ')
			field++;
	return p ? strtoul(p, NULL, 10) : 0;
}

static void note(struct host_job *job, const char *what)
{
	size_t used = strlen(job->note);

	snprintf(job->note + used, sizeof(job->note) - used, "%s%s", used ? "; " : "", what);
}

static void setup_layout(struct host_job *job)
{
	struct diff_layout *lay = &job->layout;
	unsigned long start_brk = read_start_brk(), heap_len = HEAP_PAGES * DIFF_PAGE;

	lay->win_base = WIN_BASE;
	lay->heap_base = start_brk;
	lay->big_base = BIG_BASE;
	lay->big_ok = range_is_free(BIG_BASE - REGION_GUARD, BIG_PAGES * DIFF_PAGE + 2 * REGION_GUARD);
	if (!lay->big_ok)
		note(job, "the big region is not free: the COW tests are skipped");
	job->window_taken = !range_is_free(WIN_BASE - REGION_GUARD,
					   WIN_PAGES * DIFF_PAGE + 2 * REGION_GUARD);
	if (job->window_taken)
		note(job, "the window is not free");
	if ((unsigned long)syscall(SYS_brk, 0L) != start_brk &&
	    (unsigned long)syscall(SYS_brk, start_brk) != start_brk)
		note(job, "cannot empty the heap: brk ops are skipped");
	else if (!start_brk || !range_is_free(start_brk - REGION_GUARD,
					      heap_len + 2 * REGION_GUARD))
		note(job, "the heap region is not free: brk ops are skipped");
	else
		lay->heap_ok = true;
}

static int run_one(struct host_job *job)
{
	int status;
	pid_t pid = fork();

	job->fatal[0] = 0;
	if (pid == 0)
		run_child(job);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;   /* a failed sequence's other processes, orphaned to us */
	return status;
}

static _Noreturn void serve(struct host_job *job, int cmd_fd, int reply_fd)
{
	char cmd;

	setup_layout(job);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (write(reply_fd, "r", 1) != 1)
		_exit(1);
	while (read(cmd_fd, &cmd, 1) == 1 && cmd == 'r') {
		int status = run_one(job);

		if (write(reply_fd, &status, sizeof(status)) != sizeof(status))
			_exit(1);
	}
	_exit(0);
}

int host_start(struct diff_layout *lay)
{
	int cmd[2], reply[2];
	char ready;

	server.job = mmap(NULL, sizeof(struct host_job), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (server.job == MAP_FAILED || pipe2(cmd, O_CLOEXEC) || pipe2(reply, O_CLOEXEC))
		return -1;
	server.pid = fork();
	if (server.pid < 0)
		return -1;
	if (server.pid == 0) {
		close(cmd[1]);
		close(reply[0]);
		serve(server.job, cmd[0], reply[1]);
	}
	close(cmd[0]);
	close(reply[1]);
	server.cmd_fd = cmd[1];
	server.reply_fd = reply[0];
	if (read(server.reply_fd, &ready, 1) != 1)
		return -1;
	*lay = server.job->layout;
	if (server.job->note[0])
		fprintf(stderr, "diff_test: host: %s\n", server.job->note);
	return server.job->window_taken ? -1 : 0;
}

void host_submit(const struct diff_op *ops, unsigned n)
{
	memcpy(server.job->ops, ops, n * sizeof(*ops));
	server.job->nops = n;
	diff_records_reset(server.job->steps, n);
	if (write(server.cmd_fd, "r", 1) != 1)
		abort();
}

const struct diff_step *host_collect(char *problem, size_t size)
{
	int status;

	problem[0] = 0;
	if (read(server.reply_fd, &status, sizeof(status)) != sizeof(status))
		snprintf(problem, size, "the host fork server is gone");
	else if (server.job->fatal[0])
		snprintf(problem, size, "the host child failed: %s", server.job->fatal);
	else if (WIFSIGNALED(status))
		snprintf(problem, size, "the host child died of signal %d", WTERMSIG(status));
	else if (!WIFEXITED(status) || WEXITSTATUS(status))
		snprintf(problem, size, "the host child failed (status %#x)", status);
	return server.job->steps;
}

void host_stop(void)
{
	if (server.pid <= 0)
		return;
	if (write(server.cmd_fd, "q", 1) != 1)
		kill(server.pid, SIGTERM);
	waitpid(server.pid, NULL, 0);
	server.pid = -1;
}
