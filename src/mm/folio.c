/* Folio lifetime: allocation for the fault path and the final put. */
#include "mm/folio.h"
#include "mm/rmap.h"

struct page *folio_alloc_anon(struct sm_machine *m, unsigned order, bool zero)
{
	struct page *p = alloc_pages(m, order, zero ? __GFP_ZERO : 0);

	if (!p || !order)
		return p;
	set_page_flag(p, PG_head);
	spin_lock_init(&p->ptl);   /* the mapcount lock (rmap.c) */
	for (unsigned long i = 1; i < (1ul << order); i++) {
		p[i].private = i;
		set_page_flag(&p[i], PG_tail);
	}
	return p;
}

void folio_put_refs(struct sm_machine *m, struct page *head, int refs)
{
	int left = __atomic_sub_fetch(&head->refcount, refs, __ATOMIC_ACQ_REL);
	unsigned order;

	SM_ASSERT(left >= 0, "pfn %lu refcount underflow (%d)", page_to_pfn(m, head), left);
	if (left)
		return;
	if (page_is_anon(head))
		put_anon_vma(page_anon_vma(head));
	order = folio_order(head);
	for (unsigned long i = 1; i < (1ul << order); i++) {
		__atomic_store_n(&head[i].flags, 0, __ATOMIC_RELAXED);
		head[i].private = 0;
		head[i].large_mapcount = 0;
	}
	head->mapping = NULL;
	free_pages(m, head, order);
}

bool page_is_zero_filled(struct sm_machine *m, struct page *p)
{
	const uint64_t *w = page_address(m, p);

	for (size_t i = 0; i < PAGE_SIZE / 8; i++)
		if (frame_load_word(w + i))
			return false;
	return true;
}
