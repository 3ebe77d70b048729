/*
 * KSM, in the spirit of Linux's tools/testing/selftests/mm/ksm_functional_tests.c:
 * identical pages of several mms merge (pagemap shows one PFN), unmerging
 * gives each mapping its own page again, zero pages, PROT_NONE, fork of
 * merged memory, a write after merging never shows up in another mm, the
 * write fault's reuse against copy, merge-any, run = 2, and ksmd itself.
 * Every test runs with SM_CFG_CHECK_INVARIANTS and checks each mm too.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include "mm/ksm.h"
#include "mm/folio.h"
#include "mm/rmap.h"

#define PFN_MASK ((1ull << 55) - 1)
#define NPAGES 16

struct env {
	struct sm_machine *m;
	struct sm_cpu *c;
};

static struct env env_new(unsigned flags)
{
	struct sm_config cfg = { .ram_bytes = 128 << 20,
				 .flags = SM_CFG_POISON_FREED | SM_CFG_CHECK_INVARIANTS | flags };
	struct env e = { sm_machine_create(&cfg), NULL };

	assert_non_null(e.m);
	e.c = sm_cpu_create(e.m);
	return e;
}

static void env_free(struct env *e)
{
	sm_cpu_destroy(e->c);
	sm_machine_destroy(e->m);
}

static void fill_page(struct env *e, struct sm_mm *mm, unsigned long addr, unsigned char v)
{
	unsigned char buf[4096];

	memset(buf, v, sizeof(buf));
	sm_cpu_switch_mm(e->c, mm);
	assert_int_equal(sm_write(e->c, addr, buf, sizeof(buf)), 0);
}

static unsigned char read_byte(struct env *e, struct sm_mm *mm, unsigned long addr)
{
	unsigned char b = 0xee;

	sm_cpu_switch_mm(e->c, mm);
	assert_int_equal(sm_read(e->c, addr, &b, 1), 0);
	return b;
}

/* An mm with NPAGES private pages at `at`, page i filled with i + base. */
static struct sm_mm *mm_with_pages(struct env *e, unsigned long at, unsigned char base, int prot)
{
	struct sm_mm *mm = sm_mm_create(e->m);

	assert_int_equal(sm_mmap(mm, at, NPAGES * 4096ul, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), (long)at);
	for (int i = 0; i < NPAGES; i++)
		fill_page(e, mm, at + i * 4096ul, (unsigned char)(base + i));
	if (prot != (PROT_READ | PROT_WRITE))
		assert_int_equal(sm_mprotect(mm, at, NPAGES * 4096ul, prot), 0);
	assert_int_equal(sm_madvise(mm, at, NPAGES * 4096ul, MADV_MERGEABLE), 0);
	return mm;
}

static uint64_t pfn_at(struct sm_mm *mm, unsigned long addr)
{
	uint64_t e = 0;

	assert_int_equal(sm_pagemap_read(mm, addr, &e, 1), 1);
	return e & PFN_MASK;
}

/* A field of a /proc view, as a number. */
static long proc_field(struct sm_mm *mm, const char *view, const char *field)
{
	static char buf[1 << 16];
	long len = sm_proc_read(mm, view, buf, sizeof(buf));
	char *p;

	assert_true(len > 0 && len < (long)sizeof(buf));
	p = strstr(buf, field);
	assert_non_null(p);
	return strtol(p + strlen(field), NULL, 10);
}

static void merge(struct env *e)
{
	/* The first scan records checksums; the second merges. */
	assert_true(sm_ksm_scan(e->m, 2) >= 0);
}

static struct sm_ksm_stats stats(struct env *e)
{
	struct sm_ksm_stats st;

	sm_ksm_stats(e->m, &st);
	return st;
}

static void test_merge_across_mms(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x10000000;
	struct sm_mm *mm[3];
	struct sm_machine_stats ms0, ms1;

	(void)state;
	for (int i = 0; i < 3; i++)
		mm[i] = mm_with_pages(&e, at, 1, PROT_READ | PROT_WRITE);
	sm_machine_stats(e.m, &ms0);
	merge(&e);
	for (int p = 0; p < NPAGES; p++) {
		uint64_t pfn = pfn_at(mm[0], at + p * 4096ul);

		assert_int_equal(pfn_at(mm[1], at + p * 4096ul), pfn);
		assert_int_equal(pfn_at(mm[2], at + p * 4096ul), pfn);
		assert_int_equal(read_byte(&e, mm[2], at + p * 4096ul + 7), p + 1);
	}
	assert_int_equal(stats(&e).pages_shared, NPAGES);
	assert_int_equal(stats(&e).pages_sharing, 2 * NPAGES);
	assert_int_equal(stats(&e).pages_unshared, 0);
	assert_true(stats(&e).general_profit > 0);
	sm_machine_stats(e.m, &ms1);
	assert_int_equal(ms1.free_frames - ms0.free_frames, 2 * NPAGES);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(proc_field(mm[i], "ksm_stat", "ksm_merging_pages "), NPAGES);
		assert_int_equal(proc_field(mm[i], "ksm_stat", "ksm_rmap_items "), NPAGES);
		assert_int_equal(proc_field(mm[i], "smaps_rollup", "KSM:"), NPAGES * 4);
		assert_int_equal(proc_field(mm[i], "smaps_rollup", "Rss:"), NPAGES * 4);
		assert_int_equal(sm_mm_check(mm[i]), 0);
	}
	/* The rmap walk of a KSM page finds all three mappings. */
	struct page *kp = pfn_to_page(e.m, pfn_at(mm[0], at));
	assert_true(folio_test_ksm(kp));
	assert_int_equal(page_mapcount(kp), 3);
	for (int i = 0; i < 3; i++)
		sm_mm_destroy(mm[i]);
	/* The last mapping gone, the KSM pages went back too. */
	assert_int_equal(stats(&e).pages_shared, 0);
	assert_int_equal(stats(&e).stable_nodes, 0);
	env_free(&e);
}

static bool count_hit(const struct rmap_hit *hit, void *arg)
{
	(void)hit;
	++*(int *)arg;
	return true;
}

/* After merging, a write never shows up in another mm; with the page
 * mapped thrice it is copied. */
static void test_write_after_merge(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x20000000;
	struct sm_mm *a = mm_with_pages(&e, at, 9, PROT_READ | PROT_WRITE);
	struct sm_mm *b = mm_with_pages(&e, at, 9, PROT_READ | PROT_WRITE);
	struct sm_mm *c = mm_with_pages(&e, at, 9, PROT_READ | PROT_WRITE);
	struct sm_machine_stats ms0, ms1;
	uint64_t kpfn;
	int hits = 0;

	(void)state;
	merge(&e);
	kpfn = pfn_at(a, at);
	assert_int_equal(rmap_walk_anon(e.m, pfn_to_page(e.m, kpfn), count_hit, &hits), 3);
	sm_machine_stats(e.m, &ms0);
	fill_page(&e, b, at, 0x77);
	sm_machine_stats(e.m, &ms1);
	assert_int_equal(ms1.cow_bytes_copied - ms0.cow_bytes_copied, 4096);
	assert_int_equal(read_byte(&e, b, at), 0x77);
	assert_int_equal(read_byte(&e, a, at), 9);
	assert_int_equal(read_byte(&e, c, at + 4095), 9);
	assert_int_not_equal(pfn_at(b, at), kpfn);
	assert_int_equal(pfn_at(a, at), kpfn);
	/* Stale rmap items are dropped by the next scan, as in Linux. */
	assert_true(sm_ksm_scan(e.m, 1) >= 0);
	assert_int_equal(stats(&e).pages_sharing, 2 * NPAGES - 1);
	assert_int_equal(proc_field(b, "ksm_stat", "ksm_merging_pages "), NPAGES - 1);
	sm_mm_destroy(a);
	sm_mm_destroy(b);
	sm_mm_destroy(c);
	env_free(&e);
}

/* The write fault on a KSM page mapped by one PTE reuses it (no bytes
 * copied), unless SM_CFG_NO_KSM_REUSE; mapped twice, it copies. */
static void reuse_or_copy(bool reuse)
{
	struct env e = env_new(reuse ? 0 : SM_CFG_NO_KSM_REUSE);
	const unsigned long at = 0x30000000;
	struct sm_mm *a = mm_with_pages(&e, at, 3, PROT_READ | PROT_WRITE);
	struct sm_mm *b = mm_with_pages(&e, at, 3, PROT_READ | PROT_WRITE);
	struct sm_machine_stats ms0, ms1;
	uint64_t kpfn;

	merge(&e);
	kpfn = pfn_at(a, at);
	assert_int_equal(pfn_at(b, at), kpfn);
	/* Mapped twice: a copy. */
	sm_machine_stats(e.m, &ms0);
	fill_page(&e, a, at, 0x55);
	sm_machine_stats(e.m, &ms1);
	assert_int_equal(ms1.cow_bytes_copied - ms0.cow_bytes_copied, 4096);
	assert_int_equal(read_byte(&e, b, at), 3);
	/* Now mapped once, by b. */
	assert_int_equal(page_mapcount(pfn_to_page(e.m, kpfn)), 1);
	sm_machine_stats(e.m, &ms0);
	fill_page(&e, b, at, 0x66);
	sm_machine_stats(e.m, &ms1);
	assert_int_equal(ms1.cow_bytes_copied - ms0.cow_bytes_copied, reuse ? 0 : 4096);
	assert_int_equal(stats(&e).pages_reused, reuse ? 1 : 0);
	if (reuse)
		assert_int_equal(pfn_at(b, at), kpfn);
	else
		assert_int_not_equal(pfn_at(b, at), kpfn);
	assert_int_equal(read_byte(&e, b, at + 100), 0x66);
	assert_int_equal(read_byte(&e, a, at + 100), 0x55);
	/* A reused page is b's own: the next write needs no fault at all. */
	assert_int_equal(sm_mm_check(a), 0);
	assert_int_equal(sm_mm_check(b), 0);
	/* ksmd forgets the stale node and the items. */
	assert_true(sm_ksm_scan(e.m, 1) >= 0);
	assert_int_equal(stats(&e).pages_shared, NPAGES - 1);
	assert_int_equal(stats(&e).pages_sharing, NPAGES - 1);
	/* The pages can merge again. */
	fill_page(&e, a, at, 3);
	fill_page(&e, b, at, 3);
	merge(&e);
	assert_int_equal(pfn_at(a, at), pfn_at(b, at));
	assert_int_equal(stats(&e).pages_shared, NPAGES);
	sm_mm_destroy(a);
	sm_mm_destroy(b);
	env_free(&e);
}

static void test_reuse(void **state)
{
	(void)state;
	reuse_or_copy(true);
}

static void test_no_reuse(void **state)
{
	(void)state;
	reuse_or_copy(false);
}

/* Identical pages within one mm merge too; MADV_UNMERGEABLE gives each its
 * own page back. */
static void test_unmerge(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x40000000;
	struct sm_mm *mm = sm_mm_create(e.m);
	uint64_t pfn0;

	(void)state;
	assert_int_equal(sm_mmap(mm, at, NPAGES * 4096ul, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), (long)at);
	for (int i = 0; i < NPAGES; i++)
		fill_page(&e, mm, at + i * 4096ul, 0x42);
	merge(&e);
	assert_int_equal(stats(&e).pages_shared, 0);   /* not MADV_MERGEABLE yet */
	assert_int_equal(sm_madvise(mm, at, NPAGES * 4096ul, MADV_MERGEABLE), 0);
	merge(&e);
	pfn0 = pfn_at(mm, at);
	for (int i = 1; i < NPAGES; i++)
		assert_int_equal(pfn_at(mm, at + i * 4096ul), pfn0);
	assert_int_equal(stats(&e).pages_shared, 1);
	assert_int_equal(stats(&e).pages_sharing, NPAGES - 1);
	assert_int_equal(proc_field(mm, "smaps", "KSM:"), NPAGES * 4);
	/* Unmerge the second half. */
	assert_int_equal(sm_madvise(mm, at + NPAGES / 2 * 4096ul, NPAGES / 2 * 4096ul,
				    MADV_UNMERGEABLE), 0);
	for (int i = NPAGES / 2; i < NPAGES; i++) {
		assert_int_not_equal(pfn_at(mm, at + i * 4096ul), pfn0);
		for (int j = NPAGES / 2; j < i; j++)
			assert_int_not_equal(pfn_at(mm, at + i * 4096ul), pfn_at(mm, at + j * 4096ul));
		assert_int_equal(read_byte(&e, mm, at + i * 4096ul + 5), 0x42);
	}
	assert_int_equal(proc_field(mm, "smaps_rollup", "KSM:"), NPAGES / 2 * 4);
	assert_true(sm_ksm_scan(e.m, 1) >= 0);
	assert_int_equal(stats(&e).pages_sharing, NPAGES / 2 - 1);
	assert_int_equal(proc_field(mm, "ksm_stat", "ksm_merging_pages "), NPAGES / 2);
	/* Writes to unmerged pages reuse them: they are exclusive. */
	fill_page(&e, mm, at + (NPAGES - 1) * 4096ul, 1);
	assert_int_equal(read_byte(&e, mm, at), 0x42);
	assert_int_equal(sm_mm_check(mm), 0);
	sm_mm_destroy(mm);
	env_free(&e);
}

/* mremap moving merged memory breaks its KSM pages first, as Linux's
 * move_vma does: KSM's rmap items know pages by address, and a KSM page
 * turning up at the new address would be found by none of them. The VMA
 * stays mergeable, so they merge again there. */
static void test_mremap(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x48000000, to = 0x4c000000;
	struct sm_mm *a = mm_with_pages(&e, at, 3, PROT_READ | PROT_WRITE);
	struct sm_mm *b = mm_with_pages(&e, at, 3, PROT_READ | PROT_WRITE);

	(void)state;
	merge(&e);
	assert_int_equal(pfn_at(a, at), pfn_at(b, at));
	assert_int_equal(sm_mremap(a, at, NPAGES * 4096ul, NPAGES * 4096ul,
				   MREMAP_MAYMOVE | MREMAP_FIXED, to), (long)to);
	for (int i = 0; i < NPAGES; i++) {
		struct page *p = pfn_to_page(e.m, pfn_at(a, to + i * 4096ul));

		assert_false(folio_test_ksm(page_head(e.m, p)));
		assert_int_not_equal(pfn_at(a, to + i * 4096ul), pfn_at(b, at + i * 4096ul));
		assert_int_equal(read_byte(&e, a, to + i * 4096ul + 9), 3 + i);
	}
	assert_int_equal(proc_field(a, "smaps_rollup", "KSM:"), 0);
	assert_int_equal(sm_mm_check(a), 0);
	assert_int_equal(sm_mm_check(b), 0);
	merge(&e);
	for (int i = 0; i < NPAGES; i++)
		assert_int_equal(pfn_at(a, to + i * 4096ul), pfn_at(b, at + i * 4096ul));
	assert_int_equal(proc_field(a, "ksm_stat", "ksm_merging_pages "), NPAGES);
	/* A write after all this stays in its own mm. */
	fill_page(&e, a, to, 0x5a);
	assert_int_equal(read_byte(&e, b, at), 3);
	assert_int_equal(sm_mm_check(a), 0);
	assert_int_equal(sm_mm_check(b), 0);
	sm_mm_destroy(a);
	sm_mm_destroy(b);
	assert_int_equal(stats(&e).pages_shared, 0);
	env_free(&e);
}

/* max_page_sharing: a KSM page takes at most that many mappings; the next
 * identical pages make another KSM page (Linux's stable node chain). With
 * a limit of 4, ten mappings of each contents fill pages of 4, 4 and 2. */
static void test_max_page_sharing(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x58000000;
	struct sm_ksm_config cfg;
	struct sm_mm *mm[10];
	struct sm_ksm_stats st;

	(void)state;
	sm_ksm_config(e.m, &cfg);
	assert_int_equal(cfg.max_page_sharing, 256);
	cfg.max_page_sharing = 1;
	assert_int_equal(sm_ksm_set(e.m, &cfg), -EINVAL);
	cfg.max_page_sharing = 4;
	assert_int_equal(sm_ksm_set(e.m, &cfg), 0);
	for (int i = 0; i < 10; i++)
		mm[i] = mm_with_pages(&e, at, 1, PROT_READ | PROT_WRITE);
	merge(&e);
	st = stats(&e);
	assert_int_equal(st.pages_shared, 3 * NPAGES);
	assert_int_equal(st.pages_sharing, 7 * NPAGES);
	assert_int_equal(st.stable_node_chains, NPAGES);
	assert_int_equal(st.stable_node_dups, 3 * NPAGES);
	for (int p = 0; p < NPAGES; p++) {
		uint64_t pfn[10];
		int distinct = 0;

		for (int i = 0; i < 10; i++)
			pfn[i] = pfn_at(mm[i], at + p * 4096ul);
		for (int i = 0; i < 10; i++) {
			int seen = 0, same = 0;

			for (int j = 0; j < i; j++)
				seen |= pfn[j] == pfn[i];
			for (int j = 0; j < 10; j++)
				same += pfn[j] == pfn[i];
			distinct += !seen;
			assert_true(same <= 4);
			assert_true(folio_test_ksm(pfn_to_page(e.m, pfn[i])));
		}
		assert_int_equal(distinct, 3);
	}
	/* Pages are merged: the limit stays. */
	cfg.max_page_sharing = 8;
	assert_int_equal(sm_ksm_set(e.m, &cfg), -EBUSY);
	for (int i = 0; i < 10; i++)
		assert_int_equal(sm_mm_check(mm[i]), 0);
	/* Unmerging the mms of one page's mappings empties it: its contents
	 * keep two pages, still a chain. */
	for (int i = 8; i < 10; i++)
		assert_int_equal(sm_madvise(mm[i], at, NPAGES * 4096ul, MADV_UNMERGEABLE), 0);
	assert_true(sm_ksm_scan(e.m, 1) >= 0);
	st = stats(&e);
	assert_int_equal(st.pages_shared, 2 * NPAGES);
	assert_int_equal(st.pages_sharing, 6 * NPAGES);
	assert_int_equal(st.stable_node_chains, NPAGES);
	assert_int_equal(st.stable_node_dups, 2 * NPAGES);
	for (int i = 0; i < 10; i++)
		sm_mm_destroy(mm[i]);
	st = stats(&e);
	assert_int_equal(st.stable_node_chains, 0);
	assert_int_equal(st.stable_node_dups, 0);
	assert_int_equal(sm_ksm_set(e.m, &cfg), 0);
	sm_ksm_config(e.m, &cfg);
	assert_int_equal(cfg.max_page_sharing, 8);
	env_free(&e);
}

/* A 2 MiB region of MADV_HUGEPAGE memory: one large folio, every page
 * filled with `fill`, and with distinct, its index at offset 100. */
static void map_thp(struct env *e, struct sm_mm *mm, unsigned long at, int fill, bool distinct)
{
	assert_int_equal(sm_mmap(mm, at, 2ul << 20, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), (long)at);
	assert_int_equal(sm_madvise(mm, at, 2ul << 20, MADV_HUGEPAGE), 0);
	for (unsigned long i = 0; i < 512; i++) {
		uint16_t idx = (uint16_t)i;

		fill_page(e, mm, at + i * 4096, (unsigned char)fill);
		if (distinct)
			assert_int_equal(sm_write(e->c, at + i * 4096 + 100, &idx, sizeof(idx)), 0);
		/* One folio: the frames follow each other. */
		assert_int_equal(pfn_at(mm, at + i * 4096), pfn_at(mm, at) + i);
	}
	assert_int_equal(sm_madvise(mm, at, 2ul << 20, MADV_MERGEABLE), 0);
}

/* Pages of large folios merge: the folio is split first, as in Linux, and
 * only when a page of it merges. A folio a fork child maps too is left
 * whole until the child is gone. */
static void test_large_folios(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x70000000;   /* 2 MiB aligned */
	struct sm_machine_stats ms0, ms1, start;
	struct sm_mm *a, *b, *unique, *child;

	(void)state;
	sm_machine_stats(e.m, &start);
	a = sm_mm_create(e.m);
	b = sm_mm_create(e.m);
	unique = sm_mm_create(e.m);
	map_thp(&e, a, at, 0x11, true);
	map_thp(&e, b, at, 0x11, true);
	map_thp(&e, unique, at, 0x80, true);
	/* b's folio is mapped by a fork child too: it cannot be split yet. */
	assert_int_equal(sm_fork(b, &child), 0);
	sm_machine_stats(e.m, &ms0);
	merge(&e);
	sm_machine_stats(e.m, &ms1);
	assert_int_equal(ms1.folios_split - ms0.folios_split, 0);
	assert_int_equal(stats(&e).pages_shared, 0);
	sm_mm_destroy(child);
	merge(&e);
	sm_machine_stats(e.m, &ms1);
	assert_int_equal(ms1.folios_split - ms0.folios_split, 2);   /* a's and b's, not unique's */
	for (unsigned long i = 0; i < 512; i++) {
		uint64_t pfn = pfn_at(a, at + i * 4096);
		uint16_t idx = 0;

		assert_int_equal(pfn_at(b, at + i * 4096), pfn);
		assert_true(folio_test_ksm(pfn_to_page(e.m, pfn)));
		sm_cpu_switch_mm(e.c, b);
		assert_int_equal(sm_read(e.c, at + i * 4096 + 100, &idx, sizeof(idx)), 0);
		assert_int_equal(idx, i);
		assert_int_equal(pfn_at(unique, at + i * 4096), pfn_at(unique, at) + i);
	}
	assert_int_equal(stats(&e).pages_shared, 512);
	assert_int_equal(stats(&e).pages_sharing, 512);
	assert_int_equal(sm_mm_check(a), 0);
	assert_int_equal(sm_mm_check(b), 0);
	assert_int_equal(sm_mm_check(unique), 0);
	/* A write copies and stays in its mm. */
	fill_page(&e, a, at + 5 * 4096, 0xee);
	assert_int_equal(read_byte(&e, b, at + 5 * 4096), 0x11);
	assert_int_equal(sm_mm_check(a), 0);
	sm_mm_destroy(a);
	sm_mm_destroy(b);
	sm_mm_destroy(unique);
	assert_true(sm_ksm_scan(e.m, 1) >= 0);
	assert_int_equal(stats(&e).pages_shared, 0);
	sm_machine_stats(e.m, &ms1);
	assert_int_equal(ms1.free_frames, start.free_frames);
	env_free(&e);
}

/* An all-alike large folio: its own pages are each other's duplicates. */
static void test_large_folio_within(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x72000000;
	struct sm_mm *mm = sm_mm_create(e.m);
	struct sm_machine_stats ms0, ms1;

	(void)state;
	sm_machine_stats(e.m, &ms0);
	map_thp(&e, mm, at, 0x33, false);
	merge(&e);
	sm_machine_stats(e.m, &ms1);
	assert_int_equal(ms1.folios_split - ms0.folios_split, 1);
	/* Two KSM pages of max_page_sharing (256) mappings each. */
	assert_int_equal(stats(&e).pages_shared, 2);
	assert_int_equal(stats(&e).pages_sharing, 510);
	assert_int_equal(stats(&e).stable_node_chains, 1);
	assert_int_equal(proc_field(mm, "smaps_rollup", "KSM:"), 2048);
	assert_int_equal(proc_field(mm, "smaps_rollup", "Rss:"), 2048);
	assert_int_equal(sm_mm_check(mm), 0);
	for (unsigned long i = 0; i < 512; i += 37)
		assert_int_equal(read_byte(&e, mm, at + i * 4096 + 1), 0x33);
	sm_mm_destroy(mm);
	env_free(&e);
}

/* Splitting a large folio gives back its pages that hold only zeros: they
 * map the zero page, as on Linux since 6.12 (tests/diff/ksm.c shows the
 * host doing it). */
static void test_large_folio_zero_pages(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x74000000;
	struct sm_mm *mm = sm_mm_create(e.m);
	struct sm_machine_stats ms0, ms1;
	uint64_t zero_pfn;

	(void)state;
	assert_int_equal(sm_mmap(mm, at - 4096, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				 -1, 0), (long)(at - 4096));
	read_byte(&e, mm, at - 4096);
	zero_pfn = pfn_at(mm, at - 4096);
	map_thp(&e, mm, at, 0x44, true);
	for (unsigned long i = 10; i < 20; i++)
		fill_page(&e, mm, at + i * 4096, 0);
	sm_machine_stats(e.m, &ms0);
	merge(&e);
	sm_machine_stats(e.m, &ms1);
	assert_int_equal(ms1.folios_split - ms0.folios_split, 1);
	assert_int_equal(ms1.free_frames - ms0.free_frames, 10);
	for (unsigned long i = 0; i < 512; i++) {
		if (i >= 10 && i < 20)
			assert_int_equal(pfn_at(mm, at + i * 4096), zero_pfn);
		else
			assert_int_not_equal(pfn_at(mm, at + i * 4096), zero_pfn);
	}
	assert_int_equal(stats(&e).pages_shared, 0);
	assert_int_equal(proc_field(mm, "status", "RssAnon:"), (512 - 10) * 4);
	assert_int_equal(sm_mm_check(mm), 0);
	/* A write to one of them faults a page in again. */
	fill_page(&e, mm, at + 12 * 4096, 0x12);
	assert_int_equal(read_byte(&e, mm, at + 12 * 4096 + 5), 0x12);
	assert_int_equal(read_byte(&e, mm, at + 13 * 4096 + 5), 0);
	assert_int_equal(sm_mm_check(mm), 0);
	sm_mm_destroy(mm);
	env_free(&e);
}

/* use_zero_pages: zero-filled pages map the zero page; unmerging gives each
 * a page of its own again. */
static void test_zero_pages(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x50000000;
	struct sm_ksm_config cfg;
	struct sm_mm *mm;
	uint64_t zero_pfn;

	(void)state;
	sm_ksm_config(e.m, &cfg);
	cfg.use_zero_pages = 1;
	assert_int_equal(sm_ksm_set(e.m, &cfg), 0);
	mm = mm_with_pages(&e, at, 0, PROT_READ | PROT_WRITE);
	for (int i = 0; i < NPAGES; i++)
		fill_page(&e, mm, at + i * 4096ul, 0);
	assert_int_equal(sm_mmap(mm, at + NPAGES * 4096ul, 4096, PROT_READ,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), (long)(at + NPAGES * 4096ul));
	read_byte(&e, mm, at + NPAGES * 4096ul);
	zero_pfn = pfn_at(mm, at + NPAGES * 4096ul);
	merge(&e);
	assert_int_equal(stats(&e).ksm_zero_pages, NPAGES);
	assert_int_equal(proc_field(mm, "ksm_stat", "ksm_zero_pages "), NPAGES);
	assert_int_equal(proc_field(mm, "status", "RssAnon:"), 0);
	for (int i = 0; i < NPAGES; i++)
		assert_int_equal(pfn_at(mm, at + i * 4096ul), zero_pfn);
	assert_int_equal(sm_mm_check(mm), 0);
	/* Unmerge half, write one of the rest, unmap another. */
	assert_int_equal(sm_madvise(mm, at, NPAGES / 2 * 4096ul, MADV_UNMERGEABLE), 0);
	assert_int_equal(stats(&e).ksm_zero_pages, NPAGES / 2);
	/* Each unmerged one got a fresh page, as on Linux (its RSS grows). */
	assert_int_equal(proc_field(mm, "status", "RssAnon:"), NPAGES / 2 * 4);
	for (int i = 0; i < NPAGES / 2; i++) {
		assert_int_not_equal(pfn_at(mm, at + i * 4096ul), zero_pfn);
		assert_int_equal(read_byte(&e, mm, at + i * 4096ul + 100), 0);
	}
	assert_int_equal(sm_mm_check(mm), 0);
	fill_page(&e, mm, at + (NPAGES - 1) * 4096ul, 0x10);
	assert_int_equal(sm_munmap(mm, at + (NPAGES - 2) * 4096ul, 4096), 0);
	assert_int_equal(stats(&e).ksm_zero_pages, NPAGES / 2 - 2);
	assert_int_equal(proc_field(mm, "ksm_stat", "ksm_zero_pages "), NPAGES / 2 - 2);
	assert_int_equal(read_byte(&e, mm, at + (NPAGES - 1) * 4096ul + 9), 0x10);
	assert_int_equal(read_byte(&e, mm, at + 9), 0);
	/* A fork child's zero pages are not KSM's. */
	struct sm_mm *child;
	assert_int_equal(sm_fork(mm, &child), 0);
	assert_int_equal(proc_field(child, "ksm_stat", "ksm_zero_pages "), 0);
	sm_mm_destroy(child);
	sm_mm_destroy(mm);
	assert_int_equal(stats(&e).ksm_zero_pages, 0);
	env_free(&e);
}

/* PROT_NONE pages merge, and unmerge. */
static void test_prot_none(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x60000000;
	struct sm_mm *mm = sm_mm_create(e.m);

	(void)state;
	assert_int_equal(sm_mmap(mm, at, NPAGES * 4096ul, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), (long)at);
	for (int i = 0; i < NPAGES; i++)
		fill_page(&e, mm, at + i * 4096ul, 0x11);
	assert_int_equal(sm_mprotect(mm, at, NPAGES * 4096ul, PROT_NONE), 0);
	assert_int_equal(sm_madvise(mm, at, NPAGES * 4096ul, MADV_MERGEABLE), 0);
	merge(&e);
	assert_int_equal(proc_field(mm, "ksm_stat", "ksm_merging_pages "), NPAGES);
	assert_int_equal(pfn_at(mm, at), pfn_at(mm, at + 4096));
	assert_int_equal(sm_madvise(mm, at + NPAGES / 2 * 4096ul, NPAGES / 2 * 4096ul,
				    MADV_UNMERGEABLE), 0);
	for (int i = NPAGES / 2 + 1; i < NPAGES; i++)
		assert_int_not_equal(pfn_at(mm, at + i * 4096ul), pfn_at(mm, at + (i - 1) * 4096ul));
	assert_int_equal(sm_mprotect(mm, at, NPAGES * 4096ul, PROT_READ | PROT_WRITE), 0);
	fill_page(&e, mm, at, 0x22);
	fill_page(&e, mm, at + (NPAGES - 1) * 4096ul, 0x33);
	assert_int_equal(read_byte(&e, mm, at + 4096), 0x11);
	assert_int_equal(read_byte(&e, mm, at + (NPAGES - 2) * 4096ul), 0x11);
	assert_int_equal(sm_mm_check(mm), 0);
	sm_mm_destroy(mm);
	env_free(&e);
}

/* Fork of merged memory: the child maps the KSM pages; writes on either
 * side stay on that side; the child takes part in KSM too. */
static void test_fork(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x70000000;
	struct sm_mm *a = mm_with_pages(&e, at, 5, PROT_READ | PROT_WRITE);
	struct sm_mm *b = mm_with_pages(&e, at, 5, PROT_READ | PROT_WRITE);
	struct sm_mm *child;
	uint64_t kpfn;
	int hits = 0;

	(void)state;
	merge(&e);
	kpfn = pfn_at(a, at);
	assert_int_equal(sm_fork(a, &child), 0);
	assert_int_equal(pfn_at(child, at), kpfn);
	assert_int_equal(page_mapcount(pfn_to_page(e.m, kpfn)), 3);
	assert_int_equal(rmap_walk_anon(e.m, pfn_to_page(e.m, kpfn), count_hit, &hits), 3);
	assert_int_equal(proc_field(child, "smaps_rollup", "KSM:"), NPAGES * 4);
	fill_page(&e, child, at, 0x99);
	assert_int_equal(read_byte(&e, a, at), 5);
	assert_int_equal(read_byte(&e, b, at), 5);
	fill_page(&e, a, at + 4096, 0x98);
	assert_int_equal(read_byte(&e, child, at + 4096), 6);
	assert_int_equal(read_byte(&e, b, at + 4096), 6);
	/* The child is scanned: its KSM pages get rmap items of their own. */
	assert_true(sm_ksm_scan(e.m, 2) >= 0);
	assert_int_equal(proc_field(child, "ksm_stat", "ksm_merging_pages "), NPAGES - 1);
	assert_int_equal(sm_mm_check(child), 0);
	assert_int_equal(sm_mm_check(a), 0);
	sm_mm_destroy(a);
	sm_mm_destroy(child);
	sm_mm_destroy(b);
	env_free(&e);
}

/* PR_SET_MEMORY_MERGE: every VMA, also those mapped later. */
static void test_merge_any(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x80000000;
	struct sm_mm *mm = sm_mm_create(e.m);
	char buf[8192];

	(void)state;
	assert_int_equal(sm_mm_set_ksm_merge_any(mm, 1), 0);
	assert_int_equal(sm_mmap(mm, at, 4 * 4096ul, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), (long)at);
	for (int i = 0; i < 4; i++)
		fill_page(&e, mm, at + i * 4096ul, 0x31);
	assert_true(sm_proc_read(mm, "smaps", buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, " mg"));
	assert_true(sm_proc_read(mm, "ksm_stat", buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "ksm_merge_any: yes\nksm_mergeable: yes\n"));
	merge(&e);
	assert_int_equal(proc_field(mm, "ksm_stat", "ksm_merging_pages "), 4);
	assert_int_equal(sm_mm_set_ksm_merge_any(mm, 0), 0);
	assert_int_not_equal(pfn_at(mm, at), pfn_at(mm, at + 4096));
	assert_true(sm_proc_read(mm, "ksm_stat", buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "ksm_merge_any: no\nksm_mergeable: no\n"));
	sm_mm_destroy(mm);
	env_free(&e);
}

/* run = 2 unmerges everything; bad knobs are refused. */
static void test_run2_and_knobs(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0x90000000;
	struct sm_mm *a = mm_with_pages(&e, at, 7, PROT_READ | PROT_WRITE);
	struct sm_mm *b = mm_with_pages(&e, at, 7, PROT_READ | PROT_WRITE);
	struct sm_ksm_config cfg;

	(void)state;
	sm_ksm_config(e.m, &cfg);
	assert_int_equal(cfg.run, 0);
	assert_int_equal(cfg.pages_to_scan, 100);
	assert_int_equal(cfg.sleep_millisecs, 20);
	cfg.run = 3;
	assert_int_equal(sm_ksm_set(e.m, &cfg), -EINVAL);
	cfg.run = 0;
	cfg.use_zero_pages = 2;
	assert_int_equal(sm_ksm_set(e.m, &cfg), -EINVAL);
	merge(&e);
	assert_int_equal(stats(&e).pages_shared, NPAGES);
	cfg.use_zero_pages = 0;
	cfg.run = 2;
	assert_int_equal(sm_ksm_set(e.m, &cfg), 0);
	assert_int_not_equal(pfn_at(a, at), pfn_at(b, at));
	assert_int_equal(stats(&e).pages_shared, 0);
	assert_int_equal(stats(&e).pages_sharing, 0);
	assert_int_equal(proc_field(a, "ksm_stat", "ksm_rmap_items "), 0);
	assert_int_equal(proc_field(a, "smaps_rollup", "KSM:"), 0);
	assert_int_equal(read_byte(&e, b, at + 3 * 4096ul), 10);
	sm_mm_destroy(a);
	sm_mm_destroy(b);
	env_free(&e);
}

/* ksmd merges on its own, and exits cleanly with mms still registered. */
static void test_ksmd(void **state)
{
	struct env e = env_new(0);
	const unsigned long at = 0xa0000000;
	struct sm_mm *a = mm_with_pages(&e, at, 2, PROT_READ | PROT_WRITE);
	struct sm_mm *b = mm_with_pages(&e, at, 2, PROT_READ | PROT_WRITE);
	struct sm_ksm_config cfg = { .run = 1, .pages_to_scan = 10, .sleep_millisecs = 1 };

	(void)state;
	assert_int_equal(sm_ksm_set(e.m, &cfg), 0);
	for (int i = 0; i < 10000 && stats(&e).pages_sharing < NPAGES; i++)
		usleep(1000);
	assert_int_equal(stats(&e).pages_sharing, NPAGES);
	assert_int_equal(pfn_at(a, at + 4096), pfn_at(b, at + 4096));
	assert_true(stats(&e).full_scans >= 2);
	assert_int_equal(sm_mm_check(a), 0);
	sm_mm_destroy(a);
	fill_page(&e, b, at, 0x44);
	sm_mm_destroy(b);
	env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_across_mms),
		cmocka_unit_test(test_write_after_merge),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_no_reuse),
		cmocka_unit_test(test_unmerge),
		cmocka_unit_test(test_mremap),
		cmocka_unit_test(test_max_page_sharing),
		cmocka_unit_test(test_large_folios),
		cmocka_unit_test(test_large_folio_within),
		cmocka_unit_test(test_large_folio_zero_pages),
		cmocka_unit_test(test_zero_pages),
		cmocka_unit_test(test_prot_none),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_merge_any),
		cmocka_unit_test(test_run2_and_knobs),
		cmocka_unit_test(test_ksmd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
