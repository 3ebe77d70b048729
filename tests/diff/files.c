/*
 * File and shared mappings against the host, with real files.
 *
 * Each scenario runs twice, once on the host (real mmap in this process, a
 * real fork) and once on softmm (an mm of its own on one machine, sm_fork),
 * each side on its own copy of the same file in a temporary directory. A
 * side writes what it observes into a text log: every call's result, page
 * contents (hashed), the file read back with pread(2) (size and hash), and
 * the maps lines of the scenario's region with the side's own path and
 * inode replaced by placeholders. The two logs must be equal line for line.
 *
 * Host accesses run under temporary SIGSEGV/SIGBUS handlers, so an access
 * beyond the end of the file logs "SIGBUS" on both sides (softmm: SM_SIGBUS).
 * The region (FILE_BASE) is far from the other tests' regions and mapped
 * with MAP_FIXED on both sides, so addresses compare as they are. Rss is not
 * compared after read faults: Linux maps up to 16 cached neighbours on a
 * read fault (fault-around), softmm one page; nor Dirty after writing part
 * of a file: the host's page cache holds large folios, dirty as a whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <softmm.h>
#include "diff.h"

#define FILE_BASE 0x3c0000000000UL
#define FILE_REGION (64 * FPG)
#define FPG 4096UL
#define LOG_MAX 32768
#define RW (PROT_READ | PROT_WRITE)

struct side {
	bool host;
	char dir[64];
	char path[128];
	int fd;
	ino_t ino;
	char log[LOG_MAX];
	size_t len;
	/* softmm */
	struct sm_machine *m;
	struct sm_mm *mm;
	struct sm_cpu *cpu;
};

__attribute__((format(printf, 2, 3)))
static void logf_(struct side *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->log + s->len, LOG_MAX - s->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		s->len += (size_t)n < LOG_MAX - s->len ? (size_t)n : LOG_MAX - 1 - s->len;
}

static unsigned long at(unsigned long page) { return FILE_BASE + page * FPG; }

/* ---------------------------------------------------------------- the two sides */

static sigjmp_buf probe_jmp;

static void probe_handler(int sig)
{
	siglongjmp(probe_jmp, sig);
}

/* memcpy on the host with faults caught: 0, -EFAULT or SM_SIGBUS. */
static long host_copy(void *dst, const void *src, size_t len)
{
	struct sigaction sa = { .sa_handler = probe_handler }, old_segv, old_bus;
	volatile long ret = 0;
	int sig;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	sig = sigsetjmp(probe_jmp, 1);
	if (sig == 0)
		memcpy(dst, src, len);
	else
		ret = sig == SIGBUS ? SM_SIGBUS : -EFAULT;
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	return ret;
}

static long ret_of(long r) { return r == -1 ? -errno : r; }

static long do_mmap(struct side *s, unsigned long page, unsigned long npages, int prot,
		    int flags, int fd, long off)
{
	long r;

	flags |= MAP_FIXED;
	if (s->host) {
		void *p = mmap((void *)at(page), npages * FPG, prot, flags, fd, off);

		r = p == MAP_FAILED ? -errno : (long)p;
	} else {
		r = sm_mmap(s->mm, at(page), npages * FPG, prot, flags, fd, off);
	}
	logf_(s, "mmap page %lu +%lu prot %d flags %#x off %ld -> %#lx\n", page, npages, prot,
	      flags, off, (unsigned long)r);
	return r;
}

static void do_munmap(struct side *s, unsigned long page, unsigned long npages)
{
	long r = s->host ? ret_of(munmap((void *)at(page), npages * FPG))
			 : sm_munmap(s->mm, at(page), npages * FPG);

	logf_(s, "munmap page %lu +%lu -> %ld\n", page, npages, r);
}

static void do_mprotect(struct side *s, unsigned long page, unsigned long npages, int prot)
{
	long r = s->host ? ret_of(mprotect((void *)at(page), npages * FPG, prot))
			 : sm_mprotect(s->mm, at(page), npages * FPG, prot);

	logf_(s, "mprotect page %lu +%lu %d -> %ld\n", page, npages, prot, r);
}

static void do_madvise(struct side *s, unsigned long page, unsigned long npages, int advice)
{
	long r = s->host ? ret_of(madvise((void *)at(page), npages * FPG, advice))
			 : sm_madvise(s->mm, at(page), npages * FPG, advice);

	logf_(s, "madvise page %lu +%lu %d -> %ld\n", page, npages, advice, r);
}

static void do_mremap(struct side *s, unsigned long page, unsigned long npages,
		      unsigned long new_npages, int flags, unsigned long new_page)
{
	long r;

	if (s->host) {
		void *p = mremap((void *)at(page), npages * FPG, new_npages * FPG, flags,
				 (void *)at(new_page));

		r = p == MAP_FAILED ? -errno : (long)p;
	} else {
		r = sm_mremap(s->mm, at(page), npages * FPG, new_npages * FPG, flags, at(new_page));
	}
	logf_(s, "mremap page %lu +%lu -> +%lu flags %d page %lu -> %#lx\n", page, npages,
	      new_npages, flags, new_page, (unsigned long)r);
}

static void do_msync_raw(struct side *s, unsigned long addr, unsigned long len, int flags)
{
	long r = s->host ? ret_of(msync((void *)addr, len, flags)) : sm_msync(s->mm, addr, len, flags);

	logf_(s, "msync %#lx +%#lx flags %d -> %ld\n", addr, len, flags, r);
}

static void do_msync(struct side *s, unsigned long page, unsigned long npages, int flags)
{
	do_msync_raw(s, at(page), npages * FPG, flags);
}

static long side_write(struct side *s, unsigned long addr, const void *buf, size_t len)
{
	return s->host ? host_copy((void *)addr, buf, len) : sm_write(s->cpu, addr, buf, len);
}

/* Write a recognizable pattern over [page, page + npages). */
static void do_write(struct side *s, unsigned long page, unsigned long npages, int seed)
{
	static char buf[8 * FPG];
	long r = 0;

	for (size_t i = 0; i < npages * FPG; i++)
		buf[i] = (char)(i * 131 + (size_t)seed * 17 + 1);
	for (unsigned long i = 0; i < npages && !r; i++)
		r = side_write(s, at(page + i), buf + i * FPG, FPG);
	logf_(s, "write page %lu +%lu seed %d -> %s\n", page, npages, seed,
	      r == SM_SIGBUS ? "SIGBUS" : r ? "EFAULT" : "0");
}

static void do_poke(struct side *s, unsigned long addr, char c)
{
	long r = side_write(s, addr, &c, 1);

	logf_(s, "poke %#lx '%c' -> %s\n", addr, c, r == SM_SIGBUS ? "SIGBUS" : r ? "EFAULT" : "0");
}

/* Log each page's readability and content hash. */
static void do_read(struct side *s, unsigned long page, unsigned long npages)
{
	static char buf[FPG];

	for (unsigned long i = 0; i < npages; i++) {
		long r = s->host ? host_copy(buf, (void *)at(page + i), FPG)
				 : sm_read(s->cpu, at(page + i), buf, FPG);

		if (r)
			logf_(s, "read page %lu: %s\n", page + i, r == SM_SIGBUS ? "SIGBUS" : "EFAULT");
		else
			logf_(s, "read page %lu: %016llx\n", page + i,
			      (unsigned long long)diff_hash(buf, FPG));
	}
}

/* The file as read(2) sees it. */
static void log_file(struct side *s)
{
	static char buf[64 * FPG];
	struct stat st;
	ssize_t n;

	fstat(s->fd, &st);
	n = pread(s->fd, buf, sizeof(buf), 0);
	logf_(s, "file size %lld:", (long long)st.st_size);
	for (ssize_t off = 0; off < n; off += (ssize_t)FPG) {
		size_t l = (size_t)(n - off) < FPG ? (size_t)(n - off) : FPG;

		logf_(s, " %016llx", (unsigned long long)diff_hash(buf + off, l));
	}
	logf_(s, "\n");
}

/* The region's maps lines, with this side's path and inode made neutral. */
static void log_maps(struct side *s)
{
	static char buf[1 << 16];
	char *line, *save = NULL;

	if (s->host) {
		int fd = open("/proc/self/maps", O_RDONLY);
		ssize_t n = 0, r;

		while (fd >= 0 && (r = read(fd, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0)
			n += r;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
	} else {
		long n = sm_proc_read(s->mm, "maps", buf, sizeof(buf));

		if (n < 0)
			buf[0] = '\0';
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long start = strtoul(line, NULL, 16);
		char range[64], perms[8], off[32], dev[16], ino[32], name[256] = "";
		char ino_s[32];

		if (start < FILE_BASE || start >= FILE_BASE + FILE_REGION)
			continue;
		if (sscanf(line, "%63s %7s %31s %15s %31s %255[^\n]", range, perms, off, dev, ino, name) < 5)
			continue;
		snprintf(ino_s, sizeof(ino_s), "%lu", (unsigned long)s->ino);
		if (!strcmp(ino, ino_s))
			strcpy(ino, "INO");
		else if (!strcmp(name, "/dev/zero (deleted)") && strcmp(ino, "0"))
			strcpy(ino, "SHMEM_INO");
		for (char *p = name; *p == ' '; p++)
			memmove(name, p + 1, strlen(p));
		if (!strcmp(name, s->path))
			strcpy(name, "FILE");
		/* softmm's page-cache device is the host's: compare it too. */
		logf_(s, "maps %s %s %s %s %s %s\n", range, perms, off, dev, ino, name);
	}
}

/* The region's smaps counters of `keys` (the last one ends a line). */
static void log_smaps_keys(struct side *s, const char *const *keys, size_t nkeys)
{
	static char buf[1 << 18];
	char *line, *save = NULL;
	bool in = false;

	if (s->host) {
		int fd = open("/proc/self/smaps", O_RDONLY);
		ssize_t n = 0, r;

		while (fd >= 0 && (r = read(fd, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0)
			n += r;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
	} else if (sm_proc_read(s->mm, "smaps", buf, sizeof(buf)) < 0) {
		buf[0] = '\0';
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long start, end;
		int len = 0;

		if (sscanf(line, "%lx-%lx %n", &start, &end, &len) == 2 && len > 0) {
			in = start >= FILE_BASE && start < FILE_BASE + FILE_REGION;
			if (in)
				logf_(s, "smaps %lx:", start);
			continue;
		}
		if (!in)
			continue;
		for (size_t k = 0; k < nkeys; k++) {
			if (!strncmp(line, keys[k], strlen(keys[k]))) {
				logf_(s, " %s%lu", keys[k], strtoul(line + strlen(keys[k]), NULL, 10));
				if (k == nkeys - 1)
					logf_(s, "\n");
			}
		}
	}
}

/* The counters that fault-around cannot change: call it only where every
 * resident page was written (Linux maps neighbours on read faults only). */
static void log_smaps(struct side *s)
{
	static const char *const keys[] = { "Rss:", "Shared_Clean:", "Shared_Dirty:",
					    "Private_Clean:", "Private_Dirty:", "Anonymous:" };

	log_smaps_keys(s, keys, sizeof(keys) / sizeof(keys[0]));
}

/* Rss and Anonymous alone: where every page of the region's VMAs that
 * fault-around could map is mapped on both sides, but dirtiness may differ
 * (the host's large folios after a hole punched through one). */
static void log_rss(struct side *s)
{
	static const char *const keys[] = { "Rss:", "Anonymous:" };

	log_smaps_keys(s, keys, sizeof(keys) / sizeof(keys[0]));
}

static void fork_child_write(struct side *s, unsigned long addr, char c)
{
	if (s->host) {
		pid_t pid = fork();

		if (pid == 0) {
			*(volatile char *)addr = c;
			_exit(0);
		}
		waitpid(pid, NULL, 0);
		logf_(s, "fork, child pokes %#lx '%c'\n", addr, c);
	} else {
		struct sm_mm *child;
		long r = sm_fork(s->mm, &child);

		if (r == 0) {
			sm_cpu_switch_mm(s->cpu, child);
			r = sm_write(s->cpu, addr, &c, 1);
			sm_cpu_switch_mm(s->cpu, s->mm);
			sm_mm_destroy(child);
		}
		logf_(s, "fork, child pokes %#lx '%c'%s\n", addr, c, r ? " (failed)" : "");
	}
}

/* A fresh file of size bytes with the same contents on both sides. */
static void new_file(struct side *s, size_t size, int open_flags)
{
	static char buf[64 * FPG];
	struct stat st;

	if (s->fd >= 0)
		close(s->fd);
	snprintf(s->path, sizeof(s->path), "%s/%s", s->dir, s->host ? "host" : "softmm");
	unlink(s->path);
	s->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	for (size_t i = 0; i < size && i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 3 + i / FPG * 13);
	if (s->fd < 0 || pwrite(s->fd, buf, size, 0) != (ssize_t)size) {
		logf_(s, "cannot create the file\n");
		return;
	}
	if ((open_flags & O_ACCMODE) != O_RDWR) {
		close(s->fd);
		s->fd = open(s->path, open_flags);
	}
	fstat(s->fd, &st);
	s->ino = st.st_ino;
}

/* ---------------------------------------------------------------- scenarios */

static void shared_write_msync(struct side *s)
{
	new_file(s, 8 * FPG, O_RDWR);
	do_mmap(s, 0, 8, RW, MAP_SHARED, s->fd, 0);
	do_write(s, 1, 2, 1);
	/* Not logged here: the host's page cache is the file, ours not yet. */
	do_msync(s, 0, 8, MS_SYNC);
	log_file(s);
	do_write(s, 5, 1, 2);
	do_msync(s, 4, 4, MS_ASYNC);
	log_file(s);
	do_read(s, 0, 8);
	log_maps(s);
	do_munmap(s, 0, 8);
}

static void shared_write_munmap(struct side *s)
{
	new_file(s, 4 * FPG, O_RDWR);
	do_mmap(s, 0, 4, RW, MAP_SHARED, s->fd, 0);
	do_write(s, 0, 4, 3);
	log_smaps(s);
	do_msync(s, 0, 4, MS_SYNC);
	log_smaps(s);   /* cleaned: Private_Clean */
	/* Every page again: the host's page cache has large folios (a 16 KiB
	 * file may be one), dirty as a whole; softmm's are 4 KiB. */
	do_write(s, 0, 4, 4);
	log_smaps(s);
	do_munmap(s, 0, 4);
	log_file(s);
}

static void private_write_keeps_file(struct side *s)
{
	new_file(s, 4 * FPG, O_RDWR);
	do_mmap(s, 0, 4, RW, MAP_PRIVATE, s->fd, 0);
	do_write(s, 0, 2, 4);
	log_smaps(s);
	do_read(s, 0, 1);
	do_read(s, 0, 4);
	do_msync(s, 0, 4, MS_SYNC);
	log_maps(s);
	do_munmap(s, 0, 4);
	log_file(s);
}

static void private_sees_shared_until_cow(struct side *s)
{
	new_file(s, 4 * FPG, O_RDWR);
	do_mmap(s, 0, 4, RW, MAP_SHARED, s->fd, 0);
	do_mmap(s, 8, 4, RW, MAP_PRIVATE, s->fd, 0);
	do_read(s, 8, 4);
	do_poke(s, at(0) + 10, 'a');
	do_poke(s, at(1) + 10, 'b');
	do_read(s, 8, 2);
	do_poke(s, at(8) + 20, 'c');
	do_poke(s, at(0) + 11, 'd');
	do_read(s, 8, 1);
	do_read(s, 0, 1);
	log_maps(s);
	do_munmap(s, 0, 12);
	log_file(s);
}

static void offset_mapping(struct side *s)
{
	new_file(s, 8 * FPG, O_RDWR);
	do_mmap(s, 0, 3, RW, MAP_SHARED, s->fd, 4 * (long)FPG);
	do_mmap(s, 3, 2, PROT_READ, MAP_SHARED, s->fd, 7 * (long)FPG);
	do_read(s, 0, 5);
	do_write(s, 1, 1, 5);
	do_mprotect(s, 1, 1, PROT_READ);
	log_maps(s);
	do_mprotect(s, 1, 1, RW);
	log_maps(s);
	do_msync(s, 0, 5, MS_SYNC);
	log_file(s);
	do_munmap(s, 0, 5);
}

static void beyond_eof(struct side *s)
{
	new_file(s, FPG + 100, O_RDWR);
	do_mmap(s, 0, 4, RW, MAP_SHARED, s->fd, 0);
	do_read(s, 0, 4);
	do_poke(s, at(1) + 50, 'e');
	do_poke(s, at(1) + 200, 't');   /* past EOF inside the last page */
	do_poke(s, at(2), 'x');
	do_msync(s, 0, 4, MS_SYNC);
	log_file(s);
	do_read(s, 1, 1);
	log_maps(s);
	do_munmap(s, 0, 4);
	log_file(s);
}

static void fork_keeps_shared(struct side *s)
{
	new_file(s, 4 * FPG, O_RDWR);
	do_mmap(s, 0, 2, RW, MAP_SHARED, s->fd, 0);
	do_mmap(s, 4, 2, RW, MAP_PRIVATE, s->fd, 0);
	do_mmap(s, 8, 2, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	do_poke(s, at(0), 'p');
	do_poke(s, at(4), 'q');
	do_poke(s, at(8), 'r');
	fork_child_write(s, at(0) + 1, 'C');
	fork_child_write(s, at(4) + 1, 'D');
	fork_child_write(s, at(8) + 1, 'E');
	fork_child_write(s, at(5) + 1, 'F');
	do_read(s, 0, 10);
	log_maps(s);
	do_munmap(s, 0, 10);
	log_file(s);
}

static void dontneed_keeps_dirty(struct side *s)
{
	new_file(s, 4 * FPG, O_RDWR);
	do_mmap(s, 0, 4, RW, MAP_SHARED, s->fd, 0);
	do_write(s, 0, 4, 6);
	do_madvise(s, 0, 4, MADV_DONTNEED);
	do_read(s, 0, 4);
	do_madvise(s, 0, 4, MADV_FREE);
	do_madvise(s, 0, 4, MADV_WIPEONFORK);
	do_msync(s, 0, 4, MS_SYNC);
	log_file(s);
	do_munmap(s, 0, 4);
}

static void access_checks(struct side *s)
{
	new_file(s, 4 * FPG, O_RDONLY);
	do_mmap(s, 0, 1, RW, MAP_SHARED, s->fd, 0);
	do_mmap(s, 0, 1, PROT_READ, MAP_SHARED, s->fd, 0);
	do_mprotect(s, 0, 1, RW);
	do_mmap(s, 1, 1, RW, MAP_PRIVATE, s->fd, 0);
	do_write(s, 1, 1, 7);
	do_mmap(s, 2, 1, PROT_READ, MAP_SHARED, s->fd, 1);
	do_mmap(s, 2, 1, PROT_READ, MAP_SHARED, -1, 0);
	do_mmap(s, 2, 1, PROT_READ, MAP_SHARED | MAP_GROWSDOWN, s->fd, 0);
	do_mmap(s, 2, 1, PROT_READ, MAP_SHARED_VALIDATE | 0x200, s->fd, 0);
	log_maps(s);
	do_munmap(s, 0, 3);
	new_file(s, 4 * FPG, O_WRONLY);
	do_mmap(s, 0, 1, PROT_READ, MAP_PRIVATE, s->fd, 0);
	new_file(s, 4 * FPG, O_RDWR);
	do_mmap(s, 0, 2, RW, MAP_SHARED | MAP_LOCKED, s->fd, 0);
	do_msync_raw(s, at(0), FPG, 8);
	do_msync_raw(s, at(0) + 1, FPG, MS_SYNC);
	do_msync_raw(s, at(0), FPG, MS_SYNC | MS_ASYNC);
	do_msync_raw(s, at(0), FPG, MS_INVALIDATE);
	do_msync_raw(s, at(0), 0, MS_SYNC);
	do_msync_raw(s, at(2), FPG, MS_SYNC);
	do_msync_raw(s, at(2), FPG, MS_ASYNC);
	do_msync_raw(s, at(0), 3 * FPG, MS_SYNC);
	do_msync_raw(s, at(0), 3 * FPG, MS_ASYNC);
	do_msync_raw(s, at(0) - FPG, 2 * FPG, MS_SYNC);
	do_munmap(s, 0, 2);
}

static void shmem_split_and_merge(struct side *s)
{
	do_mmap(s, 0, 4, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	do_write(s, 0, 4, 8);
	log_smaps(s);
	do_mprotect(s, 1, 2, PROT_READ);
	log_maps(s);
	do_mprotect(s, 1, 2, RW);
	log_maps(s);
	fork_child_write(s, at(3), 'S');
	do_read(s, 0, 4);
	do_munmap(s, 0, 4);
}

static void mremap_file_mapping(struct side *s)
{
	new_file(s, 6 * FPG, O_RDWR);
	do_mmap(s, 0, 4, RW, MAP_SHARED, s->fd, 0);
	do_write(s, 0, 4, 9);
	do_mremap(s, 2, 2, 2, MREMAP_MAYMOVE | MREMAP_FIXED, 16);
	do_write(s, 17, 1, 10);
	log_maps(s);
	do_mremap(s, 16, 2, 6, MREMAP_MAYMOVE | MREMAP_FIXED, 24);   /* past EOF */
	do_read(s, 24, 6);
	log_maps(s);
	do_msync(s, 0, 2, MS_SYNC);
	do_msync(s, 24, 6, MS_SYNC);
	log_file(s);
	do_munmap(s, 0, 32);
	log_file(s);
}

/* MADV_REMOVE punches a hole through every mapping of the file: the shared
 * one, and the page-cache pages a private one maps (its COW copy stays);
 * the dirty page never written back is gone from the file too. Rss is not
 * compared right after a partial punch: the host splits the large folio
 * the hole cuts through, which unmaps all of it (softmm's folios are 4 KiB);
 * it is after every page was read again, and after a punch of it all. */
static void remove_punches_hole(struct side *s)
{
	new_file(s, 8 * FPG, O_RDWR);
	do_mmap(s, 0, 8, RW, MAP_SHARED, s->fd, 0);
	do_mmap(s, 8, 8, RW, MAP_PRIVATE, s->fd, 0);
	do_write(s, 0, 8, 11);
	do_msync(s, 0, 8, MS_SYNC);
	do_read(s, 8, 8);
	do_poke(s, at(11) + 5, 'c');   /* a COW copy of file page 3 */
	do_poke(s, at(2) + 7, 'd');    /* dirty, never written back */
	log_rss(s);
	do_madvise(s, 1, 4, MADV_REMOVE);
	log_file(s);
	do_read(s, 0, 16);
	log_rss(s);
	do_write(s, 3, 1, 12);
	fork_child_write(s, at(4) + 9, 'k');
	do_msync(s, 0, 8, MS_SYNC);
	log_file(s);
	do_read(s, 8, 8);
	log_maps(s);
	do_madvise(s, 0, 8, MADV_REMOVE);
	log_rss(s);
	log_file(s);
	do_read(s, 8, 8);
	do_munmap(s, 0, 16);
}

/* Which mappings MADV_REMOVE refuses, in Linux 6.18's order, and the walk
 * over several VMAs: a hole gives -ENOMEM after the rest, an error stops it. */
static void remove_errors(struct side *s)
{
	new_file(s, 4 * FPG, O_RDWR);
	do_mmap(s, 0, 2, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	do_madvise(s, 0, 2, MADV_REMOVE);
	do_mmap(s, 2, 2, RW, MAP_PRIVATE, s->fd, 0);
	do_madvise(s, 2, 2, MADV_REMOVE);
	do_mmap(s, 4, 2, PROT_READ, MAP_SHARED, s->fd, 0);
	do_madvise(s, 4, 2, MADV_REMOVE);
	do_mmap(s, 6, 2, RW, MAP_SHARED | MAP_LOCKED, s->fd, 2 * (long)FPG);
	do_madvise(s, 6, 2, MADV_REMOVE);
	do_mmap(s, 9, 2, RW, MAP_SHARED, s->fd, 2 * (long)FPG);
	do_write(s, 9, 2, 14);
	do_madvise(s, 8, 3, MADV_REMOVE);
	do_madvise(s, 3, 2, MADV_REMOVE);
	do_madvise(s, 5, 2, MADV_REMOVE);
	do_read(s, 9, 2);
	do_mmap(s, 12, 2, PROT_NONE, MAP_SHARED, s->fd, 0);
	do_madvise(s, 12, 2, MADV_REMOVE);
	/* The host's fallocate refuses (ext4: -EFBIG past its largest file;
	 * tmpfs punches): its answer is the call's, on both sides. */
	do_mmap(s, 14, 1, RW, MAP_SHARED, s->fd, 1L << 44);
	do_madvise(s, 14, 1, MADV_REMOVE);
	log_file(s);
	do_munmap(s, 0, 15);
	new_file(s, 4 * FPG, O_RDONLY);
	do_mmap(s, 0, 2, PROT_READ, MAP_SHARED, s->fd, 0);
	do_madvise(s, 0, 2, MADV_REMOVE);
	do_munmap(s, 0, 2);
}

/* Shared anonymous memory is shmem: the hole frees its pages in the parent
 * and in a fork child alike, and reads zeros until written again. */
static void remove_shmem(struct side *s)
{
	do_mmap(s, 0, 4, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	do_write(s, 0, 4, 13);
	log_rss(s);
	fork_child_write(s, at(1), 'K');
	do_madvise(s, 1, 2, MADV_REMOVE);
	log_rss(s);
	do_read(s, 0, 4);
	log_rss(s);
	fork_child_write(s, at(2) + 3, 'L');
	do_read(s, 2, 1);
	do_munmap(s, 0, 4);
}

static const struct file_scenario {
	const char *name;
	void (*run)(struct side *s);
} scenarios[] = {
	{ "shared_write_msync", shared_write_msync },
	{ "shared_write_munmap", shared_write_munmap },
	{ "private_write_keeps_file", private_write_keeps_file },
	{ "private_sees_shared_until_cow", private_sees_shared_until_cow },
	{ "offset_mapping", offset_mapping },
	{ "beyond_eof", beyond_eof },
	{ "fork_keeps_shared", fork_keeps_shared },
	{ "dontneed_keeps_dirty", dontneed_keeps_dirty },
	{ "access_checks", access_checks },
	{ "shmem_split_and_merge", shmem_split_and_merge },
	{ "mremap_file_mapping", mremap_file_mapping },
	{ "remove_punches_hole", remove_punches_hole },
	{ "remove_errors", remove_errors },
	{ "remove_shmem", remove_shmem },
};

/* ---------------------------------------------------------------- driver */

void diff_run_file_tests(const struct diff_opts *o, unsigned *passed, unsigned *failed)
{
	static struct side host, sm;
	struct sm_config cfg = { .ram_bytes = 64ul << 20, .flags = SM_CFG_CHECK_INVARIANTS };
	char dir[] = "/tmp/diff_files.XXXXXX";

	if (!mkdtemp(dir)) {
		printf("FAIL file scenarios: no temporary directory\n");
		(*failed)++;
		return;
	}
	sm.m = sm_machine_create(&cfg);
	sm.cpu = sm.m ? sm_cpu_create(sm.m) : NULL;
	if (!sm.cpu) {
		printf("FAIL file scenarios: no machine\n");
		(*failed)++;
		return;
	}
	sm_flusher(sm.m, NULL);   /* writeback only where the scenario says */
	host.host = true;
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct file_scenario *sc = &scenarios[i];

		if (o->verbose)
			printf("file scenario %s\n", sc->name);
		host.len = sm.len = 0;
		host.log[0] = sm.log[0] = '\0';
		host.fd = sm.fd = -1;
		host.ino = sm.ino = 0;
		strcpy(host.dir, dir);
		strcpy(sm.dir, dir);
		sm.mm = sm_mm_create(sm.m);
		sm_cpu_switch_mm(sm.cpu, sm.mm);
		sc->run(&host);
		munmap((void *)FILE_BASE, FILE_REGION);
		sc->run(&sm);
		if (sm_mm_check(sm.mm))
			logf_(&sm, "sm_mm_check failed\n");
		sm_cpu_switch_mm(sm.cpu, NULL);
		sm_mm_destroy(sm.mm);
		if (o->verbose)
			printf("%s", host.log);
		if (strcmp(host.log, sm.log)) {
			diff_log_report("file scenario", sc->name, host.log, sm.log);
			(*failed)++;
		} else {
			(*passed)++;
		}
		for (struct side *s = &host; s; s = s == &host ? &sm : NULL) {
			if (s->fd >= 0)
				close(s->fd);
			unlink(s->path);
		}
	}
	sm_cpu_destroy(sm.cpu);
	sm_machine_destroy(sm.m);
	rmdir(dir);
}
