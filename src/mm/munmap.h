/*
 * munmap's phased unmap (munmap.c): the ranges it reserves while it zaps
 * with the mmap_lock let go, as seen by whoever places a new mapping.
 */
#ifndef SM_MM_MUNMAP_H
#define SM_MM_MUNMAP_H

#include "mm/mm_types.h"

void munmap_reserved_init(struct sm_mm *mm);
/* Precondition: no munmap in flight on mm. */
void munmap_reserved_destroy(struct sm_mm *mm);

/* The lowest range that a munmap in flight reserves and that intersects
 * [start, end), or NULL. Precondition: mmap_lock held for writing. */
struct gt_node *munmap_reserved_intersection(struct sm_mm *mm, unsigned long start,
					     unsigned long end);
/* The detached VMA containing addr that a munmap in flight is still zapping,
 * or NULL: its PTEs are still in the page tables (sm_mm_check).
 * Precondition: mmap_lock held for writing. */
struct vm_area_struct *munmap_detached_vma(struct sm_mm *mm, unsigned long addr);
/*
 * Before a mapping is placed at a fixed [start, end) (MAP_FIXED, brk or
 * mremap growth, MREMAP_FIXED): if a munmap in flight still reserves part
 * of it, release the mmap_lock, wait until that munmap is done, and return
 * true; the caller takes the lock again and starts over, since anything may
 * have changed. Otherwise return false with the lock still held.
 * Precondition: mmap_lock held for writing.
 */
bool munmap_wait_reserved(struct sm_mm *mm, unsigned long start, unsigned long end);

#endif
