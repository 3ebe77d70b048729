/*
 * KSM, kernel samepage merging: ksmd scans the anonymous pages of the VMAs
 * that asked for it (MADV_MERGEABLE, or every VMA of an mm with the
 * merge-any switch), and maps identical pages to one write-protected "KSM
 * page". A write to a KSM page faults and gets a copy, or, when this PTE is
 * the page's only mapping, reuses the page itself (memory.c, ksm_merge.c).
 *
 * The files, one concept each:
 *   ksm.c         registration (madvise, merge-any, fork, exit), the knobs
 *                 and statistics, unmerging
 *   ksm_stable.c  the stable tree of KSM pages and the unstable tree of
 *                 candidates, both keyed by page contents; rmap items
 *   ksm_merge.c   what happens to PTEs: write-protect, replace by the KSM
 *                 page or the zero page, break (unmerge), reuse on write
 *   ksmd.c        the scan: cursor over the mms, the checksum, one page's
 *                 comparison and merge, the thread
 *
 * Vocabulary (Linux's): a stable node stands for one KSM page and lists the
 * rmap items (mm, address) that map it; an rmap item exists for every page
 * ksmd has looked at, and sits in the stable tree (on a node's list), in the
 * unstable tree (keyed by its page's contents at insertion), or in neither.
 *
 * A KSM page: an order-0 anonymous folio whose mapping points at its stable
 * node with PAGE_MAPPING_ANON | PAGE_MAPPING_KSM set, never PG_anon_exclusive,
 * mapped read-only by every PTE. The stable tree holds one reference on it
 * for as long as page->mapping names the node ("the tree's reference"), so
 * a node's page can be looked at without racing its freeing. The write-fault
 * reuse takes that reference over: it freezes the refcount at 2 (its PTE's
 * and the tree's) to 0, points the mapping at its VMA's anon_vma and
 * unfreezes at 1; the node is then stale (its page no longer names it) and
 * ksmd erases it the next time it meets it.
 *
 * Locking (see mm_types.h for the whole order):
 *   ksm->mutex        outermost, above every mmap_lock: ksmd's scanning, both
 *                     trees, stable nodes, rmap items, the scan cursor, the
 *                     counters. ksm_exit takes it before the mm's mmap_lock.
 *   ksm->mmlist_lock  innermost spinlock: membership of the list of mm slots,
 *                     so that madvise (under an mmap_lock) can register an mm.
 * Page-level state (PTEs, mapcounts, refcounts, page->mapping of a KSM page)
 * changes under the PTE lock of the mapping PTE, as everywhere else.
 *
 * Pages of large anonymous folios are scanned like any other (a reference
 * on the folio's head stands for each; ksm_put_page drops it), and the
 * folio is split when one of its pages merges, as in Linux; a folio that
 * cannot be split that simply (mapped by a fork child too, see split.c)
 * waits for a later scan.
 */
#ifndef SM_MM_KSM_H
#define SM_MM_KSM_H

#include <pthread.h>
#include "base/rbtree.h"
#include "mm/folio.h"
#include "mm/mm_types.h"
#include "mm/rmap.h"

#define PAGE_MAPPING_KSM 0x2ul

/* The KSM pages of some contents, when there are several (max_page_sharing
 * filled the first): Linux's stable node chain. All of it: ksm->mutex. */
struct ksm_chain {
	struct list_head open;          /* nodes with room for another rmap item */
	struct list_head full;          /* the others */
	int nr;                         /* >= 2 */
};

/* Every field: ksm->mutex (the KSM page itself changes under PTE locks). */
struct ksm_stable_node {
	struct rb_node node;            /* ksm->stable_tree */
	struct list_head hlist;         /* ksm_rmap_item.hlist */
	struct ksm_chain *chain;        /* NULL: the only page with its contents */
	struct list_head dup;           /* on chain->open or chain->full */
	unsigned long kpfn;             /* the KSM page */
	int rmap_hlist_len;
};

enum ksm_rmap_state { RMAP_NONE, RMAP_UNSTABLE, RMAP_STABLE };

struct ksm_rmap_item {
	struct ksm_rmap_item *next;     /* the slot's list, by address */
	struct ksm_mm_slot *slot;
	unsigned long address;
	uint32_t oldchecksum;           /* of the page when last scanned */
	uint32_t seqnr;                 /* unstable: the full scan that inserted it */
	uint8_t state;                  /* enum ksm_rmap_state */
	struct rb_node node;            /* RMAP_UNSTABLE: ksm->unstable_tree */
	struct ksm_stable_node *head;   /* RMAP_STABLE: the node it maps */
	struct list_head hlist;         /* RMAP_STABLE: head->hlist */
	struct anon_vma *anon_vma;      /* RMAP_STABLE: a reference, for the rmap walk */
};

struct ksm_mm_slot {
	struct list_head link;          /* ksm->mm_slots; mmlist_lock */
	struct sm_mm *mm;
	struct ksm_rmap_item *rmap_list;   /* mutex */
};

struct ksm {
	pthread_mutex_t mutex;
	spinlock_t mmlist_lock;
	struct list_head mm_slots;      /* mmlist_lock */
	struct rb_root stable_tree;     /* mutex */
	struct rb_root unstable_tree;   /* mutex; emptied at every full scan */

	/* The scan cursor: mutex. */
	struct ksm_mm_slot *cur_slot;   /* NULL: a full scan starts with the next page */
	unsigned long cur_address;
	struct ksm_rmap_item **cur_rmap;
	uint32_t seqnr;                 /* full scans so far (mod 2^32) */

	/* The knobs of /sys/kernel/mm/ksm: written under mutex, read atomically. */
	unsigned run, pages_to_scan, sleep_millisecs;
	int max_page_sharing;           /* rmap items per KSM page, at most */
	bool use_zero_pages;
	bool reuse;                     /* immutable: !SM_CFG_NO_KSM_REUSE */
	uint32_t zero_checksum;         /* immutable: of a zero-filled page */

	/* ksmd: mutex. */
	pthread_t thread;
	pthread_cond_t wake;
	bool thread_running, stop;

	/* Statistics: written under mutex (zero_pages and reused: atomic from
	 * fault and zap paths), read atomically. */
	long pages_shared, pages_sharing, pages_unshared, rmap_items, stable_nodes;
	long stable_node_chains, stable_node_dups;   /* contents with several KSM pages; their pages */
	long zero_pages;
	uint64_t full_scans, pages_scanned, pages_reused, pages_skipped;
};

/* Drop the reference ksmd took on a page it looked at: on its folio's head,
 * which is the page itself once a split made it a folio of its own. */
static inline void ksm_put_page(struct sm_machine *m, struct page *page)
{
	folio_put_refs(m, page_head(m, page), 1);
}

/* Counters change under ksm->mutex but are read without it. */
static inline void ksm_count(long *counter, long delta)
{
	__atomic_fetch_add(counter, delta, __ATOMIC_RELAXED);
}

/* ksm.c */
int  ksm_init(struct sm_machine *m);
void ksm_destroy(struct sm_machine *m);
/* MADV_MERGEABLE / MADV_UNMERGEABLE on [start, end) of vma: the flags the
 * VMA is to get, after unmerging where asked. Precondition: mmap_lock write. */
long ksm_madvise(struct vm_area_struct *vma, unsigned long start, unsigned long end,
		 int advice, unsigned long *vm_flags);
/* fork: the child is registered if the parent is. */
int  ksm_fork(struct sm_mm *child, struct sm_mm *parent);
/* exit: forget the mm's rmap items. Precondition: no lock held. */
void ksm_exit(struct sm_mm *mm);
/* May ksmd merge pages of this VMA? Precondition: mmap_lock held. */
bool ksm_vma_mergeable(const struct vm_area_struct *vma);
/* New VMAs of a merge-any mm are mergeable (mmap_region). */
unsigned long ksm_vma_flags(const struct sm_mm *mm, unsigned long vm_flags);

static inline bool folio_test_ksm(const struct page *head)
{
	unsigned long mapping = (unsigned long)__atomic_load_n(&head->mapping, __ATOMIC_ACQUIRE);

	return (mapping & (PAGE_MAPPING_ANON | PAGE_MAPPING_KSM)) ==
	       (PAGE_MAPPING_ANON | PAGE_MAPPING_KSM);
}
static inline struct ksm_stable_node *folio_stable_node(const struct page *head)
{
	unsigned long mapping = (unsigned long)__atomic_load_n(&head->mapping, __ATOMIC_ACQUIRE);

	return (struct ksm_stable_node *)(mapping & ~(PAGE_MAPPING_ANON | PAGE_MAPPING_KSM));
}
static inline void *stable_node_mapping(const struct ksm_stable_node *node)
{
	return (void *)((unsigned long)node | PAGE_MAPPING_ANON | PAGE_MAPPING_KSM);
}

/* /proc/<pid>/ksm_stat's ksm_process_profit. */
long ksm_process_profit(struct sm_mm *mm);

/* A PTE that KSM pointed at the zero page: Linux marks those dirty. */
static inline bool is_ksm_zero_pte(const struct sm_machine *m, pte_t pte)
{
	return pte_present(pte) && pte_special(pte) && pte_pfn(pte) == m->zero_pfn && pte_dirty(pte);
}
/* A KSM zero PTE was unmapped or replaced. */
void ksm_zero_pte_gone(struct sm_mm *mm);

/* ksm_stable.c. Preconditions: ksm->mutex. */
struct page *stable_tree_search(struct ksm *k, struct sm_machine *m, struct page *page);
/* Link a new node, whose page is kpage, by kpage's contents. */
void stable_tree_insert(struct ksm *k, struct sm_machine *m, struct ksm_stable_node *node,
			struct page *kpage);
void stable_tree_append(struct ksm *k, struct ksm_rmap_item *item, struct ksm_stable_node *node,
			struct anon_vma *av);
/* The node's page with a reference, or NULL when the node is stale (then erased). */
struct page *get_ksm_page(struct ksm *k, struct sm_machine *m, struct ksm_stable_node *node);
/* The page an unstable item stands for, referenced, if it is still a
 * mergeable one; NULL if not. */
struct page *get_mergeable_page(struct ksm_rmap_item *item);
struct ksm_rmap_item *unstable_tree_search_insert(struct ksm *k, struct sm_machine *m,
						  struct ksm_rmap_item *item, struct page *page,
						  struct page **tree_page);
void remove_rmap_item_from_tree(struct ksm *k, struct ksm_rmap_item *item);
void free_rmap_item(struct ksm *k, struct ksm_rmap_item *item);
/* Erase nodes whose page nothing maps any more, dropping the tree's reference. */
void stable_tree_prune(struct ksm *k, struct sm_machine *m);
/* Compare two pages' contents: <0, 0, >0. */
int ksm_memcmp_pages(struct sm_machine *m, struct page *a, struct page *b);
uint32_t ksm_calc_checksum(struct sm_machine *m, struct page *p);
/* rmap_walk_anon for a KSM page. Precondition: no lock held. */
int rmap_walk_ksm(struct sm_machine *m, struct page *page,
		  bool (*fn)(const struct rmap_hit *hit, void *arg), void *arg);

/* ksm_merge.c */
/* The anon page at addr (a page of a large folio too) with a reference on
 * its folio (ksm_put_page drops it), or NULL. Precondition: mmap_lock read. */
struct page *ksm_follow_anon_page(struct vm_area_struct *vma, unsigned long addr);
/* Merge page, mapped at addr in vma: write-protect it, compare, and map
 * kpage instead; or, kpage NULL, make page itself the KSM page of `node`
 * (which takes the tree's reference). 0, or -EBUSY (other references, or
 * not the only mapping for an in-place merge), -EFAULT (gone or different).
 * Precondition: mmap_lock read; references on page and kpage. */
int  try_to_merge_one_page(struct vm_area_struct *vma, unsigned long addr, struct page *page,
			   struct page *kpage, struct ksm_stable_node *node);
/* use_zero_pages: map the zero page instead of this zero-filled page. */
int  try_to_merge_with_zero_page(struct vm_area_struct *vma, unsigned long addr, struct page *page);
/* Replace every KSM page (and KSM zero PTE) of [start, end) by a private
 * copy. Precondition: mmap_lock held. 0 or -ENOMEM. */
long unmerge_ksm_pages(struct vm_area_struct *vma, unsigned long start, unsigned long end);
/* do_wp_page: may this write fault reuse the KSM page in place? On true the
 * page is the VMA's exclusive anonymous page now. Precondition: PTE lock. */
bool ksm_reuse_page(struct vm_area_struct *vma, unsigned long addr, struct page *page);

/* ksmd.c */
/* Scan up to nr pages (the scan may end a full pass early); ksm->mutex held. */
long ksm_do_scan(struct ksm *k, struct sm_machine *m, unsigned long nr);
int  ksmd_start(struct ksm *k, struct sm_machine *m);
void ksmd_stop(struct ksm *k);

#endif
