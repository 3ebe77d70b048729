/*
 * The x86-64 page-table entry format, four levels of 512 entries.
 *
 * This file is the hardware boundary's vocabulary: mm/ builds entries only
 * through these helpers, so another entry format (an arm64 backend with
 * contiguous PTEs) would be a new file here, not a change in mm/.
 *
 * Software bits follow Linux's x86 choices: SPECIAL (bit 9) marks PFNs that
 * have no refcounted folio behind them (the shared zero page); PROTNONE
 * reuses GLOBAL (bit 8) on a non-present entry so that a PROT_NONE mapping
 * keeps its PFN and its RSS while any access faults.
 */
#ifndef SM_HW_PTE_H
#define SM_HW_PTE_H

#include "base/compiler.h"

typedef uint64_t pte_t;   /* every level has the same width; only the meaning differs */

#define _PAGE_PRESENT    (1ULL << 0)
#define _PAGE_RW         (1ULL << 1)
#define _PAGE_USER       (1ULL << 2)
#define _PAGE_PWT        (1ULL << 3)
#define _PAGE_PCD        (1ULL << 4)
#define _PAGE_ACCESSED   (1ULL << 5)
#define _PAGE_DIRTY      (1ULL << 6)
#define _PAGE_PSE        (1ULL << 7)
#define _PAGE_GLOBAL     (1ULL << 8)
#define _PAGE_PROTNONE   _PAGE_GLOBAL
#define _PAGE_SPECIAL    (1ULL << 9)
#define _PAGE_UFFD_WP    (1ULL << 10)
#define _PAGE_SOFT_DIRTY (1ULL << 11)
#define _PAGE_NX         (1ULL << 63)
#define PTE_PFN_MASK     0x000ffffffffff000ULL

/* An upper-level entry pointing at the next table: the kernel's _PAGE_TABLE. */
#define _PAGE_TABLE (_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY)

#define PTRS_PER_TABLE 512
#define PMD_SHIFT 21
#define PUD_SHIFT 30
#define PGDIR_SHIFT 39
#define PMD_SIZE   (1UL << PMD_SHIFT)
#define PUD_SIZE   (1UL << PUD_SHIFT)
#define PGDIR_SIZE (1UL << PGDIR_SHIFT)
#define PMD_MASK   (~(PMD_SIZE - 1))
#define PUD_MASK   (~(PUD_SIZE - 1))
#define PGDIR_MASK (~(PGDIR_SIZE - 1))

static inline unsigned pgd_index(unsigned long va) { return (va >> PGDIR_SHIFT) & 511; }
static inline unsigned pud_index(unsigned long va) { return (va >> PUD_SHIFT) & 511; }
static inline unsigned pmd_index(unsigned long va) { return (va >> PMD_SHIFT) & 511; }
static inline unsigned pte_index(unsigned long va) { return (va >> PAGE_SHIFT) & 511; }

static inline bool pte_none(pte_t p)     { return p == 0; }
static inline bool pte_present(pte_t p)  { return (p & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0; }
static inline bool pte_hw_present(pte_t p) { return (p & _PAGE_PRESENT) != 0; }
static inline bool pte_protnone(pte_t p) { return (p & (_PAGE_PRESENT | _PAGE_PROTNONE)) == _PAGE_PROTNONE; }
static inline bool pte_write(pte_t p)    { return (p & _PAGE_RW) != 0; }
static inline bool pte_dirty(pte_t p)    { return (p & _PAGE_DIRTY) != 0; }
static inline bool pte_young(pte_t p)    { return (p & _PAGE_ACCESSED) != 0; }
static inline bool pte_special(pte_t p)  { return (p & _PAGE_SPECIAL) != 0; }
static inline unsigned long pte_pfn(pte_t p) { return (p & PTE_PFN_MASK) >> PAGE_SHIFT; }

static inline pte_t pfn_pte(unsigned long pfn, pte_t prot)
{
	return ((pte_t)pfn << PAGE_SHIFT) | prot;
}

static inline pte_t pte_wrprotect(pte_t p) { return p & ~_PAGE_RW; }
static inline pte_t pte_mkwrite(pte_t p)   { return p | _PAGE_RW; }
static inline pte_t pte_mkdirty(pte_t p)   { return p | _PAGE_DIRTY | _PAGE_SOFT_DIRTY; }
static inline pte_t pte_mkclean(pte_t p)   { return p & ~_PAGE_DIRTY; }
static inline pte_t pte_mkold(pte_t p)     { return p & ~_PAGE_ACCESSED; }
static inline pte_t pte_mkyoung(pte_t p)   { return p | _PAGE_ACCESSED; }

/* Keep the PFN and the software/A/D state, take the protection from newprot. */
static inline pte_t pte_modify(pte_t p, pte_t newprot)
{
	const pte_t keep = PTE_PFN_MASK | _PAGE_ACCESSED | _PAGE_DIRTY |
			   _PAGE_SPECIAL | _PAGE_SOFT_DIRTY | _PAGE_UFFD_WP;
	return (p & keep) | (newprot & ~keep);
}

/* Entries of any level are read and written atomically: the CPU walker
 * reads them without locks and sets A/D bits with compare-and-swap. */
/* Acquire: a reader that follows an upper-level entry must see the zeroed
 * table that set_pte published (free on x86). */
static inline pte_t ptep_get(const pte_t *ptep) { return __atomic_load_n(ptep, __ATOMIC_ACQUIRE); }
static inline void set_pte(pte_t *ptep, pte_t v) { __atomic_store_n(ptep, v, __ATOMIC_RELEASE); }
static inline pte_t ptep_get_and_clear(pte_t *ptep) { return __atomic_exchange_n(ptep, 0, __ATOMIC_ACQ_REL); }

/* Clear bits while the walker may be setting A/D concurrently. */
static inline pte_t ptep_clear_bits(pte_t *ptep, pte_t bits)
{
	return __atomic_fetch_and(ptep, ~bits, __ATOMIC_ACQ_REL);
}

#endif
