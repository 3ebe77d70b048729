/*
 * mremap: shrink (munmap of the tail), grow in place (extend the VMA when
 * the space after it is free), or move: a new VMA at the destination and
 * the page-table entries carried over under both tables' locks — pages are
 * never copied, so their contents, rmap and RSS stay as they were (KSM pages
 * excepted: they are broken first, as in Linux).
 * MREMAP_DONTUNMAP leaves the old range mapped and empty.
 *
 * Preconditions of the helpers: mmap_lock held for writing.
 */
#include <errno.h>
#include <sys/mman.h>
#include "mm/filemap.h"
#include "mm/ksm.h"
#include "mm/memory.h"
#include "mm/mmap.h"
#include "mm/munmap.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"
#include "mm/vma.h"
#include "mm/mm_api.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

struct remap {
	unsigned long addr, old_len, new_len, new_addr;
	int flags;
	struct vm_area_struct *vma;
};

/* Carry the PTEs of one old PTE table's slice to the new address. */
static int move_ptes(struct sm_mm *mm, pte_t *old_pmdp, unsigned long old_addr,
		     unsigned long old_end, unsigned long new_addr)
{
	spinlock_t *old_ptl, *new_ptl;
	pte_t *new_ptep, *old_ptep;
	unsigned long len = old_end - old_addr;

	/* Make sure the destination table exists before taking any lock. */
	{
		pte_t *new_pmdp = pmd_alloc(mm, new_addr);

		if (!new_pmdp || pte_alloc(mm, new_pmdp))
			return -ENOMEM;
		old_ptep = pte_offset_map_lock(mm, old_pmdp, old_addr, &old_ptl);
		if (!old_ptep)
			return 0;
		/* Two PTE tables: lock them in address order of their locks. */
		new_ptl = &table_page(mm, ptep_get(new_pmdp))->ptl;
		if (new_ptl != old_ptl) {
			if (new_ptl < old_ptl) {
				spin_unlock(old_ptl);
				spin_lock(new_ptl);
				spin_lock(old_ptl);
			} else {
				spin_lock(new_ptl);
			}
		}
		new_ptep = &table_of(mm, ptep_get(new_pmdp))[pte_index(new_addr)];
	}
	for (unsigned long off = 0; off < len; off += PAGE_SIZE) {
		pte_t pte = ptep_get(&old_ptep[off >> PAGE_SHIFT]);

		if (pte_none(pte))
			continue;
		pte = ptep_get_and_clear(&old_ptep[off >> PAGE_SHIFT]);
		set_pte(&new_ptep[off >> PAGE_SHIFT], pte);
	}
	if (new_ptl != old_ptl)
		spin_unlock(new_ptl);
	spin_unlock(old_ptl);
	return 0;
}

/* Move [old_addr, old_addr+len) to new_addr, one PTE-table slice at a time
 * (a slice ends where either side crosses a 2 MiB boundary). */
static int move_page_tables(struct sm_mm *mm, unsigned long old_addr, unsigned long new_addr,
			    unsigned long len)
{
	unsigned long old_end = old_addr + len, done = 0;

	while (old_addr + done < old_end) {
		unsigned long from = old_addr + done, to = new_addr + done;
		unsigned long step = min(pmd_addr_end(from, old_end) - from,
					 pmd_addr_end(to, to + (old_end - from)) - to);
		/* A slice lies in one PMD entry's span: a table there or none. */
		pte_t *pmdp = pmd_off(mm, from);
		int err;

		if (!pmdp || !(ptep_get(pmdp) & _PAGE_PRESENT)) {
			done += step;
			continue;
		}
		err = move_ptes(mm, pmdp, from, from + step, to);
		if (err)
			return err;
		done += step;
	}
	flush_tlb_range(mm, old_addr, old_end);
	return 0;
}

/* A VMA at new_addr holding the moved part of vma; merged with neighbours. */
static struct vm_area_struct *copy_vma(struct vm_area_struct *vma, unsigned long addr,
				       unsigned long new_addr, unsigned long len)
{
	struct vm_area_struct *new = vm_area_dup(vma);

	if (!new)
		return NULL;
	new->vm_start = new_addr;
	new->vm_end = new_addr + len;
	/* Unfaulted anonymous memory takes the new place's offset, to merge;
	 * a file's offset is where in the file, wherever it is mapped. */
	if (vma->anon_vma || vma->vm_file)
		new->vm_pgoff = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
	else
		new->vm_pgoff = new_addr >> PAGE_SHIFT;
	if (vma_link(vma->vm_mm, new)) {
		vm_area_free(new);
		return NULL;
	}
	{
		const struct vma_merge_src m = { .existing = false, .copied_from = vma };

		return vma_merge_neighbours(vma->vm_mm, new, &m);
	}
}

static long move_vma(struct sm_mm *mm, struct remap *r)
{
	struct vm_area_struct *vma = r->vma, *new;
	unsigned long flags = vma->vm_flags;
	long err;

	if (mm->map_count >= mm->machine->max_map_count - 3)
		return -ENOMEM;
	/*
	 * KSM's rmap items know their pages by address: a KSM page carried to
	 * the new address would be found by none of them. Break them first, as
	 * Linux does; the VMA stays mergeable and merges again where it lands.
	 */
	if (flags & VM_MERGEABLE) {
		err = unmerge_ksm_pages(vma, r->addr, r->addr + r->old_len);
		if (err)
			return err;
	}
	new = copy_vma(vma, r->addr, r->new_addr, r->new_len);
	if (!new)
		return -ENOMEM;
	/* A file rmap walk (a hole punch, writeback) must see each PTE at
	 * its old place or its new one, not miss it in flight: Linux's
	 * take_rmap_locks. */
	if (new->vm_file)
		pthread_mutex_lock(&new->vm_file->i_mmap_lock);
	err = move_page_tables(mm, r->addr, r->new_addr, r->old_len);
	if (err)   /* put back what moved */
		move_page_tables(mm, r->new_addr, r->addr, r->old_len);
	if (new->vm_file)
		pthread_mutex_unlock(&new->vm_file->i_mmap_lock);
	if (err) {
		do_vmi_munmap(mm, r->new_addr, r->new_len, false);
		return err;
	}
	vm_stat_account(mm, flags, (long)(r->new_len >> PAGE_SHIFT));
	if (r->flags & MREMAP_DONTUNMAP) {
		vma = vma_lookup(mm, r->addr);
		if (vma && vma->vm_start == r->addr && vma->vm_end == r->addr + r->old_len &&
		    vma != new)
			unlink_anon_vmas(vma);
		if (vma)
			vma->vm_flags &= ~VM_LOCKED;
	} else {
		do_vmi_munmap(mm, r->addr, r->old_len, false);
	}
	return (long)r->new_addr;
}

static long set_new_addr(struct sm_mm *mm, struct remap *r)
{
	unsigned long a = get_unmapped_area(mm, r->new_addr, r->new_len,
					    (r->flags & MREMAP_FIXED) ? MAP_FIXED : 0);

	if (IS_ERR_ADDR(a))
		return (long)a;
	r->new_addr = a;
	return 0;
}

static long mremap_to(struct sm_mm *mm, struct remap *r)
{
	long err;

	if (r->flags & MREMAP_FIXED) {
		err = do_vmi_munmap(mm, r->new_addr, r->new_len, false);
		if (err)
			return err;
		r->vma = vma_lookup(mm, r->addr);
		if (!r->vma)
			return -EFAULT;
	}
	if (r->new_len < r->old_len) {
		err = do_vmi_munmap(mm, r->addr + r->new_len, r->old_len - r->new_len, false);
		if (err)
			return err;
		r->old_len = r->new_len;
		r->vma = vma_lookup(mm, r->addr);
	}
	err = set_new_addr(mm, r);
	if (err)
		return err;
	return move_vma(mm, r);
}

static bool can_expand_in_place(struct sm_mm *mm, struct remap *r)
{
	struct vm_area_struct *vma = r->vma;
	unsigned long end = vma->vm_end + (r->new_len - r->old_len);

	if (r->addr + r->old_len != vma->vm_end || end < vma->vm_end || end > mm->task_size)
		return false;
	return find_vma_intersection(mm, vma->vm_end, end) == NULL;
}

static long expand_vma(struct sm_mm *mm, struct remap *r)
{
	struct vm_area_struct *vma = r->vma;
	unsigned long delta = r->new_len - r->old_len;

	if (can_expand_in_place(mm, r)) {
		vma_set_range(vma, vma->vm_start, vma->vm_end + delta, vma->vm_pgoff);
		vm_stat_account(mm, vma->vm_flags, (long)(delta >> PAGE_SHIFT));
		/* Only the tail is new: it may reach the VMA after, but the VMA
		 * itself stays apart from the one before, as it was. */
		vma_merge_next(mm, vma, &VMA_NEW_RANGE);
		return (long)r->addr;
	}
	if (!(r->flags & MREMAP_MAYMOVE))
		return -ENOMEM;
	r->new_addr = r->addr;   /* a hint the search moves away from */
	if (set_new_addr(mm, r))
		return -ENOMEM;
	return move_vma(mm, r);
}

/* Linux's check_prep_vma: what the source VMA allows. */
static long check_vma(struct sm_mm *mm, struct remap *r)
{
	struct vm_area_struct *vma = r->vma;
	bool implies_new = r->flags & (MREMAP_FIXED | MREMAP_DONTUNMAP);
	unsigned long pgoff;

	if (!vma)
		return -EFAULT;
	if (r->new_len <= r->old_len && !implies_new)
		return 0;
	if (!r->old_len)
		return -EINVAL;   /* duplicating a private mapping makes no sense */
	/* A shrinking move only needs what remains to lie inside the VMA. */
	if (min(r->old_len, r->new_len) > vma->vm_end - r->addr)
		return -EFAULT;
	if (r->new_len == r->old_len)
		return 0;
	pgoff = ((r->addr - vma->vm_start) >> PAGE_SHIFT) + vma->vm_pgoff;
	if (pgoff + (r->new_len >> PAGE_SHIFT) < pgoff)
		return -EINVAL;
	if (vma->vm_flags & VM_DONTEXPAND)
		return -EFAULT;
	(void)mm;
	return 0;
}

/*
 * A same-size MREMAP_FIXED move may span several VMAs (Linux 6.17): each is
 * moved to keep its distance from the one before, gaps included. The range
 * may not begin in a gap.
 */
static long remap_move(struct sm_mm *mm, struct remap *r)
{
	unsigned long start = r->addr, end = r->addr + r->old_len;
	unsigned long target = r->new_addr, last_end = 0;
	long res = -EFAULT;
	bool seen = false;

	for (;;) {
		struct vm_area_struct *vma;
		unsigned long offset;
		long ret;

		/* Continue after the last source VMA as it was before it moved:
		 * the moved copy may have merged with what follows. */
		if (seen && last_end >= end)
			break;
		vma = find_vma(mm, seen ? last_end : start);
		if (!vma || vma->vm_start >= end)
			break;
		if (!seen && start < vma->vm_start)
			return -EFAULT;
		offset = seen ? vma->vm_start - last_end : 0;
		last_end = vma->vm_end;
		r->vma = vma;
		r->addr = max(vma->vm_start, start);
		r->old_len = r->new_len = min(end, vma->vm_end) - r->addr;
		r->new_addr = target + offset;
		ret = check_vma(mm, r);
		if (!ret)
			ret = mremap_to(mm, r);
		if (ret < 0)
			return ret;
		if (!seen)
			res = ret;
		seen = true;
		target = (unsigned long)ret + r->new_len;
	}
	return res;
}

static long check_params(struct sm_mm *mm, struct remap *r)
{
	if (r->flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP))
		return -EINVAL;
	if (offset_in_page(r->addr))
		return -EINVAL;
	if (!PAGE_ALIGN(r->new_len))
		return -EINVAL;
	r->old_len = PAGE_ALIGN(r->old_len);
	r->new_len = PAGE_ALIGN(r->new_len);
	if (r->new_len > mm->task_size)
		return -EINVAL;
	if (!(r->flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)))
		return 0;
	if (offset_in_page(r->new_addr))
		return -EINVAL;
	if (r->new_len > mm->task_size || r->new_addr > mm->task_size - r->new_len)
		return -EINVAL;
	if (!(r->flags & MREMAP_MAYMOVE))
		return -EINVAL;
	if ((r->flags & MREMAP_DONTUNMAP) && r->old_len != r->new_len)
		return -EINVAL;
	/* The source and destination may not overlap. */
	if (r->addr < r->new_addr + r->new_len && r->new_addr < r->addr + r->old_len)
		return -EINVAL;
	return 0;
}

static unsigned long sat_add(unsigned long a, unsigned long b)
{
	return b > ~0ul - a ? ~0ul : a + b;
}

long sm_mremap(struct sm_mm *mm, unsigned long addr, unsigned long old_len,
	       unsigned long new_len, int flags, unsigned long new_addr)
{
	struct remap r = { .addr = addr, .old_len = old_len, .new_len = new_len,
			   .new_addr = new_addr, .flags = flags };
	long ret;

	/* PAGE_ALIGN of a huge length wraps to 0 and fails the new_len check. */
	if (new_len > ~0ul - PAGE_SIZE + 1)
		return -EINVAL;
	if (old_len > ~0ul - PAGE_SIZE + 1)
		r.old_len = 0;
	ret = check_params(mm, &r);
	if (ret)
		return ret;
	mm_syscall_enter(mm);
again:
	down_write(&mm->mmap_lock);
	/* A munmap in flight may still be zapping where this would grow or
	 * land (munmap.c): wait for it, as its lock hold would in Linux. */
	if ((r.flags & MREMAP_FIXED) &&
	    munmap_wait_reserved(mm, r.new_addr, sat_add(r.new_addr, r.new_len)))
		goto again;
	if (r.new_len > r.old_len &&
	    munmap_wait_reserved(mm, sat_add(r.addr, r.old_len), sat_add(r.addr, r.new_len)))
		goto again;
	/* move_vma may split the source in up to four places. */
	if ((r.flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) &&
	    mm->map_count + 2 >= mm->machine->max_map_count - 3) {
		ret = -ENOMEM;
		goto out;
	}
	if ((r.flags & MREMAP_FIXED) && r.old_len == r.new_len) {
		ret = remap_move(mm, &r);
		goto out;
	}
	r.vma = vma_lookup(mm, r.addr);
	ret = check_vma(mm, &r);
	if (ret)
		goto out;
	if (r.flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
		ret = mremap_to(mm, &r);
	} else if (r.new_len == r.old_len) {
		ret = (long)r.addr;
	} else if (r.new_len < r.old_len) {
		/* Shrinking is munmap of the tail, with its lock downgrade. */
		ret = do_vmi_munmap(mm, r.addr + r.new_len, r.old_len - r.new_len, true);
		mm_syscall_exit(mm);
		return ret ? ret : (long)r.addr;
	} else {
		ret = expand_vma(mm, &r);
	}
out:
	up_write(&mm->mmap_lock);
	mm_syscall_exit(mm);
	return ret;
}
