/*
 * gaptree — the ordered set of an mm's VMAs, and the free-range search that
 * mmap placement runs on it.
 *
 * Owns: the red-black tree of caller-embedded struct gt_node, keyed by start,
 * holding half-open ranges that never overlap. It owns no memory and takes no
 * locks; mm->mmap_lock serializes writers against everything else (see
 * gaptree.h).
 *
 * The augmentation: each node records the free space just below it (gap, from
 * the previous node's end, or from 0) and the largest such gap in its subtree.
 * Every free range between nodes is the gap of exactly one node, so "is there
 * room for len bytes below this subtree's last node" is one comparison, and a
 * search descends only into subtrees that might answer it. The free space above
 * the last node belongs to no node; the searches look at it separately.
 * Changing a node's bounds changes its own gap and its successor's, and
 * inserting or erasing a node changes its successor's gap, so every write
 * refreshes the subtree maxima above both nodes: two O(log n) walks.
 *
 * Why not a maple tree, as Linux has used since 6.1: the maple tree is a
 * B-tree of allocated nodes whose reward is lock-free RCU lookup (per-VMA
 * locks) and fewer cache misses per walk. It costs thousands of lines and
 * node allocation on every write, so a split or merge must preallocate and
 * unwind. An intrusive tree cannot fail once the VMA exists, is small enough
 * to verify by reading, and is what Linux itself ran on from 3.9 to 6.0
 * (mm_rb and rb_subtree_gap); FreeBSD's vm_map keeps the same max-free
 * augmentation on a splay tree. Lookups here hold mmap_lock for reading.
 */
#include "base/gaptree.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base/compiler.h"

void gt_init(struct gt_root *t)
{
	t->root = NULL;
	t->count = 0;
}

/* ---- augmentation ---- */

static unsigned long subtree_max_gap_of(const struct gt_node *n)
{
	unsigned long largest = n->gap;

	if (n->left && n->left->subtree_max_gap > largest)
		largest = n->left->subtree_max_gap;
	if (n->right && n->right->subtree_max_gap > largest)
		largest = n->right->subtree_max_gap;
	return largest;
}

/*
 * Refresh subtree_max_gap from n up to the root. When the tree was consistent
 * apart from one change at n, an ancestor whose maximum comes out unchanged
 * means none above it changes either, so the walk may stop there.
 */
static void propagate(struct gt_node *n, bool stop_when_unchanged)
{
	for (; n; n = n->parent) {
		unsigned long largest = subtree_max_gap_of(n);

		if (stop_when_unchanged && largest == n->subtree_max_gap)
			return;
		n->subtree_max_gap = largest;
	}
}

/* ---- red-black structure ---- */

static void replace_child(struct gt_root *t, struct gt_node *parent,
			  struct gt_node *old, struct gt_node *new)
{
	if (!parent)
		t->root = new;
	else if (parent->left == old)
		parent->left = new;
	else
		parent->right = new;
}

/*
 * A rotation keeps the set of nodes under the pivot's old position, so the
 * node that rises inherits its maximum and only the one that sinks is
 * recomputed; the ancestors need nothing.
 */
static void rotate_left(struct gt_root *t, struct gt_node *x)
{
	struct gt_node *y = x->right;

	x->right = y->left;
	if (y->left)
		y->left->parent = x;
	y->parent = x->parent;
	replace_child(t, x->parent, x, y);
	y->left = x;
	x->parent = y;
	y->subtree_max_gap = x->subtree_max_gap;
	x->subtree_max_gap = subtree_max_gap_of(x);
}

static void rotate_right(struct gt_root *t, struct gt_node *x)
{
	struct gt_node *y = x->left;

	x->left = y->right;
	if (y->right)
		y->right->parent = x;
	y->parent = x->parent;
	replace_child(t, x->parent, x, y);
	y->right = x;
	x->parent = y;
	y->subtree_max_gap = x->subtree_max_gap;
	x->subtree_max_gap = subtree_max_gap_of(x);
}

/* Rotate left (x's right child rises) or right. */
static void rotate(struct gt_root *t, struct gt_node *x, bool left)
{
	if (left)
		rotate_left(t, x);
	else
		rotate_right(t, x);
}

static bool is_red(const struct gt_node *n)
{
	return n && n->red;
}

static void insert_fixup(struct gt_root *t, struct gt_node *n)
{
	struct gt_node *p, *g, *uncle;

	while ((p = n->parent) && p->red) {
		g = p->parent;	/* a red node is never the root */
		uncle = (p == g->left) ? g->right : g->left;
		if (is_red(uncle)) {
			p->red = uncle->red = 0;
			g->red = 1;
			n = g;
			continue;
		}
		if (p == g->left) {
			if (n == p->right) {
				rotate_left(t, p);
				p = n;
			}
			rotate_right(t, g);
		} else {
			if (n == p->left) {
				rotate_right(t, p);
				p = n;
			}
			rotate_left(t, g);
		}
		p->red = 0;
		g->red = 1;
		break;
	}
	t->root->red = 0;
}

/*
 * x (possibly NULL) replaced a black node below parent and is one black short.
 * Mirror-image cases are folded by picking the rotation direction up front.
 */
static void erase_fixup(struct gt_root *t, struct gt_node *x, struct gt_node *parent)
{
	while (x != t->root && !is_red(x)) {
		bool x_left = (x == parent->left);
		struct gt_node *w = x_left ? parent->right : parent->left;

		if (w->red) {
			w->red = 0;
			parent->red = 1;
			rotate(t, parent, x_left);
			w = x_left ? parent->right : parent->left;
		}
		struct gt_node *near = x_left ? w->left : w->right;
		struct gt_node *far = x_left ? w->right : w->left;

		if (!is_red(near) && !is_red(far)) {
			w->red = 1;
			x = parent;
			parent = x->parent;
			continue;
		}
		if (!is_red(far)) {
			near->red = 0;
			w->red = 1;
			rotate(t, w, !x_left);
			w = x_left ? parent->right : parent->left;
			far = x_left ? w->right : w->left;
		}
		w->red = parent->red;
		parent->red = 0;
		far->red = 0;
		rotate(t, parent, x_left);
		x = t->root;
	}
	if (x)
		x->red = 0;
}

/* ---- insert, erase, update ---- */

int gt_insert(struct gt_root *t, struct gt_node *n)
{
	struct gt_node **link = &t->root, *parent = NULL;
	struct gt_node *prev = NULL, *next = NULL;

	SM_ASSERT(n->start < n->end, "empty or inverted range [%#lx, %#lx)", n->start, n->end);
	while (*link) {
		parent = *link;
		if (n->start < parent->start) {
			next = parent;
			link = &parent->left;
		} else {
			prev = parent;
			link = &parent->right;
		}
	}
	if ((prev && prev->end > n->start) || (next && next->start < n->end))
		return -EEXIST;

	n->parent = parent;
	n->left = n->right = NULL;
	n->red = 1;
	n->gap = n->start - (prev ? prev->end : 0);
	n->subtree_max_gap = n->gap;
	*link = n;
	propagate(parent, true);
	if (next) {
		next->gap = next->start - n->end;
		propagate(next, true);
	}
	insert_fixup(t, n);
	t->count++;
	return 0;
}

/*
 * Unlink n from the shape of the tree. Returns the node that took the removed
 * position's place (may be NULL) through *x and its parent through *x_parent,
 * and whether the position removed was black.
 */
static bool unlink_node(struct gt_root *t, struct gt_node *n,
			struct gt_node **x, struct gt_node **x_parent)
{
	/* y is the node whose position disappears: n, or n's successor. */
	struct gt_node *y = n;
	bool removed_black;

	if (n->left && n->right)
		for (y = n->right; y->left; y = y->left)
			;
	*x = y->left ? y->left : y->right;
	*x_parent = y->parent;
	removed_black = !y->red;
	replace_child(t, y->parent, y, *x);
	if (*x)
		(*x)->parent = y->parent;
	if (y == n)
		return removed_black;

	/* The successor takes over n's position, colour and children. */
	if (*x_parent == n)
		*x_parent = y;
	y->left = n->left;
	y->right = n->right;
	y->parent = n->parent;
	y->red = n->red;
	if (y->left)
		y->left->parent = y;
	if (y->right)
		y->right->parent = y;
	replace_child(t, n->parent, n, y);
	return removed_black;
}

void gt_erase(struct gt_root *t, struct gt_node *n)
{
	struct gt_node *next = gt_next(n), *x, *x_parent;
	bool removed_black;

	SM_ASSERT(t->count > 0, "erase from an empty tree");
	/* n's gap and n itself become part of the successor's gap. */
	if (next)
		next->gap += n->gap + (n->end - n->start);
	removed_black = unlink_node(t, n, &x, &x_parent);
	/* Two separate changes, so neither walk may stop early. */
	propagate(x_parent, false);
	propagate(next, false);
	if (removed_black)
		erase_fixup(t, x, x_parent);
	t->count--;
	n->parent = n->left = n->right = NULL;
}

void gt_update(struct gt_root *t, struct gt_node *n)
{
	struct gt_node *prev = gt_prev(n), *next = gt_next(n);

	(void)t;
	SM_ASSERT(n->start < n->end, "empty or inverted range [%#lx, %#lx)", n->start, n->end);
	SM_ASSERT(!prev || prev->end <= n->start, "[%#lx, %#lx) now overlaps the previous node",
		  n->start, n->end);
	SM_ASSERT(!next || n->end <= next->start, "[%#lx, %#lx) now overlaps the next node",
		  n->start, n->end);
	n->gap = n->start - (prev ? prev->end : 0);
	propagate(n, true);
	if (next) {
		next->gap = next->start - n->end;
		propagate(next, true);
	}
}

/* ---- lookup and iteration ---- */

struct gt_node *gt_find(const struct gt_root *t, unsigned long addr)
{
	struct gt_node *n = t->root, *found = NULL;

	/* Ends are sorted like starts, so this is "the first node with end > addr". */
	while (n) {
		if (n->end > addr) {
			found = n;
			if (n->start <= addr)
				break;
			n = n->left;
		} else {
			n = n->right;
		}
	}
	return found;
}

struct gt_node *gt_find_intersection(const struct gt_root *t, unsigned long start,
				     unsigned long end)
{
	struct gt_node *n;

	if (start >= end)
		return NULL;
	n = gt_find(t, start);
	return (n && n->start < end) ? n : NULL;
}

struct gt_node *gt_first(const struct gt_root *t)
{
	struct gt_node *n = t->root;

	while (n && n->left)
		n = n->left;
	return n;
}

struct gt_node *gt_last(const struct gt_root *t)
{
	struct gt_node *n = t->root;

	while (n && n->right)
		n = n->right;
	return n;
}

struct gt_node *gt_next(const struct gt_node *n)
{
	const struct gt_node *p;

	if (n->right) {
		for (n = n->right; n->left; n = n->left)
			;
		return (struct gt_node *)n;
	}
	while ((p = n->parent) && p->right == n)
		n = p;
	return (struct gt_node *)p;
}

struct gt_node *gt_prev(const struct gt_node *n)
{
	const struct gt_node *p;

	if (n->left) {
		for (n = n->left; n->right; n = n->right)
			;
		return (struct gt_node *)n;
	}
	while ((p = n->parent) && p->left == n)
		n = p;
	return (struct gt_node *)p;
}

/* ---- free-range search ---- */

struct gap_request {
	unsigned long len, low, high, align_mask, align_offset;
};

/*
 * The free range [lo, hi) clipped to the window: the highest aligned start
 * that fits. All arithmetic stays below hi, so nothing wraps near ULONG_MAX.
 */
static bool fit_highest(const struct gap_request *r, unsigned long lo, unsigned long hi,
			unsigned long *out)
{
	unsigned long a, down;

	if (lo < r->low)
		lo = r->low;
	if (hi > r->high)
		hi = r->high;
	if (lo >= hi || hi - lo < r->len)
		return false;
	a = hi - r->len;
	down = (a - r->align_offset) & r->align_mask;
	if (down > a - lo)
		return false;
	*out = a - down;
	return true;
}

static bool fit_lowest(const struct gap_request *r, unsigned long lo, unsigned long hi,
		       unsigned long *out)
{
	unsigned long up;

	if (lo < r->low)
		lo = r->low;
	if (hi > r->high)
		hi = r->high;
	if (lo >= hi || hi - lo < r->len)
		return false;
	up = (r->align_offset - lo) & r->align_mask;
	if (up > hi - r->len - lo)
		return false;
	*out = lo + up;
	return true;
}

/*
 * Right subtree, then the node's own gap, then left: the first fit is the
 * highest. A subtree is skipped when its largest gap is too small, or when
 * its gaps all lie outside the window: the right subtree's gaps start at or
 * above n->end, the left subtree's end below n's own gap. Only the subtrees
 * that straddle a window edge can be entered and yield nothing (alignment
 * aside), and they form one path per edge: O(log n).
 */
static bool search_topdown(const struct gt_node *n, const struct gap_request *r,
			   unsigned long *out)
{
	while (n && n->subtree_max_gap >= r->len) {
		unsigned long prev_end = n->start - n->gap;

		if (n->end < r->high && r->high - n->end >= r->len &&
		    search_topdown(n->right, r, out))
			return true;
		if (n->gap >= r->len && fit_highest(r, prev_end, n->start, out))
			return true;
		if (prev_end <= r->low)
			return false;
		n = n->left;
	}
	return false;
}

static bool search_bottomup(const struct gt_node *n, const struct gap_request *r,
			    unsigned long *out)
{
	while (n && n->subtree_max_gap >= r->len) {
		unsigned long prev_end = n->start - n->gap;

		if (prev_end > r->low && search_bottomup(n->left, r, out))
			return true;
		if (n->gap >= r->len && fit_lowest(r, prev_end, n->start, out))
			return true;
		if (n->end >= r->high || r->high - n->end < r->len)
			return false;
		n = n->right;
	}
	return false;
}

static void assert_gap_request(const struct gap_request *r)
{
	SM_ASSERT(r->len > 0, "zero-length gap search");
	SM_ASSERT(((r->align_mask + 1) & r->align_mask) == 0, "align_mask %#lx is not 2^n - 1",
		  r->align_mask);
	SM_ASSERT(r->align_offset <= r->align_mask, "align_offset %#lx beyond align_mask %#lx",
		  r->align_offset, r->align_mask);
}

int gt_find_gap_topdown(const struct gt_root *t, unsigned long len, unsigned long low,
			unsigned long high, unsigned long align_mask,
			unsigned long align_offset, unsigned long *out)
{
	struct gap_request r = { len, low, high, align_mask, align_offset };
	const struct gt_node *last = gt_last(t);

	assert_gap_request(&r);
	if (low >= high || high - low < len)
		return -ENOMEM;
	/* The space above the last node is the highest gap of all. */
	if (fit_highest(&r, last ? last->end : 0, high, out))
		return 0;
	return search_topdown(t->root, &r, out) ? 0 : -ENOMEM;
}

int gt_find_gap_bottomup(const struct gt_root *t, unsigned long len, unsigned long low,
			 unsigned long high, unsigned long align_mask,
			 unsigned long align_offset, unsigned long *out)
{
	struct gap_request r = { len, low, high, align_mask, align_offset };
	const struct gt_node *last;

	assert_gap_request(&r);
	if (low >= high || high - low < len)
		return -ENOMEM;
	if (search_bottomup(t->root, &r, out))
		return 0;
	last = gt_last(t);
	return fit_lowest(&r, last ? last->end : 0, high, out) ? 0 : -ENOMEM;
}

/* ---- invariant check ---- */

struct check_walk {
	const struct gt_node *prev;	/* in-order predecessor of the node being visited */
	unsigned long nodes;
};

static int breach(const struct gt_node *n, const char *what)
{
	fprintf(stderr, "gt_check: node %p [%#lx, %#lx): %s\n", (const void *)n,
		n->start, n->end, what);
	return -1;
}

/* The subtree's black height, or -1 after reporting a breach. */
static int check_subtree(const struct gt_node *n, struct check_walk *w)
{
	int left_bh, right_bh;

	if (!n)
		return 1;
	if ((n->left && n->left->parent != n) || (n->right && n->right->parent != n))
		return breach(n, "child's parent pointer is wrong");
	if (n->red && (is_red(n->left) || is_red(n->right)))
		return breach(n, "red node has a red child");
	left_bh = check_subtree(n->left, w);
	if (left_bh < 0)
		return -1;
	if (n->start >= n->end)
		return breach(n, "empty or inverted range");
	if (w->prev && w->prev->end > n->start)
		return breach(n, "overlaps or precedes the previous node");
	if (n->gap != n->start - (w->prev ? w->prev->end : 0))
		return breach(n, "gap is stale");
	w->prev = n;
	w->nodes++;
	right_bh = check_subtree(n->right, w);
	if (right_bh < 0)
		return -1;
	if (left_bh != right_bh)
		return breach(n, "black heights of the subtrees differ");
	if (n->subtree_max_gap != subtree_max_gap_of(n))
		return breach(n, "subtree_max_gap is stale");
	return left_bh + !n->red;
}

int gt_check(const struct gt_root *t)
{
	struct check_walk w = { NULL, 0 };

	if (t->root && (t->root->parent || t->root->red)) {
		breach(t->root, "root has a parent or is red");
		return -EUCLEAN;
	}
	if (check_subtree(t->root, &w) < 0)
		return -EUCLEAN;
	if (w.nodes != t->count) {
		fprintf(stderr, "gt_check: count says %lu, tree holds %lu\n", t->count, w.nodes);
		return -EUCLEAN;
	}
	return 0;
}
