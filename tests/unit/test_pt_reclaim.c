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
#include <unistd.h>
#include <cmocka.h>
#include <urcu.h>
#include "mm/memory.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/pt_reclaim.h"
#include "mm/vma.h"

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

	/* Half a table past each end stays: only whole spans are freed, by
	 * the zap itself (nobody holds a PMD lock). */
	assert_int_equal(sm_madvise(mm, a + PMD_SIZE / 2, len - PMD_SIZE, MADV_DONTNEED), 0);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 2);
	sm_machine_stats(m, &st0);
	assert_int_equal(st0.pt_zap_freed, 30);
	assert_int_equal(st0.pt_zap_rechecked, 0);
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

/* SM_CFG_NO_PT_RECLAIM_ON_ZAP: MADV_DONTNEED keeps its empty tables (Linux
 * before 6.14); SM_MADV_PT_RECLAIM still frees them. */
static void test_opt_out_keeps_tables(void **state)
{
	struct sm_config cfg = { .ram_bytes = 64 << 20,
				 .flags = SM_CFG_POISON_FREED | SM_CFG_NO_PT_RECLAIM_ON_ZAP };
	struct sm_machine *m = sm_machine_create(&cfg);
	struct sm_mm *mm = sm_mm_create(m);
	struct sm_cpu *c = sm_cpu_create(m);
	unsigned long len = 8ul << 20;
	struct sm_machine_stats st;
	long a;

	(void)state;
	sm_cpu_switch_mm(c, mm);
	a = sm_mmap(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(a > 0 && (a & (PMD_SIZE - 1)) == 0);
	touch(c, (unsigned long)a, len, PAGE_SIZE);
	assert_int_equal(sm_madvise(mm, a, len, MADV_DONTNEED), 0);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 4);
	sm_machine_stats(m, &st);
	assert_int_equal(st.pt_zap_freed + st.pt_zap_rechecked, 0);
	assert_int_equal(sm_mm_check(mm), 0);
	assert_int_equal(sm_madvise(mm, a, len, SM_MADV_PT_RECLAIM), 0);
	assert_int_equal(mm_pgtable_pages(mm), 0);
	assert_int_equal(sm_mm_check(mm), 0);
	sm_cpu_switch_mm(c, NULL);
	sm_cpu_destroy(c);
	sm_mm_destroy(mm);
	sm_machine_destroy(m);
}

/*
 * The zap frees a table it emptied only if the PMD lock is free at that
 * moment; when it is busy the table stays and is counted, and the locked
 * recheck (reclaim_pt_range) frees it. An entry the zap clears without a
 * folio (the zero page) leaves the table empty all the same.
 */
static void test_zap_pmd_lock_busy(void **state)
{
	struct sm_config cfg = { .ram_bytes = 64 << 20, .flags = SM_CFG_POISON_FREED };
	struct sm_machine *m = sm_machine_create(&cfg);
	struct sm_mm *mm = sm_mm_create(m);
	struct sm_cpu *c = sm_cpu_create(m);
	unsigned long len = 4ul << 20, a;
	struct zap_details d = { .reclaim_pt = true };
	struct vm_area_struct *vma;
	struct mmu_gather tlb;
	uint64_t v;
	spinlock_t *pml;

	(void)state;
	sm_cpu_switch_mm(c, mm);
	a = (unsigned long)sm_mmap(mm, 0, len, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true((a & (PMD_SIZE - 1)) == 0);
	touch(c, a, PMD_SIZE, 4 * PAGE_SIZE);
	assert_int_equal(sm_read(c, a + PAGE_SIZE, &v, 8), 0);     /* the zero page */
	touch(c, a + PMD_SIZE, PMD_SIZE, PMD_SIZE / 4);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 2);

	down_read(&mm->mmap_lock);
	pml = pmd_lockptr(mm, pmd_off(mm, a));
	vma = vma_lookup(mm, a);
	tlb_gather_mmu(&tlb, mm);
	spin_lock(pml);
	zap_page_range_details(&tlb, vma, a + PMD_SIZE, a + 2 * PMD_SIZE, &d);
	spin_unlock(pml);
	assert_int_equal(d.pt_missed, 1);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 2);
	reclaim_pt_range(&tlb, mm, a + PMD_SIZE, a + 2 * PMD_SIZE);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 1);
	d.pt_missed = 0;
	zap_page_range_details(&tlb, vma, a, a + PMD_SIZE, &d);
	assert_int_equal(d.pt_missed, 0);
	assert_int_equal(mm_pgtable_pages(mm), 2);
	tlb_finish_mmu(&tlb);
	up_read(&mm->mmap_lock);
	assert_int_equal(sm_mm_check(mm), 0);

	/* Faults rebuild what was freed. */
	touch(c, a, len, PMD_SIZE / 2);
	assert_int_equal(mm_pgtable_pages(mm), 2 + 2);
	assert_int_equal(sm_mm_check(mm), 0);
	sm_cpu_switch_mm(c, NULL);
	sm_cpu_destroy(c);
	sm_mm_destroy(mm);
	sm_machine_destroy(m);
}

/* One page in every 2 MiB of a sparse region, as the host test does. */
static struct sm_mm *sparse(struct sm_machine *m, struct sm_cpu *c, unsigned long len, long *a)
{
	struct sm_mm *mm = sm_mm_create(m);

	sm_cpu_switch_mm(c, mm);
	*a = sm_mmap(mm, 1ul << 44, len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	assert_int_equal(*a, 1ul << 44);   /* 1 GiB aligned: 4 PMD tables */
	touch(c, (unsigned long)*a, len, PMD_SIZE);
	assert_int_equal(sm_madvise(mm, *a, len, MADV_DONTNEED), 0);
	return mm;
}

static void test_request_and_scanner(void **state)
{
	struct sm_config cfg = { .ram_bytes = 256 << 20, .flags = SM_CFG_POISON_FREED };
	struct sm_machine *m = sm_machine_create(&cfg);
	struct sm_cpu *c = sm_cpu_create(m);
	unsigned long len = 4ul << 30;
	struct sm_pt_scanner_stats st;
	long a;

	(void)state;
	/* MADV_DONTNEED frees the PTE tables; the PMD tables stay (4 of them). */
	struct sm_mm *mm = sparse(m, c, len, &a);
	assert_int_equal(mm_pgtable_pages(mm), 1 + 4);
	assert_int_equal(sm_madvise(mm, a - PUD_SIZE, len + 2 * PUD_SIZE, SM_MADV_PT_RECLAIM), 0);
	assert_int_equal(mm_pgtable_pages(mm), 0);
	assert_int_equal(sm_mm_check(mm), 0);
	touch(c, (unsigned long)a, len, PUD_SIZE);
	assert_int_equal(sm_mm_check(mm), 0);

	/* The scanner does the same for an mm that opted in, and only for it. */
	struct sm_mm *other = sparse(m, c, len, &a);
	struct sm_mm *opted = sparse(m, c, len, &a);
	assert_int_equal(sm_mm_set_pt_reclaim(opted, 1), 0);
	struct sm_pt_scanner_config sc = { .interval_ms = 1, .pages_per_pass = 1ul << 24 };
	assert_int_equal(sm_pt_scanner(m, &sc), 0);
	for (int i = 0; i < 5000 && mm_pgtable_pages(opted) > 0; i++)
		usleep(1000);
	assert_int_equal(mm_pgtable_pages(opted), 0);
	assert_int_equal(mm_pgtable_pages(other), 1 + 4);
	/* Destroying an opted-in mm while the scanner runs is safe. */
	sm_cpu_switch_mm(c, NULL);
	sm_mm_destroy(opted);
	assert_int_equal(sm_pt_scanner(m, NULL), 0);
	/* Stopped: the pass that freed the tables has been counted. */
	sm_pt_scanner_stats(m, &st);
	assert_true(st.passes > 0 && st.tables_freed >= 5);
	sm_mm_destroy(other);
	sm_mm_destroy(mm);
	sm_cpu_destroy(c);
	sm_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dontneed_frees_tables),
		cmocka_unit_test(test_opt_out_keeps_tables),
		cmocka_unit_test(test_zap_pmd_lock_busy),
		cmocka_unit_test(test_request_and_scanner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
