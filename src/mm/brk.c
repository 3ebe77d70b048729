/*
 * brk: the heap VMA above start_brk, grown by extending the VMA that ends at
 * the old break (or a new one), shrunk through munmap with the same
 * phases as munmap (munmap.c). Any refused change returns the old break, as Linux.
 */
#include <errno.h>
#include "mm/mmap.h"
#include "mm/munmap.h"
#include "mm/vma.h"
#include "mm/mm_api.h"

#define VM_DATA_DEFAULT_FLAGS (VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC)

/* The VMA below addr that starts at or above start_brk, if any. */
static struct vm_area_struct *brk_vma(struct sm_mm *mm, unsigned long addr)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	vma = vma ? vma_prev(vma) : node_vma(gt_last(&mm->mm_mt));
	return vma && vma->vm_start >= mm->start_brk ? vma : NULL;
}

static int do_brk_flags(struct sm_mm *mm, struct vm_area_struct *brkvma, unsigned long addr,
			unsigned long len)
{
	unsigned long flags = VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT;
	struct vm_area_struct *vma;

	if (mm->map_count > mm->machine->max_map_count)
		return -ENOMEM;
	/* Expand the heap VMA in place when a new VMA there would merge with
	 * it: same flags, and not chained to several anon_vmas (after fork). */
	if (brkvma && brkvma->vm_end == addr &&
	    ((brkvma->vm_flags ^ flags) & ~VM_IGNORE_MERGE) == 0 &&
	    brkvma->anon_vma_chain.next == brkvma->anon_vma_chain.prev &&
	    brkvma->vm_pgoff + vma_pages(brkvma) == addr >> PAGE_SHIFT) {
		vma_set_range(brkvma, brkvma->vm_start, addr + len, brkvma->vm_pgoff);
		brkvma->vm_flags |= VM_SOFTDIRTY;
	} else {
		vma = vm_area_alloc(mm);
		if (!vma)
			return -ENOMEM;
		vma->vm_start = addr;
		vma->vm_end = addr + len;
		vma->vm_pgoff = addr >> PAGE_SHIFT;
		vma_set_flags(vma, flags | VM_SOFTDIRTY);
		if (vma_link(mm, vma)) {
			vm_area_free(vma);
			return -ENOMEM;
		}
	}
	mm->total_vm += len >> PAGE_SHIFT;
	mm->data_vm += len >> PAGE_SHIFT;
	if (mm->total_vm > mm->hiwater_vm)
		mm->hiwater_vm = mm->total_vm;
	return 0;
}

long sm_brk(struct sm_mm *mm, unsigned long brk)
{
	unsigned long origbrk, newbrk, oldbrk;
	struct vm_area_struct *next;

	mm_syscall_enter(mm);
again:
	down_write(&mm->mmap_lock);
	origbrk = mm->brk;
	if (brk < mm->start_brk || brk > TASK_SIZE)
		goto out;
	newbrk = PAGE_ALIGN(brk);
	oldbrk = PAGE_ALIGN(mm->brk);
	mm->brk_set = true;
	if (oldbrk == newbrk) {
		mm->brk = brk;
		goto out_ok;
	}
	if (brk <= mm->brk) {
		struct vm_area_struct *vma = find_vma(mm, newbrk);

		/* Only the heap itself may be unmapped by shrinking it. */
		if (!vma || vma->vm_start >= oldbrk)
			goto out;
		mm->brk = brk;
		if (do_vmi_munmap(mm, newbrk, oldbrk - newbrk, true)) {
			down_write(&mm->mmap_lock);
			goto out;
		}
		mm_syscall_exit(mm);
		return (long)brk;
	}
	/* Growing: keep a page of distance from the next mapping, and wait
	 * for a munmap still zapping there (a brk shrink, say) to finish. */
	if (munmap_wait_reserved(mm, oldbrk, newbrk + PAGE_SIZE))
		goto again;
	next = find_vma(mm, oldbrk);
	if (next && newbrk + PAGE_SIZE > next->vm_start)
		goto out;
	if (do_brk_flags(mm, brk_vma(mm, oldbrk), oldbrk, newbrk - oldbrk))
		goto out;
	mm->brk = brk;
out_ok:
	up_write(&mm->mmap_lock);
	mm_syscall_exit(mm);
	return (long)brk;
out:
	mm->brk = origbrk;
	up_write(&mm->mmap_lock);
	mm_syscall_exit(mm);
	return (long)origbrk;
}
