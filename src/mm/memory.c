/*
 * Page faults and zap.
 *
 * A fault runs with the mmap_lock held for reading and the PTE lock of the
 * faulting entry; allocation and zeroing happen with no spinlock held, and a
 * racing fault that installed the entry first simply wins (we free ours).
 *
 *   none, read  -> the shared zero page, read-only and special
 *   none, write -> a fresh zeroed anonymous folio, writable and dirty
 *   present, write to a read-only PTE (do_wp_page):
 *      zero page             -> copy (a fresh zeroed page)
 *      exclusive anon folio  -> reuse: make the PTE writable, nothing to flush
 *      otherwise             -> copy, replace the PTE, flush, drop the old page
 *
 * Zap clears PTEs under their table's lock, removes anon rmaps immediately,
 * and hands folio references to the mmu_gather to drop after the TLB flush.
 */
#include <string.h>
#include "mm/memory.h"
#include "mm/folio.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"

pte_t vm_get_page_prot(unsigned long vm_flags)
{
	pte_t p;

	if (!(vm_flags & VM_ACCESS_FLAGS))
		return _PAGE_PROTNONE | _PAGE_ACCESSED;
	p = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
	if (!(vm_flags & VM_EXEC))
		p |= _PAGE_NX;
	/* Private writable memory starts read-only: the first write decides
	 * between reusing and copying (COW), exactly as x86 Linux maps it. */
	if ((vm_flags & VM_WRITE) && (vm_flags & VM_SHARED))
		p |= _PAGE_RW;
	return p;
}

bool vma_access_ok(const struct vm_area_struct *vma, bool write)
{
	if (write)
		return (vma->vm_flags & VM_WRITE) != 0;
	return (vma->vm_flags & VM_ACCESS_FLAGS) != 0;
}

struct page *vm_normal_page(struct sm_mm *mm, pte_t pte)
{
	if (pte_special(pte))
		return NULL;
	return pfn_to_page(mm->machine, pte_pfn(pte));
}

static pte_t mk_anon_pte(struct vm_area_struct *vma, unsigned long pfn)
{
	pte_t pte = pfn_pte(pfn, vma->vm_page_prot);

	return pte_mkdirty(pte_mkwrite(pte_mkyoung(pte)));
}

static int do_anonymous_page(struct vm_area_struct *vma, unsigned long addr,
			     pte_t *ptep, spinlock_t *ptl, unsigned flags)
{
	struct sm_mm *mm = vma->vm_mm;
	struct sm_machine *m = mm->machine;
	struct page *page;

	if (!(flags & FAULT_FLAG_WRITE)) {
		pte_t zero = pfn_pte(m->zero_pfn, vma->vm_page_prot | _PAGE_SPECIAL);

		set_pte(ptep, zero & ~_PAGE_RW);
		spin_unlock(ptl);
		return 0;
	}
	spin_unlock(ptl);
	if (anon_vma_prepare(vma))
		return VM_FAULT_OOM;
	page = folio_alloc_anon(m, 0);
	if (!page)
		return VM_FAULT_OOM;
	spin_lock(ptl);
	if (!pte_none(ptep_get(ptep))) {
		/* Another CPU's fault got here first. */
		spin_unlock(ptl);
		folio_put_refs(m, page, 1);
		return 0;
	}
	folio_add_new_anon_rmap(page, vma, addr);
	add_mm_counter(mm, MM_ANONPAGES, 1);
	set_pte(ptep, mk_anon_pte(vma, page_to_pfn(m, page)));
	spin_unlock(ptl);
	return 0;
}

/* Replace the read-only mapping at ptep by a private copy. Entered with ptl
 * held; returns with it released. */
static int wp_page_copy(struct vm_area_struct *vma, unsigned long addr, pte_t *ptep,
			spinlock_t *ptl, pte_t orig, struct page *old)
{
	struct sm_mm *mm = vma->vm_mm;
	struct sm_machine *m = mm->machine;
	struct page *new;

	if (old)
		get_page(old);
	spin_unlock(ptl);
	if (anon_vma_prepare(vma))
		goto oom;
	new = folio_alloc_anon(m, 0);
	if (!new)
		goto oom;
	if (old)
		memcpy(page_address(m, new), page_address(m, old), PAGE_SIZE);
	spin_lock(ptl);
	if (ptep_get(ptep) != orig) {
		spin_unlock(ptl);
		folio_put_refs(m, new, 1);
		goto out;
	}
	folio_add_new_anon_rmap(new, vma, addr);
	/* Clear and flush before the new PTE: no CPU may keep reading the
	 * old page once the copy can be written. */
	ptep_get_and_clear(ptep);
	flush_tlb_range(mm, addr, addr + PAGE_SIZE);
	set_pte(ptep, mk_anon_pte(vma, page_to_pfn(m, new)));
	if (old) {
		folio_remove_rmap_ptes(old, 1);
		if (!page_is_anon(old))
			add_mm_counter(mm, MM_FILEPAGES, -1);
		else
			add_mm_counter(mm, MM_ANONPAGES, -1);
		folio_put_refs(m, old, 1);   /* the mapping's reference */
	}
	add_mm_counter(mm, MM_ANONPAGES, 1);
	spin_unlock(ptl);
out:
	if (old)
		folio_put_refs(m, old, 1);
	return 0;
oom:
	if (old)
		folio_put_refs(m, old, 1);
	return VM_FAULT_OOM;
}

static int do_wp_page(struct vm_area_struct *vma, unsigned long addr, pte_t *ptep,
		      spinlock_t *ptl, pte_t pte)
{
	struct page *page = vm_normal_page(vma->vm_mm, pte);

	if (page && page_is_anon(page) && test_bit_flag(page, PG_anon_exclusive)) {
		/* Only this PTE can reach the page: upgrading needs no flush,
		 * a CPU holding the read-only entry just faults once more. */
		__atomic_fetch_or(ptep, _PAGE_RW | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED,
				  __ATOMIC_ACQ_REL);
		spin_unlock(ptl);
		return 0;
	}
	return wp_page_copy(vma, addr, ptep, ptl, pte, page);
}

int handle_mm_fault(struct vm_area_struct *vma, unsigned long addr, unsigned flags)
{
	struct sm_mm *mm = vma->vm_mm;
	spinlock_t *ptl;
	pte_t *ptep, pte;

	addr &= PAGE_MASK;
	ptep = pte_alloc_map_lock(mm, addr, &ptl);
	if (!ptep)
		return VM_FAULT_OOM;
	pte = ptep_get(ptep);
	if (pte_none(pte))
		return do_anonymous_page(vma, addr, ptep, ptl, flags);
	if (!pte_hw_present(pte)) {
		/* PROT_NONE entries in an accessible VMA do not exist while
		 * mprotect holds the mmap_lock for writing; treat as a bad access. */
		spin_unlock(ptl);
		return VM_FAULT_SIGSEGV;
	}
	if ((flags & FAULT_FLAG_WRITE) && !pte_write(pte))
		return do_wp_page(vma, addr, ptep, ptl, pte);
	/* Spurious: the CPU's view was stale; the walker retries. */
	spin_unlock(ptl);
	return 0;
}

pte_t *pmd_next_table(struct sm_mm *mm, unsigned long *addrp, unsigned long end)
{
	unsigned long addr = *addrp;

	while (addr < end) {
		pte_t e = ptep_get(&mm->pmap.pgd[pgd_index(addr)]);
		unsigned long skip = PGDIR_SIZE;
		pte_t *pmdp;

		if (e & _PAGE_PRESENT) {
			e = ptep_get(&table_of(mm, e)[pud_index(addr)]);
			skip = PUD_SIZE;
			if (e & _PAGE_PRESENT) {
				pmdp = &table_of(mm, e)[pmd_index(addr)];
				if (ptep_get(pmdp) & _PAGE_PRESENT) {
					*addrp = addr;
					return pmdp;
				}
				skip = PMD_SIZE;
			}
		}
		addr = (addr + skip) & ~(skip - 1);
		if (!addr)
			break;
	}
	return NULL;
}

static void zap_pte_range(struct mmu_gather *tlb, struct sm_mm *mm, pte_t *pmdp,
			  unsigned long addr, unsigned long end)
{
	struct sm_machine *m = mm->machine;
	long anon = 0, file = 0;
	spinlock_t *ptl;
	pte_t *ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);

	if (!ptep)
		return;
	for (; addr < end; addr += PAGE_SIZE, ptep++) {
		pte_t pte = ptep_get(ptep);
		struct page *page;

		if (pte_none(pte))
			continue;
		pte = ptep_get_and_clear(ptep);
		tlb_flush_pte_range(tlb, addr, PAGE_SIZE);
		if (!pte_present(pte))
			continue;   /* swap entries arrive with reclaim */
		page = vm_normal_page(mm, pte);
		if (!page)
			continue;
		if (page_is_anon(page))
			anon++;
		else
			file++;
		folio_remove_rmap_ptes(page, 1);
		tlb_remove_folio_refs(tlb, page_head(m, page), 1);
	}
	if (anon)
		add_mm_counter(mm, MM_ANONPAGES, -anon);
	if (file)
		add_mm_counter(mm, MM_FILEPAGES, -file);
	spin_unlock(ptl);
}

void zap_page_range(struct mmu_gather *tlb, struct vm_area_struct *vma,
		    unsigned long start, unsigned long end)
{
	struct sm_mm *mm = vma->vm_mm;
	unsigned long addr = max(start, vma->vm_start);
	pte_t *pmdp;

	end = min(end, vma->vm_end);
	while (addr < end && (pmdp = pmd_next_table(mm, &addr, end))) {
		unsigned long next = pmd_addr_end(addr, end);

		zap_pte_range(tlb, mm, pmdp, addr, next);
		addr = next;
	}
}
