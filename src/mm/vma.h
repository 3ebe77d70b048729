/* The VMA tree of an mm: lookup, link, split and merge. */
#ifndef SM_MM_VMA_H
#define SM_MM_VMA_H

#include "mm/mm_types.h"

struct vm_area_struct *vm_area_alloc(struct sm_mm *mm);
/* A copy of orig's fields and anon_vma chain, not linked anywhere. */
struct vm_area_struct *vm_area_dup(struct vm_area_struct *orig);
void vm_area_free(struct vm_area_struct *vma);

/* First VMA with vm_end > addr (it may start above addr), or NULL. */
struct vm_area_struct *find_vma(struct sm_mm *mm, unsigned long addr);
struct vm_area_struct *find_vma_intersection(struct sm_mm *mm, unsigned long start, unsigned long end);
struct vm_area_struct *vma_lookup(struct sm_mm *mm, unsigned long addr);   /* containing addr */
struct vm_area_struct *vma_prev(struct vm_area_struct *vma);
struct vm_area_struct *vma_next(struct vm_area_struct *vma);
struct vm_area_struct *vma_first(struct sm_mm *mm);

/* Preconditions for the rest: mmap_lock held for writing. */
int  vma_link(struct sm_mm *mm, struct vm_area_struct *vma);
void vma_unlink(struct sm_mm *mm, struct vm_area_struct *vma);
/* Change [vm_start, vm_end) in place (expand or shrink, no overlap). */
void vma_set_range(struct vm_area_struct *vma, unsigned long start, unsigned long end,
		   unsigned long pgoff);
/* Split at addr; the new VMA takes the part below addr if new_below. 0 or -ENOMEM. */
int  split_vma(struct sm_mm *mm, struct vm_area_struct *vma, unsigned long addr, int new_below);
/* Make [start, end) (inside vma) a VMA of its own: split as needed; the
 * VMA covering exactly [start, end) is returned, or NULL with *err. */
struct vm_area_struct *vma_isolate(struct sm_mm *mm, struct vm_area_struct *vma,
				   unsigned long start, unsigned long end, int *err);
/* Merge vma with its neighbours where Linux's rules allow; returns the
 * VMA now covering vma's range. */
/* Where the anon_vma of the VMA being merged comes from (Linux's vmg). */
struct vma_merge_src {
	bool existing;                                /* an existing VMA, not a new range */
	const struct vm_area_struct *copied_from;     /* mremap: the VMA it was copied from */
};
extern const struct vma_merge_src VMA_EXISTING, VMA_NEW_RANGE;
struct vm_area_struct *vma_merge_neighbours(struct sm_mm *mm, struct vm_area_struct *vma,
					    const struct vma_merge_src *m);
/* Merge vma with the VMA after it only, if they may (mremap growing in place:
 * only its new tail is a new range, as Linux's vma_merge_extend). */
void vma_merge_next(struct sm_mm *mm, struct vm_area_struct *vma, const struct vma_merge_src *m);
/* May a (below) and b merge, src being the one whose anon_vma m describes? */
bool vmas_can_merge(const struct vm_area_struct *a, const struct vm_area_struct *b,
		    const struct vm_area_struct *src, const struct vma_merge_src *m);

/* Lowest-level change of a VMA's flags (protection follows). */
void vma_set_flags(struct vm_area_struct *vma, unsigned long flags);

#endif
