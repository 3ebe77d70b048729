/* Frame allocation: the buddy allocator and the per-CPU lists in front of it. */
#ifndef SM_MM_PAGE_ALLOC_H
#define SM_MM_PAGE_ALLOC_H

#include "mm/mm_types.h"

#define __GFP_ZERO 0x1u

int  page_alloc_init(struct sm_machine *m);
/* A block of 2^order frames with refcount 1 on the first, or NULL. */
struct page *alloc_pages(struct sm_machine *m, unsigned order, unsigned gfp);
/* Give back a block whose refcount already dropped to zero. */
void free_pages(struct sm_machine *m, struct page *p, unsigned order);
/* Return a CPU's cached frames to the buddy lists. */
void pcp_drain(struct sm_machine *m, struct sm_cpu *c);
unsigned long nr_free_pages(struct sm_machine *m);
/* True when the frame sits free in the allocator (buddy or per-CPU). */
bool page_is_free(struct sm_machine *m, unsigned long pfn);

static inline void get_page(struct page *p)
{
	__atomic_fetch_add(&p->refcount, 1, __ATOMIC_RELAXED);
}
static inline void page_ref_add(struct page *p, int n)
{
	__atomic_fetch_add(&p->refcount, n, __ATOMIC_RELAXED);
}
static inline int page_ref_count(const struct page *p)
{
	return __atomic_load_n(&p->refcount, __ATOMIC_RELAXED);
}
/* Drop a reference; frees the folio (head page, its order) at zero. */
void put_page(struct sm_machine *m, struct page *p);
/* Drop nr references at once (mmu_gather); frees at zero. */
void put_pages_refs(struct sm_machine *m, struct page *p, int nr);

#endif
