/*
 * A red-black tree with the caller doing the search: the caller walks from
 * the root comparing its own keys, links the new node where the walk ended
 * (rb_link_node), and the tree rebalances (rb_insert_color). Erase takes any
 * node. No locking: the owner of the tree serializes every use.
 *
 * KSM keys its trees by page contents, compared while walking, so the tree
 * cannot own a comparison function; this is the shape Linux's lib/rbtree.c
 * has for the same reason.
 */
#ifndef SM_BASE_RBTREE_H
#define SM_BASE_RBTREE_H

#include <stdbool.h>
#include <stddef.h>

struct rb_node {
	struct rb_node *parent, *left, *right;
	bool red;
};

struct rb_root {
	struct rb_node *node;
};

#define RB_ROOT ((struct rb_root){ NULL })

static inline bool rb_empty(const struct rb_root *root) { return root->node == NULL; }

/* Put n at *link (a NULL child pointer of parent, or &root->node). */
static inline void rb_link_node(struct rb_node *n, struct rb_node *parent, struct rb_node **link)
{
	n->parent = parent;
	n->left = n->right = NULL;
	n->red = true;
	*link = n;
}

/* Restore the red-black properties after rb_link_node. */
void rb_insert_color(struct rb_node *n, struct rb_root *root);
void rb_erase(struct rb_node *n, struct rb_root *root);

struct rb_node *rb_first(const struct rb_root *root);
struct rb_node *rb_next(const struct rb_node *n);

/* The black height if every property holds, else -1 (for tests and checks). */
int rb_check(const struct rb_root *root);

#endif
