/*
 * Page tables: allocation of the four levels and VmPTE accounting, the
 * walker's accessed/dirty updates and TLB permission caching, and
 * free_pgtables honouring its floor and ceiling with RCU-deferred freeing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <urcu.h>
#include "base/rcu.h"
#include "mm/mmu_gather.h"
#include "mm/page_alloc.h"
#include "mm/pgtable.h"

struct env {
	struct sm_machine *m;
	struct sm_mm *mm;
};

static int setup(void **state)
{
	static struct env e;
	struct sm_config cfg = { .ram_bytes = 64 << 20 };

	e.m = sm_machine_create(&cfg);
	e.mm = sm_mm_create(e.m);
	*state = &e;
	return e.m && e.mm ? 0 : -1;
}

static int teardown(void **state)
{
	struct env *e = *state;

	sm_mm_destroy(e->mm);
	sm_machine_destroy(e->m);
	return 0;
}

static pte_t *map_one(struct sm_mm *mm, unsigned long addr, pte_t val)
{
	spinlock_t *ptl;
	pte_t *ptep = pte_alloc_map_lock(mm, addr, &ptl);

	assert_non_null(ptep);
	set_pte(ptep, val);
	spin_unlock(ptl);
	return ptep;
}

static void test_levels_and_accounting(void **state)
{
	struct env *e = *state;
	struct sm_mm *mm = e->mm;

	assert_int_equal(mm_pgtable_pages(mm), 0);
	map_one(mm, 0x400000, 0);
	assert_int_equal(mm_pgtable_pages(mm), 3);        /* PUD, PMD, PTE */
	map_one(mm, 0x400000 + PMD_SIZE, 0);
	assert_int_equal(mm_pgtable_pages(mm), 4);        /* one more PTE table */
	map_one(mm, 0x400000 + PUD_SIZE, 0);
	assert_int_equal(mm_pgtable_pages(mm), 6);        /* PMD + PTE */
	assert_non_null(pmd_off(mm, 0x400000));
	assert_null(pmd_off(mm, 1ul << 40));

	struct mmu_gather tlb;
	struct sm_machine_stats before, after;

	sm_machine_stats(e->m, &before);
	tlb_gather_mmu(&tlb, mm);
	/* Both PTE tables go, and the first PMD table with them; the ceiling
	 * keeps the PUD table that also covers 0x400000 + PUD_SIZE. */
	free_pgtables(&tlb, mm, 0x400000, 0x400000 + 2 * PMD_SIZE, 0, 0x400000 + PUD_SIZE);
	tlb_finish_mmu(&tlb);
	assert_int_equal(mm_pgtable_pages(mm), 3);
	assert_null(pmd_off(mm, 0x400000));
	assert_non_null(pmd_off(mm, 0x400000 + PUD_SIZE));
	rcu_barrier();
	sm_machine_stats(e->m, &after);
	assert_int_equal(after.free_frames, before.free_frames + 3);
	assert_int_equal(after.pgtable_frames, before.pgtable_frames - 3);

	/* A floor inside the PTE table's span keeps it. */
	map_one(mm, 0x400000, 0);
	tlb_gather_mmu(&tlb, mm);
	free_pgtables(&tlb, mm, 0x500000, 0x600000, 0x401000, 0);
	tlb_finish_mmu(&tlb);
	assert_non_null(pmd_off(mm, 0x400000));
	assert_int_equal(mm_pgtable_pages(mm), 5);

	tlb_gather_mmu(&tlb, mm);
	free_pgtables(&tlb, mm, 0, TASK_SIZE, 0, 0);
	tlb_finish_mmu(&tlb);
	assert_int_equal(mm_pgtable_pages(mm), 0);
}

static void test_walker_sets_accessed_dirty(void **state)
{
	struct env *e = *state;
	struct sm_mm *mm = e->mm;
	struct sm_cpu *c = sm_cpu_create(e->m);
	struct page *pg = alloc_pages(e->m, 0, __GFP_ZERO);
	unsigned long va = 0x7000000000ul;
	pte_t *ptep = map_one(mm, va, pfn_pte(page_to_pfn(e->m, pg),
					      _PAGE_PRESENT | _PAGE_USER | _PAGE_RW));

	sm_rcu_thread_online();
	sm_cpu_switch_mm(c, mm);
	tlb_enter(c->hw);
	assert_non_null(tlb_fill(c->hw, &e->m->ram, &mm->pmap, va, false));
	assert_true(pte_young(ptep_get(ptep)));
	assert_false(pte_dirty(ptep_get(ptep)));
	/* A clean fill may not be written through: the write re-walks. */
	assert_null(tlb_lookup(c->hw, mm->pmap.asid, va, true));
	assert_non_null(tlb_lookup(c->hw, mm->pmap.asid, va, false));
	assert_non_null(tlb_fill(c->hw, &e->m->ram, &mm->pmap, va, true));
	assert_true(pte_dirty(ptep_get(ptep)));
	assert_non_null(tlb_lookup(c->hw, mm->pmap.asid, va, true));
	/* Another address space's tag never hits. */
	assert_null(tlb_lookup(c->hw, mm->pmap.asid + 1, va, false));
	tlb_exit(c->hw);

	/* Write-protect and shoot down: the entry is gone. */
	ptep_clear_bits(ptep, _PAGE_RW);
	tlb_shootdown(&e->m->cpus, &mm->pmap, va, va + PAGE_SIZE, NULL);
	tlb_enter(c->hw);
	assert_null(tlb_lookup(c->hw, mm->pmap.asid, va, false));
	assert_null(tlb_fill(c->hw, &e->m->ram, &mm->pmap, va, true));
	tlb_exit(c->hw);

	set_pte(ptep, 0);
	sm_cpu_switch_mm(c, NULL);
	sm_cpu_destroy(c);
	__atomic_store_n(&pg->refcount, 0, __ATOMIC_RELAXED);
	free_pages(e->m, pg, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_levels_and_accounting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walker_sets_accessed_dirty, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
