/*
 * Simulated physical RAM: one host mapping, backed lazily by the host, cut
 * into 4 KiB frames numbered from 0. Physical address = pfn << 12, exactly
 * what page-table entries hold. Frame 0 is never handed out, so a zero PFN
 * in a debugging dump is always a bug.
 */
#ifndef SM_HW_RAM_H
#define SM_HW_RAM_H

#include "base/compiler.h"

struct ram {
	char *base;                /* immutable after ram_init */
	unsigned long nr_frames;   /* immutable after ram_init */
};

int  ram_init(struct ram *r, size_t bytes, bool prefault);
void ram_destroy(struct ram *r);

static inline void *pfn_to_virt(const struct ram *r, unsigned long pfn)
{
	return r->base + (pfn << PAGE_SHIFT);
}

static inline unsigned long virt_to_pfn(const struct ram *r, const void *p)
{
	return (unsigned long)((const char *)p - r->base) >> PAGE_SHIFT;
}

#endif
