/*
 * Empty PTE tables go away when MADV_DONTNEED empties them (Linux 6.14),
 * tables only partly covered or still holding entries stay, faults after
 * reclaim rebuild them, and the freed frames return once RCU lets them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <cmocka.h>
#include <urcu.h>
#include "mm/pgtable.h"

static void touch(struct sm_cpu *c, unsigned long a, unsigned long len, unsigned long step)
{
	for (unsigned long off = 0; off < len; off += step)
		assert_int_equal(sm_write(c, a + off, &off, sizeof(off)), 0);
}

static void test_dontneed_frees_tables(void **state)
{
	struct sm_config cfg = { .ram_bytes = 256 << 20, .flags = SM_CFG_POISON_FREED };
	struct sm_machine *m = sm_machine_create(&cfg);
	struct sm_mm *mm = sm_mm_create(m);
	struct sm_cpu *c = sm_cpu_create(m);
	unsigned long len = 64ul << 20;
	struct sm_machine_stats st0, st1;
	long a;

	(void)state;
	sm_cpu_switch_mm(c, mm);
	a = sm_mmap(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(a > 0 && (a & (PMD_SIZE - 1)) == 0);
	touch(c, (unsigned long)a, len, PAGE_SIZE);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 32);   /* PUD, PMD, 32 PTE tables */

	/* Half a table past each end stays: only whole spans are freed. */
	assert_int_equal(sm_madvise(mm, a + PMD_SIZE / 2, len - PMD_SIZE, MADV_DONTNEED), 0);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 2);
	assert_int_equal(sm_mm_check(mm), 0);

	/* Faults rebuild a table; a table with one entry left survives. */
	touch(c, (unsigned long)a + 4 * PMD_SIZE, PMD_SIZE, PMD_SIZE / 2);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 3);
	assert_int_equal(sm_madvise(mm, a + 4 * PMD_SIZE, PAGE_SIZE, MADV_DONTNEED), 0);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 3);
	assert_int_equal(sm_madvise(mm, a + 4 * PMD_SIZE, PMD_SIZE, MADV_DONTNEED), 0);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 2);
	assert_int_equal(sm_mm_check(mm), 0);

	uint64_t v = 1;
	assert_int_equal(sm_read(c, a + 5 * PMD_SIZE, &v, 8), 0);
	assert_int_equal(v, 0);
	rcu_barrier();
	sm_machine_stats(m, &st0);
	assert_int_equal(sm_munmap(mm, a, len), 0);
	rcu_barrier();
	sm_machine_stats(m, &st1);
	assert_true(st1.free_frames > st0.free_frames);
	assert_int_equal(mm_pgtable_pages(mm), 0);
	sm_cpu_switch_mm(c, NULL);
	sm_cpu_destroy(c);
	sm_mm_destroy(mm);
	sm_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dontneed_frees_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
