/* Reclaiming empty page tables: see pt_reclaim.c. */
#ifndef SM_MM_PT_RECLAIM_H
#define SM_MM_PT_RECLAIM_H

#include "mm/mm_types.h"

struct mmu_gather;

/* Free the PTE tables whose whole 2 MiB span lies in [start, end) and that
 * hold only none entries. Precondition: mmap_lock held (read suffices). */
void reclaim_pt_range(struct mmu_gather *tlb, struct sm_mm *mm, unsigned long start,
		      unsigned long end);
/* The zap's fast path: the caller holds the lock ptl of the PTE table under
 * *pmdp and has emptied it. Clears the PMD entry if the PMD lock is free now
 * and returns the table's page for tlb_remove_table (after unlocking ptl);
 * NULL if the lock was busy. */
struct page *unlink_empty_pte_locked(struct sm_mm *mm, pte_t *pmdp, spinlock_t *ptl);
/* Free the PTE table under *pmdp if every entry is none; true if freed. */
bool try_to_free_pte(struct mmu_gather *tlb, struct sm_mm *mm, pte_t *pmdp);
/* SM_MADV_PT_RECLAIM. Takes the mmap_lock itself. */
long madvise_pt_reclaim(struct sm_mm *mm, unsigned long start, unsigned long end);
void pt_scanner_init(struct sm_machine *m);

#endif
