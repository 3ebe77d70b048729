/*
 * VMAs live in the mm's gap tree (base/gaptree.c), keyed by address and
 * augmented with the free gaps between them, so lookups and placement are
 * O(log n). Split and merge follow Linux's rules: two adjacent VMAs merge
 * when their flags match (ignoring VM_SOFTDIRTY), their page offsets are
 * continuous, and their anon_vmas are compatible (equal, or one absent while
 * the other is chained to a single anon_vma).
 *
 * Preconditions: the mmap_lock held for writing for anything that changes
 * the tree or a VMA; for reading for lookups.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "mm/vma.h"
#include "mm/filemap.h"
#include "mm/memory.h"
#include "mm/rmap.h"

struct vm_area_struct *vm_area_alloc(struct sm_mm *mm)
{
	struct vm_area_struct *vma = calloc(1, sizeof(*vma));

	if (!vma)
		return NULL;
	vma->vm_mm = mm;
	INIT_LIST_HEAD(&vma->anon_vma_chain);
	return vma;
}

struct vm_area_struct *vm_area_dup(struct vm_area_struct *orig)
{
	struct vm_area_struct *vma = malloc(sizeof(*vma));

	if (!vma)
		return NULL;
	*vma = *orig;
	memset(&vma->vm_node, 0, sizeof(vma->vm_node));
	vma->vm_start = orig->vm_start;
	vma->vm_end = orig->vm_end;
	vma->detached = true;
	vma->in_file_rmap = false;
	memset(&vma->shared_rb, 0, sizeof(vma->shared_rb));
	if (anon_vma_clone(vma, orig)) {
		free(vma);
		return NULL;
	}
	if (vma->vm_file)
		mapping_get(vma->vm_file);
	return vma;
}

void vm_area_free(struct vm_area_struct *vma)
{
	unlink_anon_vmas(vma);
	if (vma->vm_file) {
		file_rmap_unlink(vma);
		mapping_put(vma->vm_file);
	}
	free(vma);
}

struct vm_area_struct *find_vma(struct sm_mm *mm, unsigned long addr)
{
	return node_vma(gt_find(&mm->mm_mt, addr));
}

struct vm_area_struct *find_vma_intersection(struct sm_mm *mm, unsigned long start, unsigned long end)
{
	return node_vma(gt_find_intersection(&mm->mm_mt, start, end));
}

struct vm_area_struct *vma_lookup(struct sm_mm *mm, unsigned long addr)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	return vma && vma->vm_start <= addr ? vma : NULL;
}

struct vm_area_struct *vma_prev(struct vm_area_struct *vma) { return node_vma(gt_prev(&vma->vm_node)); }
struct vm_area_struct *vma_next(struct vm_area_struct *vma) { return node_vma(gt_next(&vma->vm_node)); }
struct vm_area_struct *vma_first(struct sm_mm *mm) { return node_vma(gt_first(&mm->mm_mt)); }

int vma_link(struct sm_mm *mm, struct vm_area_struct *vma)
{
	int err = gt_insert(&mm->mm_mt, &vma->vm_node);

	if (err)
		return err;
	vma->detached = false;
	mm->map_count++;
	file_rmap_link(vma);
	return 0;
}

void vma_unlink(struct sm_mm *mm, struct vm_area_struct *vma)
{
	gt_erase(&mm->mm_mt, &vma->vm_node);
	vma->detached = true;
	mm->map_count--;
}

void vma_set_range(struct vm_area_struct *vma, unsigned long start, unsigned long end,
		   unsigned long pgoff)
{
	file_rmap_set_range(vma, start, end, pgoff);
	if (!vma->detached)
		gt_update(&vma->vm_mm->mm_mt, &vma->vm_node);
}

void vma_set_flags(struct vm_area_struct *vma, unsigned long flags)
{
	vma->vm_flags = flags;
	vma->vm_page_prot = vm_get_page_prot(flags);
}

int split_vma(struct sm_mm *mm, struct vm_area_struct *vma, unsigned long addr, int new_below)
{
	struct vm_area_struct *new;
	unsigned long delta = (addr - vma->vm_start) >> PAGE_SHIFT;

	SM_ASSERT(addr > vma->vm_start && addr < vma->vm_end, "split outside the VMA");
	if (mm->map_count >= mm->machine->max_map_count)
		return -ENOMEM;
	new = vm_area_dup(vma);
	if (!new)
		return -ENOMEM;
	if (new_below) {
		new->vm_end = addr;
	} else {
		new->vm_start = addr;
		new->vm_pgoff = vma->vm_pgoff + delta;
	}
	/* The new piece joins the file rmap before vma gives its range up:
	 * a walk in between must find the piece's PTEs (file_rmap.c). */
	file_rmap_link(new);
	if (new_below)
		vma_set_range(vma, addr, vma->vm_end, vma->vm_pgoff + delta);
	else
		vma_set_range(vma, vma->vm_start, addr, vma->vm_pgoff);
	SM_ASSERT(vma_link(mm, new) == 0, "split piece overlaps");
	return 0;
}

struct vm_area_struct *vma_isolate(struct sm_mm *mm, struct vm_area_struct *vma,
				   unsigned long start, unsigned long end, int *err)
{
	if (start > vma->vm_start) {
		*err = split_vma(mm, vma, start, 1);
		if (*err)
			return NULL;
	}
	if (end < vma->vm_end) {
		*err = split_vma(mm, vma, end, 0);
		if (*err)
			return NULL;
	}
	*err = 0;
	return vma;
}

const struct vma_merge_src VMA_EXISTING = { .existing = true };
const struct vma_merge_src VMA_NEW_RANGE = { .existing = false };

/* Chained to the anon_vmas of a parent it has not copied away from. */
static bool vma_had_uncowed_parents(const struct vm_area_struct *v)
{
	return v && v->anon_vma && v->anon_vma_chain.next != v->anon_vma_chain.prev;
}

/*
 * Linux 6.18's is_mergeable_anon_vma: may `src` (the VMA or range being
 * merged) join `tgt`? `m` says where src's anon_vma comes from: an existing
 * VMA (mprotect, madvise), a new range (mmap, mremap growth), or a copy of
 * another VMA (mremap move).
 */
static bool anon_vma_mergeable(const struct vm_area_struct *tgt, const struct vm_area_struct *src,
			       const struct vma_merge_src *m)
{
	if (!tgt->anon_vma && src->anon_vma)
		return !(m->existing && vma_had_uncowed_parents(src)) &&
		       !vma_had_uncowed_parents(m->copied_from);
	if (tgt->anon_vma && !src->anon_vma)
		return !vma_had_uncowed_parents(tgt);
	return tgt->anon_vma == src->anon_vma;
}

bool vmas_can_merge(const struct vm_area_struct *a, const struct vm_area_struct *b,
		    const struct vm_area_struct *src, const struct vma_merge_src *m)
{
	return a->vm_end == b->vm_start && a->vm_file == b->vm_file &&
	       ((a->vm_flags ^ b->vm_flags) & ~VM_IGNORE_MERGE) == 0 &&
	       a->vm_pgoff + vma_pages(a) == b->vm_pgoff &&
	       anon_vma_mergeable(src == a ? b : a, src, m);
}

/* a absorbs b (a directly below b); b is freed. */
static void vma_absorb(struct sm_mm *mm, struct vm_area_struct *a, struct vm_area_struct *b)
{
	unsigned long end = b->vm_end;

	if (!a->anon_vma && b->anon_vma) {
		struct anon_vma_chain *avc;

		list_splice_init(&b->anon_vma_chain, &a->anon_vma_chain);
		list_for_each_entry(avc, &a->anon_vma_chain, same_vma)
			avc->vma = a;
		a->anon_vma = b->anon_vma;
		b->anon_vma = NULL;
	}
	a->vm_flags |= b->vm_flags & VM_IGNORE_MERGE;
	vma_unlink(mm, b);
	/* a covers b's pages in the file rmap before b leaves it. */
	vma_set_range(a, a->vm_start, end, a->vm_pgoff);
	vm_area_free(b);
}

void vma_merge_next(struct sm_mm *mm, struct vm_area_struct *vma, const struct vma_merge_src *m)
{
	struct vm_area_struct *next = vma_next(vma);

	if (next && vmas_can_merge(vma, next, vma, m))
		vma_absorb(mm, vma, next);
}

struct vm_area_struct *vma_merge_neighbours(struct sm_mm *mm, struct vm_area_struct *vma,
					    const struct vma_merge_src *m)
{
	struct vm_area_struct *prev = vma_prev(vma);

	if (prev && vmas_can_merge(prev, vma, vma, m)) {
		vma_absorb(mm, prev, vma);
		vma = prev;
	}
	vma_merge_next(mm, vma, m);
	return vma;
}
