/*
 * Splitting a large anonymous folio into order-0 folios, for KSM (Linux's
 * try_to_merge_one_page splits a large folio before merging a page of it).
 *
 * Linux can split any folio: it first replaces every mapping PTE, in every
 * mm, by a migration entry. We split only the common case that needs none:
 * every PTE mapping the folio is in the one page table whose lock the caller
 * holds (the folio is mapped by this mm alone, in one PTE table), and
 * nobody but the caller holds a reference beyond those PTEs'. Then the
 * refcount can be frozen at zero: no PTE of it can change (the lock), no
 * one can take a reference (they all go through the PTE lock or
 * get_page_unless_zero), so its struct pages are ours to rewrite. A folio
 * shared with a fork child, or held by someone else at the moment, is left
 * whole (-EBUSY) and KSM tries again on a later scan.
 *
 * As Linux since 6.12 does when it splits an anonymous folio, a page of it
 * that holds only zeros is given back and its PTE maps the shared zero page
 * instead (the host's KSM diff test shows it: a THP's untouched pages are
 * not merged, they become the zero page).
 */
#include <errno.h>
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"
#include "mm/vma.h"

/*
 * The pages of [first, first + nr) that hold only zeros go; the zero page is
 * mapped in their place. Their PTEs are cleared and flushed first, so that
 * no CPU writes while we look, and put back as they were for the others.
 * Returns whether `page` was among them. Precondition: the PTE lock.
 */
static bool remap_zero_pages(struct vm_area_struct *vma, unsigned long start, pte_t *first,
			     struct page *head, unsigned long nr, struct page *page)
{
	struct sm_mm *mm = vma->vm_mm;
	struct sm_machine *m = mm->machine;
	unsigned long head_pfn = page_to_pfn(m, head);
	pte_t old[512], zero = pfn_pte(m->zero_pfn, vma->vm_page_prot | _PAGE_SPECIAL) & ~_PAGE_RW;
	bool gone = false;

	if (vma->vm_flags & VM_LOCKED)
		return false;
	for (unsigned long i = 0; i < nr; i++) {
		pte_t pte = ptep_get(first + i);

		old[i] = 0;
		if (pte_present(pte) && !pte_special(pte) && pte_pfn(pte) == head_pfn + i)
			old[i] = ptep_get_and_clear(first + i);
	}
	flush_tlb_range(mm, start, start + nr * PAGE_SIZE);
	for (unsigned long i = 0; i < nr; i++) {
		struct page *p = head + i;

		if (!old[i])
			continue;
		if (!page_is_zero_filled(m, p)) {
			set_pte(first + i, old[i]);
			continue;
		}
		set_pte(first + i, zero);
		folio_remove_rmap_ptes(p, p, 1);
		add_mm_counter(mm, MM_ANONPAGES, -1);
		folio_put_refs(m, p, 1);   /* the PTE's */
		gone |= p == page;
	}
	return gone;
}

#define SPLIT_KEEP_FLAGS ((1u << PG_dirty) | (1u << PG_swapbacked) | (1u << PG_lazyfree))

int split_anon_folio_locked(struct vm_area_struct *vma, unsigned long addr, pte_t *ptep,
			    struct page *page)
{
	struct sm_machine *m = vma->vm_mm->machine;
	struct page *head = page_head(m, page);
	unsigned long nr = folio_nr_pages(head), j = (unsigned long)(page - head);
	unsigned long start = addr - j * PAGE_SIZE, head_pfn = page_to_pfn(m, head);
	int mapped = 0, expected;
	unsigned long index;
	uint32_t keep;
	void *mapping;
	pte_t *first;

	if (nr == 1)
		return 0;
	if (nr > 512)
		return -EBUSY;   /* no folio larger than a PMD's worth */
	if (!page_is_anon(head) || start < vma->vm_start || start + nr * PAGE_SIZE > vma->vm_end ||
	    (start & PMD_MASK) != ((start + nr * PAGE_SIZE - 1) & PMD_MASK))
		return -EBUSY;
	first = ptep - j;
	for (unsigned long i = 0; i < nr; i++) {
		pte_t pte = ptep_get(first + i);
		bool here = pte_present(pte) && !pte_special(pte) && pte_pfn(pte) == head_pfn + i;

		if (page_mapcount(head + i) != (int)here)
			return -EBUSY;
		mapped += here;
	}
	if (folio_large_mapcount(head) != mapped)
		return -EBUSY;
	/* The PTEs' references and the caller's: nobody else's. */
	expected = mapped + 1;
	if (!__atomic_compare_exchange_n(&head->refcount, &expected, 0, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return -EBUSY;

	mapping = head->mapping;
	index = head->index;
	keep = __atomic_load_n(&head->flags, __ATOMIC_RELAXED) & SPLIT_KEEP_FLAGS;
	/* Each page becomes a folio holding its own reference on the anon_vma. */
	__atomic_fetch_add(&page_anon_vma(head)->refcount, (int)nr - 1, __ATOMIC_RELAXED);
	__atomic_store_n(&head[1].large_mapcount, 0, __ATOMIC_RELAXED);
	for (unsigned long i = 0; i < nr; i++) {
		struct page *p = head + i;

		clear_page_flag(p, PG_head);
		clear_page_flag(p, PG_tail);
		__atomic_fetch_or(&p->flags, keep, __ATOMIC_RELAXED);
		p->order = 0;
		p->private = 0;
		p->index = index + i;
		p->mapping = mapping;
	}
	/* Unfreeze: a page keeps its PTE's reference, the caller's page one
	 * more; a page no PTE maps any longer goes back. */
	for (unsigned long i = nr; i-- > 0; ) {
		struct page *p = head + i;
		int refs = page_mapcount(p) + (p == page);

		if (refs) {
			__atomic_store_n(&p->refcount, refs, __ATOMIC_RELEASE);
		} else {
			__atomic_store_n(&p->refcount, 1, __ATOMIC_RELEASE);
			folio_put_refs(m, p, 1);
		}
	}
	__atomic_fetch_add(&m->folios_split, 1, __ATOMIC_RELAXED);
	return remap_zero_pages(vma, start, first, head, nr, page) ? -EAGAIN : 0;
}
