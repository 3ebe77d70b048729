/*
 * The /proc views: maps, smaps, smaps_rollup, status and pagemap of an mm
 * with written pages, a zero-page read and an mprotect split; the values
 * Linux's rules give; sharing after fork; and the text formats against the
 * host kernel: the same mapping made natively, whose /proc/self blocks
 * must have the same lines, fields, columns (and, on Linux 6.18, values).
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
#include <unistd.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <cmocka.h>
#include "mm/mm_types.h"

#define NPAGES 16
#define BASE 0x10000000ul
#define BRK_BASE 0x20000000ul
#define BUF_SIZE (64 << 10)

#define PM_PFN(e)       ((e) & ((1ull << 55) - 1))
#define PM_FLAGS(e)     ((e) & ~((1ull << 55) - 1))
#define PM_EXCLUSIVE    (1ull << 56)
#define PM_FILE         (1ull << 61)
#define PM_PRESENT      (1ull << 63)

struct env {
	struct sm_machine *m;
	struct sm_mm *mm;
	struct sm_cpu *cpu;
	char buf[BUF_SIZE];
};

static void wr(struct env *e, unsigned long a)
{
	uint64_t v = a;

	assert_int_equal(sm_write(e->cpu, a, &v, sizeof(v)), 0);
}

static void rd(struct env *e, unsigned long a)
{
	uint64_t v;

	assert_int_equal(sm_read(e->cpu, a, &v, sizeof(v)), 0);
	assert_int_equal(v, 0);
}

/* Pages 0-3 written, page 4 read (the zero page), pages 8-11 read-only;
 * the heap starts at BRK_BASE. */
static int setup(void **state)
{
	static struct env e;
	struct sm_config cfg = { .ram_bytes = 64 << 20 };

	e.m = sm_machine_create(&cfg);
	e.mm = sm_mm_create(e.m);
	e.cpu = sm_cpu_create(e.m);
	if (!e.m || !e.mm || !e.cpu)
		return -1;
	sm_cpu_switch_mm(e.cpu, e.mm);
	if (sm_mm_set_brk_base(e.mm, BRK_BASE))
		return -1;
	if (sm_mmap(e.mm, BASE, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (long)BASE)
		return -1;
	for (int i = 0; i < 4; i++)
		wr(&e, BASE + i * PAGE_SIZE);
	rd(&e, BASE + 4 * PAGE_SIZE);
	if (sm_mprotect(e.mm, BASE + 8 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_READ))
		return -1;
	*state = &e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	sm_cpu_switch_mm(e->cpu, NULL);
	sm_cpu_destroy(e->cpu);
	sm_mm_destroy(e->mm);
	sm_machine_destroy(e->m);
	return 0;
}

static const char *view(struct env *e, const char *name)
{
	long n = sm_proc_read(e->mm, name, e->buf, sizeof(e->buf));

	assert_true(n > 0 && n < (long)sizeof(e->buf));
	assert_int_equal(strlen(e->buf), n);
	return e->buf;
}

/* ---- text helpers ---- */

static bool is_header(const char *line)
{
	const char *p = line;

	while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
		p++;
	return p > line && *p == '-';
}

/* The block of smaps (or any view) that starts with the header of start:
 * a malloc'd copy up to the next header line. */
static char *block_of(const char *text, unsigned long start)
{
	char prefix[32];
	const char *p = text, *end;

	snprintf(prefix, sizeof(prefix), "%08lx-", start);
	while (p && strncmp(p, prefix, strlen(prefix)))
		p = (p = strchr(p, '\n')) ? p + 1 : NULL;
	if (!p)
		return NULL;
	for (end = strchr(p, '\n'); end && end[1] && !is_header(end + 1); end = strchr(end + 1, '\n'))
		;
	return strndup(p, end ? (size_t)(end + 1 - p) : strlen(p));
}

static long field(const char *block, const char *name)
{
	const char *p = strstr(block, name);

	assert_non_null(p);
	return strtol(p + strlen(name), NULL, 10);
}

/* The next line of *p (without its newline) into out; false at the end. */
static bool next_line(const char **p, char *out, size_t size)
{
	size_t n;

	if (!*p || !**p)
		return false;
	n = strcspn(*p, "\n");
	snprintf(out, size, "%.*s", (int)n, *p);
	*p += n + ((*p)[n] == '\n');
	return true;
}

/* The digits of a field line's value (0 for a header or VmFlags). */
static size_t value_digits(const char *line)
{
	const char *v = strchr(line, ':');

	if (is_header(line) || !v || !strncmp(line, "VmFlags", 7))
		return 0;
	v += strspn(v + 1, " \t") + 1;
	return strspn(v, "0123456789");
}

/*
 * A line's format with its values taken out: a header keeps what follows
 * its address range (padding aside) and the column its name starts at; a
 * field keeps its name, the separator, what follows the value and, when
 * the value fits its 8-wide column (with_column), where the value ends.
 */
static void shape(const char *line, bool with_column, char *out, size_t size)
{
	if (is_header(line)) {
		const char *rest = strchr(line, ' ') + 1, *name = strchr(rest, '[');
		int fields = name ? (int)(name - rest) : (int)strlen(rest);

		while (name && fields > 0 && rest[fields - 1] == ' ')
			fields--;
		snprintf(out, size, "header \"%.*s\" name \"%s\" at %ld", fields, rest,
			 name ? name : "", name ? (long)(name - line) : -1l);
	} else if (value_digits(line)) {
		size_t name_len = strcspn(line, ":") + 1;
		size_t sep = strspn(line + name_len, " \t");
		size_t end = name_len + sep + value_digits(line);

		snprintf(out, size, "\"%.*s\" then '%c' value to %zd then \"%s\"",
			 (int)name_len, line, line[name_len], with_column ? (ssize_t)end : -1,
			 line + end);
	} else {
		snprintf(out, size, "%s", line);
	}
}

/* Both texts have the same lines, each of the same shape. */
static void assert_same_shape(const char *host, const char *ours)
{
	char hl[512], ol[512], hs[640], os[640];

	while (next_line(&host, hl, sizeof(hl))) {
		bool with_column;

		assert_true(next_line(&ours, ol, sizeof(ol)));
		with_column = value_digits(hl) <= 7 && value_digits(ol) <= 7;
		shape(hl, with_column, hs, sizeof(hs));
		shape(ol, with_column, os, sizeof(os));
		assert_string_equal(os, hs);
	}
	assert_false(next_line(&ours, ol, sizeof(ol)));
}

/* A malloc'd copy of a host file (a /proc file reads in pieces). */
static char *host_file(const char *path)
{
	static char buf[1 << 20];
	int fd = open(path, O_RDONLY);
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return strdup("");
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = 0;
	return strdup(buf);
}

/* The reference kernel: there, values must match too, not just formats. */
static bool host_is_reference(void)
{
	struct utsname u;
	char *thp;
	bool madvise;

	if (uname(&u) || strncmp(u.release, "6.18", 4))
		return false;
	thp = host_file("/sys/kernel/mm/transparent_hugepage/enabled");
	madvise = strstr(thp, "[madvise]") != NULL;
	free(thp);
	return madvise;
}

/* The same mapping as setup()'s, made natively between PROT_NONE guards. */
static char *host_mapping(void)
{
	char *guard = mmap(NULL, (NPAGES + 2) * PAGE_SIZE, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a = guard + PAGE_SIZE;
	volatile char sink;

	assert_true(guard != MAP_FAILED);
	assert_true(mmap(a, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == a);
	for (int i = 0; i < 4; i++)
		*(volatile uint64_t *)(a + i * PAGE_SIZE) = (uint64_t)i;
	sink = a[4 * PAGE_SIZE];
	(void)sink;
	assert_int_equal(mprotect(a + 8 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_READ), 0);
	return a;
}

/* ---- softmm's values, by Linux's rules ---- */

static void test_maps(void **state)
{
	struct env *e = *state;

	assert_string_equal(view(e, "maps"),
			    "10000000-10008000 rw-p 00000000 00:00 0 \n"
			    "10008000-1000c000 r--p 00000000 00:00 0 \n"
			    "1000c000-10010000 rw-p 00000000 00:00 0 \n");
}

static void test_read_api(void **state)
{
	struct env *e = *state;
	long full = sm_proc_read(e->mm, "maps", NULL, 0);
	char small[11];

	assert_int_equal(full, 3 * 41);
	assert_int_equal(sm_proc_read(e->mm, "maps", small, sizeof(small)), full);
	assert_string_equal(small, "10000000-1");
	assert_int_equal(sm_proc_read(e->mm, "nope", small, sizeof(small)), -ENOENT);
	assert_int_equal(sm_proc_read(NULL, "maps", small, sizeof(small)), -EINVAL);
	assert_int_equal(sm_proc_read(e->mm, "status", NULL, 0),
			 (long)strlen(view(e, "status")));
}

static void test_smaps_values(void **state)
{
	struct env *e = *state;
	char *b = block_of(view(e, "smaps"), BASE);
	char *ro = block_of(e->buf, BASE + 8 * PAGE_SIZE);
	const char *rollup;

	assert_non_null(b);
	assert_int_equal(field(b, "Size:"), 32);
	assert_int_equal(field(b, "Rss:"), 16);          /* the zero page counts nowhere */
	assert_int_equal(field(b, "Pss:"), 16);
	assert_int_equal(field(b, "Pss_Dirty:"), 16);
	assert_int_equal(field(b, "Private_Dirty:"), 16);
	assert_int_equal(field(b, "Private_Clean:"), 0);
	assert_int_equal(field(b, "Shared_Dirty:"), 0);
	assert_int_equal(field(b, "Referenced:"), 16);
	assert_int_equal(field(b, "Anonymous:"), 16);
	assert_int_equal(field(b, "THPeligible:"), 0);
	assert_non_null(strstr(b, "VmFlags: rd wr mr mw me ac \n"));
	assert_non_null(ro);
	assert_int_equal(field(ro, "Rss:"), 0);
	assert_non_null(strstr(ro, "VmFlags: rd mr mw me ac \n"));
	free(b);
	free(ro);

	rollup = view(e, "smaps_rollup");
	assert_true(!strncmp(rollup, "10000000-10010000 ---p 00000000 00:00 0 ", 40));
	assert_int_equal(field(rollup, "Rss:"), 16);
	assert_int_equal(field(rollup, "Pss_Anon:"), 16);
	assert_int_equal(field(rollup, "Pss_File:"), 0);
}

static void test_status_values(void **state)
{
	struct env *e = *state;
	const char *s = view(e, "status");

	assert_int_equal(field(s, "VmRSS:"), 16);
	assert_int_equal(field(s, "RssAnon:"), 16);
	assert_int_equal(field(s, "VmHWM:"), 16);
	assert_int_equal(field(s, "VmSize:"), 64);
	assert_int_equal(field(s, "VmPeak:"), 64);
	assert_int_equal(field(s, "VmData:"), 48);       /* the read-only part is not data */
	assert_int_equal(field(s, "VmPTE:"), e->mm->pgtables_bytes >> 10);
	assert_int_equal(field(s, "VmPTE:"), 12);        /* PUD, PMD and PTE tables */
}

static void test_pagemap(void **state)
{
	struct env *e = *state;
	uint64_t pm[NPAGES + 2];

	assert_int_equal(sm_pagemap_read(e->mm, BASE - PAGE_SIZE, pm, NPAGES + 2), NPAGES + 2);
	assert_int_equal(pm[0], 0);                      /* no VMA */
	assert_int_equal(pm[NPAGES + 1], 0);
	for (int i = 1; i <= 4; i++) {                   /* written: private anon */
		assert_int_equal(PM_FLAGS(pm[i]), PM_PRESENT | PM_EXCLUSIVE);
		assert_true(PM_PFN(pm[i]) != 0);
	}
	assert_int_equal(pm[5], PM_PRESENT | e->m->zero_pfn);   /* the zero page */
	for (int i = 6; i <= NPAGES; i++)
		assert_int_equal(pm[i], 0);
	assert_int_equal(sm_pagemap_read(e->mm, BASE + 1, pm, 1), -EINVAL);
	assert_int_equal(sm_pagemap_read(e->mm, TASK_SIZE, pm, 1), 0);
	assert_int_equal(sm_pagemap_read(e->mm, TASK_SIZE - PAGE_SIZE, pm, 4), 1);
}

/* After fork both mms map the written pages: shared, half the Pss each. */
static void test_shared_after_fork(void **state)
{
	struct env *e = *state;
	struct sm_mm *child = NULL;
	uint64_t pm;
	char *b;

	assert_int_equal(sm_fork(e->mm, &child), 0);
	b = block_of(view(e, "smaps"), BASE);
	assert_int_equal(field(b, "Rss:"), 16);
	assert_int_equal(field(b, "Pss:"), 8);
	assert_int_equal(field(b, "Pss_Dirty:"), 8);
	assert_int_equal(field(b, "Shared_Dirty:"), 16);
	assert_int_equal(field(b, "Private_Dirty:"), 0);
	free(b);
	assert_int_equal(sm_pagemap_read(e->mm, BASE, &pm, 1), 1);
	assert_int_equal(PM_FLAGS(pm), PM_PRESENT);
	sm_mm_destroy(child);
	b = block_of(view(e, "smaps"), BASE);
	assert_int_equal(field(b, "Private_Dirty:"), 16);
	free(b);
}

static void test_heap_and_thp(void **state)
{
	struct env *e = *state;
	unsigned long brk = BRK_BASE, big = 0x40000000;
	uint64_t pm[4];
	char *b;

	assert_int_equal(sm_brk(e->mm, brk + 3 * PAGE_SIZE), brk + 3 * PAGE_SIZE);
	b = block_of(view(e, "maps"), brk);
	assert_string_equal(b, "20000000-20003000 rw-p 00000000 00:00 0"
			       "                                  [heap]\n");
	free(b);

	/* THP=madvise: a MADV_HUGEPAGE VMA holding an aligned 2 MiB block. */
	assert_int_equal(sm_mmap(e->mm, big + PAGE_SIZE, 4 << 20, PROT_READ,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), big + PAGE_SIZE);
	b = block_of(view(e, "smaps"), big + PAGE_SIZE);
	assert_int_equal(field(b, "THPeligible:"), 0);
	free(b);
	assert_int_equal(sm_madvise(e->mm, big + PAGE_SIZE, 4 << 20, MADV_HUGEPAGE), 0);
	b = block_of(view(e, "smaps"), big + PAGE_SIZE);
	assert_int_equal(field(b, "THPeligible:"), 1);
	assert_non_null(strstr(b, "VmFlags: rd mr mw me hg \n"));
	free(b);
	/* pagemap across the 2 MiB boundary: a read-faulted zero page either side. */
	rd(e, big + (2 << 20) - PAGE_SIZE);
	rd(e, big + (2 << 20));
	assert_int_equal(sm_pagemap_read(e->mm, big + (2 << 20) - 2 * PAGE_SIZE, pm, 4), 4);
	assert_int_equal(pm[0], 0);
	assert_int_equal(pm[1], PM_PRESENT | e->m->zero_pfn);
	assert_int_equal(pm[2], PM_PRESENT | e->m->zero_pfn);
	assert_int_equal(pm[3], 0);
	/* Shrunk below an aligned block: not eligible. */
	assert_int_equal(sm_munmap(e->mm, big + (2 << 20), 4 << 20), 0);
	b = block_of(view(e, "smaps"), big + PAGE_SIZE);
	assert_int_equal(field(b, "THPeligible:"), 0);
	free(b);
	assert_int_equal(sm_munmap(e->mm, big, 2 << 20), 0);
	assert_int_equal(sm_brk(e->mm, brk), brk);

	/* Linux's unsigned arithmetic, checked on the host: a VMA below 2 MiB
	 * "holds" the block that wraps around from the top. */
	assert_int_equal(sm_mmap(e->mm, 0x10000, 0xf0000, PROT_READ,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), 0x10000);
	assert_int_equal(sm_madvise(e->mm, 0x10000, 0xf0000, MADV_HUGEPAGE), 0);
	b = block_of(view(e, "smaps"), 0x10000);
	assert_int_equal(field(b, "THPeligible:"), 1);
	free(b);
	assert_int_equal(sm_munmap(e->mm, 0x10000, 0xf0000), 0);
}

/* ---- formats (and, on the reference kernel, values) against the host ---- */

static void test_host_smaps(void **state)
{
	struct env *e = *state;
	char *a = host_mapping();
	char *smaps = host_file("/proc/self/smaps");
	char *host = block_of(smaps, (unsigned long)a);
	char *ours = block_of(view(e, "smaps"), BASE);

	assert_non_null(host);
	assert_non_null(ours);
	assert_same_shape(host, ours);
	if (host_is_reference())   /* the same lines but for the addresses */
		assert_string_equal(strchr(ours, ' '), strchr(host, ' '));
	free(host);
	free(ours);

	host = block_of(smaps, (unsigned long)a + 8 * PAGE_SIZE);
	ours = block_of(view(e, "smaps"), BASE + 8 * PAGE_SIZE);
	assert_non_null(host);
	assert_non_null(ours);
	assert_same_shape(host, ours);
	if (host_is_reference())
		assert_string_equal(strchr(ours, ' '), strchr(host, ' '));
	free(host);
	free(ours);
	free(smaps);
	munmap(a - PAGE_SIZE, (NPAGES + 2) * PAGE_SIZE);
}

/* A copy of text from the line starting with first to the end of the line starting with last. */
static char *lines_between(const char *text, const char *first, const char *last)
{
	const char *from = strstr(text, first), *to = from ? strstr(from, last) : NULL;

	assert_non_null(to);
	return strndup(from, (size_t)(strchr(to, '\n') + 1 - from));
}

static void test_host_rollup_and_status(void **state)
{
	struct env *e = *state;
	char *host = host_file("/proc/self/smaps_rollup"), *ours;

	assert_same_shape(host, view(e, "smaps_rollup"));
	free(host);

	/* status: the memory lines, VmPeak to HugetlbPages, in the same order and columns. */
	host = host_file("/proc/self/status");
	ours = lines_between(host, "VmPeak:", "HugetlbPages:");
	free(host);
	host = ours;
	ours = lines_between(view(e, "status"), "VmPeak:", "HugetlbPages:");
	assert_same_shape(host, ours);
	free(host);
	free(ours);
}

/* The host's [heap] line and ours put the name in the same column. */
static void test_host_maps_heap_column(void **state)
{
	struct env *e = *state;
	unsigned long brk = BRK_BASE;
	char *maps = host_file("/proc/self/maps"), *host, *ours, *heap;

	heap = strstr(maps, "[heap]");
	if (!heap) {
		free(maps);
		skip();
	}
	while (heap > maps && heap[-1] != '\n')
		heap--;
	host = strndup(heap, strcspn(heap, "\n") + 1);
	free(maps);
	assert_int_equal(sm_brk(e->mm, brk + PAGE_SIZE), brk + PAGE_SIZE);
	ours = block_of(view(e, "maps"), brk);
	assert_non_null(ours);
	assert_same_shape(host, ours);
	assert_int_equal(sm_brk(e->mm, brk), brk);
	free(host);
	free(ours);
}

static void test_host_pagemap_flags(void **state)
{
	struct env *e = *state;
	char *a = host_mapping();
	uint64_t host[NPAGES], ours[NPAGES];
	int fd = open("/proc/self/pagemap", O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, host, sizeof(host), (off_t)((uintptr_t)a / PAGE_SIZE * 8)),
			 sizeof(host));
	close(fd);
	assert_int_equal(sm_pagemap_read(e->mm, BASE, ours, NPAGES), NPAGES);
	for (int i = 0; i < NPAGES; i++)
		assert_int_equal(PM_FLAGS(ours[i]), PM_FLAGS(host[i]));
	munmap(a - PAGE_SIZE, (NPAGES + 2) * PAGE_SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maps),
		cmocka_unit_test(test_read_api),
		cmocka_unit_test(test_smaps_values),
		cmocka_unit_test(test_status_values),
		cmocka_unit_test(test_pagemap),
		cmocka_unit_test(test_shared_after_fork),
		cmocka_unit_test(test_heap_and_thp),
		cmocka_unit_test(test_host_smaps),
		cmocka_unit_test(test_host_rollup_and_status),
		cmocka_unit_test(test_host_maps_heap_column),
		cmocka_unit_test(test_host_pagemap_flags),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
