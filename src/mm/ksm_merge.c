/*
 * KSM at the level of PTEs: everything here runs under the PTE lock of the
 * one entry it changes, with the mm's mmap_lock held for reading.
 *
 * Merging a page write-protects its PTE and flushes the TLBs first: after
 * that no CPU can write it, so the contents compared are the contents
 * merged. A page with references beyond its mappings (and the caller's) is
 * left alone, as Linux leaves a page pinned for I/O.
 *
 * Unmerging (break_ksm) gives a PTE a private copy, read-only like the
 * entry it replaces: the copy is exclusive, so the next write reuses it.
 *
 * The write fault on a KSM page (ksm_reuse_page) reuses the page when its
 * only mapping is the faulting PTE: refcount 2 (that PTE and the stable
 * tree) frozen to 0 makes every get_ksm_page() of ksmd fail meanwhile; the
 * page becomes an exclusive anonymous page of the faulting VMA, and its
 * stable node, which the page no longer names, is stale from then on.
 */
#include <errno.h>
#include <string.h>
#include "mm/ksm.h"
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"

struct page *ksm_follow_anon_page(struct vm_area_struct *vma, unsigned long addr)
{
	struct sm_mm *mm = vma->vm_mm;
	pte_t *pmdp = pmd_off(mm, addr), *ptep, pte;
	struct page *page = NULL, *p;
	spinlock_t *ptl;

	if (!pmdp || !(ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl)))
		return NULL;
	pte = ptep_get(ptep);
	if (pte_present(pte) && !pte_special(pte)) {
		p = vm_normal_page(mm, pte);
		if (page_is_anon(page_head(mm->machine, p))) {
			get_page(page_head(mm->machine, p));
			page = p;
		}
	}
	spin_unlock(ptl);
	return page;
}

static pte_t *lock_page_pte(struct vm_area_struct *vma, unsigned long addr, struct page *page,
			    spinlock_t **ptl)
{
	struct sm_mm *mm = vma->vm_mm;
	pte_t *pmdp = pmd_off(mm, addr), *ptep;
	pte_t pte;

	if (!pmdp || !(ptep = pte_offset_map_lock(mm, pmdp, addr, ptl)))
		return NULL;
	pte = ptep_get(ptep);
	if (!pte_present(pte) || pte_special(pte) || pte_pfn(pte) != page_to_pfn(mm->machine, page)) {
		spin_unlock(*ptl);
		return NULL;
	}
	return ptep;
}

/*
 * Write-protect the PTE and flush, so the page's contents hold still.
 * Returns the bits taken away (to put back if the merge is abandoned), or
 * -1 when the page has references beyond its mappings and ours.
 */
static long write_protect_page(struct vm_area_struct *vma, unsigned long addr, pte_t *ptep,
			       struct page *page)
{
	pte_t old = ptep_clear_bits(ptep, _PAGE_RW | _PAGE_DIRTY);

	if (old & (_PAGE_RW | _PAGE_DIRTY))
		flush_tlb_range(vma->vm_mm, addr, addr + PAGE_SIZE);
	/*
	 * Acquire: the references dropped by other mms (a fork child's zap or
	 * COW copy) were released after their last look at the page's mapping,
	 * which the merge is about to change.
	 */
	if (__atomic_load_n(&page->refcount, __ATOMIC_ACQUIRE) != page_mapcount(page) + 1) {
		__atomic_fetch_or(ptep, old & (_PAGE_RW | _PAGE_DIRTY), __ATOMIC_ACQ_REL);
		return -1;
	}
	if (old & _PAGE_DIRTY)
		set_page_flag(page, PG_dirty);
	return (long)(old & (_PAGE_RW | _PAGE_DIRTY));
}

/* Swap the entry for `pte` and flush before anyone can reach the old page's
 * frame through a stale TLB entry (it may be freed soon after). */
static void replace_pte(struct vm_area_struct *vma, unsigned long addr, pte_t *ptep, pte_t pte)
{
	ptep_get_and_clear(ptep);
	flush_tlb_range(vma->vm_mm, addr, addr + PAGE_SIZE);
	set_pte(ptep, pte);
}

int try_to_merge_one_page(struct vm_area_struct *vma, unsigned long addr, struct page *page,
			  struct page *kpage, struct ksm_stable_node *node)
{
	struct sm_machine *m = vma->vm_mm->machine;
	struct anon_vma *av;
	spinlock_t *ptl;
	pte_t *ptep = lock_page_pte(vma, addr, page, &ptl);
	long taken;

	if (!ptep)
		return -EFAULT;
	/* A page of a large folio merges alone: the folio is split first. */
	if (split_anon_folio_locked(vma, addr, ptep, page)) {
		spin_unlock(ptl);
		return -EBUSY;
	}
	if (!kpage && page_mapcount(page) != 1) {
		spin_unlock(ptl);
		return -EBUSY;
	}
	taken = write_protect_page(vma, addr, ptep, page);
	if (taken < 0) {
		spin_unlock(ptl);
		return -EBUSY;
	}
	if (!kpage) {
		/* The page becomes the KSM page; the tree takes a reference. */
		av = page_anon_vma(page);
		clear_page_flag(page, PG_anon_exclusive);
		node->kpfn = page_to_pfn(m, page);
		get_page(page);
		__atomic_store_n(&page->mapping, stable_node_mapping(node), __ATOMIC_RELEASE);
		spin_unlock(ptl);
		put_anon_vma(av);
		return 0;
	}
	if (ksm_memcmp_pages(m, page, kpage)) {
		/* Changed before we write-protected it: it stays read-only,
		 * and (if it was) exclusive, so the next write reuses it. */
		spin_unlock(ptl);
		return -EFAULT;
	}
	get_page(kpage);
	folio_dup_anon_rmap_ptes(kpage, kpage, 1);
	replace_pte(vma, addr, ptep, pfn_pte(page_to_pfn(m, kpage), vma->vm_page_prot));
	folio_remove_rmap_ptes(page, page, 1);
	folio_put_refs(m, page, 1);   /* the PTE's; the caller still holds one */
	spin_unlock(ptl);
	return 0;
}

int try_to_merge_with_zero_page(struct vm_area_struct *vma, unsigned long addr, struct page *page)
{
	struct sm_mm *mm = vma->vm_mm;
	struct sm_machine *m = mm->machine;
	spinlock_t *ptl;
	pte_t *ptep = lock_page_pte(vma, addr, page, &ptl);
	pte_t zero;

	if (!ptep)
		return -EFAULT;
	if (split_anon_folio_locked(vma, addr, ptep, page) ||
	    write_protect_page(vma, addr, ptep, page) < 0) {
		spin_unlock(ptl);
		return -EBUSY;
	}
	if (!page_is_zero_filled(m, page)) {
		spin_unlock(ptl);
		return -EFAULT;
	}
	zero = pte_mkdirty(pfn_pte(m->zero_pfn, vma->vm_page_prot | _PAGE_SPECIAL)) & ~_PAGE_RW;
	replace_pte(vma, addr, ptep, zero);
	folio_remove_rmap_ptes(page, page, 1);
	add_mm_counter(mm, MM_ANONPAGES, -1);
	folio_put_refs(m, page, 1);
	__atomic_fetch_add(&mm->ksm_zero_pages, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&m->ksm->zero_pages, 1, __ATOMIC_RELAXED);
	spin_unlock(ptl);
	return 0;
}

void ksm_zero_pte_gone(struct sm_mm *mm)
{
	__atomic_fetch_sub(&mm->ksm_zero_pages, 1, __ATOMIC_RELAXED);
	__atomic_fetch_sub(&mm->machine->ksm->zero_pages, 1, __ATOMIC_RELAXED);
}

/*
 * Unshare one address: a KSM page gets a private copy, a KSM zero PTE a
 * fresh zeroed page (as Linux's unsharing fault: the mm's RSS grows by it),
 * both mapped read-only and exclusive, so a later write reuses them.
 * 0, or -ENOMEM.
 */
static int break_ksm(struct vm_area_struct *vma, unsigned long addr)
{
	struct sm_mm *mm = vma->vm_mm;
	struct sm_machine *m = mm->machine;
	pte_t *pmdp = pmd_off(mm, addr), *ptep, pte, keep;
	struct page *page = NULL, *copy;
	spinlock_t *ptl;
	bool zero;

	if (!pmdp || !(ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl)))
		return 0;
	pte = ptep_get(ptep);
	zero = is_ksm_zero_pte(m, pte);
	if (!zero) {
		page = pte_present(pte) ? vm_normal_page(mm, pte) : NULL;
		if (!page || !folio_test_ksm(page)) {
			spin_unlock(ptl);
			return 0;
		}
		get_page(page);
	}
	spin_unlock(ptl);
	copy = folio_alloc_anon(m, 0, zero);
	if (!copy) {
		if (page)
			folio_put_refs(m, page, 1);
		return -ENOMEM;
	}
	/* A KSM page is never written: no copy can tear. */
	if (page)
		memcpy(page_address(m, copy), page_address(m, page), PAGE_SIZE);
	ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);
	if (!ptep || ptep_get(ptep) != pte) {
		/* Changed meanwhile (a write fault copied it, say): look again. */
		if (ptep)
			spin_unlock(ptl);
		folio_put_refs(m, copy, 1);
		if (page)
			folio_put_refs(m, page, 1);
		return ptep ? break_ksm(vma, addr) : 0;
	}
	folio_add_new_anon_rmap(copy, vma, addr);
	/* The zero PTE's dirty bit only marked it KSM's. */
	keep = pte & ~PTE_PFN_MASK & ~(_PAGE_RW | _PAGE_SPECIAL | (zero ? _PAGE_DIRTY : 0));
	replace_pte(vma, addr, ptep, pfn_pte(page_to_pfn(m, copy), keep));
	if (zero) {
		add_mm_counter(mm, MM_ANONPAGES, 1);
		ksm_zero_pte_gone(mm);
		spin_unlock(ptl);
		return 0;
	}
	folio_remove_rmap_ptes(page, page, 1);
	folio_put_refs(m, page, 1);   /* the PTE's */
	spin_unlock(ptl);
	folio_put_refs(m, page, 1);   /* ours */
	return 0;
}

long unmerge_ksm_pages(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	unsigned long addr = start;
	pte_t *pmdp;

	if (!vma->anon_vma)
		return 0;
	while (addr < end && (pmdp = pmd_next_table(vma->vm_mm, &addr, end))) {
		unsigned long next = pmd_addr_end(addr, end);

		for (; addr < next; addr += PAGE_SIZE) {
			int err = break_ksm(vma, addr);

			if (err)
				return err;
		}
	}
	return 0;
}

bool ksm_reuse_page(struct vm_area_struct *vma, unsigned long addr, struct page *page)
{
	struct anon_vma *av = vma->anon_vma;
	int expected = 2;   /* this PTE's reference and the stable tree's */

	if (!vma->vm_mm->machine->ksm->reuse || !av || page_mapcount(page) != 1)
		return false;
	if (!__atomic_compare_exchange_n(&page->refcount, &expected, 0, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return false;
	/* Frozen: ksmd cannot take a reference, and the tree's is ours now. */
	__atomic_fetch_add(&av->refcount, 1, __ATOMIC_RELAXED);
	page->index = linear_page_index(vma, addr);
	__atomic_store_n(&page->mapping, (void *)((unsigned long)av | PAGE_MAPPING_ANON),
			 __ATOMIC_RELEASE);
	set_page_flag(page, PG_anon_exclusive);
	__atomic_fetch_add(&vma->vm_mm->machine->ksm->pages_reused, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&page->refcount, 1, __ATOMIC_RELEASE);
	return true;
}
