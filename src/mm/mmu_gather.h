/* Batched TLB flushing and freeing: see mmu_gather.c. */
#ifndef SM_MM_MMU_GATHER_H
#define SM_MM_MMU_GATHER_H

#include "mm/mm_types.h"

#define MMU_GATHER_BATCH 256

struct gathered_page {
	struct page *page;    /* a folio's head */
	int refs;             /* references to drop after the flush */
	struct page *delay_rmap;   /* non-NULL: first of `refs` pages whose mapcounts
				    * drop after the flush (a dirty file folio) */
};

struct mmu_gather {
	struct sm_mm *mm;
	bool fullmm;                 /* exit: no CPU runs the mm; flush once at the end */
	unsigned long start, end;    /* range whose translations must be flushed */
	bool delayed_rmap;           /* a gathered page waits for its rmap removal */
	unsigned nr;
	struct gathered_page pages[MMU_GATHER_BATCH];
	struct list_head tables;     /* page-table pages waiting for a grace period */
	unsigned nr_tables;
};

void tlb_gather_mmu(struct mmu_gather *tlb, struct sm_mm *mm);
void tlb_gather_mmu_fullmm(struct mmu_gather *tlb, struct sm_mm *mm);

static inline void tlb_flush_pte_range(struct mmu_gather *tlb, unsigned long addr, unsigned long size)
{
	if (addr < tlb->start)
		tlb->start = addr;
	if (addr + size > tlb->end)
		tlb->end = addr + size;
}

/* Queue `refs` references of the folio headed by `page` to drop after the
 * flush. May flush and free the batch when it is full. */
void tlb_remove_folio_refs(struct mmu_gather *tlb, struct page *head, int refs);
/* Also leave the rmap of the nr pages from `page` (mapcounts) in place until
 * after the flush. The caller flushes (tlb_flush_mmu) before it releases the
 * PTE lock, so the folio stays mapped exactly as long as a TLB may hold it. */
void tlb_remove_folio_refs_delay_rmap(struct mmu_gather *tlb, struct page *head,
				      struct page *page, int nr);
/* Queue a page-table page (already unlinked) to free after the flush and a
 * grace period. */
void tlb_remove_table(struct mmu_gather *tlb, struct page *table);
/* Flush the gathered range on every CPU, then free what was gathered. */
void tlb_flush_mmu(struct mmu_gather *tlb);
void tlb_finish_mmu(struct mmu_gather *tlb);

/* Flush one range now (mprotect, COW): every CPU's entries are gone on return. */
void flush_tlb_range(struct sm_mm *mm, unsigned long start, unsigned long end);

#endif
