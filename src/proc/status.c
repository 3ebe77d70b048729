/*
 * /proc/<pid>/status: the lines that describe the mm, as Linux 6.18's
 * task_mem() and the mm lines after it print them, between a fixed
 * Name/Umask/State head (softmm has no tasks: no pids, ids or signals).
 *
 * VmExe is 0 and VmLib is all of exec_vm: there is no ELF image, so the
 * kernel's text range (start_code..end_code) is empty. VmPin is 0: nothing
 * pins pages. The counters are read without their locks, as Linux does:
 * a snapshot may be slightly inconsistent.
 */
#include "proc/proc.h"

/* "Name:\t    1234 kB": Linux's seq_put_decimal_ull_width(..., 8). */
static void put_kb(struct seq *s, const char *name, unsigned long kb)
{
	seq_printf(s, "%s\t%8lu kB\n", name, kb);
}

static unsigned long pages_kb(unsigned long pages)
{
	return pages << (PAGE_SHIFT - 10);
}

static void task_mem(struct seq *s, struct sm_mm *mm)
{
	unsigned long anon = (unsigned long)get_mm_counter(mm, MM_ANONPAGES);
	unsigned long file = (unsigned long)get_mm_counter(mm, MM_FILEPAGES);
	unsigned long shmem = (unsigned long)get_mm_counter(mm, MM_SHMEMPAGES);
	unsigned long rss = anon + file + shmem;

	put_kb(s, "VmPeak:", pages_kb(max(mm->hiwater_vm, mm->total_vm)));
	put_kb(s, "VmSize:", pages_kb(mm->total_vm));
	put_kb(s, "VmLck:", pages_kb(mm->locked_vm));
	put_kb(s, "VmPin:", 0);
	put_kb(s, "VmHWM:", pages_kb(max(READ_ONCE(mm->hiwater_rss), rss)));
	put_kb(s, "VmRSS:", pages_kb(rss));
	put_kb(s, "RssAnon:", pages_kb(anon));
	put_kb(s, "RssFile:", pages_kb(file));
	put_kb(s, "RssShmem:", pages_kb(shmem));
	put_kb(s, "VmData:", pages_kb(mm->data_vm));
	put_kb(s, "VmStk:", pages_kb(mm->stack_vm));
	put_kb(s, "VmExe:", 0);
	put_kb(s, "VmLib:", pages_kb(mm->exec_vm));
	put_kb(s, "VmPTE:", (unsigned long)READ_ONCE(mm->pgtables_bytes) >> 10);
	put_kb(s, "VmSwap:", pages_kb((unsigned long)get_mm_counter(mm, MM_SWAPENTS)));
	put_kb(s, "HugetlbPages:", 0);
}

void show_status(struct seq *s, struct sm_mm *mm)
{
	seq_printf(s, "Name:\tsoftmm\nUmask:\t0022\nState:\tR (running)\n");
	task_mem(s, mm);
	/* task_core_dumping, task_thp_status, task_untag_mask */
	seq_printf(s, "CoreDumping:\t0\nTHP_enabled:\t1\nuntag_mask:\t%#lx\n", ~0ul);
}
