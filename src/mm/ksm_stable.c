/*
 * KSM's two trees and the rmap items in them.
 *
 * The stable tree holds one node per KSM page, ordered by the page's
 * contents, which cannot change: every PTE maps a KSM page read-only. A
 * node goes stale when its page stops naming it (a write fault reused the
 * page, see ksm_merge.c); every walk of the tree validates each node it
 * meets (get_ksm_page) before comparing, erases stale ones and starts over,
 * so a stale page's changing contents never steer a search.
 *
 * The unstable tree holds rmap items of pages that did not change between
 * two scans (same checksum) and matched nothing, ordered by their contents
 * when compared; those can change at any time, so the tree is only a good
 * guess, rebuilt from empty at every full scan (an item's seqnr says which
 * scan's tree it is in).
 *
 * A KSM page takes at most max_page_sharing rmap items (Linux's limit,
 * 256 by default: it bounds the rmap walk of one page). When every KSM page
 * with some contents is full, the next pair of such pages makes another
 * one: nodes with equal contents sit side by side in the tree (an insert
 * goes right of its equals) and share a chain, which sorts them into those
 * with room and the full ones. A search takes the fullest page that still
 * has room, so pages fill up one after the other, as in Linux.
 *
 * Counters, as Linux's: pages_shared counts nodes with at least one rmap
 * item, pages_sharing the further items of each, pages_unshared the items
 * in an unstable tree, stable_node_chains the contents with several KSM
 * pages and stable_node_dups those pages. Everything here runs under
 * ksm->mutex.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "mm/ksm.h"
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/pgtable.h"
#include "mm/vma.h"

/* ---- page contents ---- */

int ksm_memcmp_pages(struct sm_machine *m, struct page *a, struct page *b)
{
	const uint64_t *pa = page_address(m, a), *pb = page_address(m, b);

#ifndef SM_TSAN
	return memcmp(pa, pb, PAGE_SIZE);
#else
	for (size_t i = 0; i < PAGE_SIZE / 8; i++) {
		uint64_t x = frame_load_word(pa + i), y = frame_load_word(pb + i);

		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
#endif
}

uint32_t ksm_calc_checksum(struct sm_machine *m, struct page *p)
{
#ifdef SM_TSAN
	uint64_t copy[PAGE_SIZE / 8];
	const uint64_t *w = page_address(m, p);

	for (size_t i = 0; i < PAGE_SIZE / 8; i++)
		copy[i] = frame_load_word(w + i);
	return (uint32_t)XXH64(copy, PAGE_SIZE, 0);
#else
	return (uint32_t)XXH64(page_address(m, p), PAGE_SIZE, 0);
#endif
}

/* ---- references ---- */

static bool page_ref_get_unless_zero(struct page *p)
{
	int old = __atomic_load_n(&p->refcount, __ATOMIC_RELAXED);

	do {
		if (!old)
			return false;
	} while (!__atomic_compare_exchange_n(&p->refcount, &old, old + 1, true,
					      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
	return true;
}

static void ksm_get_anon_vma(struct anon_vma *av)
{
	__atomic_fetch_add(&av->refcount, 1, __ATOMIC_RELAXED);
}

/* ---- KSM pages with the same contents ---- */

static bool node_full(const struct ksm *k, const struct ksm_stable_node *node)
{
	return node->rmap_hlist_len >= k->max_page_sharing;
}

/* Put a chained node on the list its fill says. */
static void chain_file(struct ksm *k, struct ksm_stable_node *node)
{
	list_del(&node->dup);
	list_add(&node->dup, node_full(k, node) ? &node->chain->full : &node->chain->open);
}

/* node, new in the tree, has other's contents: one chain for both. On no
 * memory they stay apart, which only costs sharing. */
static void dup_link(struct ksm *k, struct ksm_stable_node *node, struct ksm_stable_node *other)
{
	if (!other->chain) {
		struct ksm_chain *chain = calloc(1, sizeof(*chain));

		if (!chain)
			return;
		INIT_LIST_HEAD(&chain->open);
		INIT_LIST_HEAD(&chain->full);
		other->chain = chain;
		INIT_LIST_HEAD(&other->dup);
		chain_file(k, other);
		chain->nr = 1;
		ksm_count(&k->stable_node_chains, 1);
		ksm_count(&k->stable_node_dups, 1);
	}
	node->chain = other->chain;
	INIT_LIST_HEAD(&node->dup);
	chain_file(k, node);
	node->chain->nr++;
	ksm_count(&k->stable_node_dups, 1);
}

/* node leaves its chain; a chain of one is no chain. */
static void dup_unlink(struct ksm *k, struct ksm_stable_node *node)
{
	struct ksm_chain *chain = node->chain;
	struct ksm_stable_node *last;

	if (!chain)
		return;
	list_del(&node->dup);
	node->chain = NULL;
	ksm_count(&k->stable_node_dups, -1);
	if (--chain->nr > 1)
		return;
	last = list_empty(&chain->open) ? list_first_entry(&chain->full, struct ksm_stable_node, dup)
					: list_first_entry(&chain->open, struct ksm_stable_node, dup);
	last->chain = NULL;
	ksm_count(&k->stable_node_dups, -1);
	ksm_count(&k->stable_node_chains, -1);
	free(chain);
}

/* ---- the stable tree ---- */

static void remove_node_from_stable_tree(struct ksm *k, struct ksm_stable_node *node)
{
	struct ksm_rmap_item *item, *n;

	list_for_each_entry_safe(item, n, &node->hlist, hlist) {
		if (item->hlist.next != &node->hlist)
			ksm_count(&k->pages_sharing, -1);
		else
			ksm_count(&k->pages_shared, -1);
		__atomic_fetch_sub(&item->slot->mm->ksm_merging_pages, 1, __ATOMIC_RELAXED);
		put_anon_vma(item->anon_vma);
		list_del(&item->hlist);
		item->anon_vma = NULL;
		item->head = NULL;
		item->state = RMAP_NONE;
	}
	dup_unlink(k, node);
	rb_erase(&node->node, &k->stable_tree);
	ksm_count(&k->stable_nodes, -1);
	free(node);
}

struct page *get_ksm_page(struct ksm *k, struct sm_machine *m, struct ksm_stable_node *node)
{
	struct page *page = pfn_to_page(m, node->kpfn);
	void *expect = stable_node_mapping(node);

	for (;;) {
		if (__atomic_load_n(&page->mapping, __ATOMIC_ACQUIRE) != expect)
			goto stale;
		if (page_ref_get_unless_zero(page))
			break;
		/* Frozen by a write fault taking the page over: it is done in
		 * a few stores, and the mapping will have moved. */
		sched_yield();
	}
	if (__atomic_load_n(&page->mapping, __ATOMIC_ACQUIRE) == expect)
		return page;
	folio_put_refs(m, page, 1);
stale:
	remove_node_from_stable_tree(k, node);
	return NULL;
}

#define DUP_STALE ((struct page *)1)

/*
 * Of node's chain (tree_page is node's page, referenced), the page to merge
 * with: page itself when it is one of them (a forked mapping of it is being
 * recorded: it maps it already, whatever the limit), else the fullest one
 * with room, or NULL when all are full. Only the open ones are looked at,
 * so that a chain of a thousand full pages costs nothing. DUP_STALE when a
 * stale node was erased on the way: the caller searches again.
 */
static struct page *choose_dup(struct ksm *k, struct sm_machine *m, struct ksm_stable_node *node,
			       struct page *tree_page, struct page *page)
{
	struct ksm_chain *chain = node->chain;
	struct ksm_stable_node *dup, *best;
	struct page *best_page;

	if (tree_page == page || (!chain && !node_full(k, node)))
		return tree_page;
	folio_put_refs(m, tree_page, 1);
	if (!chain)
		return NULL;
	/* The caller's reference keeps a write fault from taking page over:
	 * a KSM page now, it stays one. */
	if (folio_test_ksm(page) && folio_stable_node(page)->chain == chain) {
		best_page = get_ksm_page(k, m, folio_stable_node(page));
		return best_page ? best_page : DUP_STALE;
	}
	best = NULL;
	list_for_each_entry(dup, &chain->open, dup)
		if (!best || dup->rmap_hlist_len > best->rmap_hlist_len)
			best = dup;
	if (!best)
		return NULL;
	best_page = get_ksm_page(k, m, best);
	return best_page ? best_page : DUP_STALE;
}

struct page *stable_tree_search(struct ksm *k, struct sm_machine *m, struct page *page)
{
	struct rb_node *n;

again:
	n = k->stable_tree.node;
	while (n) {
		struct ksm_stable_node *node = container_of(n, struct ksm_stable_node, node);
		struct page *tree_page = get_ksm_page(k, m, node);
		int ret;

		if (!tree_page)
			goto again;   /* a stale node was erased: the shape changed */
		ret = tree_page == page ? 0 : ksm_memcmp_pages(m, page, tree_page);
		if (!ret) {
			tree_page = choose_dup(k, m, node, tree_page, page);
			if (tree_page == DUP_STALE)
				goto again;
			return tree_page;
		}
		folio_put_refs(m, tree_page, 1);
		n = ret < 0 ? n->left : n->right;
	}
	return NULL;
}

void stable_tree_insert(struct ksm *k, struct sm_machine *m, struct ksm_stable_node *node,
			struct page *kpage)
{
	struct rb_node **link, *parent;
	struct ksm_stable_node *equal;

again:
	link = &k->stable_tree.node;
	parent = NULL;
	equal = NULL;
	while (*link) {
		struct ksm_stable_node *other = container_of(*link, struct ksm_stable_node, node);
		struct page *tree_page = get_ksm_page(k, m, other);
		int ret;

		if (!tree_page)
			goto again;
		ret = ksm_memcmp_pages(m, kpage, tree_page);
		folio_put_refs(m, tree_page, 1);
		if (!ret && !equal)
			equal = other;
		parent = *link;
		link = ret < 0 ? &parent->left : &parent->right;
	}
	if (equal)
		dup_link(k, node, equal);
	rb_link_node(&node->node, parent, link);
	rb_insert_color(&node->node, &k->stable_tree);
	ksm_count(&k->stable_nodes, 1);
}

void stable_tree_append(struct ksm *k, struct ksm_rmap_item *item, struct ksm_stable_node *node,
			struct anon_vma *av)
{
	SM_ASSERT(item->state == RMAP_NONE, "rmap item still in a tree");
	ksm_get_anon_vma(av);
	item->anon_vma = av;
	item->head = node;
	item->state = RMAP_STABLE;
	if (list_empty(&node->hlist))
		ksm_count(&k->pages_shared, 1);
	else
		ksm_count(&k->pages_sharing, 1);
	list_add(&item->hlist, &node->hlist);
	node->rmap_hlist_len++;
	if (node->chain)
		chain_file(k, node);
	__atomic_fetch_add(&item->slot->mm->ksm_merging_pages, 1, __ATOMIC_RELAXED);
}

/*
 * A KSM page that nothing maps any more keeps only the tree's reference:
 * give it back. Nothing can map it again (ksmd would have to find it, and
 * fork only copies existing mappings), so mapcount 0 is final.
 */
void stable_tree_prune(struct ksm *k, struct sm_machine *m)
{
	struct rb_node *n = rb_first(&k->stable_tree);

	while (n) {
		struct ksm_stable_node *node = container_of(n, struct ksm_stable_node, node);
		struct page *page = pfn_to_page(m, node->kpfn);

		n = rb_next(n);
		if (__atomic_load_n(&page->mapping, __ATOMIC_ACQUIRE) != stable_node_mapping(node)) {
			remove_node_from_stable_tree(k, node);
		} else if (__atomic_load_n(&page->mapcount, __ATOMIC_ACQUIRE) == 0) {
			/* Acquire: pairs with the release of the last unmapping,
			 * which read page->mapping (zap) before letting go. */
			__atomic_store_n(&page->mapping, NULL, __ATOMIC_RELEASE);
			remove_node_from_stable_tree(k, node);
			folio_put_refs(m, page, 1);
		}
	}
}

/* ---- the unstable tree ---- */

struct page *get_mergeable_page(struct ksm_rmap_item *item)
{
	struct sm_mm *mm = item->slot->mm;
	struct vm_area_struct *vma;
	struct page *page = NULL;

	down_read(&mm->mmap_lock);
	vma = vma_lookup(mm, item->address);
	if (vma && ksm_vma_mergeable(vma) && vma->anon_vma)
		page = ksm_follow_anon_page(vma, item->address);
	if (page && folio_test_ksm(page)) {
		ksm_put_page(mm->machine, page);
		page = NULL;
	}
	up_read(&mm->mmap_lock);
	return page;
}

struct ksm_rmap_item *unstable_tree_search_insert(struct ksm *k, struct sm_machine *m,
						  struct ksm_rmap_item *item, struct page *page,
						  struct page **tree_pagep)
{
	struct rb_node **link = &k->unstable_tree.node, *parent = NULL;

	while (*link) {
		struct ksm_rmap_item *tree_item = container_of(*link, struct ksm_rmap_item, node);
		struct page *tree_page = get_mergeable_page(tree_item);
		int ret;

		if (!tree_page)
			return NULL;   /* as Linux: give up on this page for this scan */
		if (tree_page == page) {
			ksm_put_page(m, tree_page);
			return NULL;
		}
		ret = ksm_memcmp_pages(m, page, tree_page);
		if (!ret) {
			*tree_pagep = tree_page;
			return tree_item;
		}
		ksm_put_page(m, tree_page);
		parent = *link;
		link = ret < 0 ? &parent->left : &parent->right;
	}
	item->state = RMAP_UNSTABLE;
	item->seqnr = k->seqnr;
	rb_link_node(&item->node, parent, link);
	rb_insert_color(&item->node, &k->unstable_tree);
	ksm_count(&k->pages_unshared, 1);
	return NULL;
}

/* ---- rmap items ---- */

void remove_rmap_item_from_tree(struct ksm *k, struct ksm_rmap_item *item)
{
	if (item->state == RMAP_STABLE) {
		struct ksm_stable_node *node = item->head;

		list_del(&item->hlist);
		node->rmap_hlist_len--;
		if (node->chain)
			chain_file(k, node);
		if (!list_empty(&node->hlist))
			ksm_count(&k->pages_sharing, -1);
		else
			ksm_count(&k->pages_shared, -1);
		__atomic_fetch_sub(&item->slot->mm->ksm_merging_pages, 1, __ATOMIC_RELAXED);
		put_anon_vma(item->anon_vma);
		item->anon_vma = NULL;
		item->head = NULL;
	} else if (item->state == RMAP_UNSTABLE) {
		/* An item of an earlier scan's tree: that tree is gone. */
		if (item->seqnr == k->seqnr)
			rb_erase(&item->node, &k->unstable_tree);
		ksm_count(&k->pages_unshared, -1);
	}
	item->state = RMAP_NONE;
}

void free_rmap_item(struct ksm *k, struct ksm_rmap_item *item)
{
	remove_rmap_item_from_tree(k, item);
	ksm_count(&k->rmap_items, -1);
	__atomic_fetch_sub(&item->slot->mm->ksm_rmap_items, 1, __ATOMIC_RELAXED);
	free(item);
}

/* ---- the rmap walk of a KSM page ---- */

struct ksm_hits {
	struct rmap_hit *v;
	size_t n, cap;
};

static bool hit_seen(const struct ksm_hits *h, const struct rmap_hit *hit)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].vma == hit->vma && h->v[i].address == hit->address)
			return true;
	return false;
}

/* Every PTE mapping page at item's address in a VMA of item's anon_vma:
 * the item's own mm, and its children since fork. */
static void collect_item_hits(struct sm_machine *m, struct ksm_rmap_item *item,
			      unsigned long pfn, struct ksm_hits *h)
{
	struct anon_vma *av = item->anon_vma;
	struct anon_vma_chain *avc;

	spin_lock(&av->lock);
	list_for_each_entry(avc, &av->chain, same_anon_vma) {
		struct vm_area_struct *vma = avc->vma;
		struct sm_mm *mm = vma->vm_mm;
		unsigned long addr = item->address;
		struct rmap_hit hit;
		spinlock_t *ptl;
		pte_t *ptep;

		if (addr < vma->vm_start || addr >= vma->vm_end)
			continue;
		if (!(ptep = walk_pte_lock(mm, addr, &ptl)))
			continue;
		hit = (struct rmap_hit){ vma, addr, ptep_get(ptep) };
		spin_unlock(ptl);
		if (!pte_present(hit.pte) || pte_special(hit.pte) || pte_pfn(hit.pte) != pfn ||
		    hit_seen(h, &hit))
			continue;
		if (h->n == h->cap) {
			size_t cap = h->cap ? 2 * h->cap : 16;
			struct rmap_hit *v = realloc(h->v, cap * sizeof(*v));

			if (!v)
				break;
			h->v = v;
			h->cap = cap;
		}
		h->v[h->n++] = hit;
	}
	spin_unlock(&av->lock);
	(void)m;
}

int rmap_walk_ksm(struct sm_machine *m, struct page *page,
		  bool (*fn)(const struct rmap_hit *hit, void *arg), void *arg)
{
	struct ksm *k = m->ksm;
	struct ksm_hits h = { 0 };
	struct ksm_rmap_item *item;
	int visited = 0;

	pthread_mutex_lock(&k->mutex);
	if (folio_test_ksm(page)) {
		struct ksm_stable_node *node = folio_stable_node(page);

		list_for_each_entry(item, &node->hlist, hlist)
			collect_item_hits(m, item, page_to_pfn(m, page), &h);
	}
	pthread_mutex_unlock(&k->mutex);
	for (size_t i = 0; i < h.n; i++) {
		visited++;
		if (!fn(&h.v[i], arg))
			break;
	}
	free(h.v);
	return visited;
}
