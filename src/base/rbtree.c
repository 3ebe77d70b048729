/*
 * Red-black tree rebalancing (see rbtree.h). The classic formulation with
 * explicit parent pointers: a red node has no red child, and every path
 * from a node down to a leaf crosses the same number of black nodes.
 */
#include "base/rbtree.h"

static void replace_child(struct rb_root *root, struct rb_node *parent, struct rb_node *old,
			  struct rb_node *new)
{
	if (!parent)
		root->node = new;
	else if (parent->left == old)
		parent->left = new;
	else
		parent->right = new;
	if (new)
		new->parent = parent;
}

/* x's right child takes x's place; x becomes its left child. */
static void rotate_left(struct rb_root *root, struct rb_node *x)
{
	struct rb_node *y = x->right;

	x->right = y->left;
	if (y->left)
		y->left->parent = x;
	replace_child(root, x->parent, x, y);
	y->left = x;
	x->parent = y;
}

static void rotate_right(struct rb_root *root, struct rb_node *x)
{
	struct rb_node *y = x->left;

	x->left = y->right;
	if (y->right)
		y->right->parent = x;
	replace_child(root, x->parent, x, y);
	y->right = x;
	x->parent = y;
}

static bool is_red(const struct rb_node *n) { return n && n->red; }

void rb_insert_color(struct rb_node *n, struct rb_root *root)
{
	struct rb_node *p, *g, *u;

	while ((p = n->parent) && p->red) {
		g = p->parent;   /* a red node is never the root: g exists */
		u = g->left == p ? g->right : g->left;
		if (is_red(u)) {
			/* Push the red up two levels and look again there. */
			p->red = u->red = false;
			g->red = true;
			n = g;
			continue;
		}
		if (g->left == p) {
			if (p->right == n) {
				rotate_left(root, p);
				n = p;
				p = n->parent;
			}
			rotate_right(root, g);
		} else {
			if (p->left == n) {
				rotate_right(root, p);
				n = p;
				p = n->parent;
			}
			rotate_left(root, g);
		}
		p->red = false;
		g->red = true;
		break;
	}
	root->node->red = false;
}

/* A black node was removed from below parent, on x's side (x may be NULL):
 * that side is one black short. */
static void erase_fixup(struct rb_root *root, struct rb_node *x, struct rb_node *parent)
{
	struct rb_node *w;

	while (x != root->node && !is_red(x)) {
		if (parent->left == x) {
			w = parent->right;
			if (is_red(w)) {
				w->red = false;
				parent->red = true;
				rotate_left(root, parent);
				w = parent->right;
			}
			if (!is_red(w->left) && !is_red(w->right)) {
				w->red = true;
				x = parent;
				parent = x->parent;
				continue;
			}
			if (!is_red(w->right)) {
				w->left->red = false;
				w->red = true;
				rotate_right(root, w);
				w = parent->right;
			}
			w->red = parent->red;
			parent->red = false;
			w->right->red = false;
			rotate_left(root, parent);
		} else {
			w = parent->left;
			if (is_red(w)) {
				w->red = false;
				parent->red = true;
				rotate_right(root, parent);
				w = parent->left;
			}
			if (!is_red(w->left) && !is_red(w->right)) {
				w->red = true;
				x = parent;
				parent = x->parent;
				continue;
			}
			if (!is_red(w->left)) {
				w->right->red = false;
				w->red = true;
				rotate_left(root, w);
				w = parent->left;
			}
			w->red = parent->red;
			parent->red = false;
			w->left->red = false;
			rotate_right(root, parent);
		}
		x = root->node;
		break;
	}
	if (x)
		x->red = false;
}

void rb_erase(struct rb_node *n, struct rb_root *root)
{
	struct rb_node *x, *parent;
	bool removed_red;

	if (n->left && n->right) {
		/* Swap n with its successor s, which has no left child. */
		struct rb_node *s = n->right;

		while (s->left)
			s = s->left;
		removed_red = s->red;
		x = s->right;
		if (s->parent == n) {
			parent = s;
		} else {
			parent = s->parent;
			parent->left = x;
			if (x)
				x->parent = parent;
			s->right = n->right;
			n->right->parent = s;
		}
		replace_child(root, n->parent, n, s);
		s->left = n->left;
		n->left->parent = s;
		s->red = n->red;
	} else {
		x = n->left ? n->left : n->right;
		parent = n->parent;
		removed_red = n->red;
		replace_child(root, parent, n, x);
	}
	if (!removed_red)
		erase_fixup(root, x, parent);
}

struct rb_node *rb_first(const struct rb_root *root)
{
	struct rb_node *n = root->node;

	while (n && n->left)
		n = n->left;
	return n;
}

struct rb_node *rb_next(const struct rb_node *n)
{
	if (n->right) {
		n = n->right;
		while (n->left)
			n = n->left;
		return (struct rb_node *)n;
	}
	while (n->parent && n->parent->right == n)
		n = n->parent;
	return n->parent;
}

static int check_node(const struct rb_node *n)
{
	int l, r;

	if (!n)
		return 1;
	if ((n->left && n->left->parent != n) || (n->right && n->right->parent != n))
		return -1;
	if (n->red && (is_red(n->left) || is_red(n->right)))
		return -1;
	l = check_node(n->left);
	r = check_node(n->right);
	if (l < 0 || l != r)
		return -1;
	return l + !n->red;
}

int rb_check(const struct rb_root *root)
{
	if (root->node && (root->node->red || root->node->parent))
		return -1;
	return check_node(root->node);
}
