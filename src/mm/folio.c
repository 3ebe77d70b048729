/* Folio lifetime: allocation for the fault path and the final put. */
#include "mm/folio.h"
#include "mm/rmap.h"

struct page *folio_alloc_anon(struct sm_machine *m, unsigned order)
{
	struct page *p = alloc_pages(m, order, __GFP_ZERO);

	if (p && order)
		set_page_flag(p, PG_head);
	return p;
}

void folio_put_refs(struct sm_machine *m, struct page *head, int refs)
{
	int left = __atomic_sub_fetch(&head->refcount, refs, __ATOMIC_ACQ_REL);

	SM_ASSERT(left >= 0, "pfn %lu refcount underflow (%d)", page_to_pfn(m, head), left);
	if (left)
		return;
	if (page_is_anon(head))
		put_anon_vma(page_anon_vma(head));
	head->mapping = NULL;
	free_pages(m, head, head->order);
}
