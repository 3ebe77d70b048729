/*
 * gaptree — an ordered set of non-overlapping address ranges that can also
 * answer "where is there room for len bytes?" in O(log n).
 *
 * It is the container behind an mm's VMA set (struct vm_area_struct embeds a
 * struct gt_node; get back to the VMA with container_of). The tree never
 * allocates: insert and erase cannot fail for lack of memory, so callers may
 * use them in the middle of a VMA split or merge without an unwind path.
 *
 * Locking: none inside. The caller's lock (mm->mmap_lock) must be held for
 * writing around gt_insert, gt_erase and gt_update, and at least for reading
 * around every other call. Readers are not RCU-safe: a rotation can briefly
 * hide a node from a concurrent walker.
 *
 * Linux counterparts: mm->mm_rb with vm_area_struct.rb_subtree_gap (Linux
 * 3.9 to 6.0), find_vma, find_vma_intersection, unmapped_area{,_topdown}.
 */
#ifndef SOFTMM_BASE_GAPTREE_H
#define SOFTMM_BASE_GAPTREE_H

struct gt_node {
	struct gt_node *parent, *left, *right;
	/* [start, end), start < end; set by the caller before gt_insert. */
	unsigned long start, end;
	/* start minus the previous node's end (or minus 0 for the first node). */
	unsigned long gap;
	/* The largest gap of any node in this subtree, this one included. */
	unsigned long subtree_max_gap;
	int red;
};

struct gt_root {
	struct gt_node *root;
	unsigned long count;
};

void gt_init(struct gt_root *t);

/* 0, or -EEXIST if [n->start, n->end) overlaps a node already in t (t unchanged). */
int gt_insert(struct gt_root *t, struct gt_node *n);
/* Precondition: n is in t. */
void gt_erase(struct gt_root *t, struct gt_node *n);

/* The node containing addr, else the lowest node above addr; NULL if none (find_vma). */
struct gt_node *gt_find(const struct gt_root *t, unsigned long addr);
/* The lowest node intersecting [start, end), or NULL (always, if start >= end). */
struct gt_node *gt_find_intersection(const struct gt_root *t, unsigned long start,
				     unsigned long end);

struct gt_node *gt_first(const struct gt_root *t);
struct gt_node *gt_last(const struct gt_root *t);
struct gt_node *gt_next(const struct gt_node *n);
struct gt_node *gt_prev(const struct gt_node *n);

/*
 * Restore the gap augmentation after the caller moved n->start and/or n->end
 * in place. Precondition: n still overlaps nothing and keeps its rank.
 */
void gt_update(struct gt_root *t, struct gt_node *n);

/*
 * Find a free, aligned range of len bytes inside the window [low, high); the
 * space above the last node counts as free. On success *out = a with
 * low <= a, a + len <= high, (a & align_mask) == align_offset and [a, a + len)
 * free. Top-down returns the highest such a, bottom-up the lowest.
 * 0 or -ENOMEM.
 * Preconditions: len > 0; align_mask + 1 is a power of two;
 * align_offset <= align_mask.
 */
int gt_find_gap_topdown(const struct gt_root *t, unsigned long len, unsigned long low,
			unsigned long high, unsigned long align_mask,
			unsigned long align_offset, unsigned long *out);
int gt_find_gap_bottomup(const struct gt_root *t, unsigned long len, unsigned long low,
			 unsigned long high, unsigned long align_mask,
			 unsigned long align_offset, unsigned long *out);

/* Verify every invariant; 0, or -EUCLEAN after printing the first breach to stderr. */
int gt_check(const struct gt_root *t);

#endif /* SOFTMM_BASE_GAPTREE_H */
