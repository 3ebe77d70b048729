/*
 * Reverse mapping of anonymous memory.
 *
 * An anon_vma is the rmap root of the anonymous folios faulted in a VMA (and,
 * after fork, of its relatives). VMAs join anon_vmas through anon_vma_chain
 * links: a VMA's same_vma list names every anon_vma whose folios it may map,
 * an anon_vma's chain names every VMA that may map its folios. A folio points
 * at its anon_vma through folio->mapping (low bit PAGE_MAPPING_ANON) and
 * records its linear page index, so an rmap walk finds its address in each
 * VMA as vm_start + (index - vm_pgoff) pages.
 *
 * Lifetime: an anon_vma is referenced by each chain link and by each folio
 * pointing at it; it is freed when the last goes. The anon rmap of a folio
 * is therefore removed at zap time (before the TLB flush), while the folio
 * reference is dropped after it: the anon_vma outlives every folio that
 * names it.
 */
#include <errno.h>
#include <stdlib.h>
#include "mm/rmap.h"
#include "mm/folio.h"
#include "mm/ksm.h"
#include "mm/pgtable.h"

static struct anon_vma *anon_vma_alloc(void)
{
	struct anon_vma *av = calloc(1, sizeof(*av));

	if (!av)
		return NULL;
	av->root = av;
	spin_lock_init(&av->lock);
	av->refcount = 1;
	INIT_LIST_HEAD(&av->chain);
	return av;
}

void put_anon_vma(struct anon_vma *av)
{
	if (__atomic_sub_fetch(&av->refcount, 1, __ATOMIC_ACQ_REL) == 0)
		free(av);
}

static void get_anon_vma(struct anon_vma *av)
{
	__atomic_fetch_add(&av->refcount, 1, __ATOMIC_RELAXED);
}

static void chain_link(struct vm_area_struct *vma, struct anon_vma_chain *avc, struct anon_vma *av)
{
	avc->vma = vma;
	avc->anon_vma = av;
	list_add(&avc->same_vma, &vma->anon_vma_chain);
	spin_lock(&av->lock);
	list_add_tail(&avc->same_anon_vma, &av->chain);
	av->num_active_vmas++;
	spin_unlock(&av->lock);
}

/* Neighbours that differ only in protection, with continuous offsets,
 * could merge later: Linux's anon_vma_compatible. */
static bool anon_vma_compatible(const struct vm_area_struct *a, const struct vm_area_struct *b)
{
	return a->vm_end == b->vm_start &&
	       !((a->vm_flags ^ b->vm_flags) & ~(VM_ACCESS_FLAGS | VM_SOFTDIRTY)) &&
	       b->vm_pgoff == a->vm_pgoff + ((b->vm_start - a->vm_start) >> PAGE_SHIFT);
}

static struct anon_vma *reusable_anon_vma(struct vm_area_struct *old, struct vm_area_struct *a,
					  struct vm_area_struct *b)
{
	struct anon_vma *av;

	if (!old || !anon_vma_compatible(a, b))
		return NULL;
	av = __atomic_load_n(&old->anon_vma, __ATOMIC_ACQUIRE);
	return av && old->anon_vma_chain.next == old->anon_vma_chain.prev ? av : NULL;
}

/* Share a neighbour's anon_vma where the two VMAs may merge again later
 * (after an mprotect split, say), as Linux does: next first, then prev. */
static struct anon_vma *find_mergeable_anon_vma(struct vm_area_struct *vma)
{
	struct gt_node *n = gt_next(&vma->vm_node), *p = gt_prev(&vma->vm_node);
	struct anon_vma *av = n ? reusable_anon_vma(node_vma(n), vma, node_vma(n)) : NULL;

	if (!av && p)
		av = reusable_anon_vma(node_vma(p), node_vma(p), vma);
	return av;
}

/* Give the VMA an anon_vma before its first anonymous folio.
 * Precondition: mmap_lock held (read suffices: page_table_lock serializes). */
int anon_vma_prepare(struct vm_area_struct *vma)
{
	struct sm_mm *mm = vma->vm_mm;
	struct anon_vma_chain *avc;
	struct anon_vma *av, *shared;

	if (likely(__atomic_load_n(&vma->anon_vma, __ATOMIC_ACQUIRE)))
		return 0;
	avc = malloc(sizeof(*avc));
	av = anon_vma_alloc();
	if (!avc || !av) {
		free(avc);
		free(av);
		return -ENOMEM;
	}
	spin_lock(&mm->page_table_lock);
	if (!vma->anon_vma) {
		shared = find_mergeable_anon_vma(vma);
		if (shared) {
			get_anon_vma(shared);
			put_anon_vma(av);
			av = shared;
		}
		chain_link(vma, avc, av);
		__atomic_store_n(&vma->anon_vma, av, __ATOMIC_RELEASE);
		avc = NULL;
		av = NULL;
	}
	spin_unlock(&mm->page_table_lock);
	free(avc);
	if (av)
		put_anon_vma(av);
	return 0;
}

int anon_vma_clone(struct vm_area_struct *dst, struct vm_area_struct *src)
{
	struct anon_vma_chain *pavc;

	INIT_LIST_HEAD(&dst->anon_vma_chain);
	list_for_each_entry(pavc, &src->anon_vma_chain, same_vma) {
		struct anon_vma_chain *avc = malloc(sizeof(*avc));

		if (!avc) {
			unlink_anon_vmas(dst);
			return -ENOMEM;
		}
		get_anon_vma(pavc->anon_vma);
		chain_link(dst, avc, pavc->anon_vma);
	}
	dst->anon_vma = src->anon_vma;
	return 0;
}

/* fork: the child's VMA joins every anon_vma of the parent's (so the rmap
 * walk of a shared folio finds it) and gets an anon_vma of its own for the
 * folios it will create by copy-on-write. */
int anon_vma_fork(struct vm_area_struct *vma, struct vm_area_struct *pvma)
{
	struct anon_vma_chain *avc;
	struct anon_vma *av;

	if (!pvma->anon_vma)
		return 0;
	if (anon_vma_clone(vma, pvma))
		return -ENOMEM;
	avc = malloc(sizeof(*avc));
	av = anon_vma_alloc();
	if (!avc || !av) {
		free(avc);
		free(av);
		unlink_anon_vmas(vma);
		return -ENOMEM;
	}
	av->root = pvma->anon_vma->root;
	chain_link(vma, avc, av);
	vma->anon_vma = av;
	return 0;
}

void unlink_anon_vmas(struct vm_area_struct *vma)
{
	struct anon_vma_chain *avc, *n;

	list_for_each_entry_safe(avc, n, &vma->anon_vma_chain, same_vma) {
		struct anon_vma *av = avc->anon_vma;

		spin_lock(&av->lock);
		list_del(&avc->same_anon_vma);
		av->num_active_vmas--;
		spin_unlock(&av->lock);
		list_del(&avc->same_vma);
		free(avc);
		put_anon_vma(av);
	}
	vma->anon_vma = NULL;
}

void folio_add_new_anon_rmap(struct page *head, struct vm_area_struct *vma, unsigned long addr)
{
	struct anon_vma *av = vma->anon_vma;

	get_anon_vma(av);
	head->mapping = (void *)((unsigned long)av | PAGE_MAPPING_ANON);
	head->index = linear_page_index(vma, addr);
	set_page_flag(head, PG_swapbacked);
	for (unsigned long i = 0; i < folio_nr_pages(head); i++) {
		set_page_flag(head + i, PG_anon_exclusive);
		__atomic_store_n(&head[i].mapcount, 1, __ATOMIC_RELAXED);
	}
	if (folio_order(head))
		__atomic_store_n(&head[1].large_mapcount, (int)folio_nr_pages(head), __ATOMIC_RELAXED);
}

/*
 * A large folio's page mapcounts change under its mapcount lock, the head
 * page's ptl (which otherwise only page tables use): a batch of fork or zap
 * then pays one lock round trip instead of a locked add per page, the cost
 * that dominated batched fork. Readers load the counts without the lock, as
 * they always did. An order-0 folio keeps its single atomic.
 */
static void mapcounts_add(struct page *head, struct page *page, int nr, int delta)
{
	if (!folio_order(head)) {
		/* Release: whoever sees the count drop (KSM's prune) also sees
		 * that we are done looking at the page. */
		int left = __atomic_add_fetch(&page->mapcount, delta, __ATOMIC_ACQ_REL);

		SM_ASSERT(left >= 0, "mapcount underflow");
		return;
	}
	spin_lock(&head->ptl);
	for (int i = 0; i < nr; i++) {
		int mc = __atomic_load_n(&page[i].mapcount, __ATOMIC_RELAXED) + delta;

		SM_ASSERT(mc >= 0, "mapcount underflow");
		if (delta > 0 && test_bit_flag(&page[i], PG_anon_exclusive))
			clear_page_flag(&page[i], PG_anon_exclusive);
		__atomic_store_n(&page[i].mapcount, mc, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&head[1].large_mapcount,
			 __atomic_load_n(&head[1].large_mapcount, __ATOMIC_RELAXED) + delta * nr,
			 __ATOMIC_RELAXED);
	spin_unlock(&head->ptl);
}

void folio_remove_rmap_ptes(struct page *head, struct page *page, int nr)
{
	mapcounts_add(head, page, nr, -1);
}

/* fork: the child maps the pages too, so none stays exclusive. */
void folio_dup_anon_rmap_ptes(struct page *head, struct page *page, int nr)
{
	if (!folio_order(head) && test_bit_flag(page, PG_anon_exclusive))
		clear_page_flag(page, PG_anon_exclusive);
	mapcounts_add(head, page, nr, 1);
}

void folio_add_file_rmap_ptes(struct page *head, struct page *page, int nr)
{
	mapcounts_add(head, page, nr, 1);
}

/*
 * The anon rmap walk. A folio's anon_vma lists every VMA that may map it
 * (the faulting VMA, its split pieces, and its descendants through fork);
 * the folio's index gives the address in each. Holding the anon_vma's lock
 * keeps those VMAs from being unlinked while we look.
 */
int rmap_walk_anon(struct sm_machine *m, struct page *page,
		   bool (*fn)(const struct rmap_hit *hit, void *arg), void *arg)
{
	struct page *head = page_head(m, page);
	struct anon_vma *av;
	struct anon_vma_chain *avc;
	unsigned long pfn = page_to_pfn(m, page);
	unsigned long index = head->index + (unsigned long)(page - head);
	int visited = 0;

	if (!page_is_anon(head))
		return 0;
	if (folio_test_ksm(head))
		return rmap_walk_ksm(m, page, fn, arg);
	av = page_anon_vma(head);
	spin_lock(&av->lock);
	list_for_each_entry(avc, &av->chain, same_anon_vma) {
		struct vm_area_struct *vma = avc->vma;
		struct sm_mm *mm = vma->vm_mm;
		unsigned long addr;
		spinlock_t *ptl;
		pte_t *ptep;
		struct rmap_hit hit;

		if (index < vma->vm_pgoff || index - vma->vm_pgoff >= vma_pages(vma))
			continue;
		addr = vma->vm_start + ((index - vma->vm_pgoff) << PAGE_SHIFT);
		if (!(ptep = walk_pte_lock(mm, addr, &ptl)))
			continue;
		hit = (struct rmap_hit){ vma, addr, ptep_get(ptep) };
		spin_unlock(ptl);
		if (!pte_present(hit.pte) || pte_special(hit.pte) || pte_pfn(hit.pte) != pfn)
			continue;
		visited++;
		if (!fn(&hit, arg))
			break;
	}
	spin_unlock(&av->lock);
	return visited;
}

int page_mapcount(const struct page *p)
{
	return __atomic_load_n(&p->mapcount, __ATOMIC_RELAXED);
}
