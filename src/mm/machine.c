/*
 * Lifecycles: the machine (RAM, frame array, buddy allocator, CPUs, the zero
 * page), address spaces, and CPUs. Nothing global lives outside struct
 * sm_machine, so two machines in one process are independent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "base/rcu.h"
#include "mm/folio.h"
#include "mm/filemap.h"
#include "mm/ksm.h"
#include "mm/mmu_gather.h"
#include "mm/mmap.h"
#include "mm/memory.h"
#include "mm/munmap.h"
#include "mm/pgtable.h"
#include "mm/pt_reclaim.h"
#include "mm/vma.h"

#define DEFAULT_RAM (4ul << 30)
#define DEFAULT_CPUS 64
#define DEFAULT_BRK_BASE 0x555555559000ul

static __thread struct sm_cpu *tls_cpu SM_TLS_IE;

struct sm_cpu *this_cpu(struct sm_machine *m)
{
	struct sm_cpu *c = tls_cpu;

	return c && c->machine == m ? c : NULL;
}

static void *alloc_frame_array(unsigned long n)
{
	void *p = mmap(NULL, n * sizeof(struct page), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, n * sizeof(struct page), MADV_HUGEPAGE);   /* as the RAM arena */
	return p;
}

struct sm_machine *sm_machine_create(const struct sm_config *cfg)
{
	struct sm_config c = cfg ? *cfg : (struct sm_config){ 0 };
	struct sm_machine *m;
	struct page *zero;
	int err = ENOMEM;

	if (!c.ram_bytes)
		c.ram_bytes = DEFAULT_RAM;
	if (!c.max_cpus)
		c.max_cpus = DEFAULT_CPUS;
	if (c.max_cpus > HW_MAX_CPUS || c.ram_bytes < (1ul << 20) ||
	    c.ram_bytes > (1ul << 46)) {
		errno = EINVAL;
		return NULL;
	}
	sm_rcu_thread_online();
	m = calloc(1, sizeof(*m));
	if (!m)
		goto fail;
	m->flags = c.flags;
	m->max_map_count = DEFAULT_MAX_MAP_COUNT;
	m->munmap_zap_write_locked = (c.flags & SM_CFG_MUNMAP_ZAP_WRITE_LOCKED) != 0;
	m->next_asid = 1;
	m->fork_batch = !(c.flags & SM_CFG_NO_FORK_BATCH);
	m->pt_reclaim_on_zap = !(c.flags & SM_CFG_NO_PT_RECLAIM_ON_ZAP);
	m->delay_rmap = !(c.flags & SM_CFG_NO_DELAY_RMAP);
	if (c.flags & SM_CFG_ANON_ORDERS) {
		m->anon_orders_always = c.anon_orders_always & 0x3fcu;
		m->anon_orders_madvise = c.anon_orders_madvise & 0x3fcu;
	} else {
		m->anon_orders_madvise = 1u << 9;
	}
	if (ram_init(&m->ram, c.ram_bytes, c.flags & SM_CFG_PREFAULT_RAM))
		goto fail_m;
	m->pages = alloc_frame_array(m->ram.nr_frames);
	if (!m->pages)
		goto fail_ram;
	page_alloc_init(m);
	pt_scanner_init(m);
	files_init(m);
	hw_cpus_init(&m->cpus, c.max_cpus);
	zero = alloc_pages(m, 0, __GFP_ZERO);
	if (!zero)
		goto fail_pages;
	set_page_flag(zero, PG_reserved);
	set_page_flag(zero, PG_zero);
	m->zero_pfn = page_to_pfn(m, zero);
	if (ksm_init(m))
		goto fail_pages;
	return m;

fail_pages:
	munmap(m->pages, m->ram.nr_frames * sizeof(struct page));
fail_ram:
	ram_destroy(&m->ram);
fail_m:
	free(m);
fail:
	errno = err;
	return NULL;
}

void sm_machine_destroy(struct sm_machine *m)
{
	if (!m)
		return;
	sm_pt_scanner(m, NULL);
	files_destroy(m);
	ksm_destroy(m);
	/* Table batches still waiting for a grace period point into RAM. */
	rcu_barrier();
	hw_cpus_destroy(&m->cpus);
	munmap(m->pages, m->ram.nr_frames * sizeof(struct page));
	ram_destroy(&m->ram);
	free(m);
}

struct sm_mm *sm_mm_create(struct sm_machine *m)
{
	struct sm_mm *mm;

	if (!m) {
		errno = EINVAL;
		return NULL;
	}
	sm_rcu_thread_online();
	mm = calloc(1, sizeof(*mm));
	if (!mm) {
		errno = ENOMEM;
		return NULL;
	}
	mm->machine = m;
	rwsem_init(&mm->mmap_lock);
	gt_init(&mm->mm_mt);
	munmap_reserved_init(mm);
	spin_lock_init(&mm->page_table_lock);
	mm->task_size = TASK_SIZE;
	mm->mmap_base = PAGE_ALIGN(TASK_SIZE - (128ul << 20));
	mm->start_brk = mm->brk = DEFAULT_BRK_BASE;
	mm->pmap.asid = __atomic_fetch_add(&m->next_asid, 1, __ATOMIC_RELAXED);
	INIT_LIST_HEAD(&mm->pt_scan_node);
	if (pgd_alloc(mm)) {
		munmap_reserved_destroy(mm);
		rwsem_destroy(&mm->mmap_lock);
		free(mm);
		errno = ENOMEM;
		return NULL;
	}
	__atomic_fetch_add(&m->nr_mms, 1, __ATOMIC_RELAXED);
	return mm;
}

/* exit_mmap: no CPU may run the mm any more (the caller switched them
 * away), so one flush at the end covers every stale TLB entry. */
void sm_mm_destroy(struct sm_mm *mm)
{
	struct vm_area_struct *vma, *next;
	struct mmu_gather tlb;

	if (!mm)
		return;
	sm_rcu_thread_online();
	sm_mm_set_pt_reclaim(mm, 0);
	down_write(&mm->mmap_lock);
	tlb_gather_mmu_fullmm(&tlb, mm);
	for (vma = vma_first(mm); vma; vma = vma_next(vma))
		zap_page_range(&tlb, vma, vma->vm_start, vma->vm_end);
	/* Entries of this asid may still sit in TLBs of CPUs that ran it. */
	flush_tlb_range(mm, 0, TASK_SIZE);
	tlb_finish_mmu(&tlb);
	mm_writeback_shared(mm);
	for (vma = vma_first(mm); vma; vma = next) {
		next = vma_next(vma);
		vma_unlink(mm, vma);
		vm_area_free(vma);
	}
	free_all_pgtables(mm);
	pgd_free(mm);
	up_write(&mm->mmap_lock);
	/* After the zap: KSM pages only this mm mapped can go now. */
	ksm_exit(mm);
	if (__atomic_load_n(&mm->rcu_pending_tables, __ATOMIC_ACQUIRE))
		rcu_barrier();
	munmap_reserved_destroy(mm);
	rwsem_destroy(&mm->mmap_lock);
	__atomic_fetch_sub(&mm->machine->nr_mms, 1, __ATOMIC_RELAXED);
	free(mm);
}

long sm_mm_set_brk_base(struct sm_mm *mm, unsigned long start_brk)
{
	long ret = 0;

	if (!mm || offset_in_page(start_brk) || start_brk >= TASK_SIZE)
		return -EINVAL;
	down_write(&mm->mmap_lock);
	if (mm->brk_set || mm->brk != mm->start_brk)
		ret = -EBUSY;
	else
		mm->start_brk = mm->brk = start_brk;
	up_write(&mm->mmap_lock);
	return ret;
}

struct sm_cpu *sm_cpu_create(struct sm_machine *m)
{
	struct sm_cpu *c;

	if (!m) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->hw = hw_cpu_get(&m->cpus);
	if (!c->hw) {
		free(c);
		errno = EAGAIN;
		return NULL;
	}
	c->machine = m;
	INIT_LIST_HEAD(&c->pcp.list);
	return c;
}

void sm_cpu_destroy(struct sm_cpu *c)
{
	if (!c)
		return;
	if (tls_cpu == c)
		tls_cpu = NULL;
	pcp_drain(c->machine, c);
	hw_cpu_put(&c->machine->cpus, c->hw);
	free(c);
}

void sm_cpu_bind_thread(struct sm_cpu *c)
{
	tls_cpu = c;
}

void sm_cpu_switch_mm(struct sm_cpu *c, struct sm_mm *mm)
{
	if (!c)
		return;
	tls_cpu = c;
	sm_rcu_thread_online();
	c->mm = mm;
	hw_cpu_switch(c->hw, mm ? &mm->pmap : NULL);
}

void sm_machine_stats(struct sm_machine *m, struct sm_machine_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->total_frames = m->ram.nr_frames;
	st->free_frames = nr_free_pages(m);
	st->pgtable_frames = (uint64_t)__atomic_load_n(&m->pgtable_frames, __ATOMIC_RELAXED);
	st->tlb_shootdowns = __atomic_load_n(&m->cpus.shootdowns, __ATOMIC_RELAXED);
	st->tlb_local_flushes = __atomic_load_n(&m->cpus.local_flushes, __ATOMIC_RELAXED);
	st->cow_bytes_copied = __atomic_load_n(&m->cow_bytes_copied, __ATOMIC_RELAXED);
	st->folios_split = __atomic_load_n(&m->folios_split, __ATOMIC_RELAXED);
	st->munmap_lock_drops = __atomic_load_n(&m->munmap_lock_drops, __ATOMIC_RELAXED);
	st->munmap_reserve_waits = __atomic_load_n(&m->munmap_reserve_waits, __ATOMIC_RELAXED);
	st->pt_zap_freed = __atomic_load_n(&m->pt_zap_freed, __ATOMIC_RELAXED);
	st->pt_zap_rechecked = __atomic_load_n(&m->pt_zap_rechecked, __ATOMIC_RELAXED);
	st->punched_pages = __atomic_load_n(&m->punched_pages, __ATOMIC_RELAXED);
	st->punch_fault_retries = __atomic_load_n(&m->punch_fault_retries, __ATOMIC_RELAXED);
}

void sm_mm_lock_stats(struct sm_mm *mm, struct sm_lock_stats *st)
{
	rwsem_get_stats(&mm->mmap_lock, st);
}

void sm_mm_lock_stats_reset(struct sm_mm *mm)
{
	rwsem_reset_stats(&mm->mmap_lock);
}

long get_mm_rss(struct sm_mm *mm)
{
	return get_mm_counter(mm, MM_ANONPAGES) + get_mm_counter(mm, MM_FILEPAGES) +
	       get_mm_counter(mm, MM_SHMEMPAGES);
}

void update_hiwater_rss(struct sm_mm *mm)
{
	unsigned long rss = (unsigned long)get_mm_rss(mm);
	unsigned long old = __atomic_load_n(&mm->hiwater_rss, __ATOMIC_RELAXED);

	while (rss > old &&
	       !__atomic_compare_exchange_n(&mm->hiwater_rss, &old, rss, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}
