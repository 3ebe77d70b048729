/*
 * The page-table walker a CPU runs on a TLB miss: four levels, lockless,
 * inside an RCU read-side section so a table freed under it (page-table
 * reclaim, munmap's free_pgtables) stays readable until it is done.
 *
 * As on x86, a successful walk sets the accessed bit, and the dirty bit for
 * a write, with compare-and-swap so a concurrent PTE change by the VM wins
 * and the walk retries. A TLB entry allows writes only if the PTE was both
 * writable and dirty when it was cached, so the first write after a clean
 * fill re-walks and marks the PTE dirty: dirty tracking never misses a write.
 */
#include "base/rcu.h"
#include "hw/cpu.h"

static const pte_t *next_table(const struct ram *ram, pte_t e)
{
	/* A freed, poisoned table reads as entries full of 0x6b: their PFNs
	 * lie far beyond RAM. Catch that here rather than wander off. */
	SM_ASSERT(pte_pfn(e) < ram->nr_frames,
		  "walker read entry %llx: a freed page table", (unsigned long long)e);
	return pfn_to_virt(ram, pte_pfn(e));
}

/* The leaf PTE's address for va, or NULL if an upper level is missing. */
static pte_t *walk_to_pte(const struct ram *ram, struct pmap *pm, unsigned long va)
{
	const pte_t *t = pm->pgd;
	pte_t e;

	e = ptep_get(&t[pgd_index(va)]);
	if (!(e & _PAGE_PRESENT))
		return NULL;
	t = next_table(ram, e);
	e = ptep_get(&t[pud_index(va)]);
	if (!(e & _PAGE_PRESENT))
		return NULL;
	t = next_table(ram, e);
	e = ptep_get(&t[pmd_index(va)]);
	if (!(e & _PAGE_PRESENT))
		return NULL;
	t = next_table(ram, e);
	return (pte_t *)&t[pte_index(va)];
}

/* Set A (and D) on the leaf; false when the entry no longer allows it. */
static bool mark_young_dirty(pte_t *ptep, pte_t *pte, bool write)
{
	pte_t want = _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);

	for (;;) {
		pte_t old = *pte;

		if (!(old & _PAGE_PRESENT) || !(old & _PAGE_USER) ||
		    (write && !(old & _PAGE_RW)))
			return false;
		if ((old & want) == want)
			return true;
		if (__atomic_compare_exchange_n(ptep, pte, old | want, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			*pte = old | want;
			return true;
		}
	}
}

char *tlb_fill(struct hw_cpu *c, const struct ram *ram, struct pmap *pm,
	       unsigned long va, bool write)
{
	struct tlb_entry *e = &c->tlb[(va >> PAGE_SHIFT) & (TLB_SIZE - 1)];
	char *frame = NULL;
	pte_t *ptep, pte;

	sm_rcu_read_lock();
	ptep = walk_to_pte(ram, pm, va);
	if (ptep) {
		pte = ptep_get(ptep);
		if (mark_young_dirty(ptep, &pte, write)) {
			SM_ASSERT(pte_pfn(pte) < ram->nr_frames,
				  "walker read PTE %llx: a freed page table", (unsigned long long)pte);
			frame = pfn_to_virt(ram, pte_pfn(pte));
			e->tag = tlb_tag(pm->asid, va);
			e->host = (uintptr_t)frame |
				  ((pte & _PAGE_RW) && (pte & _PAGE_DIRTY) ? TLB_HOST_W : 0);
		}
	}
	sm_rcu_read_unlock();
	return frame ? frame + offset_in_page(va) : NULL;
}
