/*
 * mmu_gather: the order in which unmapping gives memory back.
 *
 *   1. zap clears PTEs under the PTE lock and records the range and the
 *      folios (tlb_remove_folio_refs) — anonymous rmaps are removed at once;
 *      a file folio whose PTE was dirty keeps its rmap for now
 *      (tlb_remove_folio_refs_delay_rmap, Linux 6.2's delayed rmap);
 *   2. tlb_flush_mmu shoots down every CPU's TLB entries for the range
 *      (hw/tlb.c: when it returns no CPU can still use them);
 *   3. then the delayed rmaps are removed — zap flushes before releasing the
 *      PTE lock whenever it delayed one, so writeback, which takes that lock
 *      when the folio still looks mapped, never sees it unmapped while a CPU
 *      can still write to it;
 *   4. only then are the folio references dropped, so a frame is freed only
 *      once no CPU can reach it;
 *   4. page-table pages additionally wait for an RCU grace period
 *      (liburcu call_rcu), because a lockless walker may be reading one
 *      without being inside a TLB-tracked access.
 *
 * Preconditions: the caller holds the mmap_lock (either mode) of tlb->mm.
 */
#include <stdlib.h>
#include "base/rcu.h"
#include "mm/mmu_gather.h"
#include "mm/folio.h"
#include "mm/rmap.h"

struct table_batch {
	struct rcu_head rcu;
	struct sm_machine *machine;
	struct sm_mm *mm;          /* for the pending count; alive until it drains */
	struct list_head tables;
};

static void gather_reset_range(struct mmu_gather *tlb)
{
	tlb->start = ~0ul;
	tlb->end = 0;
}

void tlb_gather_mmu(struct mmu_gather *tlb, struct sm_mm *mm)
{
	tlb->mm = mm;
	tlb->fullmm = false;
	tlb->delayed_rmap = false;
	tlb->nr = 0;
	tlb->nr_tables = 0;
	INIT_LIST_HEAD(&tlb->tables);
	gather_reset_range(tlb);
}

void tlb_gather_mmu_fullmm(struct mmu_gather *tlb, struct sm_mm *mm)
{
	tlb_gather_mmu(tlb, mm);
	tlb->fullmm = true;
}

void flush_tlb_range(struct sm_mm *mm, unsigned long start, unsigned long end)
{
	struct sm_cpu *self = this_cpu(mm->machine);

	tlb_shootdown(&mm->machine->cpus, &mm->pmap, start, end, self ? self->hw : NULL);
}

static void free_gathered_pages(struct mmu_gather *tlb)
{
	for (unsigned i = 0; i < tlb->nr; i++) {
		struct gathered_page *g = &tlb->pages[i];

		if (g->delay_rmap)
			folio_remove_rmap_ptes(g->page, g->delay_rmap, g->refs);
		folio_put_refs(tlb->mm->machine, g->page, g->refs);
	}
	tlb->nr = 0;
	tlb->delayed_rmap = false;
}

static void free_table_list(struct sm_machine *m, struct sm_mm *mm, struct list_head *tables)
{
	struct page *p, *n;
	long nr = 0;

	list_for_each_entry_safe(p, n, tables, lru) {
		list_del(&p->lru);
		clear_page_flag(p, PG_pgtable);
		put_page(m, p);
		nr++;
	}
	__atomic_fetch_sub(&m->pgtable_frames, nr, __ATOMIC_RELAXED);
	__atomic_fetch_sub(&mm->rcu_pending_tables, nr, __ATOMIC_RELEASE);
}

static void free_table_batch(struct rcu_head *head)
{
	struct table_batch *b = container_of(head, struct table_batch, rcu);

	sm_rcu_gp_done(head);
	free_table_list(b->machine, b->mm, &b->tables);
	free(b);
}

static void free_gathered_tables(struct mmu_gather *tlb)
{
	struct table_batch *b;

	if (list_empty(&tlb->tables))
		return;
	__atomic_fetch_add(&tlb->mm->rcu_pending_tables, (long)tlb->nr_tables, __ATOMIC_RELAXED);
	tlb->nr_tables = 0;
	b = malloc(sizeof(*b));
	if (!b) {
		/* No memory to defer with: wait for the grace period here. */
		sm_synchronize_rcu();
		free_table_list(tlb->mm->machine, tlb->mm, &tlb->tables);
		return;
	}
	b->machine = tlb->mm->machine;
	b->mm = tlb->mm;
	INIT_LIST_HEAD(&b->tables);
	list_splice_init(&tlb->tables, &b->tables);
	sm_call_rcu(&b->rcu, free_table_batch);
}

void tlb_flush_mmu(struct mmu_gather *tlb)
{
	if (tlb->end > tlb->start && !tlb->fullmm)
		flush_tlb_range(tlb->mm, tlb->start, tlb->end);
	gather_reset_range(tlb);
	free_gathered_pages(tlb);
}

void tlb_remove_folio_refs(struct mmu_gather *tlb, struct page *head, int refs)
{
	if (tlb->nr && tlb->pages[tlb->nr - 1].page == head && !tlb->pages[tlb->nr - 1].delay_rmap) {
		tlb->pages[tlb->nr - 1].refs += refs;
		return;
	}
	if (tlb->nr == MMU_GATHER_BATCH)
		tlb_flush_mmu(tlb);
	tlb->pages[tlb->nr++] = (struct gathered_page){ head, refs, NULL };
}

void tlb_remove_folio_refs_delay_rmap(struct mmu_gather *tlb, struct page *head,
				      struct page *page, int nr)
{
	if (tlb->nr == MMU_GATHER_BATCH)
		tlb_flush_mmu(tlb);
	tlb->pages[tlb->nr++] = (struct gathered_page){ head, nr, page };
	tlb->delayed_rmap = true;
}

void tlb_remove_table(struct mmu_gather *tlb, struct page *table)
{
	__atomic_fetch_sub(&tlb->mm->pgtables_bytes, (long)PAGE_SIZE, __ATOMIC_RELAXED);
	list_add_tail(&table->lru, &tlb->tables);
	tlb->nr_tables++;
}

void tlb_finish_mmu(struct mmu_gather *tlb)
{
	tlb_flush_mmu(tlb);
	free_gathered_tables(tlb);
}
