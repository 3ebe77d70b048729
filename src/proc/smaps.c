/*
 * smaps and smaps_rollup: walk each VMA's PTEs and account every mapped
 * page as Linux's smaps_account() does — Pss in 1/4096ths of a byte, a page
 * shared when its mapcount is 2 or more, dirty from the PTE or the folio,
 * the zero page counted nowhere.
 */
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"
#include "proc/proc.h"

#define PSS_SHIFT 12
#define VM_DONTDUMP 0x04000000ul

struct mem_size_stats {
	unsigned long resident, shared_clean, shared_dirty, private_clean, private_dirty;
	unsigned long referenced, anonymous, lazyfree, swap;
	uint64_t pss, pss_anon, pss_file, pss_shmem, pss_dirty, pss_locked;
};

static void account_page(struct mem_size_stats *mss, struct sm_machine *m, struct page *page,
			 bool young, bool dirty, bool locked)
{
	struct page *head = page_head(m, page);
	int mapcount = page_mapcount(page);
	uint64_t pss = (uint64_t)PAGE_SIZE << PSS_SHIFT;
	bool anon = page_is_anon(head), private = mapcount < 2;

	dirty = dirty || test_bit_flag(head, PG_dirty);
	if (anon) {
		mss->anonymous += PAGE_SIZE;
		if (!test_bit_flag(head, PG_swapbacked) && !dirty)
			mss->lazyfree += PAGE_SIZE;
	}
	mss->resident += PAGE_SIZE;
	if (young)
		mss->referenced += PAGE_SIZE;
	if (mapcount >= 2)
		pss /= (uint64_t)mapcount;
	mss->pss += pss;
	if (anon)
		mss->pss_anon += pss;
	else
		mss->pss_file += pss;
	if (locked)
		mss->pss_locked += pss;
	if (dirty) {
		mss->pss_dirty += pss;
		if (private)
			mss->private_dirty += PAGE_SIZE;
		else
			mss->shared_dirty += PAGE_SIZE;
	} else if (private) {
		mss->private_clean += PAGE_SIZE;
	} else {
		mss->shared_clean += PAGE_SIZE;
	}
}

static void smap_gather(struct mem_size_stats *mss, struct sm_mm *mm, struct vm_area_struct *vma)
{
	bool locked = vma->vm_flags & VM_LOCKED;
	unsigned long addr = vma->vm_start, end = vma->vm_end;
	pte_t *pmdp;

	while (addr < end && (pmdp = pmd_next_table(mm, &addr, end))) {
		unsigned long next = pmd_addr_end(addr, end);
		spinlock_t *ptl;
		pte_t *ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);

		for (; ptep && addr < next; addr += PAGE_SIZE, ptep++) {
			pte_t pte = ptep_get(ptep);
			struct page *page;

			if (!pte_present(pte) || !(page = vm_normal_page(mm, pte)))
				continue;
			account_page(mss, mm->machine, page, pte_young(pte), pte_dirty(pte), locked);
		}
		if (ptep)
			spin_unlock(ptl);
		addr = next;
	}
}

static void show_smap_fields(struct seq *s, const struct mem_size_stats *mss, bool rollup)
{
	seq_put_kb(s, "Rss:", mss->resident >> 10);
	seq_put_kb(s, "Pss:", (unsigned long)(mss->pss >> (10 + PSS_SHIFT)));
	seq_put_kb(s, "Pss_Dirty:", (unsigned long)(mss->pss_dirty >> (10 + PSS_SHIFT)));
	if (rollup) {
		seq_put_kb(s, "Pss_Anon:", (unsigned long)(mss->pss_anon >> (10 + PSS_SHIFT)));
		seq_put_kb(s, "Pss_File:", (unsigned long)(mss->pss_file >> (10 + PSS_SHIFT)));
		seq_put_kb(s, "Pss_Shmem:", (unsigned long)(mss->pss_shmem >> (10 + PSS_SHIFT)));
	}
	seq_put_kb(s, "Shared_Clean:", mss->shared_clean >> 10);
	seq_put_kb(s, "Shared_Dirty:", mss->shared_dirty >> 10);
	seq_put_kb(s, "Private_Clean:", mss->private_clean >> 10);
	seq_put_kb(s, "Private_Dirty:", mss->private_dirty >> 10);
	seq_put_kb(s, "Referenced:", mss->referenced >> 10);
	seq_put_kb(s, "Anonymous:", mss->anonymous >> 10);
	seq_put_kb(s, "KSM:", 0);
	seq_put_kb(s, "LazyFree:", mss->lazyfree >> 10);
	seq_put_kb(s, "AnonHugePages:", 0);
	seq_put_kb(s, "ShmemPmdMapped:", 0);
	seq_put_kb(s, "FilePmdMapped:", 0);
	seq_put_kb(s, "Shared_Hugetlb:", 0);
	seq_put_kb(s, "Private_Hugetlb:", 0);
	seq_put_kb(s, "Swap:", mss->swap >> 10);
	seq_put_kb(s, "SwapPss:", 0);
	seq_put_kb(s, "Locked:", (unsigned long)(mss->pss_locked >> (10 + PSS_SHIFT)));
}

/* Linux prints these two letters per flag, in bit order. VM_SOFTDIRTY is
 * left out: the reference kernel is built without CONFIG_MEM_SOFT_DIRTY. */
static void show_vmflags(struct seq *s, unsigned long flags)
{
	static const struct { unsigned long flag; char name[3]; } names[] = {
		{ VM_READ, "rd" }, { VM_WRITE, "wr" }, { VM_EXEC, "ex" }, { VM_SHARED, "sh" },
		{ VM_MAYREAD, "mr" }, { VM_MAYWRITE, "mw" }, { VM_MAYEXEC, "me" },
		{ VM_MAYSHARE, "ms" }, { VM_GROWSDOWN, "gd" }, { VM_LOCKED, "lo" },
		{ VM_SEQ_READ, "sr" }, { VM_RAND_READ, "rr" }, { VM_DONTCOPY, "dc" },
		{ VM_DONTEXPAND, "de" }, { VM_ACCOUNT, "ac" }, { VM_NORESERVE, "nr" },
		{ VM_WIPEONFORK, "wf" }, { VM_DONTDUMP, "dd" }, { VM_HUGEPAGE, "hg" },
		{ VM_NOHUGEPAGE, "nh" }, { VM_MERGEABLE, "mg" },
	};

	seq_printf(s, "VmFlags: ");
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (flags & names[i].flag)
			seq_printf(s, "%s ", names[i].name);
	seq_printf(s, "\n");
}

/* With THP=madvise: a MADV_HUGEPAGE VMA that can hold an aligned 2 MiB page. */
static int thp_eligible(const struct vm_area_struct *vma)
{
	unsigned long first = (vma->vm_start + PMD_SIZE - 1) & PMD_MASK;

	if (!(vma->vm_flags & VM_HUGEPAGE) || (vma->vm_flags & VM_NOHUGEPAGE))
		return 0;
	return first >= vma->vm_start && first + PMD_SIZE <= vma->vm_end;
}

void show_smaps(struct seq *s, struct sm_mm *mm)
{
	for (struct gt_node *n = gt_first(&mm->mm_mt); n; n = gt_next(n)) {
		struct vm_area_struct *vma = node_vma(n);
		struct mem_size_stats mss = { 0 };

		smap_gather(&mss, mm, vma);
		show_vma_header(s, mm, vma);
		seq_put_kb(s, "Size:", (vma->vm_end - vma->vm_start) >> 10);
		seq_put_kb(s, "KernelPageSize:", PAGE_SIZE >> 10);
		seq_put_kb(s, "MMUPageSize:", PAGE_SIZE >> 10);
		show_smap_fields(s, &mss, false);
		seq_printf(s, "%-16s%8d\n", "THPeligible:", thp_eligible(vma));
		show_vmflags(s, vma->vm_flags);
	}
}

void show_smaps_rollup(struct seq *s, struct sm_mm *mm)
{
	struct gt_node *first = gt_first(&mm->mm_mt), *last = gt_last(&mm->mm_mt);
	struct mem_size_stats mss = { 0 };
	size_t start = s->len;

	for (struct gt_node *n = first; n; n = gt_next(n))
		smap_gather(&mss, mm, node_vma(n));
	seq_printf(s, "%08lx-%08lx ---p %08lx %02x:%02x %lu ", first ? first->start : 0,
		   last ? last->end : 0, 0ul, 0, 0, 0ul);
	seq_pad_name(s, start, "[rollup]");
	show_smap_fields(s, &mss, true);
}
