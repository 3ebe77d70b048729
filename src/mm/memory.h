/* Page faults, and zapping the pages of a range. */
#ifndef SM_MM_MEMORY_H
#define SM_MM_MEMORY_H

#include "mm/mm_types.h"

struct mmu_gather;

#define FAULT_FLAG_WRITE 0x1u

#define VM_FAULT_OOM     0x1
#define VM_FAULT_SIGSEGV 0x2
#define VM_FAULT_SIGBUS  0x4   /* a file page beyond the end of the file */

pte_t vm_get_page_prot(unsigned long vm_flags);
/* Whether an access of this kind is allowed by the VMA (x86: any of R/W/X reads). */
bool vma_access_ok(const struct vm_area_struct *vma, bool write);

/* Resolve a fault at addr in vma. Precondition: mmap_lock held for reading,
 * vma contains addr and allows the access. 0 or VM_FAULT_*. */
int handle_mm_fault(struct vm_area_struct *vma, unsigned long addr, unsigned flags);

/* The struct page a present PTE maps, or NULL for special PFNs (zero page). */
struct page *vm_normal_page(struct sm_mm *mm, pte_t pte);

struct address_space;

/* What a zap is for (Linux's struct zap_details). */
struct zap_details {
	bool reclaim_pt;            /* free the PTE tables it empties whose whole
				     * 2 MiB span lies in the range (MADV_DONTNEED) */
	struct address_space *mapping;  /* unmap_mapping_range (truncate.c): only the
				     * PTEs mapping this file's cached folios go,
				     * COWed copies stay (Linux's even_cows = false);
				     * the caller holds the file's i_mmap_lock, which
				     * keeps the VMA and its mm, instead of the
				     * mmap_lock */
	unsigned long pt_freed;     /* out: tables emptied and freed */
	unsigned long pt_missed;    /* out: tables emptied but left in place because
				     * the PMD lock was busy (pt_reclaim rechecks them) */
};

/* Clear every PTE of [start, end) in vma, gathering pages into tlb.
 * Precondition: mmap_lock held (read suffices), or details->mapping set
 * and its i_mmap_lock held. */
void zap_page_range(struct mmu_gather *tlb, struct vm_area_struct *vma,
		    unsigned long start, unsigned long end);
void zap_page_range_details(struct mmu_gather *tlb, struct vm_area_struct *vma,
			    unsigned long start, unsigned long end, struct zap_details *details);

unsigned long folio_pte_batch(struct sm_machine *m, struct page *head, struct page *page,
			      const pte_t *ptep, pte_t pte, unsigned long max_nr,
			      bool *any_writable);
/* fork: copy the PTEs of [start, end) from src_vma's mm into dst_vma's.
 * 0 or -ENOMEM. Preconditions: both mmap_locks held for writing. */
int copy_page_range(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma);

/* Walk helper: the PMD entry of the next PTE table at or after *addrp and
 * below end (updating *addrp), or NULL. */
pte_t *pmd_next_table(struct sm_mm *mm, unsigned long *addrp, unsigned long end);

static inline unsigned long pmd_addr_end(unsigned long addr, unsigned long end)
{
	unsigned long b = (addr + PMD_SIZE) & PMD_MASK;

	return b - 1 < end - 1 ? b : end;
}

#endif
