/*
 * The interval treap (see interval_tree.h). Insert and remove are recursive
 * on the path to the node: O(log n) deep in expectation, and every node on
 * that path has its subtree_last recomputed on the way back up.
 */
#include <stdint.h>
#include "base/interval_tree.h"

static unsigned node_prio(const struct it_node *n)
{
	uint64_t x = (uint64_t)(uintptr_t)n;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return (unsigned)(x ^ (x >> 33));
}

/* Does a sort before b? */
static bool it_less(const struct it_node *a, const struct it_node *b)
{
	return a->start < b->start || (a->start == b->start && (uintptr_t)a < (uintptr_t)b);
}

static void update(struct it_node *n)
{
	unsigned long m = n->last;

	if (n->left && n->left->subtree_last > m)
		m = n->left->subtree_last;
	if (n->right && n->right->subtree_last > m)
		m = n->right->subtree_last;
	n->subtree_last = m;
}

static struct it_node *rotate_right(struct it_node *n)
{
	struct it_node *l = n->left;

	n->left = l->right;
	l->right = n;
	update(n);
	update(l);
	return l;
}

static struct it_node *rotate_left(struct it_node *n)
{
	struct it_node *r = n->right;

	n->right = r->left;
	r->left = n;
	update(n);
	update(r);
	return r;
}

static struct it_node *insert(struct it_node *t, struct it_node *n)
{
	if (!t)
		return n;
	if (it_less(n, t)) {
		t->left = insert(t->left, n);
		if (t->left->prio > t->prio)
			return rotate_right(t);
	} else {
		t->right = insert(t->right, n);
		if (t->right->prio > t->prio)
			return rotate_left(t);
	}
	update(t);
	return t;
}

void it_insert(struct it_root *t, struct it_node *n)
{
	n->left = n->right = NULL;
	n->prio = node_prio(n);
	n->subtree_last = n->last;
	t->root = insert(t->root, n);
	t->count++;
}

/* Sink n (the root of t) below its children until it is a leaf, then drop it. */
static struct it_node *remove_root(struct it_node *n)
{
	struct it_node *top;

	if (!n->left)
		return n->right;
	if (!n->right)
		return n->left;
	if (n->left->prio > n->right->prio) {
		top = rotate_right(n);
		top->right = remove_root(n);
	} else {
		top = rotate_left(n);
		top->left = remove_root(n);
	}
	update(top);
	return top;
}

static struct it_node *remove(struct it_node *t, struct it_node *n)
{
	if (!t)
		return NULL;
	if (t == n)
		return remove_root(t);
	if (it_less(n, t))
		t->left = remove(t->left, n);
	else
		t->right = remove(t->right, n);
	update(t);
	return t;
}

void it_remove(struct it_root *t, struct it_node *n)
{
	t->root = remove(t->root, n);
	t->count--;
	n->left = n->right = NULL;
}

static bool for_each(struct it_node *t, unsigned long a, unsigned long b,
		     bool (*fn)(struct it_node *n, void *arg), void *arg)
{
	if (!t || t->subtree_last < a)
		return true;
	if (!for_each(t->left, a, b, fn, arg))
		return false;
	if (t->start > b)
		return true;   /* this node and everything to its right start too late */
	if (t->last >= a && !fn(t, arg))
		return false;
	return for_each(t->right, a, b, fn, arg);
}

void it_for_each(struct it_root *t, unsigned long a, unsigned long b,
		 bool (*fn)(struct it_node *n, void *arg), void *arg)
{
	for_each(t->root, a, b, fn, arg);
}

static long check(const struct it_node *t, const struct it_node *lo, const struct it_node *hi)
{
	long l, r;
	unsigned long m;

	if (!t)
		return 0;
	if ((lo && !it_less(lo, t)) || (hi && !it_less(t, hi)) || t->start > t->last)
		return -1;
	if ((t->left && t->left->prio > t->prio) || (t->right && t->right->prio > t->prio))
		return -1;
	m = t->last;
	if (t->left && t->left->subtree_last > m)
		m = t->left->subtree_last;
	if (t->right && t->right->subtree_last > m)
		m = t->right->subtree_last;
	if (m != t->subtree_last)
		return -1;
	l = check(t->left, lo, t);
	r = check(t->right, t, hi);
	return l < 0 || r < 0 ? -1 : l + r + 1;
}

int it_check(const struct it_root *t)
{
	long n = check(t->root, NULL, NULL);

	return n < 0 || (unsigned long)n != t->count ? -1 : 0;
}
