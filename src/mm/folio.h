/*
 * Folios: a head page and its order; the unit the VM allocates, counts and
 * frees. A large folio's tail pages carry PG_tail and their distance from
 * the head (in private), so any page finds its folio in O(1).
 *
 * Counting: the folio refcount lives in the head. Every page has its own
 * mapcount (PTEs mapping it); a large folio also keeps the total in page 1
 * (large_mapcount), so "is any page of this folio mapped, and how often"
 * costs one read.
 */
#ifndef SM_MM_FOLIO_H
#define SM_MM_FOLIO_H

#include "mm/page_alloc.h"

static inline struct page *page_head(struct sm_machine *m, struct page *p)
{
	(void)m;
	return test_bit_flag(p, PG_tail) ? p - p->private : p;
}

static inline unsigned folio_order(const struct page *head)
{
	return test_bit_flag(head, PG_head) ? head->order : 0;
}

static inline unsigned long folio_nr_pages(const struct page *head)
{
	return 1ul << folio_order(head);
}

static inline int folio_ref_count(const struct page *head)
{
	return page_ref_count(head);
}

static inline int folio_large_mapcount(const struct page *head)
{
	return __atomic_load_n(&head[1].large_mapcount, __ATOMIC_RELAXED);
}

/* A zeroed (or, without zero, uninitialised) anonymous folio of 2^order
 * pages with refcount 1; NULL when RAM is out. */
struct page *folio_alloc_anon(struct sm_machine *m, unsigned order, bool zero);
/* Take refs references on a folio. */
static inline void folio_ref_add(struct page *head, int refs)
{
	__atomic_fetch_add(&head->refcount, refs, __ATOMIC_RELAXED);
}
/* Drop refs references; at zero the folio lets go of its anon_vma and is freed. */
void folio_put_refs(struct sm_machine *m, struct page *head, int refs);

/*
 * Guest CPUs may write a frame while the VM reads it (KSM's checksums and
 * comparisons are trusted only once the page is write-protected). Under
 * ThreadSanitizer the reads are relaxed atomics, as the guest's own
 * accesses are (access.c).
 */
static inline uint64_t frame_load_word(const uint64_t *p)
{
#ifdef SM_TSAN
	return __atomic_load_n(p, __ATOMIC_RELAXED);
#else
	return *p;
#endif
}

/* Whether a page holds only zero bytes. */
bool page_is_zero_filled(struct sm_machine *m, struct page *p);

/* split.c: split the large anonymous folio of page, which the PTE at ptep
 * (its lock held) maps at addr, into order-0 folios, when every PTE mapping
 * it is in that table and the caller holds the only other reference (on the
 * head; it moves to page). Pages holding only zeros are replaced by the zero
 * page. 0; -EAGAIN when page itself was (split, and no longer mapped: the
 * caller's reference is all that holds it); -EBUSY with the folio whole. */
struct vm_area_struct;
int split_anon_folio_locked(struct vm_area_struct *vma, unsigned long addr, pte_t *ptep,
			    struct page *page);

#endif
