/*
 * munmap, in phases (Linux 4.20), so that nobody waits for the zap:
 *
 *   1. under the mmap_lock for writing: split the edge VMAs and detach every
 *      VMA of the range from the tree. From here on a fault in the range is
 *      -EFAULT. A failure before the detach leaves the tree as it was.
 *   2. downgrade to the read lock and zap the pages, one PTE table's span
 *      (2 MiB) at a time, through the mmu_gather;
 *   3. free the page tables that the range alone used, bounded by the
 *      neighbours; free the VMAs; unlock.
 *
 * Linux keeps the read lock for the whole of step 2, so a writer (mmap, or
 * an mprotect elsewhere in the process) waits for the whole zap, and behind
 * that writer every fault, since the lock is fair. Here the zap looks
 * between spans whether a writer is queued and, if so, lets go of the lock
 * and takes it again behind that writer: a writer waits for one span, not
 * for gigabytes. Step 3 does the same every 1 GiB for the tables wholly
 * inside one VMA, before the short final pass over the shared edges.
 *
 * That is sound because the detached VMAs belong to this munmap alone:
 * nothing reaches their pages but the page tables, which stay until step 3.
 * What the lock no longer protects is the address range itself, so it is
 * reserved: the detached VMAs go into mm->munmap_reserved (in the tree's
 * gt_node they no longer use) before the downgrade, and leave it in step 3.
 *   - get_unmapped_area places nothing there (mmap.c);
 *   - a fixed placement into it (MAP_FIXED, MAP_FIXED_NOREPLACE, brk or
 *     mremap growth, MREMAP_FIXED) lets go of the write lock and waits on
 *     munmap_reserved.released, then starts over (munmap_wait_reserved);
 *   - every free_pgtables bounds itself by the reserved ranges as by VMAs,
 *     so no other unmap frees a table this zap has yet to walk. The free
 *     phases of concurrent munmaps run one at a time, under
 *     munmap_reserved.lock, so that of two neighbours the second to finish
 *     sees the first gone and frees the tables they shared;
 *   - sm_mm_check accounts the PTEs still mapped there to the detached VMA.
 * The page-table reclaim scanner needs nothing: it frees only empty PTE
 * tables under the read lock, revalidated under their locks, and upper
 * tables under the write lock, when this zap is not walking them.
 *
 * munmap_reserved.lock comes after the mmap_lock. A waiter holds it while
 * it drops the write lock, so it cannot miss the broadcast; it is never
 * held while taking the mmap_lock.
 *
 * Callers that must not let the lock go (MAP_FIXED over a mapping, mremap's
 * own unmaps) and the SM_CFG_MUNMAP_ZAP_WRITE_LOCKED knob (the pre-4.20
 * way, for comparison) zap under the write lock and reserve nothing.
 */
#include <errno.h>
#include "mm/mmap.h"
#include "mm/memory.h"
#include "mm/mmu_gather.h"
#include "mm/munmap.h"
#include "mm/pgtable.h"
#include "mm/vma.h"
#include "mm/mm_api.h"

/* ---------------------------------------------------------------- reservations */

void munmap_reserved_init(struct sm_mm *mm)
{
	pthread_mutex_init(&mm->munmap_reserved.lock, NULL);
	pthread_cond_init(&mm->munmap_reserved.released, NULL);
	gt_init(&mm->munmap_reserved.vmas);
}

void munmap_reserved_destroy(struct sm_mm *mm)
{
	SM_ASSERT(!gt_first(&mm->munmap_reserved.vmas), "mm %p destroyed during a munmap", (void *)mm);
	pthread_cond_destroy(&mm->munmap_reserved.released);
	pthread_mutex_destroy(&mm->munmap_reserved.lock);
}

struct gt_node *munmap_reserved_intersection(struct sm_mm *mm, unsigned long start,
					     unsigned long end)
{
	return gt_find_intersection(&mm->munmap_reserved.vmas, start, end);
}

struct vm_area_struct *munmap_detached_vma(struct sm_mm *mm, unsigned long addr)
{
	struct gt_node *n = gt_find(&mm->munmap_reserved.vmas, addr);

	return n && n->start <= addr ? node_vma(n) : NULL;
}

bool munmap_wait_reserved(struct sm_mm *mm, unsigned long start, unsigned long end)
{
	struct munmap_reserved *r = &mm->munmap_reserved;

	rwsem_assert_write_held(&mm->mmap_lock);
	if (start >= end || !gt_find_intersection(&r->vmas, start, end))
		return false;
	__atomic_fetch_add(&mm->machine->munmap_reserve_waits, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&r->lock);
	up_write(&mm->mmap_lock);
	while (gt_find_intersection(&r->vmas, start, end))
		pthread_cond_wait(&r->released, &r->lock);
	pthread_mutex_unlock(&r->lock);
	return true;
}

/* ---------------------------------------------------------------- phase 1 */

/* The VMAs of one munmap, detached from the tree, in address order. */
struct detached {
	struct vm_area_struct *first;   /* linked through next_detached */
	bool reserved;                  /* in mm->munmap_reserved: the zap may drop the lock */
};

static long detach_range(struct sm_mm *mm, unsigned long start, unsigned long end,
			 struct detached *d)
{
	struct vm_area_struct *vma = find_vma_intersection(mm, start, end), *last, *next;
	struct vm_area_struct **tail = &d->first;
	int err;

	d->first = NULL;
	d->reserved = false;
	if (!vma)
		return 0;
	/* Both splits happen before anything is detached, so a failure
	 * leaves every mapping in place. */
	if (start > vma->vm_start) {
		if (end < vma->vm_end && mm->map_count >= mm->machine->max_map_count)
			return -ENOMEM;
		err = split_vma(mm, vma, start, 1);
		if (err)
			return err;
	}
	last = vma_lookup(mm, end - 1);
	if (last && end < last->vm_end) {
		err = split_vma(mm, last, end, 1);
		if (err)
			return err;
	}
	/* A split with new_below may have moved vma above the range. */
	vma = find_vma(mm, start);
	while (vma && vma->vm_start < end) {
		next = vma_next(vma);
		vma_unlink(mm, vma);
		vm_stat_account(mm, vma->vm_flags, -(long)vma_pages(vma));
		*tail = vma;
		tail = &vma->next_detached;
		*tail = NULL;
		vma = next;
	}
	return 0;
}

/* Precondition: mmap_lock held for writing; the VMAs were just detached. */
static void reserve_detached(struct sm_mm *mm, struct detached *d)
{
	struct munmap_reserved *r = &mm->munmap_reserved;

	pthread_mutex_lock(&r->lock);
	for (struct vm_area_struct *vma = d->first; vma; vma = vma->next_detached) {
		int err = gt_insert(&r->vmas, &vma->vm_node);

		SM_ASSERT(!err, "detached VMA %lx-%lx overlaps a reserved range", vma->vm_start,
			  vma->vm_end);
	}
	pthread_mutex_unlock(&r->lock);
	d->reserved = true;
}

/* ---------------------------------------------------------------- phase 2 */

/*
 * Between two page tables of a reserved range: the queued writer goes
 * first, then this zap takes the read lock again behind it. Flush first,
 * so that no page this zap took is left waiting in the gather meanwhile.
 * Precondition: mmap_lock held for reading; no page-table pointer kept.
 */
static void let_writer_in(struct sm_mm *mm, struct mmu_gather *tlb)
{
	tlb_flush_mmu(tlb);
	__atomic_fetch_add(&mm->machine->munmap_lock_drops, 1, __ATOMIC_RELAXED);
	up_read(&mm->mmap_lock);
	down_read(&mm->mmap_lock);
}

/*
 * Zap every page of the detached VMAs. With d->reserved, after each PTE
 * table a queued writer gets the lock.
 * Precondition: mmap_lock held (read suffices with d->reserved).
 */
static void zap_detached(struct sm_mm *mm, struct detached *d, struct mmu_gather *tlb)
{
	/* A PTE table whose whole span the zap clears is this range's alone:
	 * unlink it as it empties rather than look for it empty in step 3. */
	struct zap_details details = { .reclaim_pt = true };

	for (struct vm_area_struct *vma = d->first; vma; vma = vma->next_detached) {
		unsigned long addr = vma->vm_start;
		pte_t *pmdp;

		while (addr < vma->vm_end && (pmdp = pmd_next_table(mm, &addr, vma->vm_end))) {
			unsigned long next = pmd_addr_end(addr, vma->vm_end);

			zap_page_range_details(tlb, vma, addr, next, &details);
			addr = next;
			if (d->reserved && rwsem_writer_waiting(&mm->mmap_lock))
				let_writer_in(mm, tlb);
		}
	}
}

/* ---------------------------------------------------------------- phase 3 */

/* Narrow [*floor, *ceiling) (ceiling 0: the top) to the free space that
 * [start, end) lies in, as far as tree t knows. */
static void narrow_to_gap(const struct gt_root *t, unsigned long start, unsigned long end,
			  unsigned long *floor, unsigned long *ceiling)
{
	struct gt_node *n = gt_find(t, start), *p;

	SM_ASSERT(!n || n->start >= end, "%lx-%lx is not free", start, end);
	if (n && (!*ceiling || n->start < *ceiling))
		*ceiling = n->start;
	p = n ? gt_prev(n) : gt_last(t);
	if (p && p->end > *floor)
		*floor = p->end;
}

/*
 * Freeing a big range's tables takes a while too (at 16 GiB, 8192 tables to
 * find empty). While the range is reserved, the tables wholly inside one
 * VMA are its alone: free those first, 1 GiB at a time, letting a queued
 * writer in between, and leave the shared edges to the pass below.
 */
static void free_inner_pgtables(struct sm_mm *mm, struct detached *d, struct mmu_gather *tlb)
{
	for (struct vm_area_struct *vma = d->first; vma; vma = vma->next_detached) {
		unsigned long addr = vma->vm_start, next;

		if (vma->vm_end - vma->vm_start <= PUD_SIZE)
			continue;
		for (; addr < vma->vm_end; addr = next) {
			next = min((addr + PUD_SIZE) & PUD_MASK, vma->vm_end);
			free_pgtables(tlb, mm, addr, next, vma->vm_start, vma->vm_end);
			if (rwsem_writer_waiting(&mm->mmap_lock))
				let_writer_in(mm, tlb);
		}
	}
}

/*
 * Free the page tables that only the detached VMAs used. Each VMA's tables
 * are bounded by the nearest mapping or reserved range on either side, as
 * they are now: a neighbour unmapped meanwhile widens the gap.
 */
static void free_detached_pgtables(struct sm_mm *mm, struct detached *d, struct mmu_gather *tlb)
{
	struct munmap_reserved *r = &mm->munmap_reserved;
	struct vm_area_struct *vma;

	if (d->reserved)
		free_inner_pgtables(mm, d, tlb);
	pthread_mutex_lock(&r->lock);
	if (d->reserved)
		for (vma = d->first; vma; vma = vma->next_detached)
			gt_erase(&r->vmas, &vma->vm_node);
	for (vma = d->first; vma; vma = vma->next_detached) {
		unsigned long floor = 0, ceiling = 0;

		narrow_to_gap(&mm->mm_mt, vma->vm_start, vma->vm_end, &floor, &ceiling);
		narrow_to_gap(&r->vmas, vma->vm_start, vma->vm_end, &floor, &ceiling);
		free_pgtables(tlb, mm, vma->vm_start, vma->vm_end, floor, ceiling);
	}
	if (d->reserved)
		pthread_cond_broadcast(&r->released);
	pthread_mutex_unlock(&r->lock);
	/* A waiter needs the write lock, which waits for this flush. */
	tlb_finish_mmu(tlb);
}

static void unmap_detached(struct sm_mm *mm, struct detached *d)
{
	struct vm_area_struct *vma, *next;
	struct mmu_gather tlb;

	tlb_gather_mmu(&tlb, mm);
	zap_detached(mm, d, &tlb);
	free_detached_pgtables(mm, d, &tlb);
	for (vma = d->first; vma; vma = next) {
		next = vma->next_detached;
		vm_area_free(vma);
	}
}

/* ---------------------------------------------------------------- the call */

long do_vmi_munmap(struct sm_mm *mm, unsigned long start, unsigned long len, bool unlock)
{
	struct detached d;
	unsigned long end;
	long err;

	if (offset_in_page(start) || start > mm->task_size || len > mm->task_size - start) {
		err = -EINVAL;
		goto out_unlock;
	}
	end = start + PAGE_ALIGN(len);
	if (end == start) {
		err = -EINVAL;
		goto out_unlock;
	}
	err = detach_range(mm, start, end, &d);
	if (err || !d.first)
		goto out_unlock;
	if (unlock && !mm->machine->munmap_zap_write_locked) {
		reserve_detached(mm, &d);
		downgrade_write(&mm->mmap_lock);
		unmap_detached(mm, &d);
		up_read(&mm->mmap_lock);
		return 0;
	}
	unmap_detached(mm, &d);
out_unlock:
	if (unlock)
		up_write(&mm->mmap_lock);
	return err;
}

long sm_munmap(struct sm_mm *mm, unsigned long addr, unsigned long len)
{
	long ret;

	mm_syscall_enter(mm);
	down_write(&mm->mmap_lock);
	ret = do_vmi_munmap(mm, addr, len, true);
	mm_syscall_exit(mm);
	return ret;
}
