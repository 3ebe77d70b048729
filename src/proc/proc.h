/*
 * What the /proc views share: a seq_file-like output buffer that counts
 * what did not fit (so a read returns the full length, like snprintf), the
 * VMA header line of maps, smaps and smaps_rollup, and the reference
 * kernel's configuration where it changes the text.
 *
 * Every show_* function runs with mm->mmap_lock held for reading
 * (sm_proc_read takes it around the whole view).
 */
#ifndef SM_PROC_H
#define SM_PROC_H

#include "mm/mm_types.h"

/*
 * The kernel the formats are checked against (Linux 6.18, x86-64) is built
 * without CONFIG_MEM_SOFT_DIRTY: VmFlags never shows "sd" and pagemap never
 * sets bit 55, although the core keeps VM_SOFTDIRTY and the PTE bit.
 */
#define SM_PROC_SOFT_DIRTY 0

struct seq {
	char *buf;
	size_t size;        /* room in buf, NUL included */
	size_t len;         /* what was printed, stored or not */
	size_t pad_until;   /* seq_pad's column goal, as an absolute length */
};

__attribute__((format(printf, 2, 3)))
void seq_printf(struct seq *s, const char *fmt, ...);
/* The line being printed gets a name column at width (seq_setwidth). */
void seq_setwidth(struct seq *s, size_t width);
/* Spaces up to the column set by seq_setwidth, then c (Linux's seq_pad). */
void seq_pad(struct seq *s, char c);
/*
 * "Name:     value unit\n": the name padded to 16 columns and the value
 * right-aligned so that it ends at column 24, as Linux's smaps fields
 * (a 16-character name keeps one space and a 7-wide value).
 */
void seq_put_field(struct seq *s, const char *name, unsigned long long value, const char *unit);

/* "start-end perms offset dev inode " and the name column's width. */
void show_vma_header_prefix(struct seq *s, unsigned long start, unsigned long end,
			    unsigned long flags, unsigned long long pgoff);
/* One line of maps; also the first line of a VMA's smaps block. */
void show_map_vma(struct seq *s, struct sm_mm *mm, struct vm_area_struct *vma);

void show_maps(struct seq *s, struct sm_mm *mm);
void show_smaps(struct seq *s, struct sm_mm *mm);
void show_smaps_rollup(struct seq *s, struct sm_mm *mm);
void show_status(struct seq *s, struct sm_mm *mm);
void show_ksm_stat(struct seq *s, struct sm_mm *mm);

#endif
