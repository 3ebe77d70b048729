/*
 * A simulated CPU's translation state: its software TLB, the address space
 * it runs, and the mailbox through which other threads shoot down its TLB
 * entries. The protocol is described at the top of tlb.c.
 */
#ifndef SM_HW_CPU_H
#define SM_HW_CPU_H

#include "base/spinlock.h"
#include "hw/pmap.h"
#include "hw/ram.h"

#define TLB_BITS 9
#define TLB_SIZE (1u << TLB_BITS)
#define TLB_MAX_REQS 8
#define TLB_HOST_W 1ul          /* low bit of tlb_entry.host: writes allowed */
#define TLB_ASID_SHIFT 36       /* tag = asid << 36 | vpn; vpn < 2^35 */

struct tlb_entry {
	uint64_t tag;           /* 0 = invalid (asids start at 1) */
	uintptr_t host;         /* host address of the frame | TLB_HOST_W */
};

struct flush_req {
	uint32_t asid;
	unsigned long start, end;   /* [start, end) virtual */
};

struct hw_cpu {
	/* Owner thread only. */
	struct tlb_entry tlb[TLB_SIZE];
	uint32_t seen_gen;          /* last flush_gen whose requests were applied */
	bool asym;                  /* copy of hw_cpus.membarrier: fence style */

	/* Written by the owner (atomically), read by shootdown initiators. */
	struct pmap *active;        /* pmap the CPU runs, or NULL */
	uint32_t seq;               /* odd while inside an access */

	/* The mailbox. flush_gen is bumped under flush_lock and read by the
	 * owner without it, to decide whether to take it. */
	spinlock_t flush_lock;
	uint32_t flush_gen;
	unsigned nreq;                          /* flush_lock */
	bool flush_all;                         /* flush_lock */
	struct flush_req reqs[TLB_MAX_REQS];    /* flush_lock */

	unsigned id;                /* slot in hw_cpus; immutable */
	bool in_use;                /* hw_cpus.lock */
};

/* The machine's CPUs. Objects are never freed before the machine, so an
 * initiator may read a slot without a lock; a destroyed CPU is recycled. */
struct hw_cpus {
	spinlock_t lock;                 /* slot allocation */
	unsigned max;                    /* immutable */
	unsigned nr;                     /* slots ever used; lock (read racily) */
	struct hw_cpu *slot[HW_MAX_CPUS];/* lock; read with atomics */
	bool membarrier;                 /* immutable: asymmetric fences work */
	uint64_t shootdowns;             /* atomic statistics */
	uint64_t local_flushes;
};

int  hw_cpus_init(struct hw_cpus *cs, unsigned max);
void hw_cpus_destroy(struct hw_cpus *cs);
struct hw_cpu *hw_cpu_get(struct hw_cpus *cs);   /* NULL when all max slots busy */
void hw_cpu_put(struct hw_cpus *cs, struct hw_cpu *c);
void hw_cpu_switch(struct hw_cpu *c, struct pmap *pm);

void tlb_apply_flushes(struct hw_cpu *c);
void tlb_flush_local(struct hw_cpu *c, uint32_t asid, unsigned long start, unsigned long end);
/* Every CPU that may cache pm's entries in [start,end) drops them before
 * this returns; no CPU is still in an access that used one. `self` is the
 * caller's own CPU, or NULL. */
void tlb_shootdown(struct hw_cpus *cs, struct pmap *pm, unsigned long start,
		   unsigned long end, struct hw_cpu *self);

static inline uint64_t tlb_tag(uint32_t asid, unsigned long va)
{
	return ((uint64_t)asid << TLB_ASID_SHIFT) | (va >> PAGE_SHIFT);
}

/* Entering an access: publish that we are inside (odd seq), then look at
 * the mailbox. Store-then-load across two variables needs a full fence on
 * one side: membarrier() on the initiator's side when the host has it, a
 * sequentially consistent store here otherwise. */
static inline void tlb_enter(struct hw_cpu *c)
{
	uint32_t s = __atomic_load_n(&c->seq, __ATOMIC_RELAXED) + 1;
	uint32_t gen;

	if (c->asym) {
		__atomic_store_n(&c->seq, s, __ATOMIC_RELAXED);
		barrier();
		gen = __atomic_load_n(&c->flush_gen, __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&c->seq, s, __ATOMIC_SEQ_CST);
		gen = __atomic_load_n(&c->flush_gen, __ATOMIC_SEQ_CST);
	}
	if (unlikely(gen != c->seen_gen))
		tlb_apply_flushes(c);
}

static inline void tlb_exit(struct hw_cpu *c)
{
	__atomic_store_n(&c->seq, __atomic_load_n(&c->seq, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELEASE);
}

/* The host address for va, or NULL on a miss. Caller is inside an access. */
static inline char *tlb_lookup(struct hw_cpu *c, uint32_t asid, unsigned long va, bool write)
{
	const struct tlb_entry *e = &c->tlb[(va >> PAGE_SHIFT) & (TLB_SIZE - 1)];

	if (likely(e->tag == tlb_tag(asid, va)) && (!write || (e->host & TLB_HOST_W)))
		return (char *)(e->host & PAGE_MASK) + offset_in_page(va);
	return NULL;
}

/* The walker (walk.c): translate va through pm's tables as the MMU does,
 * setting accessed and dirty bits, and fill the TLB. NULL when the access
 * must fault. Caller is inside an access. */
char *tlb_fill(struct hw_cpu *c, const struct ram *ram, struct pmap *pm,
	       unsigned long va, bool write);

#endif
