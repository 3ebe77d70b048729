/* Folios: a head page and its order; the unit the VM maps, counts and frees. */
#ifndef SM_MM_FOLIO_H
#define SM_MM_FOLIO_H

#include "mm/page_alloc.h"

static inline struct page *page_head(struct sm_machine *m, struct page *p)
{
	(void)m;
	/* Large folios (issue: large anon folios) will find their head here;
	 * every folio is order 0 today. */
	return p;
}

static inline unsigned long folio_nr_pages(const struct page *head)
{
	return 1ul << head->order;
}

/* A zeroed anonymous folio of 2^order pages, refcount 1; NULL when RAM is out. */
struct page *folio_alloc_anon(struct sm_machine *m, unsigned order);
/* Drop refs references; at zero the folio lets go of its anon_vma and is freed. */
void folio_put_refs(struct sm_machine *m, struct page *head, int refs);

#endif
