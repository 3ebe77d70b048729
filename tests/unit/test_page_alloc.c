/*
 * Buddy allocator and per-CPU lists: splitting, merging back to the
 * original free lists, alignment, exhaustion, poison checking and the
 * per-CPU path. Calls the real internal functions (src/mm/page_alloc.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "mm/page_alloc.h"

static struct sm_machine *machine(size_t mib, unsigned flags)
{
	struct sm_config cfg = { .ram_bytes = mib << 20, .flags = flags };
	struct sm_machine *m = sm_machine_create(&cfg);

	assert_non_null(m);
	return m;
}

static void free_block(struct sm_machine *m, struct page *p, unsigned order)
{
	assert_int_equal(page_ref_count(p), 1);
	__atomic_store_n(&p->refcount, 0, __ATOMIC_RELAXED);
	free_pages(m, p, order);
}

static void test_split_and_merge(void **state)
{
	struct sm_machine *m = machine(64, 0);
	unsigned long before = nr_free_pages(m);
	unsigned long areas[NR_ORDERS];
	struct page *p[8];

	(void)state;
	for (unsigned o = 0; o < NR_ORDERS; o++)
		areas[o] = m->zone.area[o].nr;
	for (unsigned i = 0; i < 8; i++) {
		p[i] = alloc_pages(m, i, 0);
		assert_non_null(p[i]);
		/* A block of order i is aligned to 2^i frames. */
		assert_int_equal(page_to_pfn(m, p[i]) & ((1ul << i) - 1), 0);
		assert_false(page_is_free(m, page_to_pfn(m, p[i])));
	}
	assert_int_equal(nr_free_pages(m), before - 255);
	for (unsigned i = 0; i < 8; i++)
		free_block(m, p[i], i);
	assert_int_equal(nr_free_pages(m), before);
	/* Everything merged back: the free lists look as they did. */
	for (unsigned o = 0; o < NR_ORDERS; o++)
		assert_int_equal(m->zone.area[o].nr, areas[o]);
	sm_machine_destroy(m);
}

static void test_exhaustion_and_zeroing(void **state)
{
	struct sm_machine *m = machine(2, 0);
	unsigned long n = nr_free_pages(m), got = 0;
	struct page **all = calloc(n + 1, sizeof(*all));

	(void)state;
	while ((all[got] = alloc_pages(m, 0, __GFP_ZERO)) != NULL) {
		const char *b = page_address(m, all[got]);

		assert_int_equal(b[0] | b[PAGE_SIZE - 1], 0);
		memset(page_address(m, all[got]), 0xaa, PAGE_SIZE);
		got++;
	}
	assert_int_equal(got, n);
	assert_int_equal(nr_free_pages(m), 0);
	assert_null(alloc_pages(m, 3, 0));
	for (unsigned long i = 0; i < got; i++)
		free_block(m, all[i], 0);
	assert_int_equal(nr_free_pages(m), n);
	/* Freed dirty frames come back zeroed when asked to. */
	struct page *p = alloc_pages(m, 0, __GFP_ZERO);
	assert_int_equal(((char *)page_address(m, p))[100], 0);
	free_block(m, p, 0);
	free(all);
	sm_machine_destroy(m);
}

static void test_pcp_roundtrip(void **state)
{
	struct sm_machine *m = machine(64, SM_CFG_POISON_FREED);
	struct sm_cpu *c = sm_cpu_create(m);
	unsigned long before = nr_free_pages(m);
	struct page *p[PCP_HIGH + 100];

	(void)state;
	sm_cpu_switch_mm(c, NULL);   /* binds the CPU to this thread */
	for (unsigned i = 0; i < ARRAY_SIZE(p); i++) {
		p[i] = alloc_pages(m, 0, 0);
		assert_non_null(p[i]);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(p); i++)
		free_block(m, p[i], 0);
	assert_true(c->pcp.count <= PCP_HIGH);
	assert_int_equal(nr_free_pages(m), before);
	/* LIFO: the frame freed last is handed out first, still poisoned. */
	struct page *q = alloc_pages(m, 0, 0);
	assert_ptr_equal(q, p[ARRAY_SIZE(p) - 1]);
	free_block(m, q, 0);
	sm_cpu_destroy(c);
	assert_int_equal(nr_free_pages(m), before);
	sm_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_and_merge),
		cmocka_unit_test(test_exhaustion_and_zeroing),
		cmocka_unit_test(test_pcp_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
