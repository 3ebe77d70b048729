/*
 * /proc/<pid>/{maps,smaps,smaps_rollup,status} of an mm, in the kernel's
 * text formats. Every view takes the mmap_lock for reading for its whole
 * walk, so it sees one consistent address space.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "base/rcu.h"
#include "base/rwsem.h"
#include "proc/proc.h"

void seq_printf(struct seq *s, const char *fmt, ...)
{
	size_t room = s->len < s->size ? s->size - s->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? s->buf + s->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		s->len += (size_t)n;
}

void seq_put_kb(struct seq *s, const char *name, unsigned long kb)
{
	seq_printf(s, "%-16s%8lu kB\n", name, kb);
}

void seq_pad_name(struct seq *s, size_t line_start, const char *name)
{
	size_t col = s->len - line_start;

	seq_printf(s, "%*s%s\n", col < 73 ? (int)(73 - col) : 0, "", name);
}

void show_vma_header(struct seq *s, struct sm_mm *mm, struct vm_area_struct *vma)
{
	unsigned long f = vma->vm_flags;
	size_t start = s->len;

	/* Anonymous memory shows offset 0, whatever its vm_pgoff. */
	seq_printf(s, "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu ", vma->vm_start, vma->vm_end,
		   f & VM_READ ? 'r' : '-', f & VM_WRITE ? 'w' : '-', f & VM_EXEC ? 'x' : '-',
		   f & VM_MAYSHARE ? 's' : 'p', 0ull, 0, 0, 0ul);
	if (vma->vm_start < mm->brk && vma->vm_end > mm->start_brk)
		seq_pad_name(s, start, "[heap]");
	else
		seq_printf(s, "\n");
}

void show_maps(struct seq *s, struct sm_mm *mm)
{
	for (struct gt_node *n = gt_first(&mm->mm_mt); n; n = gt_next(n))
		show_vma_header(s, mm, node_vma(n));
}

long sm_proc_read(struct sm_mm *mm, const char *name, char *buf, size_t size)
{
	static const struct {
		const char *name;
		void (*show)(struct seq *, struct sm_mm *);
	} views[] = {
		{ "maps", show_maps },
		{ "smaps", show_smaps },
		{ "smaps_rollup", show_smaps_rollup },
		{ "status", show_status },
	};
	struct seq s = { .buf = buf, .size = buf ? size : 0 };

	if (!mm || !name)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(views); i++) {
		if (strcmp(name, views[i].name))
			continue;
		sm_rcu_thread_online();
		if (s.size)
			s.buf[0] = '\0';
		down_read(&mm->mmap_lock);
		views[i].show(&s, mm);
		up_read(&mm->mmap_lock);
		return (long)s.len;
	}
	return -ENOENT;
}
