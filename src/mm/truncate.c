/*
 * Punching a hole in a file: what MADV_REMOVE asks of the file behind a
 * shared mapping, fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE).
 * Linux's counterparts: shmem_fallocate and the filesystems' punch_hole,
 * truncate_pagecache_range, unmap_mapping_range and
 * truncate_inode_pages_range (mm/truncate.c, mm/memory.c).
 *
 * The order, under the file's invalidate_lock held for writing (no fault
 * fills the cache with a page it read before the punch) and its wb_lock (no
 * writeback writes a folio of the range back after the punch):
 *   1. the host file's blocks go (fallocate on our fd). Its error ends the
 *      call with the cache untouched, as a filesystem that cannot punch
 *      refuses before it drops anything. shmem has no host file.
 *   2. the range's cached folios leave the index under tree_lock, onto a
 *      list of our own through their lru link; lookups miss from then on,
 *      and a missing fault waits for invalidate_lock, then reads the hole.
 *   3. unmap_mapping_range: through the file rmap, every VMA of every mm
 *      that maps the range loses its PTEs of this file's folios there, by
 *      a zap (mmu_gather per VMA: TLB flush, then rmap and references, RSS
 *      as any zap). Private copies made by COW stay (even_cows = false).
 *   4. each folio, now mapped nowhere, drops its dirt (Linux's
 *      folio_cancel_dirty: a hole has no data to write back) and the
 *      cache's reference; the frame is free once the last transient
 *      reference goes (a fault that backed off, a zapper's mmu_gather).
 * A fault that looked a folio up before step 2 and maps it after step 3
 * cannot happen: it checks, under the PTE lock, that the folio is still
 * cached (filemap.c, do_file_fault), and step 3 takes that PTE lock after
 * step 2. fork and mremap copy or move file PTEs under i_mmap_lock, and
 * VMA splits and merges never leave a PTE uncovered by the rmap
 * (file_rmap.c), so step 3 misses none.
 *
 * The mmap_lock: Linux lets it go around vfs_fallocate, because
 * filesystems take i_rwsem there, which ranks above it. The host's
 * fallocate takes no lock of ours, and the locks taken here
 * (invalidate_lock, wb_lock, i_mmap_lock, PTE locks, tree_lock) all rank
 * below the mmap_lock: the caller keeps its read hold, and with it the VMA
 * and the file's reference. Writers of that mm wait for the host's
 * fallocate meanwhile, faults of other mms only if they miss in this file.
 */
#include <errno.h>
#include <fcntl.h>
#include "mm/filemap.h"
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/mmu_gather.h"
#include "mm/rmap.h"

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

static long host_punch_hole(struct address_space *as, unsigned long first, unsigned long last)
{
	off_t off = (off_t)(first << PAGE_SHIFT), len = (off_t)((last - first + 1) << PAGE_SHIFT);

	while (fallocate(as->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len)) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static void unmap_vma_range(struct vm_area_struct *vma, unsigned long start, unsigned long end,
			    void *arg)
{
	struct zap_details details = { .mapping = arg };
	struct mmu_gather tlb;

	tlb_gather_mmu(&tlb, vma->vm_mm);
	zap_page_range_details(&tlb, vma, start, end, &details);
	tlb_finish_mmu(&tlb);
}

/* Step 3: every PTE of every mm mapping a cached folio of [first, last]. */
static void unmap_mapping_range(struct address_space *as, unsigned long first, unsigned long last)
{
	file_rmap_walk_range(as, first, last, unmap_vma_range, as);
}

long mapping_punch_hole(struct address_space *as, unsigned long first, unsigned long last)
{
	struct sm_machine *m = as->machine;
	struct list_head removed;
	struct page *p, *n;
	long err = 0;

	INIT_LIST_HEAD(&removed);
	down_write(&as->invalidate_lock);
	pthread_mutex_lock(&as->wb_lock);
	if (!as->shmem)
		err = host_punch_hole(as, first, last);
	if (!err)
		filemap_remove_range(as, first, last, &removed);
	/* Nothing was cached, so nothing was mapped: no walk. */
	if (!list_empty(&removed))
		unmap_mapping_range(as, first, last);
	list_for_each_entry_safe(p, n, &removed, lru) {
		list_del(&p->lru);
		SM_ASSERT(page_mapcount(p) == 0, "punched pfn %lu still mapped %d times",
			  page_to_pfn(m, p), page_mapcount(p));
		clear_page_flag(p, PG_dirty);
		folio_put_refs(m, p, 1);
		__atomic_fetch_add(&m->punched_pages, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&as->wb_lock);
	up_write(&as->invalidate_lock);
	return err;
}
