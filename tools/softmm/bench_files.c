/*
 * bench files: file mappings through softmm's page cache, against the host's.
 *
 *   file read fault (cached)  a read of every 4 KiB page of a MAP_SHARED,
 *                             PROT_READ mapping of a file whose pages are all
 *                             in the page cache already: look the folio up
 *                             and map it.
 *   msync(MS_SYNC)            one byte written to every page of a shared
 *                             writable mapping, then msync(MS_SYNC) of the
 *                             whole: write-protect and clean each PTE,
 *                             write the dirty pages to the file, fdatasync.
 *                             Only the msync is timed; pages written per second.
 *
 * Each side has its own copy of the file in a temporary directory (TMPDIR, or
 * /tmp). The cache stays warm across reps on softmm because a second,
 * untouched mapping of the file keeps it open (the last mapping's unmap drops
 * softmm's cache); the host keeps its page cache anyway. Linux maps up to 16
 * cached neighbours on one read fault (fault-around), softmm one page a fault:
 * both columns count pages mapped per second, and the host's needed about a
 * sixteenth as many faults. msync's fdatasync goes to the host's disk on both
 * sides, so its column is noisy; medians of the reps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <softmm.h>
#include "bench.h"

#define FILE_BYTES (64ul << 20)
#define QUICK_FILE_BYTES (8ul << 20)
#define SYNC_BYTES (16ul << 20)
#define QUICK_SYNC_BYTES (2ul << 20)

static volatile unsigned char sink;

static int make_file(const char *dir, const char *name, unsigned long len, char *path, size_t size)
{
	static char buf[1 << 16];
	int fd;

	snprintf(path, size, "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -errno;
	memset(buf, 0x5a, sizeof(buf));
	for (unsigned long off = 0; off < len; off += sizeof(buf))
		if (pwrite(fd, buf, sizeof(buf), (off_t)off) != (ssize_t)sizeof(buf)) {
			close(fd);
			return -EIO;
		}
	return fd;
}

static void softmm_read_faults(struct bench_sm *s, int fd, unsigned long len,
			       struct bench_row *r, bool warmup)
{
	unsigned char byte;
	long addr, ret = 0;
	uint64_t t0, t1;

	addr = sm_mmap(s->mm, 0, len, PROT_READ, MAP_SHARED, fd, 0);
	if (addr < 0) {
		bench_row_fail(r, SIDE_SOFTMM, "sm_mmap: %s", strerror((int)-addr));
		return;
	}
	t0 = bench_now_ns();
	for (unsigned long off = 0; off < len && !ret; off += PAGE_4K)
		ret = sm_read(s->cpu, (unsigned long)addr + off, &byte, 1);
	t1 = bench_now_ns();
	if (ret)
		bench_row_fail(r, SIDE_SOFTMM, "sm_read: %ld", ret);
	else if (!warmup)
		bench_row_sample(r, SIDE_SOFTMM, (double)(len / PAGE_4K) / ((double)(t1 - t0) / 1e9));
	sm_munmap(s->mm, (unsigned long)addr, len);
}

static void host_read_faults(int fd, unsigned long len, struct bench_row *r, bool warmup)
{
	volatile unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	unsigned char sum = 0;
	uint64_t t0, t1;

	if (p == MAP_FAILED) {
		bench_row_fail(r, SIDE_HOST, "mmap: %s", strerror(errno));
		return;
	}
	t0 = bench_now_ns();
	for (unsigned long off = 0; off < len; off += PAGE_4K)
		sum += p[off];
	t1 = bench_now_ns();
	sink = sum;
	if (!warmup)
		bench_row_sample(r, SIDE_HOST, (double)(len / PAGE_4K) / ((double)(t1 - t0) / 1e9));
	munmap((void *)p, len);
}

static void softmm_msync(struct bench_sm *s, long addr, unsigned long len, unsigned char v,
			 struct bench_row *r, bool warmup)
{
	long ret = 0;
	uint64_t t0, t1;

	for (unsigned long off = 0; off < len && !ret; off += PAGE_4K)
		ret = sm_write(s->cpu, (unsigned long)addr + off, &v, 1);
	t0 = bench_now_ns();
	if (!ret)
		ret = sm_msync(s->mm, (unsigned long)addr, len, MS_SYNC);
	t1 = bench_now_ns();
	if (ret)
		bench_row_fail(r, SIDE_SOFTMM, "sm_write/sm_msync: %ld", ret);
	else if (!warmup)
		bench_row_sample(r, SIDE_SOFTMM, (double)(len / PAGE_4K) / ((double)(t1 - t0) / 1e9));
}

static void host_msync(volatile unsigned char *p, unsigned long len, unsigned char v,
		       struct bench_row *r, bool warmup)
{
	uint64_t t0, t1;
	int ret;

	for (unsigned long off = 0; off < len; off += PAGE_4K)
		p[off] = v;
	t0 = bench_now_ns();
	ret = msync((void *)p, len, MS_SYNC);
	t1 = bench_now_ns();
	if (ret)
		bench_row_fail(r, SIDE_HOST, "msync: %s", strerror(errno));
	else if (!warmup)
		bench_row_sample(r, SIDE_HOST, (double)(len / PAGE_4K) / ((double)(t1 - t0) / 1e9));
}

static void run_files(const struct bench_opts *opts, struct bench_report *rep)
{
	unsigned long len = opts->quick ? QUICK_FILE_BYTES : FILE_BYTES;
	unsigned long slen = opts->quick ? QUICK_SYNC_BYTES : SYNC_BYTES;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char dir[256], hpath[300], spath[300], hspath[300], sspath[300];
	struct bench_row *rf, *rs;
	int hfd = -1, sfd = -1, hsfd = -1, ssfd = -1;
	volatile unsigned char *hmap = MAP_FAILED;
	long keep = -1, smap = -1;
	struct bench_sm s;
	int err;

	rf = bench_row_add(rep, opts, "files", "file read fault (cached)", "pages/s", false,
			   TARGET_NONE, 0);
	rf->host_note = "pages/s with fault-around (up to 16 pages mapped per fault)";
	rs = bench_row_add(rep, opts, "files", "msync(MS_SYNC)", "pages/s", false,
			   TARGET_NONE, 0);
	bench_progress("files: %lu MiB cached file, %lu MiB msync, 1 warm-up + %d reps",
		       len >> 20, slen >> 20, opts->reps);
	snprintf(dir, sizeof(dir), "%s/softmm-bench-files.XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		bench_row_fail(rf, SIDE_SOFTMM, "mkdtemp: %s", strerror(errno));
		bench_row_fail(rs, SIDE_SOFTMM, "mkdtemp: %s", strerror(errno));
		return;
	}
	hfd = make_file(dir, "host", len, hpath, sizeof(hpath));
	sfd = make_file(dir, "softmm", len, spath, sizeof(spath));
	hsfd = make_file(dir, "host-sync", slen, hspath, sizeof(hspath));
	ssfd = make_file(dir, "softmm-sync", slen, sspath, sizeof(sspath));
	err = bench_sm_open(&s, (len + slen) * 2 + (64ul << 20));
	if (err || hfd < 0 || sfd < 0 || hsfd < 0 || ssfd < 0) {
		bench_row_fail(rf, SIDE_SOFTMM, "setting up: %s", strerror(err ? -err : EIO));
		bench_row_fail(rs, SIDE_SOFTMM, "setting up: %s", strerror(err ? -err : EIO));
		goto out;
	}
	sm_flusher(s.m, NULL);   /* msync alone writes back, on both sides */
	keep = sm_mmap(s.mm, 0, len, PROT_READ, MAP_SHARED, sfd, 0);
	smap = sm_mmap(s.mm, 0, slen, PROT_READ | PROT_WRITE, MAP_SHARED, ssfd, 0);
	hmap = mmap(NULL, slen, PROT_READ | PROT_WRITE, MAP_SHARED, hsfd, 0);
	if (keep < 0 || smap < 0 || hmap == MAP_FAILED) {
		bench_row_fail(rf, SIDE_SOFTMM, "mapping the files");
		bench_row_fail(rs, SIDE_SOFTMM, "mapping the files");
		goto out;
	}
	for (int i = -1; i < opts->reps; i++) {		/* i == -1: the warm-up fills the caches */
		if (!bench_row_failed(rf, SIDE_SOFTMM))
			softmm_read_faults(&s, sfd, len, rf, i < 0);
		if (!bench_row_failed(rf, SIDE_HOST))
			host_read_faults(hfd, len, rf, i < 0);
		if (!bench_row_failed(rs, SIDE_SOFTMM))
			softmm_msync(&s, smap, slen, (unsigned char)i, rs, i < 0);
		if (!bench_row_failed(rs, SIDE_HOST))
			host_msync(hmap, slen, (unsigned char)i, rs, i < 0);
	}
out:
	if (hmap != MAP_FAILED)
		munmap((void *)hmap, slen);
	if (s.m)
		bench_sm_close(&s);
	for (int *fd = (int[]){ hfd, sfd, hsfd, ssfd }, i = 0; i < 4; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	unlink(hpath);
	unlink(spath);
	unlink(hspath);
	unlink(sspath);
	rmdir(dir);
}

static struct bench files_bench = {
	.name = "files",
	.summary = "read faults on a cached file and msync throughput, against the host",
	.run = run_files,
};
BENCH_REGISTER(files_bench);
