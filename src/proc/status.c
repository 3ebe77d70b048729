/* /proc/<pid>/status: the memory lines, as Linux's task_mem() prints them. */
#include "mm/pgtable.h"
#include "proc/proc.h"

static void put(struct seq *s, const char *name, unsigned long kb)
{
	seq_printf(s, "%s\t%8lu kB\n", name, kb);
}

void show_status(struct seq *s, struct sm_mm *mm)
{
	unsigned long anon = (unsigned long)get_mm_counter(mm, MM_ANONPAGES);
	unsigned long file = (unsigned long)get_mm_counter(mm, MM_FILEPAGES);
	unsigned long shmem = (unsigned long)get_mm_counter(mm, MM_SHMEMPAGES);
	unsigned long rss = anon + file + shmem;
	unsigned long hwm = __atomic_load_n(&mm->hiwater_rss, __ATOMIC_RELAXED);
	const unsigned kb = PAGE_SHIFT - 10;

	seq_printf(s, "Name:\tsoftmm\nUmask:\t0022\nState:\tR (running)\n");
	put(s, "VmPeak:", max(mm->hiwater_vm, mm->total_vm) << kb);
	put(s, "VmSize:", mm->total_vm << kb);
	put(s, "VmLck:", mm->locked_vm << kb);
	put(s, "VmPin:", 0);
	put(s, "VmHWM:", max(hwm, rss) << kb);
	put(s, "VmRSS:", rss << kb);
	put(s, "RssAnon:", anon << kb);
	put(s, "RssFile:", file << kb);
	put(s, "RssShmem:", shmem << kb);
	put(s, "VmData:", mm->data_vm << kb);
	put(s, "VmStk:", mm->stack_vm << kb);
	put(s, "VmExe:", 0);
	put(s, "VmLib:", mm->exec_vm << kb);
	put(s, "VmPTE:", (unsigned long)mm_pgtable_pages(mm) << kb);
	put(s, "VmSwap:", (unsigned long)get_mm_counter(mm, MM_SWAPENTS) << kb);
	put(s, "HugetlbPages:", 0);
}
