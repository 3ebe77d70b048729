/* Page-table pages: allocation, population of the four levels, their locks. */
#ifndef SM_MM_PGTABLE_H
#define SM_MM_PGTABLE_H

#include "mm/mm_types.h"

struct mmu_gather;

int  pgd_alloc(struct sm_mm *mm);
void pgd_free(struct sm_mm *mm);

static inline pte_t *table_of(struct sm_mm *mm, pte_t entry)
{
	return pfn_to_virt(&mm->machine->ram, pte_pfn(entry));
}
static inline struct page *table_page(struct sm_mm *mm, pte_t entry)
{
	return pfn_to_page(mm->machine, pte_pfn(entry));
}

/* The PMD entry covering addr, allocating PUD/PMD tables as needed; NULL on ENOMEM. */
pte_t *pmd_alloc(struct sm_mm *mm, unsigned long addr);
/* The PMD entry covering addr, or NULL if an upper table is missing. */
pte_t *pmd_off(struct sm_mm *mm, unsigned long addr);

/* The PMD lock guards the entries of the PMD table holding pmdp. */
spinlock_t *pmd_lockptr(struct sm_mm *mm, pte_t *pmdp);

/* Ensure a PTE table under *pmdp; 0 or -ENOMEM. */
int pte_alloc(struct sm_mm *mm, pte_t *pmdp);
/* Map the PTE for addr under *pmdp and take its table's lock; NULL if the
 * PMD entry holds no table. */
pte_t *pte_offset_map_lock(struct sm_mm *mm, pte_t *pmdp, unsigned long addr, spinlock_t **ptl);
/* pmd_off, then pte_offset_map_lock, for a walker holding no mmap_lock of
 * mm (rmap walks); NULL if no table maps addr. */
pte_t *walk_pte_lock(struct sm_mm *mm, unsigned long addr, spinlock_t **ptl);
/* Allocate missing levels, then map and lock; NULL on ENOMEM. */
pte_t *pte_alloc_map_lock(struct sm_mm *mm, unsigned long addr, spinlock_t **ptl);

/* Free the page tables that only covered [start, end), without touching any
 * table that also maps [floor, ceiling)'s outside (ceiling 0 = no limit). */
void free_pgtables(struct mmu_gather *tlb, struct sm_mm *mm, unsigned long start,
		   unsigned long end, unsigned long floor, unsigned long ceiling);
/* Exit: free every table below the PGD (the caller frees the PGD). */
void free_all_pgtables(struct sm_mm *mm);

long mm_pgtable_pages(struct sm_mm *mm);
bool table_empty(const pte_t *t);

#endif
