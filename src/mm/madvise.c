/*
 * madvise. Advice that changes VMA flags (NORMAL/RANDOM/SEQUENTIAL,
 * DONTFORK/DOFORK, WIPEONFORK/KEEPONFORK, DONTDUMP/DODUMP, HUGEPAGE/
 * NOHUGEPAGE, MERGEABLE/UNMERGEABLE) runs under the write lock and splits or
 * merges VMAs as Linux does; advice that acts on pages (DONTNEED, FREE,
 * WILLNEED, COLD, PAGEOUT, POPULATE_*) runs under the read lock, concurrently
 * with faults. As in Linux, a hole in the range does not stop the walk over
 * the VMAs that exist; the call then ends with -ENOMEM.
 *
 * MADV_REMOVE punches a hole in the file behind a shared writable-capable
 * mapping (shared anonymous memory included: it is a shmem file), through
 * every mapping of the file in every mm (truncate.c); it keeps the read lock
 * throughout, where Linux drops it (truncate.c says why that is safe here).
 *
 * Not implemented (-EINVAL, as a kernel built without them): MADV_COLLAPSE,
 * MADV_HWPOISON, MADV_SOFT_OFFLINE, MADV_GUARD_INSTALL/REMOVE.
 */
#include <errno.h>
#include <sys/mman.h>
#include "mm/filemap.h"
#include "mm/ksm.h"
#include "mm/memory.h"
#include "mm/mmap.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/pt_reclaim.h"
#include "mm/rmap.h"
#include "mm/vma.h"
#include "mm/mm_api.h"

#define VM_READHINTMASK (VM_SEQ_READ | VM_RAND_READ)

#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

enum advice_kind { ADV_INVALID, ADV_FLAGS, ADV_PAGES, ADV_POPULATE };

static enum advice_kind advice_kind(int advice)
{
	switch (advice) {
	case MADV_NORMAL: case MADV_RANDOM: case MADV_SEQUENTIAL:
	case MADV_DONTFORK: case MADV_DOFORK: case MADV_WIPEONFORK: case MADV_KEEPONFORK:
	case MADV_DONTDUMP: case MADV_DODUMP: case MADV_HUGEPAGE: case MADV_NOHUGEPAGE:
	case MADV_MERGEABLE: case MADV_UNMERGEABLE:
		return ADV_FLAGS;
	case MADV_DONTNEED: case MADV_DONTNEED_LOCKED: case MADV_FREE: case MADV_WILLNEED:
	case MADV_COLD: case MADV_PAGEOUT: case MADV_REMOVE:
		return ADV_PAGES;
	case MADV_POPULATE_READ: case MADV_POPULATE_WRITE:
		return ADV_POPULATE;
	default:
		return ADV_INVALID;
	}
}

/* The flags `advice` gives vma, or -EINVAL. */
static long advised_flags(struct vm_area_struct *vma, int advice)
{
	unsigned long f = vma->vm_flags;

	switch (advice) {
	case MADV_NORMAL:     return (long)(f & ~VM_READHINTMASK);
	case MADV_SEQUENTIAL: return (long)((f & ~VM_READHINTMASK) | VM_SEQ_READ);
	case MADV_RANDOM:     return (long)((f & ~VM_READHINTMASK) | VM_RAND_READ);
	case MADV_DONTFORK:   return (long)(f | VM_DONTCOPY);
	case MADV_DOFORK:     return (long)(f & ~VM_DONTCOPY);
	case MADV_WIPEONFORK:
		return vma->vm_file || (f & VM_SHARED) ? -EINVAL : (long)(f | VM_WIPEONFORK);
	case MADV_KEEPONFORK: return (long)(f & ~VM_WIPEONFORK);
	case MADV_DONTDUMP:   return (long)(f | VM_DONTDUMP);
	case MADV_DODUMP:     return (long)(f & ~VM_DONTDUMP);
	case MADV_HUGEPAGE:   return (long)((f & ~VM_NOHUGEPAGE) | VM_HUGEPAGE);
	case MADV_NOHUGEPAGE: return (long)((f & ~VM_HUGEPAGE) | VM_NOHUGEPAGE);
	case MADV_MERGEABLE:  return f & VM_SHARED ? (long)f : (long)(f | VM_MERGEABLE);
	case MADV_UNMERGEABLE: return (long)(f & ~VM_MERGEABLE);
	}
	return -EINVAL;
}

static long madvise_update_vma(struct vm_area_struct *vma, unsigned long start,
			       unsigned long end, int advice)
{
	long newflags = advised_flags(vma, advice);
	unsigned long ksm_flags = vma->vm_flags;
	int err;

	if (advice == MADV_MERGEABLE || advice == MADV_UNMERGEABLE) {
		newflags = ksm_madvise(vma, start, end, advice, &ksm_flags);
		if (newflags < 0)
			return newflags;
		newflags = (long)ksm_flags;
	}
	if (newflags < 0)
		return newflags;
	if ((unsigned long)newflags == vma->vm_flags)
		return 0;
	vma = vma_isolate(vma->vm_mm, vma, start, end, &err);
	if (!vma)
		return err;
	vma_set_flags(vma, (unsigned long)newflags);
	vma_merge_neighbours(vma->vm_mm, vma, &VMA_EXISTING);
	return 0;
}

/* MADV_FREE: clean private anonymous pages become discardable; a later
 * write dirties them again and keeps them. */
static void madvise_free_pte_range(struct mmu_gather *tlb, struct sm_mm *mm, pte_t *pmdp,
				   unsigned long addr, unsigned long end)
{
	spinlock_t *ptl;
	pte_t *ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);

	if (!ptep)
		return;
	for (; addr < end; addr += PAGE_SIZE, ptep++) {
		pte_t pte = ptep_get(ptep);
		struct page *page;

		if (!pte_hw_present(pte))
			continue;
		page = vm_normal_page(mm, pte);
		if (!page || !page_is_anon(page) || page_mapcount(page) != 1)
			continue;
		ptep_clear_bits(ptep, _PAGE_DIRTY | _PAGE_ACCESSED);
		clear_page_flag(page, PG_dirty);
		clear_page_flag(page, PG_swapbacked);
		set_page_flag(page, PG_lazyfree);
		tlb_flush_pte_range(tlb, addr, PAGE_SIZE);
	}
	spin_unlock(ptl);
}

static void madvise_free_range(struct mmu_gather *tlb, struct vm_area_struct *vma,
			       unsigned long start, unsigned long end)
{
	unsigned long addr = start;
	pte_t *pmdp;

	while (addr < end && (pmdp = pmd_next_table(vma->vm_mm, &addr, end))) {
		unsigned long next = pmd_addr_end(addr, end);

		madvise_free_pte_range(tlb, vma->vm_mm, pmdp, addr, next);
		addr = next;
	}
}

/* Linux's madvise_remove: the checks, in its order, then the hole. */
static long madvise_remove(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	if (vma->vm_flags & VM_LOCKED)
		return -EINVAL;
	if (!vma->vm_file)
		return -EINVAL;   /* private anonymous memory */
	/* Linux's vma_is_shared_maywrite: private file mappings, and shared
	 * ones of a file opened read-only (mmap cleared VM_SHARED), may not. */
	if ((vma->vm_flags & (VM_SHARED | VM_MAYWRITE)) != (VM_SHARED | VM_MAYWRITE))
		return -EACCES;
	return mapping_punch_hole(vma->vm_file, linear_page_index(vma, start),
				  linear_page_index(vma, end - 1));
}

static long madvise_pages(struct mmu_gather *tlb, struct vm_area_struct *vma,
			  unsigned long start, unsigned long end, int advice)
{
	switch (advice) {
	case MADV_DONTNEED:
	case MADV_DONTNEED_LOCKED:
	case MADV_FREE:
		if (vma->vm_flags & (advice == MADV_DONTNEED_LOCKED ? 0 : VM_LOCKED))
			return -EINVAL;
		if (advice == MADV_FREE && vma->vm_file)
			return -EINVAL;   /* only anonymous memory can be freed lazily */
		if (advice == MADV_FREE) {
			madvise_free_range(tlb, vma, start, end);
		} else {
			struct sm_machine *m = vma->vm_mm->machine;
			struct zap_details d = { .reclaim_pt = m->pt_reclaim_on_zap };

			zap_page_range_details(tlb, vma, start, end, &d);
			if (d.pt_freed)
				__atomic_fetch_add(&m->pt_zap_freed, d.pt_freed, __ATOMIC_RELAXED);
			if (d.pt_missed) {
				__atomic_fetch_add(&m->pt_zap_rechecked, d.pt_missed, __ATOMIC_RELAXED);
				reclaim_pt_range(tlb, vma->vm_mm, start, end);
			}
		}
		return 0;
	case MADV_COLD:
	case MADV_PAGEOUT:
		/* No reclaim yet (and no swap): nothing to age or page out. */
		return vma->vm_flags & VM_LOCKED ? -EINVAL : 0;
	case MADV_REMOVE:
		return madvise_remove(vma, start, end);
	default:
		return 0;         /* WILLNEED: anonymous memory has nothing to read ahead */
	}
}

static long madvise_populate(struct sm_mm *mm, unsigned long start, unsigned long end, int advice)
{
	bool write = advice == MADV_POPULATE_WRITE;
	unsigned long addr = start;

	while (addr < end) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		unsigned long stop;
		long err;

		if (!vma)
			return -ENOMEM;
		/* GUP refuses the access: Linux reports "incompatible mapping". */
		if (write ? !(vma->vm_flags & VM_WRITE) : !(vma->vm_flags & VM_READ))
			return -EINVAL;
		stop = min(end, vma->vm_end);
		err = populate_range(mm, addr, stop, write ? POPULATE_WRITE : POPULATE_READ);
		if (err)
			return err;
		addr = stop;
	}
	return 0;
}

/* Apply advice to every VMA in [start, end); -ENOMEM at the end for holes. */
static long madvise_walk_vmas(struct sm_mm *mm, unsigned long start, unsigned long end,
			      int advice, enum advice_kind kind)
{
	struct vm_area_struct *vma = find_vma(mm, start);
	long unmapped = 0, err = 0;
	struct mmu_gather tlb;

	tlb_gather_mmu(&tlb, mm);
	while (start < end) {
		unsigned long stop;

		if (!vma || vma->vm_start >= end) {
			unmapped = -ENOMEM;
			break;
		}
		if (start < vma->vm_start) {
			unmapped = -ENOMEM;
			start = vma->vm_start;
		}
		stop = min(end, vma->vm_end);
		if (kind == ADV_FLAGS)
			err = madvise_update_vma(vma, start, stop, advice);
		else
			err = madvise_pages(&tlb, vma, start, stop, advice);
		if (err)
			break;
		start = stop;
		vma = find_vma(mm, start);
	}
	tlb_finish_mmu(&tlb);
	return err ? err : unmapped;
}

long sm_madvise(struct sm_mm *mm, unsigned long start, unsigned long len, int advice)
{
	enum advice_kind kind = advice_kind(advice);
	unsigned long end, alen;
	long err;

	if (advice == SM_MADV_PT_RECLAIM) {
		if (offset_in_page(start) || start + PAGE_ALIGN(len) < start)
			return -EINVAL;
		mm_syscall_enter(mm);
		err = madvise_pt_reclaim(mm, start, min(start + PAGE_ALIGN(len), mm->task_size));
		mm_syscall_exit(mm);
		return err;
	}
	if (kind == ADV_INVALID)
		return -EINVAL;
	if (offset_in_page(start))
		return -EINVAL;
	alen = PAGE_ALIGN(len);
	if (len && !alen)
		return -EINVAL;
	end = start + alen;
	if (end < start)
		return -EINVAL;
	if (end == start)
		return 0;
	mm_syscall_enter(mm);
	if (kind == ADV_FLAGS) {
		down_write(&mm->mmap_lock);
		err = madvise_walk_vmas(mm, start, end, advice, kind);
		up_write(&mm->mmap_lock);
	} else {
		down_read(&mm->mmap_lock);
		if (kind == ADV_POPULATE)
			err = madvise_populate(mm, start, end, advice);
		else
			err = madvise_walk_vmas(mm, start, end, advice, kind);
		up_read(&mm->mmap_lock);
	}
	mm_syscall_exit(mm);
	return err;
}
