/*
 * What the hardware model knows of an address space (FreeBSD's pmap):
 * the root table a CPU walks, the tag its TLB entries carry, and the set
 * of CPUs that may hold such entries. mm/ embeds one in every struct sm_mm.
 */
#ifndef SM_HW_PMAP_H
#define SM_HW_PMAP_H

#include "hw/pte.h"

#define HW_MAX_CPUS 256

struct pmap {
	unsigned long pgd_pfn;   /* immutable while the mm lives */
	pte_t *pgd;              /* host address of the root table; immutable */
	uint32_t asid;           /* TLB tag; immutable, never reused in a machine */
	/* CPUs that switched to this pmap and may cache its entries. Bits are
	 * set with atomic OR by the CPU itself and never cleared: a CPU that
	 * moved on keeps receiving (cheap) flush requests until the mm dies. */
	uint64_t cpumask[HW_MAX_CPUS / 64];
};

#endif
