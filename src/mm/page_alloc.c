/*
 * The buddy allocator: free blocks of 2^order frames (order 0..MAX_ORDER) on
 * per-order lists under zone->lock; a freed block merges with its buddy
 * (pfn ^ 2^order) while that buddy is free and of the same order.
 *
 * In front of it, each sm_cpu keeps a LIFO list of order-0 frames that only
 * its own thread touches: the fault path allocates without a lock, and the
 * frames it gets are the ones most recently freed, still warm in the host's
 * caches and already backed by the host.
 *
 * With SM_CFG_POISON_FREED every freed frame is filled with 0x6b and checked
 * when handed out again: a write through a stale translation into a free
 * frame is caught at the next allocation.
 */
#include <string.h>
#include "mm/page_alloc.h"

#define POISON_BYTE 0x6b

static void set_buddy(struct page *p, unsigned order)
{
	p->order = (uint8_t)order;
	set_page_flag(p, PG_buddy);
}

static void list_add_free(struct zone *z, struct page *p, unsigned order)
{
	set_buddy(p, order);
	list_add(&p->lru, &z->area[order].list);
	z->area[order].nr++;
}

static void list_del_free(struct zone *z, struct page *p, unsigned order)
{
	list_del(&p->lru);
	z->area[order].nr--;
	clear_page_flag(p, PG_buddy);
}

int page_alloc_init(struct sm_machine *m)
{
	struct zone *z = &m->zone;
	unsigned long pfn = 1, end = m->ram.nr_frames;

	spin_lock_init(&z->lock);
	for (unsigned o = 0; o < NR_ORDERS; o++)
		INIT_LIST_HEAD(&z->area[o].list);
	set_page_flag(&m->pages[0], PG_reserved);
	while (pfn < end) {
		unsigned order = MAX_ORDER;

		while (order && ((pfn & ((1ul << order) - 1)) || pfn + (1ul << order) > end))
			order--;
		list_add_free(z, &m->pages[pfn], order);
		pfn += 1ul << order;
	}
	z->managed = end - 1;
	z->free_pages = end - 1;
	return 0;
}

static struct page *rmqueue(struct sm_machine *m, unsigned order)
{
	struct zone *z = &m->zone;

	for (unsigned o = order; o < NR_ORDERS; o++) {
		struct page *p;

		if (list_empty(&z->area[o].list))
			continue;
		p = list_first_entry(&z->area[o].list, struct page, lru);
		list_del_free(z, p, o);
		/* Split: hand back the upper halves until the block fits. */
		while (o > order) {
			o--;
			list_add_free(z, p + (1ul << o), o);
		}
		return p;
	}
	return NULL;
}

static void free_one_block(struct sm_machine *m, unsigned long pfn, unsigned order)
{
	struct zone *z = &m->zone;

	while (order < MAX_ORDER) {
		unsigned long buddy = pfn ^ (1ul << order);
		struct page *b;

		if (buddy >= m->ram.nr_frames)
			break;
		b = &m->pages[buddy];
		if (!test_bit_flag(b, PG_buddy) || b->order != order)
			break;
		list_del_free(z, b, order);
		pfn &= ~(1ul << order);
		order++;
	}
	list_add_free(z, &m->pages[pfn], order);
}

/* Frames freed while poisoning was on carry PG_poisoned; never-used frames
 * hold whatever the host gave them and are not checked. */
static void check_poison(struct sm_machine *m, struct page *p)
{
	const unsigned char *b = page_address(m, p);

	if (!test_bit_flag(p, PG_poisoned))
		return;
	for (size_t i = 0; i < PAGE_SIZE; i++)
		SM_ASSERT(b[i] == POISON_BYTE,
			  "free frame %lu was written at offset %zu (0x%02x): "
			  "an access reached a freed frame",
			  page_to_pfn(m, p), i, b[i]);
}

static void prep_new_page(struct sm_machine *m, struct page *p, unsigned order, unsigned gfp)
{
	for (unsigned long i = 0; i < (1ul << order); i++) {
		struct page *q = p + i;

		if (m->flags & SM_CFG_POISON_FREED)
			check_poison(m, q);
		/* Flags are read locklessly by the buddy merge of a neighbour. */
		__atomic_store_n(&q->flags, 0, __ATOMIC_RELAXED);
		q->mapcount = 0;
		q->mapping = NULL;
		q->index = 0;
		q->private = 0;
		q->large_mapcount = 0;
		q->order = 0;
	}
	p->order = (uint8_t)order;
	__atomic_store_n(&p->refcount, 1, __ATOMIC_RELAXED);
	if (gfp & __GFP_ZERO)
		memset(page_address(m, p), 0, PAGE_SIZE << order);
}

static struct page *pcp_alloc(struct sm_machine *m, struct sm_cpu *c)
{
	struct per_cpu_pages *pcp = &c->pcp;
	struct page *p;

	if (list_empty(&pcp->list)) {
		spin_lock(&m->zone.lock);
		for (unsigned i = 0; i < PCP_BATCH; i++) {
			p = rmqueue(m, 0);
			if (!p)
				break;
			set_page_flag(p, PG_pcp);
			list_add_tail(&p->lru, &pcp->list);
			pcp->count++;
		}
		spin_unlock(&m->zone.lock);
		if (list_empty(&pcp->list))
			return NULL;
	}
	p = list_first_entry(&pcp->list, struct page, lru);
	list_del(&p->lru);
	pcp->count--;
	clear_page_flag(p, PG_pcp);
	return p;
}

struct page *alloc_pages(struct sm_machine *m, unsigned order, unsigned gfp)
{
	struct sm_cpu *c = order == 0 ? this_cpu(m) : NULL;
	struct page *p;

	if (c) {
		p = pcp_alloc(m, c);
	} else {
		spin_lock(&m->zone.lock);
		p = rmqueue(m, order);
		spin_unlock(&m->zone.lock);
	}
	if (!p)
		return NULL;
	__atomic_fetch_sub(&m->zone.free_pages, 1ul << order, __ATOMIC_RELAXED);
	prep_new_page(m, p, order, gfp);
	return p;
}

void pcp_drain(struct sm_machine *m, struct sm_cpu *c)
{
	struct page *p, *n;

	spin_lock(&m->zone.lock);
	list_for_each_entry_safe(p, n, &c->pcp.list, lru) {
		list_del(&p->lru);
		clear_page_flag(p, PG_pcp);
		free_one_block(m, page_to_pfn(m, p), 0);
	}
	spin_unlock(&m->zone.lock);
	c->pcp.count = 0;
}

void free_pages(struct sm_machine *m, struct page *p, unsigned order)
{
	struct sm_cpu *c = order == 0 ? this_cpu(m) : NULL;

	SM_ASSERT(page_ref_count(p) == 0, "pfn %lu freed with refcount %d",
		  page_to_pfn(m, p), page_ref_count(p));
	__atomic_store_n(&p->flags, 0, __ATOMIC_RELAXED);
	if (m->flags & SM_CFG_POISON_FREED) {
		memset(page_address(m, p), POISON_BYTE, PAGE_SIZE << order);
		for (unsigned long i = 0; i < (1ul << order); i++)
			set_page_flag(p + i, PG_poisoned);
	}
	p->mapping = NULL;
	__atomic_fetch_add(&m->zone.free_pages, 1ul << order, __ATOMIC_RELAXED);
	if (c) {
		set_page_flag(p, PG_pcp);
		list_add(&p->lru, &c->pcp.list);
		if (++c->pcp.count > PCP_HIGH) {
			/* Give the coldest batch back so other CPUs can have it. */
			spin_lock(&m->zone.lock);
			for (unsigned i = 0; i < PCP_BATCH; i++) {
				struct page *q = list_entry(c->pcp.list.prev, struct page, lru);

				list_del(&q->lru);
				clear_page_flag(q, PG_pcp);
				free_one_block(m, page_to_pfn(m, q), 0);
			}
			spin_unlock(&m->zone.lock);
			c->pcp.count -= PCP_BATCH;
		}
		return;
	}
	spin_lock(&m->zone.lock);
	free_one_block(m, page_to_pfn(m, p), order);
	spin_unlock(&m->zone.lock);
}

void put_pages_refs(struct sm_machine *m, struct page *p, int nr)
{
	int left = __atomic_sub_fetch(&p->refcount, nr, __ATOMIC_ACQ_REL);

	SM_ASSERT(left >= 0, "pfn %lu refcount underflow (%d)", page_to_pfn(m, p), left);
	if (left == 0)
		free_pages(m, p, p->order);
}

void put_page(struct sm_machine *m, struct page *p)
{
	put_pages_refs(m, p, 1);
}

unsigned long nr_free_pages(struct sm_machine *m)
{
	return __atomic_load_n(&m->zone.free_pages, __ATOMIC_RELAXED);
}

/* A free frame is a buddy head, inside a buddy block, or on a per-CPU list.
 * For the invariant checker: takes the zone lock, since RCU callbacks may be
 * freeing page tables meanwhile. */
bool page_is_free(struct sm_machine *m, unsigned long pfn)
{
	bool found = false;

	spin_lock(&m->zone.lock);
	for (unsigned o = 0; o < NR_ORDERS && !found; o++) {
		struct page *h = &m->pages[pfn & ~((1ul << o) - 1)];

		/* Blocks are aligned to their size, so a buddy head found at an
		 * alignment of 2^o with an order >= o covers pfn. */
		found = test_bit_flag(h, PG_buddy) && h->order >= o;
	}
	spin_unlock(&m->zone.lock);
	return found || test_bit_flag(&m->pages[pfn], PG_pcp);
}
