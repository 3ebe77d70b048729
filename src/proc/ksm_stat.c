/*
 * /proc/<pid>/ksm_stat, as Linux 6.18's proc_pid_ksm_stat prints it: the
 * mm's rmap items, KSM zero pages, pages merged, its profit in bytes (pages
 * saved less what its rmap items cost), and the two switches. Counters are
 * read without locks, as Linux does. mmap_lock is held for reading
 * (sm_proc_read) for ksm_mergeable's look at the VMAs.
 */
#include "mm/ksm.h"
#include "mm/vma.h"
#include "proc/proc.h"

/* Linux's ksm_process_mergeable: merge-any, or a VM_MERGEABLE VMA. */
static bool ksm_process_mergeable(struct sm_mm *mm)
{
	if (READ_ONCE(mm->ksm_merge_any))
		return true;
	for (struct vm_area_struct *vma = vma_first(mm); vma; vma = vma_next(vma))
		if (vma->vm_flags & VM_MERGEABLE)
			return true;
	return false;
}

void show_ksm_stat(struct seq *s, struct sm_mm *mm)
{
	seq_printf(s, "ksm_rmap_items %lu\n",
		   (unsigned long)__atomic_load_n(&mm->ksm_rmap_items, __ATOMIC_RELAXED));
	seq_printf(s, "ksm_zero_pages %ld\n", __atomic_load_n(&mm->ksm_zero_pages, __ATOMIC_RELAXED));
	seq_printf(s, "ksm_merging_pages %lu\n",
		   (unsigned long)__atomic_load_n(&mm->ksm_merging_pages, __ATOMIC_RELAXED));
	seq_printf(s, "ksm_process_profit %ld\n", ksm_process_profit(mm));
	seq_printf(s, "ksm_merge_any: %s\n", READ_ONCE(mm->ksm_merge_any) ? "yes" : "no");
	seq_printf(s, "ksm_mergeable: %s\n", ksm_process_mergeable(mm) ? "yes" : "no");
}
