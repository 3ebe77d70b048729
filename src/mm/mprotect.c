/*
 * mprotect: change the protection of [start, end), splitting and merging
 * VMAs by Linux's rules, then rewriting each PTE's protection under its
 * table's lock and flushing every CPU's TLB before returning.
 *
 * A private anonymous page that only this mm maps is made writable at once
 * when the VMA becomes writable (Linux's MM_CP_TRY_CHANGE_WRITABLE), saving
 * the write fault that would only find the page reusable.
 */
#include <errno.h>
#include <sys/mman.h>
#include "mm/memory.h"
#include "mm/mmap.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"
#include "mm/vma.h"
#include "mm/mm_api.h"

#ifndef PROT_SEM
#define PROT_SEM 0x8
#endif

static bool can_change_pte_writable(struct sm_mm *mm, struct vm_area_struct *vma, pte_t pte)
{
	struct page *page;

	if (!(vma->vm_flags & VM_WRITE) || !pte_hw_present(pte))
		return false;
	if (vma->vm_flags & VM_SHARED)
		return pte_dirty(pte);
	page = vm_normal_page(mm, pte);
	return page && page_is_anon(page) && test_bit_flag(page, PG_anon_exclusive);
}

static long change_pte_range(struct mmu_gather *tlb, struct vm_area_struct *vma, pte_t *pmdp,
			     unsigned long addr, unsigned long end)
{
	struct sm_mm *mm = vma->vm_mm;
	spinlock_t *ptl;
	pte_t *ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);
	long changed = 0;

	if (!ptep)
		return 0;
	for (; addr < end; addr += PAGE_SIZE, ptep++) {
		pte_t old = ptep_get(ptep), new;

		if (!pte_present(old))
			continue;
		/* Clear first so the walker's A/D updates land in `old`. */
		old = ptep_get_and_clear(ptep);
		new = pte_modify(old, vma->vm_page_prot);
		if (pte_special(old))
			new &= ~_PAGE_RW;
		else if (!pte_write(new) && can_change_pte_writable(mm, vma, new))
			new = pte_mkwrite(new);
		set_pte(ptep, new);
		if (new != old) {
			tlb_flush_pte_range(tlb, addr, PAGE_SIZE);
			changed++;
		}
	}
	spin_unlock(ptl);
	return changed;
}

static void change_protection(struct mmu_gather *tlb, struct vm_area_struct *vma,
		       unsigned long start, unsigned long end)
{
	unsigned long addr = start;
	pte_t *pmdp;

	while (addr < end && (pmdp = pmd_next_table(vma->vm_mm, &addr, end))) {
		unsigned long next = pmd_addr_end(addr, end);

		change_pte_range(tlb, vma, pmdp, addr, next);
		addr = next;
	}
}

static int mprotect_fixup(struct mmu_gather *tlb, struct vm_area_struct *vma,
			  unsigned long start, unsigned long end, unsigned long newflags,
			  struct vm_area_struct **out)
{
	struct sm_mm *mm = vma->vm_mm;
	unsigned long oldflags = vma->vm_flags;
	long pages = (long)((end - start) >> PAGE_SHIFT);
	int err;

	*out = vma;
	if (newflags == oldflags)
		return 0;
	/* Commit accounting: a private mapping made writable is charged;
	 * it is released again only while no anon_vma exists. */
	if (newflags & VM_WRITE) {
		if (!(oldflags & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE)))
			newflags |= VM_ACCOUNT;
	} else if ((oldflags & VM_ACCOUNT) && !vma->anon_vma) {
		newflags &= ~VM_ACCOUNT;
	}
	vma = vma_isolate(mm, vma, start, end, &err);
	if (!vma)
		return err;
	vma_set_flags(vma, newflags);
	change_protection(tlb, vma, start, end);
	vma = vma_merge_neighbours(mm, vma, &VMA_EXISTING);
	*out = vma;
	vm_stat_account(mm, oldflags, -pages);
	vm_stat_account(mm, newflags, pages);
	return 0;
}

static long do_mprotect(struct sm_mm *mm, unsigned long start, unsigned long end, int prot)
{
	unsigned long newflags, tmp = start;
	struct mmu_gather tlb;
	long err = 0;

	tlb_gather_mmu(&tlb, mm);
	/* Like Linux, VMAs before a hole keep their new protection. */
	while (tmp < end) {
		struct vm_area_struct *vma = find_vma(mm, tmp);

		if (!vma || vma->vm_start > tmp) {
			err = -ENOMEM;
			break;
		}
		newflags = (vma->vm_flags & ~VM_ACCESS_FLAGS) |
			   ((prot & PROT_READ) ? VM_READ : 0) |
			   ((prot & PROT_WRITE) ? VM_WRITE : 0) |
			   ((prot & PROT_EXEC) ? VM_EXEC : 0);
		/* VM_MAY* sit four bits above their VM_* counterparts. */
		if ((newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS) {
			err = -EACCES;
			break;
		}
		err = mprotect_fixup(&tlb, vma, tmp, min(vma->vm_end, end), newflags, &vma);
		if (err)
			break;
		tmp = min(vma->vm_end, end);
	}
	tlb_finish_mmu(&tlb);
	return err;
}

long sm_mprotect(struct sm_mm *mm, unsigned long start, unsigned long len, int prot)
{
	int grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
	unsigned long end;
	long err;

	prot &= ~grows;
	if (grows == (PROT_GROWSDOWN | PROT_GROWSUP))
		return -EINVAL;
	if (offset_in_page(start))
		return -EINVAL;
	if (!len)
		return 0;
	len = PAGE_ALIGN(len);
	end = start + len;
	if (end <= start)
		return -ENOMEM;
	if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM))
		return -EINVAL;
	mm_syscall_enter(mm);
	down_write(&mm->mmap_lock);
	if (grows & PROT_GROWSDOWN) {
		struct vm_area_struct *vma = find_vma(mm, start);

		err = -ENOMEM;
		if (vma && vma->vm_start < end) {
			/* The change extends down to the VMA's start. */
			err = -EINVAL;
			if (vma->vm_flags & VM_GROWSDOWN)
				err = do_mprotect(mm, vma->vm_start, end, prot);
		}
	} else if (grows & PROT_GROWSUP) {
		struct vm_area_struct *vma = find_vma(mm, start);

		/* x86 has no VM_GROWSUP mappings. */
		err = !vma || vma->vm_start > start ? -ENOMEM : -EINVAL;
	} else {
		err = do_mprotect(mm, start, end, prot);
	}
	up_write(&mm->mmap_lock);
	mm_syscall_exit(mm);
	return err;
}
