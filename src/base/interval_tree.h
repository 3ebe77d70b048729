/*
 * interval_tree — a set of closed intervals [start, last] that answers
 * "which intervals overlap [a, b]?" in O(log n + hits).
 *
 * A treap ordered by (start, node address), each node augmented with the
 * largest `last` of its subtree, so a search skips every subtree that ends
 * before a. Priorities come from hashing the node's address: no random
 * state, and the same insertions always build the same shape. Intervals may
 * overlap and repeat; nodes are told apart by address.
 *
 * It is the file rmap (Linux's i_mmap tree of VMAs by page offset). The
 * tree never allocates. Locking: none inside; the caller serializes every
 * call (mm/file_rmap.c holds the mapping's i_mmap lock).
 */
#ifndef SM_BASE_INTERVAL_TREE_H
#define SM_BASE_INTERVAL_TREE_H

#include <stdbool.h>
#include <stddef.h>

struct it_node {
	struct it_node *left, *right;
	unsigned long start, last;      /* set by the caller before it_insert */
	unsigned long subtree_last;     /* max last below and including this node */
	unsigned prio;
};

struct it_root {
	struct it_node *root;
	unsigned long count;
};

static inline void it_init(struct it_root *t) { t->root = NULL; t->count = 0; }

void it_insert(struct it_root *t, struct it_node *n);
/* n must be in t. */
void it_remove(struct it_root *t, struct it_node *n);
/* Call fn on every node overlapping [a, b], in start order, until it returns false. */
void it_for_each(struct it_root *t, unsigned long a, unsigned long b,
		 bool (*fn)(struct it_node *n, void *arg), void *arg);
/* 0 when ordering, heap priorities and subtree_last all hold, else -1. */
int it_check(const struct it_root *t);

#endif
