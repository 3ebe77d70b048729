/*
 * /proc/<pid>/maps, the output buffer every view prints into, and
 * sm_proc_read, which picks the view.
 *
 * A maps line is Linux's show_map_vma: "start-end perms offset dev inode ",
 * then, when the VMA has a name, spaces to column 73 and the name. An
 * anonymous VMA shows offset 0 (whatever its vm_pgoff), device 00:00 and
 * inode 0; without a name the line ends in that space. A file VMA shows its
 * offset in the file, the host file's device and inode, and the path the
 * host gives its fd; shared anonymous memory is "/dev/zero (deleted)" on
 * device 00:01, as Linux shows its shmem file.
 *
 * Locking: sm_proc_read holds mm->mmap_lock for reading around the whole
 * view, so a read sees one consistent set of VMAs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include "base/rcu.h"
#include "base/rwsem.h"
#include "mm/vma.h"
#include "mm/filemap.h"
#include "proc/proc.h"

/* Where the name column starts: Linux's 25 + 6 * sizeof(void *) - 1. */
#define MAPS_NAME_WIDTH (25 + 6 * sizeof(void *) - 1)

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

void seq_setwidth(struct seq *s, size_t width)
{
	s->pad_until = s->len + width;
}

void seq_pad(struct seq *s, char c)
{
	int pad = s->pad_until > s->len ? (int)(s->pad_until - s->len) : 0;

	seq_printf(s, "%*s%c", pad, "", c);
}

void seq_put_field(struct seq *s, const char *name, unsigned long long value, const char *unit)
{
	int name_width = max((int)strlen(name) + 1, 16);

	seq_printf(s, "%-*s%*llu%s\n", name_width, name, 24 - name_width, value, unit);
}

static void show_header(struct seq *s, unsigned long start, unsigned long end,
			unsigned long flags, unsigned long long pgoff, unsigned long dev,
			unsigned long ino)
{
	seq_setwidth(s, MAPS_NAME_WIDTH);
	seq_printf(s, "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu ", start, end,
		   flags & VM_READ ? 'r' : '-', flags & VM_WRITE ? 'w' : '-',
		   flags & VM_EXEC ? 'x' : '-', flags & VM_MAYSHARE ? 's' : 'p',
		   pgoff, major(dev), minor(dev), ino);
}

void show_vma_header_prefix(struct seq *s, unsigned long start, unsigned long end,
			    unsigned long flags, unsigned long long pgoff)
{
	show_header(s, start, end, flags, pgoff, 0, 0);
}

/* Linux's vma_is_initial_heap: the VMA overlaps [start_brk, brk). */
static bool vma_is_initial_heap(const struct sm_mm *mm, const struct vm_area_struct *vma)
{
	return vma->vm_start < mm->brk && vma->vm_end > mm->start_brk;
}

void show_map_vma(struct seq *s, struct sm_mm *mm, struct vm_area_struct *vma)
{
	const struct address_space *f = vma->vm_file;

	if (f) {
		show_header(s, vma->vm_start, vma->vm_end, vma->vm_flags,
			    (unsigned long long)vma->vm_pgoff << PAGE_SHIFT, f->dev, f->ino);
		seq_pad(s, ' ');
		seq_printf(s, "%s\n", f->path);
		return;
	}
	show_vma_header_prefix(s, vma->vm_start, vma->vm_end, vma->vm_flags, 0);
	if (vma_is_initial_heap(mm, vma)) {
		seq_pad(s, ' ');
		seq_printf(s, "[heap]");
	}
	seq_printf(s, "\n");
}

void show_maps(struct seq *s, struct sm_mm *mm)
{
	for (struct vm_area_struct *vma = vma_first(mm); vma; vma = vma_next(vma))
		show_map_vma(s, mm, vma);
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
		{ "ksm_stat", show_ksm_stat },
	};
	struct seq s = { .buf = buf, .size = size };

	if (!mm || !name || (!buf && size))
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
