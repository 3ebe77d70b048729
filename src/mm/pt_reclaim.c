/*
 * Empty page-table reclaim. MADV_DONTNEED leaves a range's PTE tables in
 * place, full of none entries: a sparse process can accumulate gigabytes of
 * them. When a zap covered a table's whole 2 MiB span, we free the table.
 *
 * Locking: mmap_lock for reading (faults run concurrently). We take the
 * PMD lock, then the table's own lock, recheck every entry (a fault may
 * have filled one since the zap let go of the table), clear the PMD entry
 * and hand the table to the mmu_gather, which frees it after an RCU grace
 * period: a lockless walker (the CPU's) that read the old PMD entry, and a
 * locker in pte_offset_map_lock that is about to find it changed, both run
 * inside RCU read-side sections.
 */
#include "mm/memory.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/pt_reclaim.h"

bool try_to_free_pte(struct mmu_gather *tlb, struct sm_mm *mm, pte_t *pmdp)
{
	spinlock_t *pml = pmd_lockptr(mm, pmdp);
	struct page *tp = NULL;
	pte_t pmd;

	spin_lock(pml);
	pmd = ptep_get(pmdp);
	if (pmd & _PAGE_PRESENT) {
		tp = table_page(mm, pmd);
		spin_lock(&tp->ptl);
		if (table_empty(table_of(mm, pmd)))
			set_pte(pmdp, 0);
		else
			tp = NULL;
		spin_unlock(&table_page(mm, pmd)->ptl);
	}
	spin_unlock(pml);
	if (tp)
		tlb_remove_table(tlb, tp);
	return tp != NULL;
}

void reclaim_pt_range(struct mmu_gather *tlb, struct sm_mm *mm, unsigned long start,
		      unsigned long end)
{
	unsigned long addr = (start + PMD_SIZE - 1) & PMD_MASK;
	pte_t *pmdp;

	while (addr < end && addr + PMD_SIZE <= end && (pmdp = pmd_next_table(mm, &addr, end))) {
		if (addr + PMD_SIZE > end)
			break;
		try_to_free_pte(tlb, mm, pmdp);
		addr += PMD_SIZE;
	}
}
