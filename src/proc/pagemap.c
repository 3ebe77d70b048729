/*
 * /proc/<pid>/pagemap: 64 bits per virtual page — bit 63 present, 62
 * swapped, 61 file-page or shared-anon, 56 exclusively mapped (this page
 * has one mapping), 0..54 the PFN (always shown: an embedder is root in
 * its own machine).
 */
#include <errno.h>
#include "base/rcu.h"
#include "base/rwsem.h"
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"
#include "mm/vma.h"
#include "proc/proc.h"

#define PM_PFRAME_MASK     ((1ull << 55) - 1)
#define PM_MMAP_EXCLUSIVE  (1ull << 56)
#define PM_FILE            (1ull << 61)
#define PM_SWAP            (1ull << 62)
#define PM_PRESENT         (1ull << 63)

static uint64_t pte_to_pagemap_entry(struct sm_mm *mm, pte_t pte)
{
	struct page *page;
	uint64_t e;

	if (!pte_present(pte))
		return 0;   /* none (swap entries arrive with reclaim) */
	e = PM_PRESENT | (pte_pfn(pte) & PM_PFRAME_MASK);
	page = vm_normal_page(mm, pte);
	if (page) {
		if (!page_is_anon(page_head(mm->machine, page)))
			e |= PM_FILE;
		if (page_mapcount(page) == 1)
			e |= PM_MMAP_EXCLUSIVE;
	}
	return e;
}

/* Entries for [addr, addr + n pages) inside one PTE table's span. */
static void pagemap_pte_range(struct sm_mm *mm, unsigned long addr, uint64_t *out, size_t n)
{
	pte_t *pmdp = pmd_off(mm, addr);
	spinlock_t *ptl;
	pte_t *ptep = pmdp ? pte_offset_map_lock(mm, pmdp, addr, &ptl) : NULL;

	for (size_t i = 0; i < n; i++, addr += PAGE_SIZE)
		out[i] = ptep && vma_lookup(mm, addr) ? pte_to_pagemap_entry(mm, ptep_get(&ptep[i])) : 0;
	if (ptep)
		spin_unlock(ptl);
}

long sm_pagemap_read(struct sm_mm *mm, unsigned long addr, uint64_t *entries, size_t n)
{
	size_t done = 0;

	if (!mm || (!entries && n))
		return -EINVAL;
	if (offset_in_page(addr))
		return -EINVAL;
	if (addr >= mm->task_size)
		return 0;
	n = min(n, (mm->task_size - addr) >> PAGE_SHIFT);
	sm_rcu_thread_online();
	down_read(&mm->mmap_lock);
	while (done < n) {
		unsigned long a = addr + (done << PAGE_SHIFT);
		size_t chunk = min(n - done, (pmd_addr_end(a, a + ((n - done) << PAGE_SHIFT)) - a) >> PAGE_SHIFT);

		pagemap_pte_range(mm, a, entries + done, chunk);
		done += chunk;
	}
	up_read(&mm->mmap_lock);
	return (long)done;
}
