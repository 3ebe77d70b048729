/*
 * /proc/<pid>/smaps and smaps_rollup: one accumulator (struct
 * mem_size_stats) filled by walking a VMA's PTEs, printed per VMA or summed
 * over the mm, in Linux 6.18's formats.
 *
 * Accounting follows Linux's smaps_account() with per-page mapcounts
 * (CONFIG_PAGE_MAPCOUNT, as the reference kernel): every page a present PTE
 * maps counts in Rss; it is Shared when its mapcount is 2 or more, and then
 * adds PAGE_SIZE / mapcount to Pss, kept in 1/4096ths of a byte (PSS_SHIFT)
 * so that rounding happens once, when printed; Dirty comes from the PTE or
 * the folio; Referenced from the PTE's accessed bit. The shared zero page
 * has no struct page behind its PTE (vm_normal_page() == NULL) and counts
 * nowhere. softmm maps every folio with PTEs, so the PMD-mapped fields
 * (AnonHugePages, ...) stay 0; there is no swap or hugetlb yet. KSM counts
 * the pages of KSM folios (not the KSM zero page), as Linux.
 *
 * Locking: mmap_lock held for reading (sm_proc_read) keeps the VMAs and the
 * upper tables; each PTE table is read under its PTE lock, taken with
 * pte_offset_map_lock, which copes with page-table reclaim.
 */
#include "mm/folio.h"
#include "mm/ksm.h"
#include "mm/memory.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"
#include "mm/vma.h"
#include "proc/proc.h"

#define PSS_SHIFT 12


struct mem_size_stats {
	unsigned long resident, shared_clean, shared_dirty, private_clean, private_dirty;
	unsigned long referenced, anonymous, lazyfree, ksm;
	uint64_t pss, pss_anon, pss_file, pss_shmem, pss_dirty, pss_locked;
};

static void smaps_page_accumulate(struct mem_size_stats *mss, struct page *head, uint64_t pss,
				  bool dirty, bool locked, bool private)
{
	mss->pss += pss;
	if (page_is_anon(head))
		mss->pss_anon += pss;
	else if (test_bit_flag(head, PG_swapbacked))
		mss->pss_shmem += pss;
	else
		mss->pss_file += pss;
	if (locked)
		mss->pss_locked += pss;
	if (dirty) {
		mss->pss_dirty += pss;
		*(private ? &mss->private_dirty : &mss->shared_dirty) += PAGE_SIZE;
	} else {
		*(private ? &mss->private_clean : &mss->shared_clean) += PAGE_SIZE;
	}
}

/* One page mapped by a present PTE. */
static void smaps_account(struct mem_size_stats *mss, struct sm_machine *m, struct page *page,
			  bool young, bool dirty, bool locked)
{
	struct page *head = page_head(m, page);
	int mapcount = page_mapcount(page);
	uint64_t pss = (uint64_t)PAGE_SIZE << PSS_SHIFT;

	dirty = dirty || test_bit_flag(head, PG_dirty);
	if (page_is_anon(head)) {
		mss->anonymous += PAGE_SIZE;
		if (!test_bit_flag(head, PG_swapbacked) && !dirty)
			mss->lazyfree += PAGE_SIZE;
		if (folio_test_ksm(head))
			mss->ksm += PAGE_SIZE;
	}
	mss->resident += PAGE_SIZE;
	if (young)
		mss->referenced += PAGE_SIZE;
	if (mapcount >= 2)
		pss /= (uint64_t)mapcount;
	smaps_page_accumulate(mss, head, pss, dirty, locked, mapcount < 2);
}

/* The present PTEs of [addr, end), inside one PTE table. */
static void smaps_pte_range(struct mem_size_stats *mss, struct sm_mm *mm, pte_t *pmdp,
			    unsigned long addr, unsigned long end, bool locked)
{
	spinlock_t *ptl;
	pte_t *ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);

	if (!ptep)
		return;   /* reclaimed since pmd_next_table saw it: it was empty */
	for (; addr < end; addr += PAGE_SIZE, ptep++) {
		pte_t pte = ptep_get(ptep);
		struct page *page;

		if (!pte_present(pte) || !(page = vm_normal_page(mm, pte)))
			continue;
		smaps_account(mss, mm->machine, page, pte_young(pte), pte_dirty(pte), locked);
	}
	spin_unlock(ptl);
}

static void smap_gather_stats(struct mem_size_stats *mss, struct sm_mm *mm,
			      const struct vm_area_struct *vma)
{
	bool locked = vma->vm_flags & VM_LOCKED;
	unsigned long addr = vma->vm_start, end = vma->vm_end;
	pte_t *pmdp;

	while (addr < end && (pmdp = pmd_next_table(mm, &addr, end))) {
		unsigned long next = pmd_addr_end(addr, end);

		smaps_pte_range(mss, mm, pmdp, addr, next, locked);
		addr = next;
	}
}

/* Pss-like counters are printed in kB from their fixed point. */
static unsigned long long pss_kb(uint64_t pss)
{
	return pss >> (PSS_SHIFT + 10);
}

/* Linux's __show_smap: the fields smaps and smaps_rollup have in common,
 * with the Pss split that only the rollup shows. */
static void show_smap_fields(struct seq *s, const struct mem_size_stats *mss, bool rollup)
{
	seq_put_field(s, "Rss:", mss->resident >> 10, " kB");
	seq_put_field(s, "Pss:", pss_kb(mss->pss), " kB");
	seq_put_field(s, "Pss_Dirty:", pss_kb(mss->pss_dirty), " kB");
	if (rollup) {
		seq_put_field(s, "Pss_Anon:", pss_kb(mss->pss_anon), " kB");
		seq_put_field(s, "Pss_File:", pss_kb(mss->pss_file), " kB");
		seq_put_field(s, "Pss_Shmem:", pss_kb(mss->pss_shmem), " kB");
	}
	seq_put_field(s, "Shared_Clean:", mss->shared_clean >> 10, " kB");
	seq_put_field(s, "Shared_Dirty:", mss->shared_dirty >> 10, " kB");
	seq_put_field(s, "Private_Clean:", mss->private_clean >> 10, " kB");
	seq_put_field(s, "Private_Dirty:", mss->private_dirty >> 10, " kB");
	seq_put_field(s, "Referenced:", mss->referenced >> 10, " kB");
	seq_put_field(s, "Anonymous:", mss->anonymous >> 10, " kB");
	seq_put_field(s, "KSM:", mss->ksm >> 10, " kB");
	seq_put_field(s, "LazyFree:", mss->lazyfree >> 10, " kB");
	seq_put_field(s, "AnonHugePages:", 0, " kB");
	seq_put_field(s, "ShmemPmdMapped:", 0, " kB");
	seq_put_field(s, "FilePmdMapped:", 0, " kB");
	seq_put_field(s, "Shared_Hugetlb:", 0, " kB");
	seq_put_field(s, "Private_Hugetlb:", 0, " kB");
	seq_put_field(s, "Swap:", 0, " kB");
	seq_put_field(s, "SwapPss:", 0, " kB");
	seq_put_field(s, "Locked:", pss_kb(mss->pss_locked), " kB");
}

/*
 * Linux's THPeligible: the folio orders this anonymous VMA may get
 * (thp_vma_allowable_orders with the machine's settings standing in for
 * /sys/kernel/mm/transparent_hugepage), kept only if a naturally aligned
 * folio of that order fits below vm_end. Anonymous VMAs skip the vm_pgoff
 * alignment check, and the unsigned arithmetic is Linux's, wrap included.
 */
static bool thp_eligible(const struct vm_area_struct *vma)
{
	const struct sm_machine *m = vma->vm_mm->machine;
	unsigned orders;

	if ((vma->vm_flags & VM_NOHUGEPAGE) || vma->vm_file)
		return false;   /* files: softmm caches 4 KiB folios only */
	orders = m->anon_orders_always | ((vma->vm_flags & VM_HUGEPAGE) ? m->anon_orders_madvise : 0);
	for (int order = 31; order >= 0; order--) {
		unsigned long size = PAGE_SIZE << order;
		unsigned long haddr = (vma->vm_end - size) & ~(size - 1);

		if ((orders >> order & 1) && haddr >= vma->vm_start && haddr + size <= vma->vm_end)
			return true;
	}
	return false;
}

/* Linux's two letters per flag, in bit order; "??" for a bit it has no name for. */
static void show_smap_vma_flags(struct seq *s, unsigned long flags)
{
	static const struct { unsigned long flag; char name[3]; } mnemonics[] = {
		{ VM_READ, "rd" }, { VM_WRITE, "wr" }, { VM_EXEC, "ex" }, { VM_SHARED, "sh" },
		{ VM_MAYREAD, "mr" }, { VM_MAYWRITE, "mw" }, { VM_MAYEXEC, "me" },
		{ VM_MAYSHARE, "ms" }, { VM_GROWSDOWN, "gd" }, { VM_LOCKED, "lo" },
		{ VM_SEQ_READ, "sr" }, { VM_RAND_READ, "rr" }, { VM_DONTCOPY, "dc" },
		{ VM_DONTEXPAND, "de" }, { VM_ACCOUNT, "ac" }, { VM_NORESERVE, "nr" },
		{ VM_WIPEONFORK, "wf" }, { VM_DONTDUMP, "dd" }, { VM_SOFTDIRTY, "sd" },
		{ VM_HUGEPAGE, "hg" }, { VM_NOHUGEPAGE, "nh" }, { VM_MERGEABLE, "mg" },
	};

	if (!SM_PROC_SOFT_DIRTY)
		flags &= ~VM_SOFTDIRTY;   /* the flag is VM_NONE in such a kernel */
	seq_printf(s, "VmFlags: ");
	for (unsigned bit = 0; bit < 64; bit++) {
		const char *name = "??";

		if (!(flags >> bit & 1))
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(mnemonics); i++)
			if (mnemonics[i].flag == 1ul << bit)
				name = mnemonics[i].name;
		seq_printf(s, "%s ", name);
	}
	seq_printf(s, "\n");
}

void show_smaps(struct seq *s, struct sm_mm *mm)
{
	for (struct vm_area_struct *vma = vma_first(mm); vma; vma = vma_next(vma)) {
		struct mem_size_stats mss = { 0 };

		smap_gather_stats(&mss, mm, vma);
		show_map_vma(s, mm, vma);
		seq_put_field(s, "Size:", (vma->vm_end - vma->vm_start) >> 10, " kB");
		seq_put_field(s, "KernelPageSize:", PAGE_SIZE >> 10, " kB");
		seq_put_field(s, "MMUPageSize:", PAGE_SIZE >> 10, " kB");
		show_smap_fields(s, &mss, false);
		seq_put_field(s, "THPeligible:", thp_eligible(vma), "");
		show_smap_vma_flags(s, vma->vm_flags);
	}
}

/* One "[rollup]" block over [first VMA's start, last VMA's end). */
void show_smaps_rollup(struct seq *s, struct sm_mm *mm)
{
	struct mem_size_stats mss = { 0 };
	unsigned long start = 0, end = 0;

	for (struct vm_area_struct *vma = vma_first(mm); vma; vma = vma_next(vma)) {
		if (!end)
			start = vma->vm_start;
		smap_gather_stats(&mss, mm, vma);
		end = vma->vm_end;
	}
	show_vma_header_prefix(s, start, end, 0, 0);
	seq_pad(s, ' ');
	seq_printf(s, "[rollup]\n");
	show_smap_fields(s, &mss, true);
}
