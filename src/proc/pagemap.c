/*
 * /proc/<pid>/pagemap: one 64-bit entry per virtual page, as Linux 6.18's
 * pagemap_read builds them:
 *
 *   bit 63     present (PROT_NONE pages included, as x86's pte_present)
 *   bit 62     swapped (no swap yet)
 *   bit 61     file page or shared anonymous (a struct page that is not anon)
 *   bit 56     exclusively mapped: present, and this page has one mapping
 *   bit 55     soft-dirty (only with SM_PROC_SOFT_DIRTY)
 *   bits 0-54  the PFN; Linux shows it only to CAP_SYS_ADMIN, an embedder
 *              is root in its own machine
 *
 * Addresses outside any VMA read 0; a VMA's page without a PTE reads 0
 * (or soft-dirty, for a VM_SOFTDIRTY VMA). The shared zero page is present
 * with its PFN, but has no struct page, so neither bit 61 nor bit 56.
 *
 * Locking: mmap_lock for reading over the whole read; each PTE table under
 * its PTE lock (pte_offset_map_lock).
 */
#include <errno.h>
#include "base/rcu.h"
#include "base/rwsem.h"
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"
#include "mm/vma.h"
#include "proc/proc.h"

#define PM_PFRAME_MASK     ((1ull << 55) - 1)
#define PM_SOFT_DIRTY      (1ull << 55)
#define PM_MMAP_EXCLUSIVE  (1ull << 56)
#define PM_FILE            (1ull << 61)
#define PM_SWAP            (1ull << 62)
#define PM_PRESENT         (1ull << 63)

/* What a page of vma without a PTE reads as (Linux's pagemap_pte_hole). */
static uint64_t pagemap_hole_entry(const struct vm_area_struct *vma)
{
	return SM_PROC_SOFT_DIRTY && (vma->vm_flags & VM_SOFTDIRTY) ? PM_SOFT_DIRTY : 0;
}

static uint64_t pte_to_pagemap_entry(struct sm_mm *mm, const struct vm_area_struct *vma, pte_t pte)
{
	uint64_t e = pagemap_hole_entry(vma);
	struct page *page;

	if (!pte_present(pte))
		return e;   /* none: swap entries would go here */
	e |= PM_PRESENT | (pte_pfn(pte) & PM_PFRAME_MASK);
	if (SM_PROC_SOFT_DIRTY && (pte & _PAGE_SOFT_DIRTY))
		e |= PM_SOFT_DIRTY;
	page = vm_normal_page(mm, pte);
	if (page) {
		if (!page_is_anon(page_head(mm->machine, page)))
			e |= PM_FILE;
		if (page_mapcount(page) == 1)
			e |= PM_MMAP_EXCLUSIVE;
	}
	return e;
}

static void pagemap_fill(uint64_t *out, size_t n, uint64_t e)
{
	for (size_t i = 0; i < n; i++)
		out[i] = e;
}

/* Entries for [addr, end) of vma, which lies within one PMD's span. */
static void pagemap_pte_range(struct sm_mm *mm, const struct vm_area_struct *vma,
			      unsigned long addr, unsigned long end, uint64_t *out)
{
	pte_t *pmdp = pmd_off(mm, addr);
	spinlock_t *ptl;
	pte_t *ptep = pmdp ? pte_offset_map_lock(mm, pmdp, addr, &ptl) : NULL;

	if (!ptep) {
		pagemap_fill(out, (end - addr) >> PAGE_SHIFT, pagemap_hole_entry(vma));
		return;
	}
	for (; addr < end; addr += PAGE_SIZE, ptep++)
		*out++ = pte_to_pagemap_entry(mm, vma, ptep_get(ptep));
	spin_unlock(ptl);
}

/* Entries for [addr, end): holes between VMAs, then each VMA table by table. */
static void pagemap_walk(struct sm_mm *mm, unsigned long addr, unsigned long end, uint64_t *out)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	while (addr < end) {
		unsigned long hole_end = vma ? max(addr, min(end, vma->vm_start)) : end;
		unsigned long vma_end;

		pagemap_fill(out, (hole_end - addr) >> PAGE_SHIFT, 0);
		out += (hole_end - addr) >> PAGE_SHIFT;
		addr = hole_end;
		if (!vma)
			break;
		for (vma_end = min(end, vma->vm_end); addr < vma_end; ) {
			unsigned long next = pmd_addr_end(addr, vma_end);

			pagemap_pte_range(mm, vma, addr, next, out);
			out += (next - addr) >> PAGE_SHIFT;
			addr = next;
		}
		vma = vma_next(vma);
	}
}

long sm_pagemap_read(struct sm_mm *mm, unsigned long addr, uint64_t *entries, size_t n)
{
	if (!mm || (!entries && n) || offset_in_page(addr))
		return -EINVAL;
	/* Like a read at the file offset for addr: it stops at the end of the
	 * address space, TASK_SIZE. */
	if (addr >= mm->task_size)
		return 0;
	n = min(n, (mm->task_size - addr) >> PAGE_SHIFT);
	if (!n)
		return 0;
	sm_rcu_thread_online();
	down_read(&mm->mmap_lock);
	pagemap_walk(mm, addr, addr + (n << PAGE_SHIFT), entries);
	up_read(&mm->mmap_lock);
	return (long)n;
}
