/*
 * Page-table pages. Every table is a frame of simulated RAM with PG_pgtable
 * set; its struct page carries its lock: a PTE table's lock guards its 512
 * leaf entries, a PMD table's lock guards the installation and removal of
 * PTE tables beneath it. PGD and PUD entries are populated under
 * mm->page_table_lock: they change rarely.
 *
 * Tables below the PGD count in VmPTE (mm->pgtables_bytes) as Linux's
 * mm_pgtables_bytes does. Tables are never freed while an mm's VMAs may
 * still reach them through a concurrent fault: munmap detaches first and
 * frees through the mmu_gather, whose RCU deferral protects lockless walkers.
 */
#include <errno.h>
#include "base/rcu.h"
#include "mm/pgtable.h"
#include "mm/page_alloc.h"
#include "mm/mmu_gather.h"

static struct page *pt_page_alloc(struct sm_mm *mm, bool counted)
{
	struct page *p = alloc_pages(mm->machine, 0, __GFP_ZERO);

	if (!p)
		return NULL;
	set_page_flag(p, PG_pgtable);
	spin_lock_init(&p->ptl);
	if (counted)
		__atomic_fetch_add(&mm->pgtables_bytes, (long)PAGE_SIZE, __ATOMIC_RELAXED);
	__atomic_fetch_add(&mm->machine->pgtable_frames, 1, __ATOMIC_RELAXED);
	return p;
}

/* Give a table page back at once: only for tables no walker can reach. */
static void pt_page_free_now(struct sm_mm *mm, struct page *p, bool counted)
{
	if (counted)
		__atomic_fetch_sub(&mm->pgtables_bytes, (long)PAGE_SIZE, __ATOMIC_RELAXED);
	__atomic_fetch_sub(&mm->machine->pgtable_frames, 1, __ATOMIC_RELAXED);
	put_page(mm->machine, p);
}

int pgd_alloc(struct sm_mm *mm)
{
	struct page *p = pt_page_alloc(mm, false);

	if (!p)
		return -ENOMEM;
	mm->pmap.pgd_pfn = page_to_pfn(mm->machine, p);
	mm->pmap.pgd = page_address(mm->machine, p);
	return 0;
}

void pgd_free(struct sm_mm *mm)
{
	pt_page_free_now(mm, pfn_to_page(mm->machine, mm->pmap.pgd_pfn), false);
}

/* Populate *entryp with a fresh table under `lock` unless someone beat us. */
static int populate(struct sm_mm *mm, pte_t *entryp, spinlock_t *lock)
{
	struct page *p;

	if (ptep_get(entryp) & _PAGE_PRESENT)
		return 0;
	p = pt_page_alloc(mm, true);
	if (!p)
		return -ENOMEM;
	spin_lock(lock);
	if (!(ptep_get(entryp) & _PAGE_PRESENT)) {
		set_pte(entryp, pfn_pte(page_to_pfn(mm->machine, p), _PAGE_TABLE));
		p = NULL;
	}
	spin_unlock(lock);
	if (p)
		pt_page_free_now(mm, p, true);
	return 0;
}

pte_t *pmd_alloc(struct sm_mm *mm, unsigned long addr)
{
	pte_t *pgdp = &mm->pmap.pgd[pgd_index(addr)], *pudp;

	if (populate(mm, pgdp, &mm->page_table_lock))
		return NULL;
	pudp = &table_of(mm, ptep_get(pgdp))[pud_index(addr)];
	if (populate(mm, pudp, &mm->page_table_lock))
		return NULL;
	return &table_of(mm, ptep_get(pudp))[pmd_index(addr)];
}

pte_t *pmd_off(struct sm_mm *mm, unsigned long addr)
{
	pte_t e = ptep_get(&mm->pmap.pgd[pgd_index(addr)]);

	if (!(e & _PAGE_PRESENT))
		return NULL;
	e = ptep_get(&table_of(mm, e)[pud_index(addr)]);
	if (!(e & _PAGE_PRESENT))
		return NULL;
	return &table_of(mm, e)[pmd_index(addr)];
}

spinlock_t *pmd_lockptr(struct sm_mm *mm, pte_t *pmdp)
{
	unsigned long pfn = virt_to_pfn(&mm->machine->ram, pmdp);

	return &pfn_to_page(mm->machine, pfn)->ptl;
}

int pte_alloc(struct sm_mm *mm, pte_t *pmdp)
{
	return populate(mm, pmdp, pmd_lockptr(mm, pmdp));
}

pte_t *pte_offset_map_lock(struct sm_mm *mm, pte_t *pmdp, unsigned long addr, spinlock_t **ptl)
{
	pte_t *ptep = NULL;
	struct page *tp;
	pte_t pmd;

	/* Page-table reclaim (pt_reclaim.c) may free the table between our
	 * read of the PMD entry and taking its lock. It clears the entry
	 * under this same lock and frees after an RCU grace period, so inside
	 * a read-side section the lock is still memory we may take, and a
	 * recheck of the entry under it settles who won. */
	sm_rcu_read_lock();
	pmd = ptep_get(pmdp);
	if (pmd & _PAGE_PRESENT) {
		tp = table_page(mm, pmd);
		spin_lock(&tp->ptl);
		if (likely(ptep_get(pmdp) == pmd)) {
			*ptl = &tp->ptl;
			ptep = &table_of(mm, pmd)[pte_index(addr)];
		} else {
			spin_unlock(&tp->ptl);
		}
	}
	sm_rcu_read_unlock();
	return ptep;
}

pte_t *walk_pte_lock(struct sm_mm *mm, unsigned long addr, spinlock_t **ptl)
{
	pte_t *pmdp, *ptep = NULL;

	/* Without mm's mmap_lock the upper tables may be freed under the walk
	 * (page-table reclaim, munmap); only empty ones are, and RCU keeps them
	 * readable until the PTE lock is ours, which settles it. */
	sm_rcu_read_lock();
	pmdp = pmd_off(mm, addr);
	if (pmdp)
		ptep = pte_offset_map_lock(mm, pmdp, addr, ptl);
	sm_rcu_read_unlock();
	return ptep;
}

pte_t *pte_alloc_map_lock(struct sm_mm *mm, unsigned long addr, spinlock_t **ptl)
{
	for (;;) {
		pte_t *pmdp = pmd_alloc(mm, addr), *ptep;

		if (!pmdp || pte_alloc(mm, pmdp))
			return NULL;
		ptep = pte_offset_map_lock(mm, pmdp, addr, ptl);
		if (ptep)
			return ptep;
	}
}

bool table_empty(const pte_t *t)
{
	for (unsigned i = 0; i < PTRS_PER_TABLE; i++)
		if (ptep_get(&t[i]))
			return false;
	return true;
}

static const unsigned long level_size[4] = { PAGE_SIZE, PMD_SIZE, PUD_SIZE, PGDIR_SIZE };
static const unsigned level_shift[4] = { PAGE_SHIFT, PMD_SHIFT, PUD_SHIFT, PGDIR_SHIFT };

/* Whether the entry's span [a, a+size) lies inside [floor, ceiling). */
static bool span_free(unsigned long a, unsigned long size, unsigned long floor, unsigned long ceiling)
{
	return a >= floor && (ceiling == 0 || a + size - 1 <= ceiling - 1);
}

/*
 * Walk the entries of table `t` (level: 3 = PGD, 2 = PUD, 1 = PMD) that
 * intersect [start, end) and free the child tables that lie wholly in the
 * gap [floor, ceiling) and hold nothing.
 */
static void free_level(struct mmu_gather *tlb, struct sm_mm *mm, pte_t *t, int level,
		       unsigned long start, unsigned long end, unsigned long floor,
		       unsigned long ceiling)
{
	unsigned long size = level_size[level];
	unsigned long a = start & ~(size - 1);

	for (; a < end && a >= (start & ~(size - 1)); a += size) {
		pte_t *ep = &t[(a >> level_shift[level]) & 511];
		pte_t e = ptep_get(ep);
		pte_t *child;
		spinlock_t *lock;

		if (!(e & _PAGE_PRESENT))
			continue;
		child = table_of(mm, e);
		if (level > 1)
			free_level(tlb, mm, child, level - 1, max(start, a),
				   min(end - 1, a + size - 1) + 1, floor, ceiling);
		if (!span_free(a, size, floor, ceiling) || !table_empty(child))
			continue;
		lock = level == 1 ? pmd_lockptr(mm, ep) : &mm->page_table_lock;
		spin_lock(lock);
		/* The scanner may have freed it meanwhile, under the same lock. */
		if (ptep_get(ep) != e) {
			spin_unlock(lock);
			continue;
		}
		/* A PTE table is unlinked under its own lock too: whoever holds
		 * that lock may count on the table staying linked (the zap's
		 * reclaim does). */
		if (level == 1)
			spin_lock(&table_page(mm, e)->ptl);
		set_pte(ep, 0);
		if (level == 1)
			spin_unlock(&table_page(mm, e)->ptl);
		spin_unlock(lock);
		tlb_remove_table(tlb, table_page(mm, e));
	}
}

void free_pgtables(struct mmu_gather *tlb, struct sm_mm *mm, unsigned long start,
		   unsigned long end, unsigned long floor, unsigned long ceiling)
{
	if (start >= end)
		return;
	/* munmap runs this under the read lock: two of them, or the
	 * reclaim scanner, may be freeing tables of the same gap. */
	sm_rcu_read_lock();
	free_level(tlb, mm, mm->pmap.pgd, 3, start, end, floor, ceiling);
	sm_rcu_read_unlock();
}

static void free_subtree(struct sm_mm *mm, pte_t *t, int level)
{
	for (unsigned i = 0; i < PTRS_PER_TABLE; i++) {
		pte_t e = ptep_get(&t[i]);

		if (!(e & _PAGE_PRESENT))
			continue;
		if (level > 1)
			free_subtree(mm, table_of(mm, e), level - 1);
		set_pte(&t[i], 0);
		pt_page_free_now(mm, table_page(mm, e), true);
	}
}

void free_all_pgtables(struct sm_mm *mm)
{
	free_subtree(mm, mm->pmap.pgd, 3);
}

long mm_pgtable_pages(struct sm_mm *mm)
{
	return __atomic_load_n(&mm->pgtables_bytes, __ATOMIC_RELAXED) / (long)PAGE_SIZE;
}
