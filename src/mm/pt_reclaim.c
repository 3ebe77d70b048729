/*
 * Empty page-table reclaim. MADV_DONTNEED leaves a range's PTE tables in
 * place, full of none entries: a sparse process can accumulate gigabytes of
 * them. Three ways give them back:
 *
 *  - on zap (Linux 6.14): a MADV_DONTNEED that covered a table's whole
 *    2 MiB span frees the table if nothing is left in it (by default;
 *    SM_CFG_NO_PT_RECLAIM_ON_ZAP keeps it);
 *  - on request: SM_MADV_PT_RECLAIM frees every empty PTE table in a range,
 *    then the PMD and PUD tables left empty;
 *  - in the background: a scanner thread per machine, off by default, does
 *    the same for the mms that opted in, a slice of address space per pass.
 *
 * Locking. PTE tables go under the mmap_lock for reading, concurrently with
 * faults: take the PMD lock, then the table's own lock, recheck every entry
 * (a fault may have filled one since we looked), clear the PMD entry, and
 * hand the table to the mmu_gather, which frees it after an RCU grace
 * period. The zap does it cheaper: it already holds the table's lock and
 * has seen every entry go, so it only tries the PMD lock (out of order, so
 * never waits for it) and falls back to the recheck if that is busy. A PMD
 * entry is cleared only with both locks held, so holding a PTE lock taken
 * through pte_offset_map_lock keeps the table linked.
 *
 * Every path that reaches a table through a PMD entry either does so inside
 * an RCU read-side section and revalidates under the table lock
 * (pte_offset_map_lock, the CPU walker) or holds the mmap_lock for writing.
 * Walks of holes, where munmap (downgraded to the read lock) may be freeing
 * upper-level tables at the same moment, stay inside an RCU read-side
 * section too. PMD and PUD tables are freed under the mmap_lock for writing:
 * the fault path walks upper levels without revalidating them.
 *
 * The scanner thread takes pt_scanner.lock, then each opted-in mm's
 * mmap_lock; sm_mm_destroy unlinks the mm under pt_scanner.lock first.
 */
#include <errno.h>
#include <time.h>
#include "base/rcu.h"
#include "mm/memory.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/pt_reclaim.h"

struct page *unlink_empty_pte_locked(struct sm_mm *mm, pte_t *pmdp, spinlock_t *ptl)
{
	struct page *tp = container_of(ptl, struct page, ptl);
	spinlock_t *pml = pmd_lockptr(mm, pmdp);
	pte_t pmd;
	bool ours;

	/* The PMD lock comes before the PTE lock: only try it. */
	if (!spin_trylock(pml))
		return NULL;
	/* Everything that unlinks a PTE table holds its lock (free_pgtables
	 * too), so the entry still names ours; checked all the same. */
	pmd = ptep_get(pmdp);
	ours = (pmd & _PAGE_PRESENT) && pte_pfn(pmd) == page_to_pfn(mm->machine, tp);
	if (ours)
		set_pte(pmdp, 0);
	spin_unlock(pml);
	return ours ? tp : NULL;
}

bool try_to_free_pte(struct mmu_gather *tlb, struct sm_mm *mm, pte_t *pmdp)
{
	spinlock_t *pml = pmd_lockptr(mm, pmdp);
	struct page *tp = NULL;
	pte_t pmd;

	spin_lock(pml);
	pmd = ptep_get(pmdp);
	if (pmd & _PAGE_PRESENT) {
		tp = table_page(mm, pmd);
		spin_lock(&tp->ptl);
		if (table_empty(table_of(mm, pmd)))
			set_pte(pmdp, 0);
		else
			tp = NULL;
		spin_unlock(&table_page(mm, pmd)->ptl);
	}
	spin_unlock(pml);
	if (tp)
		tlb_remove_table(tlb, tp);
	return tp != NULL;
}

/*
 * Free the empty PTE tables met in [start, end): with whole_spans, only
 * those whose entire 2 MiB span lies inside (the zap case, where the range
 * is part of a VMA); otherwise every one intersecting it, holes included.
 * Inside an RCU read-side section: in holes, munmap (downgraded to the read
 * lock) may be freeing the upper tables we walk through.
 */
static long reclaim_ptes(struct mmu_gather *tlb, struct sm_mm *mm, unsigned long start,
			 unsigned long end, bool whole_spans)
{
	unsigned long addr = whole_spans ? (start + PMD_SIZE - 1) & PMD_MASK : start & PMD_MASK;
	long freed = 0;
	pte_t *pmdp;

	sm_rcu_read_lock();
	while (addr < end && (pmdp = pmd_next_table(mm, &addr, end))) {
		if (whole_spans && addr + PMD_SIZE > end)
			break;
		freed += try_to_free_pte(tlb, mm, pmdp);
		addr = (addr + PMD_SIZE) & PMD_MASK;
		if (!addr)
			break;
	}
	sm_rcu_read_unlock();
	return freed;
}

void reclaim_pt_range(struct mmu_gather *tlb, struct sm_mm *mm, unsigned long start,
		      unsigned long end)
{
	reclaim_ptes(tlb, mm, start, end, true);
}

/* Is there an empty PMD or PUD table intersecting [start, end)? */
static bool empty_upper_tables(struct sm_mm *mm, unsigned long start, unsigned long end)
{
	unsigned long addr = start & PUD_MASK;
	bool found = false;

	sm_rcu_read_lock();
	for (; !found && addr < end && addr >= (start & PUD_MASK); addr += PUD_SIZE) {
		pte_t pgd = ptep_get(&mm->pmap.pgd[pgd_index(addr)]), pud;

		if (!(pgd & _PAGE_PRESENT)) {
			addr = (addr & PGDIR_MASK) + PGDIR_SIZE - PUD_SIZE;
			continue;
		}
		found = table_empty(table_of(mm, pgd));
		pud = ptep_get(&table_of(mm, pgd)[pud_index(addr)]);
		if (pud & _PAGE_PRESENT)
			found = found || table_empty(table_of(mm, pud));
	}
	sm_rcu_read_unlock();
	return found;
}

/* Returns the number of tables freed (PTE, then PMD and PUD). */
static long reclaim_range(struct sm_mm *mm, unsigned long start, unsigned long end, bool wait)
{
	struct mmu_gather tlb;
	long before = mm_pgtable_pages(mm), freed;

	down_read(&mm->mmap_lock);
	tlb_gather_mmu(&tlb, mm);
	freed = reclaim_ptes(&tlb, mm, start, end, false);
	tlb_finish_mmu(&tlb);
	if (!freed && !empty_upper_tables(mm, start, end)) {
		up_read(&mm->mmap_lock);
		return 0;
	}
	up_read(&mm->mmap_lock);
	/* Upper levels: only with the lock to ourselves. */
	if (wait)
		down_write(&mm->mmap_lock);
	else if (!down_write_trylock(&mm->mmap_lock))
		return freed;
	tlb_gather_mmu(&tlb, mm);
	free_pgtables(&tlb, mm, start & PUD_MASK, end, 0, 0);
	tlb_finish_mmu(&tlb);
	up_write(&mm->mmap_lock);
	return before - mm_pgtable_pages(mm);
}

long madvise_pt_reclaim(struct sm_mm *mm, unsigned long start, unsigned long end)
{
	reclaim_range(mm, start, end, true);
	return 0;
}

/* ---- the background scanner ---- */

void pt_scanner_init(struct sm_machine *m)
{
	struct pt_scanner *s = &m->pt_scanner;

	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	INIT_LIST_HEAD(&s->mms);
}

long sm_mm_set_pt_reclaim(struct sm_mm *mm, int enable)
{
	struct pt_scanner *s;

	if (!mm)
		return -EINVAL;
	s = &mm->machine->pt_scanner;
	pthread_mutex_lock(&s->lock);
	if (enable && !mm->pt_scan)
		list_add_tail(&mm->pt_scan_node, &s->mms);
	else if (!enable && mm->pt_scan)
		list_del_init(&mm->pt_scan_node);
	mm->pt_scan = enable != 0;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void scan_mm(struct pt_scanner *s, struct sm_mm *mm)
{
	unsigned long start = mm->pt_scan_cursor;
	unsigned long len = s->pages_per_pass << PAGE_SHIFT;
	unsigned long end = len > mm->task_size - start ? mm->task_size : start + len;
	long freed = reclaim_range(mm, start, end, false);

	if (freed > 0)
		__atomic_fetch_add(&s->tables_freed, (uint64_t)freed, __ATOMIC_RELAXED);
	mm->pt_scan_cursor = end >= mm->task_size ? 0 : end;
}

static void *scanner_main(void *arg)
{
	struct sm_machine *m = arg;
	struct pt_scanner *s = &m->pt_scanner;

	sm_rcu_thread_online();
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct sm_mm *mm;
		struct timespec until;

		list_for_each_entry(mm, &s->mms, pt_scan_node)
			scan_mm(s, mm);
		__atomic_fetch_add(&s->passes, 1, __ATOMIC_RELAXED);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (long)(s->interval_ms % 1000) * 1000000;
		until.tv_sec += s->interval_ms / 1000 + until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		if (!s->stop)
			pthread_cond_timedwait(&s->wake, &s->lock, &until);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int sm_pt_scanner(struct sm_machine *m, const struct sm_pt_scanner_config *cfg)
{
	struct pt_scanner *s = &m->pt_scanner;
	int err = 0;

	pthread_mutex_lock(&s->lock);
	if (cfg) {
		s->interval_ms = cfg->interval_ms ? cfg->interval_ms : 100;
		s->pages_per_pass = cfg->pages_per_pass ? cfg->pages_per_pass : 1ul << 20;
	}
	if (cfg && !s->running) {
		s->stop = false;
		err = -pthread_create(&s->thread, NULL, scanner_main, m);
		s->running = err == 0;
	} else if (!cfg && s->running) {
		s->stop = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		pthread_mutex_lock(&s->lock);
		s->running = false;
	} else if (cfg) {
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

void sm_pt_scanner_stats(struct sm_machine *m, struct sm_pt_scanner_stats *st)
{
	st->passes = __atomic_load_n(&m->pt_scanner.passes, __ATOMIC_RELAXED);
	st->tables_freed = __atomic_load_n(&m->pt_scanner.tables_freed, __ATOMIC_RELAXED);
}
