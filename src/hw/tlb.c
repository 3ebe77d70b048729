/*
 * Software TLBs and their shootdown.
 *
 * Each CPU caches translations in a direct-mapped array only its own thread
 * touches. Entries are tagged with the address space's asid, so switching mm
 * flushes nothing. The hard part is removal: when the VM clears or
 * downgrades a PTE, no CPU may use the old translation after the system call
 * returns, and the frame behind it must not be freed while a CPU might still
 * be copying through it. That is the whole contract of tlb_shootdown().
 *
 * The design is an asymmetric Dekker handshake per CPU, without interrupts:
 *
 *   CPU (owner thread), per page of an access:
 *     seq++ (now odd: "inside an access")
 *     [fence]  load flush_gen; if it moved, apply the mailbox's requests
 *     look up / fill the TLB, copy the bytes
 *     seq++ (even: "outside"), release
 *
 *   Initiator (any thread), after changing the page tables:
 *     for every CPU in the pmap's cpumask: post (asid, range) to its
 *       mailbox under flush_lock and bump flush_gen
 *     [fence]
 *     for every such CPU: if seq is odd and the CPU runs this pmap, wait
 *       until seq changes
 *
 * Either the CPU's gen load sees the request (it flushes before its next
 * lookup), or the initiator's seq load sees the CPU inside and waits for
 * that access to end; the fences guarantee one of the two. An access that
 * began before the request finished before the initiator returns; every
 * later access drops the stale entries first. The walker runs inside the
 * access too, so a translation read from a PTE just before it was cleared
 * is covered as well. A CPU never waits for a lock inside an access — it
 * leaves the access to take a fault — so the initiator's wait is bounded by
 * one page copy and cannot deadlock against the mmap_lock.
 *
 * The fence is membarrier(PRIVATE_EXPEDITED) on the initiator side when the
 * host offers it: the hot path then costs two plain stores and a load. Where
 * it is missing (or under ThreadSanitizer, which cannot see it) both sides
 * use sequentially consistent atomics instead.
 *
 * A flush whose only target is the caller's own CPU is done in place: no
 * fence, no wait. That keeps single-threaded faults and munmap cheap.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/membarrier.h>
#include "hw/cpu.h"

static int membarrier_call(int cmd)
{
	return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

int hw_cpus_init(struct hw_cpus *cs, unsigned max)
{
	memset(cs, 0, sizeof(*cs));
	spin_lock_init(&cs->lock);
	cs->max = max;
#ifndef SM_TSAN
	if (getenv("SOFTMM_NO_MEMBARRIER") == NULL) {
		int mask = membarrier_call(MEMBARRIER_CMD_QUERY);

		if (mask > 0 && (mask & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
		    membarrier_call(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
			cs->membarrier = true;
	}
#endif
	return 0;
}

void hw_cpus_destroy(struct hw_cpus *cs)
{
	for (unsigned i = 0; i < cs->nr; i++)
		free(cs->slot[i]);
}

struct hw_cpu *hw_cpu_get(struct hw_cpus *cs)
{
	struct hw_cpu *c = NULL;

	spin_lock(&cs->lock);
	for (unsigned i = 0; i < cs->nr; i++) {
		if (!cs->slot[i]->in_use) {
			c = cs->slot[i];
			break;
		}
	}
	if (!c && cs->nr < cs->max) {
		c = aligned_alloc(64, (sizeof(*c) + 63) & ~(size_t)63);
		if (c) {
			memset(c, 0, sizeof(*c));
			spin_lock_init(&c->flush_lock);
			c->id = cs->nr;
			__atomic_store_n(&cs->slot[cs->nr], c, __ATOMIC_RELEASE);
			cs->nr++;
		}
	}
	if (c) {
		c->in_use = true;
		c->asym = cs->membarrier;
		/* A recycled CPU may hold entries of any mm: start clean. */
		memset(c->tlb, 0, sizeof(c->tlb));
		spin_lock(&c->flush_lock);
		c->nreq = 0;
		c->flush_all = false;
		c->seen_gen = c->flush_gen;
		spin_unlock(&c->flush_lock);
		__atomic_store_n(&c->active, NULL, __ATOMIC_RELAXED);
	}
	spin_unlock(&cs->lock);
	return c;
}

void hw_cpu_put(struct hw_cpus *cs, struct hw_cpu *c)
{
	__atomic_store_n(&c->active, NULL, __ATOMIC_SEQ_CST);
	spin_lock(&cs->lock);
	c->in_use = false;
	spin_unlock(&cs->lock);
}

void hw_cpu_switch(struct hw_cpu *c, struct pmap *pm)
{
	if (pm) {
		uint64_t bit = 1ull << (c->id % 64);
		uint64_t *w = &pm->cpumask[c->id / 64];

		/* Seq-cst RMW: the initiator reads the mask after its fence. */
		if (!(__atomic_load_n(w, __ATOMIC_RELAXED) & bit))
			__atomic_fetch_or(w, bit, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&c->active, pm, __ATOMIC_SEQ_CST);
}

static bool tag_in_req(uint64_t tag, const struct flush_req *r)
{
	unsigned long va = (tag & ((1ull << TLB_ASID_SHIFT) - 1)) << PAGE_SHIFT;

	return (tag >> TLB_ASID_SHIFT) == r->asid && va >= r->start && va < r->end;
}

static void tlb_invalidate(struct hw_cpu *c, const struct flush_req *reqs, unsigned n)
{
	for (unsigned i = 0; i < TLB_SIZE; i++) {
		uint64_t tag = c->tlb[i].tag;

		if (!tag)
			continue;
		for (unsigned j = 0; j < n; j++) {
			if (tag_in_req(tag, &reqs[j])) {
				c->tlb[i].tag = 0;
				break;
			}
		}
	}
}

void tlb_flush_local(struct hw_cpu *c, uint32_t asid, unsigned long start, unsigned long end)
{
	struct flush_req r = { .asid = asid, .start = start, .end = end };

	if (end - start == PAGE_SIZE) {
		struct tlb_entry *e = &c->tlb[(start >> PAGE_SHIFT) & (TLB_SIZE - 1)];

		if (e->tag == tlb_tag(asid, start))
			e->tag = 0;
		return;
	}
	tlb_invalidate(c, &r, 1);
}

void tlb_apply_flushes(struct hw_cpu *c)
{
	struct flush_req reqs[TLB_MAX_REQS];
	unsigned n;
	bool all;

	spin_lock(&c->flush_lock);
	n = c->nreq;
	all = c->flush_all;
	memcpy(reqs, c->reqs, n * sizeof(reqs[0]));
	c->nreq = 0;
	c->flush_all = false;
	c->seen_gen = __atomic_load_n(&c->flush_gen, __ATOMIC_RELAXED);
	spin_unlock(&c->flush_lock);

	if (all)
		memset(c->tlb, 0, sizeof(c->tlb));
	else
		tlb_invalidate(c, reqs, n);
}

static void post_flush(struct hw_cpu *c, uint32_t asid, unsigned long start, unsigned long end)
{
	spin_lock(&c->flush_lock);
	if (c->nreq < TLB_MAX_REQS)
		c->reqs[c->nreq++] = (struct flush_req){ asid, start, end };
	else
		c->flush_all = true;
	__atomic_store_n(&c->flush_gen, c->flush_gen + 1, __ATOMIC_SEQ_CST);
	spin_unlock(&c->flush_lock);
}

static void wait_for_access_end(struct hw_cpu *c, struct pmap *pm)
{
	uint32_t s = __atomic_load_n(&c->seq, __ATOMIC_SEQ_CST);
	unsigned spins = 0;

	if (!(s & 1) || __atomic_load_n(&c->active, __ATOMIC_SEQ_CST) != pm)
		return;
	while (__atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) == s) {
		if (++spins > 200) {
			sched_yield();
			spins = 0;
		} else {
			cpu_relax();
		}
	}
}

void tlb_shootdown(struct hw_cpus *cs, struct pmap *pm, unsigned long start,
		   unsigned long end, struct hw_cpu *self)
{
	struct hw_cpu *targets[HW_MAX_CPUS];
	unsigned n = 0;

	for (unsigned w = 0; w < HW_MAX_CPUS / 64; w++) {
		/* An RMW, not a load: a CPU that sets its bit after this
		 * reads-from it and so sees the PTE changes made before. */
		uint64_t bits = __atomic_fetch_or(&pm->cpumask[w], 0, __ATOMIC_SEQ_CST);

		while (bits) {
			unsigned id = w * 64 + (unsigned)__builtin_ctzll(bits);
			struct hw_cpu *c = __atomic_load_n(&cs->slot[id], __ATOMIC_ACQUIRE);

			bits &= bits - 1;
			if (!c)
				continue;
			if (c == self) {
				tlb_flush_local(c, pm->asid, start, end);
				continue;
			}
			post_flush(c, pm->asid, start, end);
			targets[n++] = c;
		}
	}
	if (!n) {
		__atomic_fetch_add(&cs->local_flushes, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_fetch_add(&cs->shootdowns, 1, __ATOMIC_RELAXED);
	if (cs->membarrier)
		membarrier_call(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
	for (unsigned i = 0; i < n; i++)
		wait_for_access_end(targets[i], pm);
}
