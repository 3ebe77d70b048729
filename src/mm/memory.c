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
 *      KSM page              -> reuse if this PTE is its only mapping
 *                               (ksm_reuse_page), else copy
 *      otherwise             -> copy, replace the PTE, flush, drop the old page
 *
 * File VMAs fault through the page cache (filemap.c); a write to a shared
 * file PTE that writeback write-protected makes it writable and dirty again.
 *
 * Zap clears PTEs under their table's lock, removes anon rmaps immediately,
 * and hands folio references to the mmu_gather to drop after the TLB flush.
 * A dirty PTE of a file folio dirties the folio, and its rmap is removed
 * only after the flush, still under the PTE lock (mmu_gather.c): see
 * writeback.c for the write that would otherwise be lost.
 */
#include <errno.h>
#include <string.h>
#include "base/rcu.h"
#include "mm/memory.h"
#include "mm/filemap.h"
#include "mm/folio.h"
#include "mm/ksm.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/pt_reclaim.h"
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

static bool ptes_none(const pte_t *ptep, unsigned long nr)
{
	for (unsigned long i = 0; i < nr; i++)
		if (!pte_none(ptep_get(&ptep[i])))
			return false;
	return true;
}

static unsigned anon_fault_orders(const struct vm_area_struct *vma)
{
	const struct sm_machine *m = vma->vm_mm->machine;

	if (vma->vm_flags & VM_NOHUGEPAGE)
		return 0;
	return m->anon_orders_always | ((vma->vm_flags & VM_HUGEPAGE) ? m->anon_orders_madvise : 0);
}

/*
 * The allowed folio orders whose naturally aligned range around addr lies
 * inside the VMA and has no PTEs yet. Precondition: the PTE lock of ptep
 * held: once it is dropped the table may be reclaimed and freed, so the
 * size is picked here and only checked again after the allocation.
 */
static unsigned anon_fault_fitting_orders(struct vm_area_struct *vma, unsigned long addr,
					  const pte_t *ptep)
{
	unsigned orders = anon_fault_orders(vma), fit = 0;

	while (orders) {
		unsigned order = 31 - (unsigned)__builtin_clz(orders);
		unsigned long size = PAGE_SIZE << order, s = addr & ~(size - 1);

		orders &= ~(1u << order);
		if (s >= vma->vm_start && s + size <= vma->vm_end &&
		    ptes_none(ptep - ((addr - s) >> PAGE_SHIFT), 1ul << order))
			fit |= 1u << order;
	}
	return fit;
}

/* The largest folio of `orders` the allocator has, falling back order by
 * order to a single page. *start is where it goes. */
static struct page *alloc_anon_folio(struct vm_area_struct *vma, unsigned long addr,
				     unsigned orders, unsigned long *start)
{
	struct sm_machine *m = vma->vm_mm->machine;
	struct page *folio;

	while (orders) {
		unsigned order = 31 - (unsigned)__builtin_clz(orders);
		unsigned long size = PAGE_SIZE << order;

		orders &= ~(1u << order);
		folio = folio_alloc_anon(m, order, true);
		if (folio) {
			*start = addr & ~(size - 1);
			return folio;
		}
	}
	*start = addr;
	return folio_alloc_anon(m, 0, true);
}

/*
 * A fault in progress, as Linux's struct vm_fault. The PTE table may be
 * reclaimed whenever its lock is not held (pt_reclaim.c), so a handler that
 * drops the lock to allocate relocks through the PMD entry (which cannot go
 * away under the mmap read lock) and starts over if the table changed.
 */
struct vm_fault {
	struct vm_area_struct *vma;
	unsigned long addr;
	unsigned flags;
	pte_t *pmdp;
	pte_t *ptep;           /* valid while ptl is held */
	spinlock_t *ptl;
	pte_t orig_pte;
};

static bool relock_pte(struct vm_fault *vmf)
{
	vmf->ptep = pte_offset_map_lock(vmf->vma->vm_mm, vmf->pmdp, vmf->addr, &vmf->ptl);
	return vmf->ptep != NULL;
}

static int do_anonymous_page(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct sm_mm *mm = vma->vm_mm;
	struct sm_machine *m = mm->machine;
	unsigned long start, nr, pfn;
	struct page *folio;
	unsigned orders;
	pte_t *first;

	if (!(vmf->flags & FAULT_FLAG_WRITE)) {
		pte_t zero = pfn_pte(m->zero_pfn, vma->vm_page_prot | _PAGE_SPECIAL);

		set_pte(vmf->ptep, zero & ~_PAGE_RW);
		spin_unlock(vmf->ptl);
		return 0;
	}
	orders = anon_fault_fitting_orders(vma, vmf->addr, vmf->ptep);
	spin_unlock(vmf->ptl);
	if (anon_vma_prepare(vma))
		return VM_FAULT_OOM;
	folio = alloc_anon_folio(vma, vmf->addr, orders, &start);
	if (!folio)
		return VM_FAULT_OOM;
	nr = folio_nr_pages(folio);
	if (!relock_pte(vmf)) {
		folio_put_refs(m, folio, 1);
		return 0;   /* the table was reclaimed: fault again */
	}
	first = vmf->ptep - ((vmf->addr - start) >> PAGE_SHIFT);
	if (!ptes_none(first, nr)) {
		/* Another CPU's fault got here first. */
		spin_unlock(vmf->ptl);
		folio_put_refs(m, folio, 1);
		return 0;
	}
	folio_add_new_anon_rmap(folio, vma, start);
	/* One reference per mapping PTE, as a folio mapped nr times holds. */
	folio_ref_add(folio, (int)nr - 1);
	add_mm_counter(mm, MM_ANONPAGES, (long)nr);
	pfn = page_to_pfn(m, folio);
	for (unsigned long i = 0; i < nr; i++)
		set_pte(&first[i], mk_anon_pte(vma, pfn + i));
	spin_unlock(vmf->ptl);
	return 0;
}

/* Replace the read-only mapping by a private copy of `old` (NULL: the zero
 * page). Entered with the PTE lock held; returns with it released. */
static int wp_page_copy(struct vm_fault *vmf, struct page *old)
{
	struct vm_area_struct *vma = vmf->vma;
	struct sm_mm *mm = vma->vm_mm;
	struct sm_machine *m = mm->machine;
	struct page *head = old ? page_head(m, old) : NULL;
	struct page *new;
	int ret = 0;

	if (head)
		folio_ref_add(head, 1);   /* keep it while the lock is dropped */
	spin_unlock(vmf->ptl);
	if (anon_vma_prepare(vma) || !(new = folio_alloc_anon(m, 0, old == NULL))) {
		ret = VM_FAULT_OOM;
		goto out;
	}
	if (old) {
		memcpy(page_address(m, new), page_address(m, old), PAGE_SIZE);
		__atomic_fetch_add(&m->cow_bytes_copied, PAGE_SIZE, __ATOMIC_RELAXED);
	}
	if (!relock_pte(vmf)) {
		folio_put_refs(m, new, 1);
		goto out;
	}
	if (ptep_get(vmf->ptep) != vmf->orig_pte) {
		spin_unlock(vmf->ptl);
		folio_put_refs(m, new, 1);
		goto out;
	}
	folio_add_new_anon_rmap(new, vma, vmf->addr);
	/* Clear and flush before the new PTE: no CPU may keep reading the
	 * old page once the copy can be written. */
	ptep_get_and_clear(vmf->ptep);
	flush_tlb_range(mm, vmf->addr, vmf->addr + PAGE_SIZE);
	set_pte(vmf->ptep, mk_anon_pte(vma, page_to_pfn(m, new)));
	add_mm_counter(mm, MM_ANONPAGES, 1);
	if (head) {
		folio_remove_rmap_ptes(head, old, 1);
		add_mm_counter(mm, mm_counter(head), -1);
		folio_put_refs(m, head, 1);   /* the old mapping's reference */
	} else if (is_ksm_zero_pte(m, vmf->orig_pte)) {
		ksm_zero_pte_gone(mm);
	}
	spin_unlock(vmf->ptl);
out:
	if (head)
		folio_put_refs(m, head, 1);
	return ret;
}

/* May this anonymous page be written in place? Only if no other PTE, in
 * this mm or another, can reach it. */
static bool wp_can_reuse_anon(struct sm_machine *m, struct page *page)
{
	struct page *head = page_head(m, page);

	if (test_bit_flag(page, PG_anon_exclusive))
		return true;
	/* A small folio whose only reference is our mapping is ours alone
	 * (the other side of a fork already copied or unmapped it). */
	if (!folio_order(head) && folio_ref_count(head) == 1) {
		set_page_flag(page, PG_anon_exclusive);
		return true;
	}
	return false;
}

static int do_wp_page(struct vm_fault *vmf)
{
	struct sm_machine *m = vmf->vma->vm_mm->machine;
	struct page *page = vm_normal_page(vmf->vma->vm_mm, vmf->orig_pte);

	if (page && (vmf->vma->vm_flags & VM_SHARED)) {
		/* Linux's wp_page_shared: writeback cleaned this PTE; the
		 * folio is dirty again from this write on. */
		folio_mark_dirty(page_head(m, page));
		__atomic_fetch_or(vmf->ptep, _PAGE_RW | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED,
				  __ATOMIC_ACQ_REL);
		spin_unlock(vmf->ptl);
		return 0;
	}
	if (page && folio_test_ksm(page_head(m, page))) {
		if (!ksm_reuse_page(vmf->vma, vmf->addr, page))
			return wp_page_copy(vmf, page);
		__atomic_fetch_or(vmf->ptep, _PAGE_RW | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED,
				  __ATOMIC_ACQ_REL);
		spin_unlock(vmf->ptl);
		return 0;
	}
	if (page && page_is_anon(page_head(m, page)) && wp_can_reuse_anon(m, page)) {
		/* Only this PTE can reach the page: upgrading needs no flush,
		 * a CPU holding the read-only entry just faults once more. */
		__atomic_fetch_or(vmf->ptep, _PAGE_RW | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_ACCESSED,
				  __ATOMIC_ACQ_REL);
		spin_unlock(vmf->ptl);
		return 0;
	}
	return wp_page_copy(vmf, page);
}

int handle_mm_fault(struct vm_area_struct *vma, unsigned long addr, unsigned flags)
{
	struct vm_fault vmf = { .vma = vma, .addr = addr & PAGE_MASK, .flags = flags };
	struct sm_mm *mm = vma->vm_mm;

	do {
		vmf.pmdp = pmd_alloc(mm, vmf.addr);
		if (!vmf.pmdp || pte_alloc(mm, vmf.pmdp))
			return VM_FAULT_OOM;
	} while (!relock_pte(&vmf));   /* reclaimed between the two: again */
	vmf.orig_pte = ptep_get(vmf.ptep);
	if (pte_none(vmf.orig_pte) && vma->vm_file) {
		spin_unlock(vmf.ptl);
		return do_file_fault(vma, vmf.addr, flags, vmf.pmdp);
	}
	if (pte_none(vmf.orig_pte))
		return do_anonymous_page(&vmf);
	if (!pte_hw_present(vmf.orig_pte)) {
		/* PROT_NONE entries in an accessible VMA do not exist while
		 * mprotect holds the mmap_lock for writing; treat as a bad access. */
		spin_unlock(vmf.ptl);
		return VM_FAULT_SIGSEGV;
	}
	if ((flags & FAULT_FLAG_WRITE) && !pte_write(vmf.orig_pte))
		return do_wp_page(&vmf);
	/* Spurious: the CPU's view was stale; the walker retries. */
	spin_unlock(vmf.ptl);
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

/*
 * How many PTEs from ptep (at most max_nr) map consecutive pages of the
 * folio `head`, starting with `page`, and differ only in the bits hardware
 * and fork may change (accessed, dirty, soft-dirty, writable): Linux's
 * folio_pte_batch. *any_writable reports whether one of them was writable.
 */
unsigned long folio_pte_batch(struct sm_machine *m, struct page *head, struct page *page,
			      const pte_t *ptep, pte_t pte, unsigned long max_nr,
			      bool *any_writable)
{
	const pte_t ignore = _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_RW;
	unsigned long left = folio_nr_pages(head) - (unsigned long)(page - head);
	unsigned long nr = 1;
	pte_t expect = pte & ~ignore;

	(void)m;
	if (any_writable)
		*any_writable = pte_write(pte);
	max_nr = min(max_nr, left);
	while (nr < max_nr) {
		pte_t next = ptep_get(&ptep[nr]);

		expect += PAGE_SIZE;   /* the next PFN */
		if ((next & ~ignore) != expect)
			break;
		if (any_writable && pte_write(next))
			*any_writable = true;
		nr++;
	}
	return nr;
}

/*
 * Zap one PTE table's slice [addr, end). When the slice is the table's
 * whole span and the caller asked for reclaim, the table is empty at the end
 * (every entry cleared, under its lock throughout) and is unlinked on the
 * spot if the PMD lock can be had without waiting (its order is before the
 * PTE lock); otherwise it is counted for pt_reclaim's locked recheck.
 */
static void zap_pte_range(struct mmu_gather *tlb, struct sm_mm *mm, pte_t *pmdp, pte_t *ptep,
			  spinlock_t *ptl, unsigned long addr, unsigned long end,
			  struct zap_details *details)
{
	struct sm_machine *m = mm->machine;
	bool whole = details && details->reclaim_pt && end - addr == PMD_SIZE;
	struct address_space *only = details ? details->mapping : NULL;
	struct page *emptied = NULL;
	long rss[NR_MM_COUNTERS] = { 0 };
	unsigned long nr;

	for (; addr < end; addr += nr << PAGE_SHIFT, ptep += nr) {
		pte_t pte = ptep_get(ptep);
		struct page *page, *head;
		bool dirty = false;

		nr = 1;
		if (pte_none(pte))
			continue;
		page = pte_present(pte) ? vm_normal_page(mm, pte) : NULL;
		if (only && (!page || page_head(m, page)->mapping != only))
			continue;   /* COWed copies and the zero page stay */
		if (!page) {
			/* The zero page (and, with reclaim, swap entries). */
			if (is_ksm_zero_pte(m, pte))
				ksm_zero_pte_gone(mm);
			ptep_get_and_clear(ptep);
			tlb_flush_pte_range(tlb, addr, PAGE_SIZE);
			continue;
		}
		head = page_head(m, page);
		if (folio_order(head))
			nr = folio_pte_batch(m, head, page, ptep, pte, (end - addr) >> PAGE_SHIFT, NULL);
		for (unsigned long i = 0; i < nr; i++)
			dirty |= pte_dirty(ptep_get_and_clear(&ptep[i]));
		tlb_flush_pte_range(tlb, addr, nr << PAGE_SHIFT);
		rss[mm_counter(head)] -= (long)nr;
		if (!page_is_anon(head) && dirty) {
			folio_mark_dirty(head);
			if (m->delay_rmap) {
				tlb_remove_folio_refs_delay_rmap(tlb, head, page, (int)nr);
				continue;
			}
		}
		folio_remove_rmap_ptes(head, page, (int)nr);
		tlb_remove_folio_refs(tlb, head, (int)nr);
	}
	for (int i = 0; i < NR_MM_COUNTERS; i++)
		if (rss[i])
			add_mm_counter(mm, i, rss[i]);
	/* A CPU may still write through a stale TLB entry until the flush:
	 * flush, and only then let the folios go unmapped, before anyone
	 * (writeback's folio_mkclean) can take this lock and look. */
	if (tlb->delayed_rmap)
		tlb_flush_mmu(tlb);
	if (whole) {
		emptied = unlink_empty_pte_locked(mm, pmdp, ptl);
		if (emptied)
			details->pt_freed++;
		else
			details->pt_missed++;
	}
	spin_unlock(ptl);
	if (emptied)
		tlb_remove_table(tlb, emptied);
}

void zap_page_range_details(struct mmu_gather *tlb, struct vm_area_struct *vma,
			    unsigned long start, unsigned long end, struct zap_details *details)
{
	struct sm_mm *mm = vma->vm_mm;
	unsigned long addr = max(start, vma->vm_start);
	/* From the file rmap, without the mmap_lock: munmap and page-table
	 * reclaim may free the tables we walk, after an RCU grace period,
	 * and unlink a PTE table only under its lock; so find and lock each
	 * inside a read-side section, as walk_pte_lock does. */
	bool rcu = details && details->mapping;

	end = min(end, vma->vm_end);
	while (addr < end) {
		pte_t *pmdp, *ptep = NULL;
		spinlock_t *ptl;
		unsigned long next;

		if (rcu)
			sm_rcu_read_lock();
		pmdp = pmd_next_table(mm, &addr, end);
		if (pmdp)
			ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);
		if (rcu)
			sm_rcu_read_unlock();
		if (!pmdp)
			break;
		next = pmd_addr_end(addr, end);
		if (ptep)
			zap_pte_range(tlb, mm, pmdp, ptep, ptl, addr, next, details);
		addr = next;
	}
}

void zap_page_range(struct mmu_gather *tlb, struct vm_area_struct *vma,
		    unsigned long start, unsigned long end)
{
	zap_page_range_details(tlb, vma, start, end, NULL);
}

/*
 * fork's copy of one PTE table slice. A run of PTEs mapping consecutive
 * pages of one large folio is copied as a batch: one folio reference update
 * and one large mapcount update for the run, the parent's run write-
 * protected together. Private writable memory becomes copy-on-write on both
 * sides; the TLB flush for the parent's write-protection comes once, at the
 * end of fork.
 */
static int copy_pte_range(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma,
			  pte_t *src_pmdp, unsigned long addr, unsigned long end, bool *wrprotected)
{
	struct sm_mm *dst_mm = dst_vma->vm_mm, *src_mm = src_vma->vm_mm;
	struct sm_machine *m = src_mm->machine;
	bool cow = (src_vma->vm_flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE;
	spinlock_t *dst_ptl, *src_ptl;
	pte_t *dst_ptep, *src_ptep;
	long rss[NR_MM_COUNTERS] = { 0 };
	unsigned long nr;

	dst_ptep = pte_alloc_map_lock(dst_mm, addr, &dst_ptl);
	if (!dst_ptep)
		return -ENOMEM;
	/* The child is not yet reachable by anyone: no lock-order concern. */
	src_ptep = pte_offset_map_lock(src_mm, src_pmdp, addr, &src_ptl);
	if (!src_ptep) {
		spin_unlock(dst_ptl);
		return 0;
	}
	for (; addr < end; addr += nr << PAGE_SHIFT, src_ptep += nr, dst_ptep += nr) {
		pte_t pte = ptep_get(src_ptep);
		struct page *page, *head;
		bool writable = false;

		nr = 1;
		if (pte_none(pte))
			continue;
		page = pte_present(pte) ? vm_normal_page(src_mm, pte) : NULL;
		if (!page) {
			/* The zero page; the child's is not KSM's to count. */
			set_pte(dst_ptep, pte_mkclean(pte_mkold(pte)));
			continue;
		}
		head = page_head(m, page);
		if (m->fork_batch && folio_order(head))
			nr = folio_pte_batch(m, head, page, src_ptep, pte,
					     (end - addr) >> PAGE_SHIFT, &writable);
		else
			writable = pte_write(pte);
		folio_ref_add(head, (int)nr);
		folio_dup_anon_rmap_ptes(head, page, (int)nr);
		if (cow && writable) {
			for (unsigned long i = 0; i < nr; i++)
				ptep_clear_bits(&src_ptep[i], _PAGE_RW);
			*wrprotected = true;
		}
		for (unsigned long i = 0; i < nr; i++) {
			pte_t p = ptep_get(&src_ptep[i]);

			set_pte(&dst_ptep[i], pte_mkold(cow ? pte_wrprotect(p) : p));
		}
		rss[mm_counter(head)] += (long)nr;
	}
	for (int i = 0; i < NR_MM_COUNTERS; i++)
		if (rss[i])
			add_mm_counter(dst_mm, i, rss[i]);
	spin_unlock(src_ptl);
	spin_unlock(dst_ptl);
	return 0;
}

int copy_page_range(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma)
{
	struct sm_mm *src_mm = src_vma->vm_mm;
	unsigned long addr = src_vma->vm_start, end = src_vma->vm_end;
	bool wrprotected = false;
	pte_t *pmdp;
	int err = 0;

	/* Linux's vma_needs_copy: without an anon_vma there is nothing but
	 * the zero page here, and the child's faults will map it again. */
	if (!src_vma->anon_vma)
		return 0;
	while (addr < end && (pmdp = pmd_next_table(src_mm, &addr, end))) {
		unsigned long next = pmd_addr_end(addr, end);

		err = copy_pte_range(dst_vma, src_vma, pmdp, addr, next, &wrprotected);
		if (err)
			break;
		addr = next;
	}
	if (wrprotected)
		flush_tlb_range(src_mm, src_vma->vm_start, src_vma->vm_end);
	return err;
}
