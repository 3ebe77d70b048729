/* The /proc views' shared pieces: an snprintf-style buffer and the VMA header line. */
#ifndef SM_PROC_H
#define SM_PROC_H

#include "mm/mm_types.h"

/* Output that counts what it could not store, like snprintf. */
struct seq {
	char *buf;
	size_t size;
	size_t len;
};

__attribute__((format(printf, 2, 3)))
void seq_printf(struct seq *s, const char *fmt, ...);
/* "Name:   value kB" with the name padded to 16 and the value to 8. */
void seq_put_kb(struct seq *s, const char *name, unsigned long kb);
/* Linux's show_map_vma: the maps line of a VMA (shared with smaps). */
void show_vma_header(struct seq *s, struct sm_mm *mm, struct vm_area_struct *vma);
/* Pad the line to column 73 and print name. */
void seq_pad_name(struct seq *s, size_t line_start, const char *name);

void show_maps(struct seq *s, struct sm_mm *mm);
void show_smaps(struct seq *s, struct sm_mm *mm);
void show_smaps_rollup(struct seq *s, struct sm_mm *mm);
void show_status(struct seq *s, struct sm_mm *mm);

#endif
