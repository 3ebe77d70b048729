/*
 * File and shared mappings: the page cache shared by every mm, shared
 * writes reaching the host file (msync, last unmap, exit, zap of a dirty
 * PTE), private copy-on-write, SIGBUS beyond the end of the file, mmap and
 * msync argument checks, fork keeping shared mappings shared, shmem, the
 * maps line, MADV_REMOVE (its errors, the hole in every mapping of every
 * mm, RSS, frames, the host file's blocks), and every frame back at the end
 * (invariant checker after each step).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <cmocka.h>
#include "mm/filemap.h"
#include "mm/pgtable.h"
#include "mm/memory.h"
#include "mm/mmu_gather.h"
#include "mm/rmap.h"
#include "mm/page_alloc.h"
#include "mm/vma.h"

#define PG 4096ul

struct env {
	struct sm_machine *m;
	struct sm_cpu *cpu;
	struct sm_mm *mm;
	uint64_t free0;
	char dir[64];
	char path[96];
	int fd;
};

static struct env E;

static void make_file(struct env *e, size_t size, int seed)
{
	char *buf = malloc(size + 1);

	snprintf(e->path, sizeof(e->path), "%s/f%d", e->dir, seed);
	e->fd = open(e->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(e->fd >= 0);
	for (size_t i = 0; i < size; i++)
		buf[i] = (char)(i * 7 + (size_t)seed);
	assert_int_equal(pwrite(e->fd, buf, size, 0), (ssize_t)size);
	free(buf);
}

static int setup(void **state)
{
	struct sm_config cfg = { .ram_bytes = 64 << 20, .flags = SM_CFG_POISON_FREED | SM_CFG_CHECK_INVARIANTS };
	struct sm_machine_stats st;

	(void)state;
	memset(&E, 0, sizeof(E));
	strcpy(E.dir, "/tmp/test_filemap.XXXXXX");
	assert_non_null(mkdtemp(E.dir));
	E.m = sm_machine_create(&cfg);
	assert_non_null(E.m);
	assert_int_equal(sm_flusher(E.m, NULL), 0);   /* deterministic: no background writeback */
	E.cpu = sm_cpu_create(E.m);
	E.mm = sm_mm_create(E.m);
	sm_cpu_switch_mm(E.cpu, E.mm);
	sm_machine_stats(E.m, &st);
	E.free0 = st.free_frames;
	make_file(&E, 4 * PG, 1);
	return 0;
}

static int teardown(void **state)
{
	struct sm_machine_stats st;

	(void)state;
	sm_cpu_switch_mm(E.cpu, NULL);
	sm_mm_destroy(E.mm);
	sm_cpu_destroy(E.cpu);
	sm_machine_stats(E.m, &st);
	/* The mm's PGD was counted in free0; everything else is back. */
	assert_int_equal(st.free_frames, E.free0 + 1);
	sm_machine_destroy(E.m);
	close(E.fd);
	unlink(E.path);
	rmdir(E.dir);
	return 0;
}

static char file_byte(int fd, off_t off)
{
	char c = 0;

	assert_int_equal(pread(fd, &c, 1, off), 1);
	return c;
}

static void test_shared_write_msync(void **state)
{
	long a = sm_mmap(E.mm, 0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);
	char c = 0;

	(void)state;
	assert_true(a > 0);
	assert_int_equal(sm_read(E.cpu, (unsigned long)a + 5, &c, 1), 0);
	assert_int_equal(c, (char)(5 * 7 + 1));
	assert_int_equal(sm_write(E.cpu, (unsigned long)a + PG + 3, "X", 1), 0);
	assert_int_equal(file_byte(E.fd, PG + 3), (char)((PG + 3) * 7 + 1));   /* not yet */
	assert_int_equal(sm_msync(E.mm, (unsigned long)a, 4 * PG, MS_SYNC), 0);
	assert_int_equal(file_byte(E.fd, PG + 3), 'X');
	/* Written again after writeback cleaned it: dirty again. */
	assert_int_equal(sm_write(E.cpu, (unsigned long)a + PG + 4, "Y", 1), 0);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a, PG * 2, MS_ASYNC), 0);
	assert_int_equal(file_byte(E.fd, PG + 4), 'Y');
	/* A dirty PTE zapped by MADV_DONTNEED leaves a dirty folio. */
	assert_int_equal(sm_write(E.cpu, (unsigned long)a + 2 * PG, "Z", 1), 0);
	assert_int_equal(sm_madvise(E.mm, (unsigned long)a, 4 * PG, MADV_DONTNEED), 0);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a, 4 * PG, MS_SYNC), 0);
	assert_int_equal(file_byte(E.fd, 2 * PG), 'Z');
	/* The last munmap writes back without msync. */
	assert_int_equal(sm_write(E.cpu, (unsigned long)a + 3 * PG, "W", 1), 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)a, 4 * PG), 0);
	assert_int_equal(file_byte(E.fd, 3 * PG), 'W');
}

static void test_private_cow(void **state)
{
	long s = sm_mmap(E.mm, 0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);
	long p = sm_mmap(E.mm, 0, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, E.fd, 0);
	char c;

	(void)state;
	assert_true(s > 0 && p > 0);
	assert_int_equal(sm_read(E.cpu, (unsigned long)p, &c, 1), 0);   /* maps the cache */
	assert_int_equal(sm_write(E.cpu, (unsigned long)s, "S", 1), 0);
	assert_int_equal(sm_read(E.cpu, (unsigned long)p, &c, 1), 0);
	assert_int_equal(c, 'S');   /* not yet copied: sees the shared write */
	assert_int_equal(sm_write(E.cpu, (unsigned long)p, "P", 1), 0);
	assert_int_equal(sm_read(E.cpu, (unsigned long)s, &c, 1), 0);
	assert_int_equal(c, 'S');
	assert_int_equal(sm_write(E.cpu, (unsigned long)p + PG, "Q", 1), 0);   /* do_cow_fault */
	assert_int_equal(sm_read(E.cpu, (unsigned long)s + PG, &c, 1), 0);
	assert_int_equal(c, (char)(PG * 7 + 1));
	assert_int_equal(sm_munmap(E.mm, (unsigned long)p, 4 * PG), 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)s, 4 * PG), 0);
	assert_int_equal(file_byte(E.fd, 0), 'S');
	assert_int_equal(file_byte(E.fd, PG), (char)(PG * 7 + 1));
}

static void test_sigbus_and_tail(void **state)
{
	char path[128];
	int fd;
	long a;
	char c = 1;
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/short", E.dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(pwrite(fd, "hello", 5, 0), 5);
	a = sm_mmap(E.mm, 0, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(a > 0);
	assert_int_equal(sm_read(E.cpu, (unsigned long)a + 100, &c, 1), 0);
	assert_int_equal(c, 0);
	assert_int_equal(sm_write(E.cpu, (unsigned long)a + 100, "T", 1), 0);
	assert_int_equal(sm_read(E.cpu, (unsigned long)a + PG, &c, 1), SM_SIGBUS);
	assert_int_equal(sm_write(E.cpu, (unsigned long)a + 2 * PG, "T", 1), SM_SIGBUS);
	assert_int_equal(sm_write(E.cpu, (unsigned long)a, "J", 1), 0);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a, 3 * PG, MS_SYNC), 0);
	fstat(fd, &st);
	assert_int_equal(st.st_size, 5);   /* the tail past EOF is not written */
	assert_int_equal(file_byte(fd, 0), 'J');
	/* The host grows the file: the page is there now. */
	assert_int_equal(ftruncate(fd, 2 * PG), 0);
	assert_int_equal(sm_read(E.cpu, (unsigned long)a + PG, &c, 1), 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)a, 3 * PG), 0);
	close(fd);
	unlink(path);
}

static void test_mmap_checks(void **state)
{
	int ro = open(E.path, O_RDONLY), wo = open(E.path, O_WRONLY);
	long a;

	(void)state;
	assert_int_equal(sm_mmap(E.mm, 0, PG, PROT_READ, MAP_SHARED, -1, 0), -EBADF);
	assert_int_equal(sm_mmap(E.mm, 0, PG, PROT_READ, MAP_SHARED, 999, 0), -EBADF);
	assert_int_equal(sm_mmap(E.mm, 0, PG, PROT_READ, MAP_SHARED, E.fd, 1), -EINVAL);
	assert_int_equal(sm_mmap(E.mm, 0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0), -EACCES);
	assert_int_equal(sm_mmap(E.mm, 0, PG, PROT_READ, MAP_PRIVATE, wo, 0), -EACCES);
	assert_int_equal(sm_mmap(E.mm, 0, PG, PROT_READ, 0, E.fd, 0), -EINVAL);
	assert_int_equal(sm_mmap(E.mm, 0, PG, PROT_READ, MAP_SHARED_VALIDATE | 0x200, E.fd, 0),
			 -EOPNOTSUPP);
	{
		int dfd = open(E.dir, O_RDONLY | O_DIRECTORY);

		assert_int_equal(sm_mmap(E.mm, 0, PG, PROT_READ, MAP_PRIVATE, dfd, 0), -ENODEV);
		close(dfd);
	}
	/* MAP_SHARED of a read-only fd: no VM_MAYWRITE, so never writable. */
	a = sm_mmap(E.mm, 0, PG, PROT_READ, MAP_SHARED, ro, 0);
	assert_true(a > 0);
	assert_int_equal(sm_mprotect(E.mm, (unsigned long)a, PG, PROT_READ | PROT_WRITE), -EACCES);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)a, PG), 0);
	/* msync's checks. */
	a = sm_mmap(E.mm, 0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, E.fd, 0);
	assert_true(a > 0);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a, PG, 8), -EINVAL);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a + 1, PG, MS_SYNC), -EINVAL);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a, PG, MS_SYNC | MS_ASYNC), -EINVAL);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a, PG, MS_INVALIDATE), -EBUSY);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a, 0, MS_SYNC), 0);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a + 2 * PG, PG, MS_SYNC), -ENOMEM);
	assert_int_equal(sm_msync(E.mm, (unsigned long)a, 3 * PG, MS_SYNC), -ENOMEM);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)a, 2 * PG), 0);
	close(ro);
	close(wo);
}

static void test_fork_and_shmem(void **state)
{
	long f = sm_mmap(E.mm, 0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);
	long p = sm_mmap(E.mm, 0, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, E.fd, 0);
	long a = sm_mmap(E.mm, 0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct sm_mm *child;
	char c;

	(void)state;
	assert_true(f > 0 && p > 0 && a > 0);
	assert_int_equal(sm_write(E.cpu, (unsigned long)a, "A", 1), 0);
	assert_int_equal(sm_write(E.cpu, (unsigned long)p, "p", 1), 0);
	assert_int_equal(sm_fork(E.mm, &child), 0);
	sm_cpu_switch_mm(E.cpu, child);
	assert_int_equal(sm_write(E.cpu, (unsigned long)a + 1, "B", 1), 0);
	assert_int_equal(sm_write(E.cpu, (unsigned long)f, "F", 1), 0);
	assert_int_equal(sm_write(E.cpu, (unsigned long)p, "q", 1), 0);
	assert_int_equal(sm_read(E.cpu, (unsigned long)a, &c, 1), 0);
	assert_int_equal(c, 'A');
	assert_int_equal(sm_mm_check(child), 0);
	sm_cpu_switch_mm(E.cpu, E.mm);
	assert_int_equal(sm_read(E.cpu, (unsigned long)a + 1, &c, 1), 0);
	assert_int_equal(c, 'B');
	assert_int_equal(sm_read(E.cpu, (unsigned long)f, &c, 1), 0);
	assert_int_equal(c, 'F');
	assert_int_equal(sm_read(E.cpu, (unsigned long)p, &c, 1), 0);
	assert_int_equal(c, 'p');
	assert_int_equal(sm_mm_check(E.mm), 0);
	sm_mm_destroy(child);
	assert_int_equal(file_byte(E.fd, 0), 'F');   /* exit wrote it back */
	assert_int_equal(sm_munmap(E.mm, (unsigned long)f, 2 * PG), 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)p, 2 * PG), 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)a, 2 * PG), 0);
}

static void test_maps_line(void **state)
{
	long a = sm_mmap(E.mm, 0, 2 * PG, PROT_READ, MAP_SHARED, E.fd, PG);
	long s = sm_mmap(E.mm, 0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char buf[4096], want[256];
	struct stat st;

	(void)state;
	fstat(E.fd, &st);
	assert_true(sm_proc_read(E.mm, "maps", buf, sizeof(buf)) > 0);
	snprintf(want, sizeof(want), "%08lx-%08lx r--s 00001000 %02x:%02x %lu", (unsigned long)a,
		 (unsigned long)a + 2 * PG, major(st.st_dev), minor(st.st_dev), (unsigned long)st.st_ino);
	assert_non_null(strstr(buf, want));
	assert_non_null(strstr(buf, E.path));
	assert_non_null(strstr(buf, "rw-s 00000000 00:01 "));
	assert_non_null(strstr(buf, "/dev/zero (deleted)"));
	assert_int_equal(sm_write(E.cpu, (unsigned long)s, "s", 1), 0);
	assert_int_equal(sm_read(E.cpu, (unsigned long)a, buf, 1), 0);
	assert_true(sm_proc_read(E.mm, "status", buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "RssFile:\t       4 kB"));
	assert_non_null(strstr(buf, "RssShmem:\t       4 kB"));
	assert_int_equal(sm_munmap(E.mm, (unsigned long)a, 2 * PG), 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)s, PG), 0);
}

static void test_split_merge_mremap(void **state)
{
	long a = sm_mmap(E.mm, 0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);
	long b;
	char c;

	(void)state;
	assert_true(a > 0);
	assert_int_equal(sm_write(E.cpu, (unsigned long)a + 2 * PG, "M", 1), 0);
	assert_int_equal(sm_mprotect(E.mm, (unsigned long)a + PG, PG, PROT_READ), 0);
	assert_int_equal(sm_mprotect(E.mm, (unsigned long)a + PG, PG, PROT_READ | PROT_WRITE), 0);
	b = sm_mremap(E.mm, (unsigned long)a + 2 * PG, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
		      (unsigned long)a + 64 * PG);
	assert_int_equal(b, a + 64 * PG);
	assert_int_equal(sm_read(E.cpu, (unsigned long)b, &c, 1), 0);
	assert_int_equal(c, 'M');
	assert_int_equal(sm_write(E.cpu, (unsigned long)b + PG, "N", 1), 0);
	assert_int_equal(sm_msync(E.mm, (unsigned long)b, 2 * PG, MS_SYNC), 0);
	assert_int_equal(file_byte(E.fd, 3 * PG), 'N');
	assert_int_equal(file_byte(E.fd, 2 * PG), 'M');
	assert_int_equal(sm_munmap(E.mm, (unsigned long)a, 2 * PG), 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)b, 2 * PG), 0);
}

/*
 * The lost-write window, step by step on one thread: a CPU caches a writable
 * translation, zap clears the PTE, writeback runs before the zap's TLB flush,
 * and the CPU writes through its cached entry. With the delayed rmap the
 * flush happened inside zap (the folio still counted as mapped until then),
 * so the write faults, dirties the folio again and reaches the file; without
 * it the write goes into a clean folio and is lost.
 */
static char lost_write_window(unsigned flags, char second)
{
	struct sm_config cfg = { .ram_bytes = 16 << 20, .flags = flags };
	struct sm_machine *m = sm_machine_create(&cfg);
	struct sm_cpu *cpu = sm_cpu_create(m);
	struct sm_mm *mm = sm_mm_create(m);
	struct vm_area_struct *vma;
	struct mmu_gather tlb;
	long a;
	char c;

	sm_flusher(m, NULL);
	sm_cpu_switch_mm(cpu, mm);
	a = sm_mmap(mm, 0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);
	assert_true(a > 0);
	assert_int_equal(sm_write(cpu, (unsigned long)a, "1", 1), 0);   /* TLB: writable+dirty */
	down_read(&mm->mmap_lock);
	vma = vma_lookup(mm, (unsigned long)a);
	tlb_gather_mmu(&tlb, mm);
	zap_page_range(&tlb, vma, vma->vm_start, vma->vm_end);
	filemap_write_range(vma->vm_file, 0, 0, false);   /* writeback inside the window */
	assert_int_equal(sm_write(cpu, (unsigned long)a + 1, &second, 1), 0);
	tlb_finish_mmu(&tlb);
	up_read(&mm->mmap_lock);
	assert_int_equal(sm_msync(mm, (unsigned long)a, PG, MS_SYNC), 0);
	c = file_byte(E.fd, 1);
	sm_cpu_switch_mm(cpu, NULL);
	sm_mm_destroy(mm);
	sm_cpu_destroy(cpu);
	sm_machine_destroy(m);
	return c;
}

static void test_delayed_rmap_saves_the_write(void **state)
{
	(void)state;
	assert_int_equal(lost_write_window(0, '2'), '2');
	/* Without the delay the model loses it, as Linux before 6.2 could. */
	assert_int_equal(lost_write_window(SM_CFG_NO_DELAY_RMAP, '3'), '2');
}

static void test_flusher(void **state)
{
	struct sm_flusher_config fc = { .interval_ms = 5 };
	struct sm_flusher_stats st;
	long a = sm_mmap(E.mm, 0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);

	(void)state;
	assert_true(a > 0);
	assert_int_equal(sm_flusher(E.m, &fc), 0);
	assert_int_equal(sm_write(E.cpu, (unsigned long)a + 7, "F", 1), 0);
	for (int i = 0; i < 5000; i++) {
		sm_flusher_stats(E.m, &st);
		if (st.passes > 0 && file_byte(E.fd, 7) == 'F')
			break;
		usleep(1000);
	}
	assert_int_equal(sm_flusher(E.m, NULL), 0);   /* stopped: its counters are final */
	sm_flusher_stats(E.m, &st);
	assert_int_equal(file_byte(E.fd, 7), 'F');   /* no msync: the flusher wrote it */
	assert_true(st.passes > 0 && st.pages_written > 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)a, PG), 0);
}


/* ---------------------------------------------------------------- MADV_REMOVE */

static long status_kb(struct sm_mm *mm, const char *key)
{
	char buf[4096], *p;

	assert_true(sm_proc_read(mm, "status", buf, sizeof(buf)) > 0);
	p = strstr(buf, key);
	assert_non_null(p);
	return strtol(p + strlen(key), NULL, 10);
}

static uint64_t free_frames(void)
{
	struct sm_machine_stats st;

	sm_machine_stats(E.m, &st);
	return st.free_frames;
}

static bool page_is(struct sm_cpu *cpu, unsigned long addr, int seed)
{
	static char buf[PG];

	assert_int_equal(sm_read(cpu, addr, buf, PG), 0);
	for (size_t i = 0; i < PG; i++) {
		char want = seed < 0 ? 0 : (char)((addr % (8 * PG) - addr % PG + i) * 7 + (size_t)seed);

		if (buf[i] != want)
			return false;
	}
	return true;
}

static bool host_zero(int fd, off_t off, size_t len)
{
	char buf[PG];

	for (size_t done = 0; done < len; done += PG) {
		assert_int_equal(pread(fd, buf, PG, off + (off_t)done), (ssize_t)PG);
		for (size_t i = 0; i < PG; i++)
			if (buf[i])
				return false;
	}
	return true;
}

static void test_remove_errors(void **state)
{
	int ro = open(E.path, O_RDONLY);
	long anon = sm_mmap(E.mm, 0, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long priv = sm_mmap(E.mm, 0, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, E.fd, 0);
	long shro = sm_mmap(E.mm, 0, 2 * PG, PROT_READ, MAP_SHARED, ro, 0);
	long shr = sm_mmap(E.mm, 0, 2 * PG, PROT_READ, MAP_SHARED, E.fd, 0);
	long lck = sm_mmap(E.mm, 0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, E.fd, 0);
	long sh = sm_mmap(E.mm, 0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);

	(void)state;
	assert_true(anon > 0 && priv > 0 && shro > 0 && shr > 0 && lck > 0 && sh > 0);
	assert_int_equal(sm_madvise(E.mm, (unsigned long)anon, 2 * PG, MADV_REMOVE), -EINVAL);
	assert_int_equal(sm_madvise(E.mm, (unsigned long)priv, 2 * PG, MADV_REMOVE), -EACCES);
	assert_int_equal(sm_madvise(E.mm, (unsigned long)shro, 2 * PG, MADV_REMOVE), -EACCES);
	assert_int_equal(sm_madvise(E.mm, (unsigned long)lck, 2 * PG, MADV_REMOVE), -EINVAL);
	/* Linux 6.7+: VM_SHARED with VM_MAYWRITE suffices, PROT_WRITE not needed. */
	assert_int_equal(sm_madvise(E.mm, (unsigned long)shr, 2 * PG, MADV_REMOVE), 0);
	assert_int_equal(sm_madvise(E.mm, (unsigned long)sh + 1, PG, MADV_REMOVE), -EINVAL);
	assert_int_equal(sm_madvise(E.mm, (unsigned long)sh, 0, MADV_REMOVE), 0);
	assert_int_equal(sm_mm_check(E.mm), 0);
	/* A hole in the range: the VMAs on both sides are punched, then -ENOMEM. */
	make_file(&E, 4 * PG, 2);
	{
		long a = sm_mmap(E.mm, 0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);

		assert_true(a > 0);
		assert_int_equal(sm_munmap(E.mm, (unsigned long)a + PG, PG), 0);
		assert_int_equal(sm_madvise(E.mm, (unsigned long)a, 4 * PG, MADV_REMOVE), -ENOMEM);
		assert_true(host_zero(E.fd, 0, PG));
		assert_false(host_zero(E.fd, PG, PG));
		assert_true(host_zero(E.fd, 2 * PG, 2 * PG));
		/* Shared, then private: the walk stops at the private one. */
		assert_int_equal(sm_mmap(E.mm, (unsigned long)a + PG, PG, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_FIXED, E.fd, (long)PG), a + (long)PG);
		assert_int_equal(sm_madvise(E.mm, (unsigned long)a, 2 * PG, MADV_REMOVE), -EACCES);
		assert_int_equal(sm_munmap(E.mm, (unsigned long)a, 4 * PG), 0);
	}
	assert_int_equal(sm_mm_check(E.mm), 0);
	/* The host's fallocate error is the call's (ext4: -EFBIG this far out). */
	{
		long far = sm_mmap(E.mm, 0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 1L << 44);
		long want = fallocate(E.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1L << 44, (off_t)PG)
				    ? -errno : 0;

		assert_true(far > 0);
		assert_int_equal(sm_madvise(E.mm, (unsigned long)far, PG, MADV_REMOVE), want);
		assert_int_equal(sm_munmap(E.mm, (unsigned long)far, PG), 0);
	}
	sm_munmap(E.mm, (unsigned long)anon, 2 * PG);
	sm_munmap(E.mm, (unsigned long)priv, 2 * PG);
	sm_munmap(E.mm, (unsigned long)shro, 2 * PG);
	sm_munmap(E.mm, (unsigned long)shr, 2 * PG);
	sm_munmap(E.mm, (unsigned long)lck, 2 * PG);
	sm_munmap(E.mm, (unsigned long)sh, 4 * PG);
	close(ro);
}

/*
 * The hole in every mapping of the file: two shared mappings and a private
 * one, in two mms. The cache folios go from all of them, RSS and frames with
 * them; the private COW copy stays; dirty data not yet written back is gone;
 * the host file reads zeros and lost its blocks.
 */
static void test_remove_every_mapping(void **state)
{
	struct sm_cpu *cpu2 = sm_cpu_create(E.m);
	struct sm_mm *mm2 = sm_mm_create(E.m);
	unsigned long a, b, p;
	struct stat st0, st1;
	uint64_t free_before;
	long rss_a, rss_b;

	(void)state;
	close(E.fd);
	unlink(E.path);
	make_file(&E, 8 * PG, 3);
	assert_int_equal(fsync(E.fd), 0);
	sm_cpu_switch_mm(cpu2, mm2);
	a = (unsigned long)sm_mmap(E.mm, 0, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);
	b = (unsigned long)sm_mmap(mm2, 0, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);
	p = (unsigned long)sm_mmap(mm2, 0, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, E.fd, 0);
	assert_true((long)a > 0 && (long)b > 0 && (long)p > 0);
	for (unsigned long i = 0; i < 8; i++) {
		assert_true(page_is(E.cpu, a + i * PG, 3));
		assert_true(page_is(cpu2, b + i * PG, 3));
		assert_true(page_is(cpu2, p + i * PG, 3));
	}
	assert_int_equal(sm_write(cpu2, p + 3 * PG, "C", 1), 0);   /* a COW copy */
	assert_int_equal(sm_write(E.cpu, a + 2 * PG, "D", 1), 0);  /* dirty, not written back */
	assert_int_equal(fstat(E.fd, &st0), 0);
	rss_a = status_kb(E.mm, "RssFile:");
	rss_b = status_kb(mm2, "RssFile:");
	assert_int_equal(rss_a, 32);
	assert_int_equal(rss_b, 60);   /* 8 shared + 7 private pages of the cache */
	free_before = free_frames();

	assert_int_equal(sm_madvise(E.mm, a + PG, 4 * PG, MADV_REMOVE), 0);

	assert_int_equal(sm_mm_check(E.mm), 0);
	assert_int_equal(sm_mm_check(mm2), 0);
	assert_int_equal(status_kb(E.mm, "RssFile:"), rss_a - 16);
	assert_int_equal(status_kb(mm2, "RssFile:"), rss_b - 16 - 12);
	assert_int_equal(status_kb(mm2, "RssAnon:"), 4);
	assert_int_equal(free_frames(), free_before + 4);   /* the 4 cache folios */
	assert_true(host_zero(E.fd, PG, 4 * PG));
	assert_true(page_is(E.cpu, a, 3) && page_is(E.cpu, a + 5 * PG, 3));
	assert_int_equal(fstat(E.fd, &st1), 0);
	assert_int_equal(st1.st_size, st0.st_size);   /* FALLOC_FL_KEEP_SIZE */
	if (st0.st_blocks >= 64)   /* 8 pages allocated: the host fs punched 4 */
		assert_true(st1.st_blocks <= st0.st_blocks - 32);
	for (unsigned long i = 1; i < 5; i++) {
		char c;

		assert_true(page_is(E.cpu, a + i * PG, -1));
		assert_true(page_is(cpu2, b + i * PG, -1));
		assert_int_equal(sm_read(cpu2, p + i * PG, &c, 1), 0);
		assert_int_equal(c, i == 3 ? 'C' : 0);   /* the COW copy stays */
	}
	assert_true(page_is(cpu2, b + 6 * PG, 3));
	/* The hole is a file page like any other again. */
	assert_int_equal(sm_write(cpu2, b + 2 * PG, "H", 1), 0);
	assert_int_equal(sm_msync(mm2, b, 8 * PG, MS_SYNC), 0);
	assert_int_equal(file_byte(E.fd, 2 * PG), 'H');
	assert_int_equal(sm_mm_check(E.mm), 0);
	assert_int_equal(sm_mm_check(mm2), 0);
	sm_munmap(E.mm, a, 8 * PG);
	sm_cpu_switch_mm(cpu2, NULL);
	sm_mm_destroy(mm2);
	sm_cpu_destroy(cpu2);
}

/* Shared anonymous memory is a shmem file: the hole frees its frames in
 * every mm that shares it (a fork child here), and reads zeros. */
static void test_remove_shmem(void **state)
{
	unsigned long a = (unsigned long)sm_mmap(E.mm, 0, 4 * PG, PROT_READ | PROT_WRITE,
						 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct sm_mm *child;
	uint64_t free_before;
	char c;

	(void)state;
	assert_true((long)a > 0);
	for (unsigned long i = 0; i < 4; i++)
		assert_int_equal(sm_write(E.cpu, a + i * PG, "s", 1), 0);
	assert_int_equal(sm_fork(E.mm, &child), 0);
	sm_cpu_switch_mm(E.cpu, child);
	assert_int_equal(sm_read(E.cpu, a + 2 * PG, &c, 1), 0);
	assert_int_equal(status_kb(child, "RssShmem:"), 4);
	sm_cpu_switch_mm(E.cpu, E.mm);
	assert_int_equal(status_kb(E.mm, "RssShmem:"), 16);
	free_before = free_frames();
	assert_int_equal(sm_madvise(E.mm, a + PG, 2 * PG, MADV_REMOVE), 0);
	assert_int_equal(free_frames(), free_before + 2);
	assert_int_equal(status_kb(E.mm, "RssShmem:"), 8);
	assert_int_equal(status_kb(child, "RssShmem:"), 0);
	assert_int_equal(sm_mm_check(E.mm), 0);
	assert_int_equal(sm_mm_check(child), 0);
	sm_cpu_switch_mm(E.cpu, child);
	assert_int_equal(sm_read(E.cpu, a + 2 * PG, &c, 1), 0);
	assert_int_equal(c, 0);
	assert_int_equal(sm_read(E.cpu, a + 3 * PG, &c, 1), 0);
	assert_int_equal(c, 's');
	sm_cpu_switch_mm(E.cpu, E.mm);
	sm_mm_destroy(child);
	assert_int_equal(sm_munmap(E.mm, a, 4 * PG), 0);
}

/* The file was first mapped through a read-only fd (our dup of it is the
 * one we keep): a later O_RDWR shared mapping still punches the host file. */
static void test_remove_after_readonly_fd(void **state)
{
	int ro = open(E.path, O_RDONLY);
	long p = sm_mmap(E.mm, 0, 4 * PG, PROT_READ, MAP_PRIVATE, ro, 0);
	long s;

	(void)state;
	assert_true(p > 0);
	s = sm_mmap(E.mm, 0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);
	assert_true(s > 0);
	assert_int_equal(sm_madvise(E.mm, (unsigned long)s, PG, MADV_REMOVE), 0);
	assert_true(host_zero(E.fd, 0, PG));
	assert_int_equal(sm_write(E.cpu, (unsigned long)s + PG, "w", 1), 0);
	assert_int_equal(sm_msync(E.mm, (unsigned long)s, 4 * PG, MS_SYNC), 0);
	assert_int_equal(file_byte(E.fd, PG), 'w');
	assert_int_equal(sm_munmap(E.mm, (unsigned long)p, 4 * PG), 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)s, 4 * PG), 0);
	close(ro);
}

/* A fault that looked a folio up before the punch must not map it after:
 * the step by step version of what stress_remove races. */
static void test_remove_stale_lookup(void **state)
{
	long s = sm_mmap(E.mm, 0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, E.fd, 0);
	struct vm_area_struct *vma;
	struct page *folio;

	(void)state;
	assert_true(s > 0);
	assert_int_equal(sm_write(E.cpu, (unsigned long)s, "x", 1), 0);
	down_read(&E.mm->mmap_lock);
	vma = vma_lookup(E.mm, (unsigned long)s);
	assert_int_equal(filemap_get_folio(vma->vm_file, 0, &folio), 0);   /* the fault's lookup */
	up_read(&E.mm->mmap_lock);
	assert_int_equal(sm_madvise(E.mm, (unsigned long)s, PG, MADV_REMOVE), 0);
	/* What do_file_fault checks under the PTE lock before it maps. */
	assert_false(filemap_folio_cached(vma->vm_file, folio));
	assert_int_equal(page_mapcount(folio), 0);
	assert_int_equal(page_ref_count(folio), 1);   /* only ours: the cache let go */
	put_page(E.m, folio);
	assert_true(page_is(E.cpu, (unsigned long)s, -1));
	assert_int_equal(sm_mm_check(E.mm), 0);
	assert_int_equal(sm_munmap(E.mm, (unsigned long)s, 4 * PG), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_shared_write_msync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_private_cow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigbus_and_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmap_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_and_shmem, setup, teardown),
		cmocka_unit_test_setup_teardown(test_maps_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_merge_mremap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delayed_rmap_saves_the_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flusher, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_every_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_shmem, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_after_readonly_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_stale_lookup, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
