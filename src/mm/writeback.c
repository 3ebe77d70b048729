/*
 * Writeback: getting what guests wrote through shared mappings into the
 * host files, with pwrite.
 *
 * A folio is dirty when its PG_dirty flag is set (a write fault, or zap
 * found a dirty PTE) or when a PTE mapping it has the hardware dirty bit.
 * Writing one back (Linux's folio_clear_dirty_for_io, then writepage):
 *   1. folio_mkclean walks the file rmap and, under each PTE's lock,
 *      write-protects and cleans the PTE and flushes the TLBs: from then
 *      on a write faults (or re-walks) and dirties the folio again;
 *   2. a dirty PTE found there moves to PG_dirty, and PG_dirty is tested
 *      and cleared;
 *   3. the page is copied out with pwrite (up to i_size).
 * folio_mkclean skips the walk when nothing maps the folio. That is only
 * safe because zap removes a dirty file folio's rmap after the TLB flush,
 * under the PTE lock (mmu_gather.c's delayed rmap): while a CPU may still
 * write through a stale TLB entry the folio still counts as mapped, and
 * the walk waits on the PTE lock until the flush is done. Without the delay
 * (SM_CFG_NO_DELAY_RMAP) such a write lands after step 3 in a clean folio
 * and is lost: tests/stress/stress_lost_write.c shows it.
 *
 * Who writes back: sm_msync (MS_SYNC, and MS_ASYNC too: softmm's page cache
 * is not the host's, so a host read(2) sees guest writes only once they are
 * written back; MS_ASYNC is therefore synchronous here), the last reference
 * to a file going away (its last VMA unmapped), sm_mm_destroy for the
 * shared VMAs it had, and the flusher thread every interval.
 *
 * Locking: wb_lock serializes writebacks of one file; folio_mkclean takes
 * i_mmap_lock, then each PTE lock through walk_pte_lock (no mmap_lock: the
 * tables may be freed meanwhile, which it copes with).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "base/rcu.h"
#include "mm/filemap.h"
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/mm_api.h"
#include "mm/mmu_gather.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"
#include "mm/vma.h"

#define DEFAULT_FLUSH_INTERVAL_MS 5000u

struct mkclean {
	unsigned long pfn;
	bool dirty;
};

static bool mkclean_one(struct vm_area_struct *vma, unsigned long addr, void *arg)
{
	struct mkclean *mc = arg;
	struct sm_mm *mm = vma->vm_mm;
	spinlock_t *ptl;
	pte_t *ptep = walk_pte_lock(mm, addr, &ptl), pte;

	if (ptep) {
		pte = ptep_get(ptep);
		if (pte_hw_present(pte) && !pte_special(pte) && pte_pfn(pte) == mc->pfn &&
		    (pte & (_PAGE_RW | _PAGE_DIRTY))) {
			pte = ptep_clear_bits(ptep, _PAGE_RW | _PAGE_DIRTY);
			/* A TLB entry allows writes only while the PTE was
			 * writable and dirty: after this flush none does. */
			flush_tlb_range(mm, addr, addr + PAGE_SIZE);
			if (pte_dirty(pte))
				mc->dirty = true;
		}
		spin_unlock(ptl);
	}
	return true;
}

bool folio_mkclean(struct sm_machine *m, struct address_space *as, struct page *folio)
{
	struct mkclean mc = { .pfn = page_to_pfn(m, folio) };

	if (!page_mapcount(folio))
		return false;
	file_rmap_walk(as, folio->index, mkclean_one, &mc);
	return mc.dirty;
}

/* The page straddles the end of the file: what guests wrote beyond it is
 * dropped at every writeback, as Linux's filesystems do, since the page may
 * be mapped. */
static void zero_tail(char *page, size_t from)
{
#ifdef SM_TSAN
	for (size_t i = from; i < PAGE_SIZE; i++)
		__atomic_store_n(page + i, 0, __ATOMIC_RELAXED);
#else
	memset(page + from, 0, PAGE_SIZE - from);
#endif
}

/* Precondition: wb_lock. */
static int write_folio(struct address_space *as, struct page *folio)
{
	struct sm_machine *m = as->machine;
	unsigned long long off = (unsigned long long)folio->index << PAGE_SHIFT, size;
	const char *src = page_address(m, folio);
	size_t len, done = 0;

	if (folio_mkclean(m, as, folio))
		folio_mark_dirty(folio);
	if (!(__atomic_fetch_and(&folio->flags, ~(1u << PG_dirty), __ATOMIC_ACQ_REL) &
	      (1u << PG_dirty)))
		return 0;
	spin_lock(&as->tree_lock);
	size = as->size;
	spin_unlock(&as->tree_lock);
	if (off >= size)
		return 0;
	len = (size_t)min((unsigned long long)PAGE_SIZE, size - off);
#ifdef SM_TSAN
	/* Guests may be writing the page meanwhile (their writes, not ours,
	 * then dirty it again); copy as they do, with relaxed atomics. */
	char bounce[PAGE_SIZE];

	for (size_t i = 0; i < len; i++)
		bounce[i] = __atomic_load_n(src + i, __ATOMIC_RELAXED);
	src = bounce;
#endif
	while (done < len) {
		ssize_t n = pwrite(as->fd, src + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			folio_mark_dirty(folio);   /* try again next time */
			return n < 0 ? -errno : -EIO;
		}
		done += (size_t)n;
	}
	if (len < PAGE_SIZE)
		zero_tail(page_address(m, folio), len);
	__atomic_fetch_add(&m->files.pages_written, 1, __ATOMIC_RELAXED);
	return 0;
}

struct wb_range {
	int err;
};

static void write_one(struct address_space *as, struct page *folio, void *arg)
{
	struct wb_range *w = arg;
	int err = write_folio(as, folio);

	if (err && !w->err)
		w->err = err;
}

int filemap_write_range(struct address_space *as, unsigned long first, unsigned long last, bool sync)
{
	struct wb_range w = { 0 };

	if (as->shmem)
		return 0;
	sm_rcu_thread_online();
	pthread_mutex_lock(&as->wb_lock);
	filemap_for_each(as, first, last, write_one, &w);
	if (sync && !w.err && fdatasync(as->fd))
		w.err = -errno;
	pthread_mutex_unlock(&as->wb_lock);
	return w.err;
}

void mm_writeback_shared(struct sm_mm *mm)
{
	for (struct vm_area_struct *vma = vma_first(mm); vma; vma = vma_next(vma))
		if (vma->vm_file && (vma->vm_flags & VM_SHARED))
			filemap_write_range(vma->vm_file, vma->vm_pgoff,
					    vma->vm_pgoff + vma_pages(vma) - 1, false);
}

/* ---------------------------------------------------------------- msync */

long sm_msync(struct sm_mm *mm, unsigned long start, unsigned long len, int flags)
{
	struct vm_area_struct *vma;
	unsigned long end;
	long err = 0, unmapped = 0;

	if (!mm)
		return -EINVAL;
	if (flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC))
		return -EINVAL;
	if (offset_in_page(start))
		return -EINVAL;
	if ((flags & MS_ASYNC) && (flags & MS_SYNC))
		return -EINVAL;
	len = (len + PAGE_SIZE - 1) & PAGE_MASK;
	end = start + len;
	if (end < start)
		return -ENOMEM;
	if (end == start)
		return 0;
	mm_syscall_enter(mm);
	down_read(&mm->mmap_lock);
	vma = find_vma(mm, start);
	for (;;) {
		struct address_space *as;
		unsigned long first, last;

		if (!vma) {
			err = -ENOMEM;
			break;
		}
		if (start < vma->vm_start) {
			if (flags == MS_ASYNC) {
				err = -ENOMEM;
				break;
			}
			start = vma->vm_start;
			if (start >= end) {
				err = -ENOMEM;
				break;
			}
			unmapped = -ENOMEM;
		}
		if ((flags & MS_INVALIDATE) && (vma->vm_flags & VM_LOCKED)) {
			err = -EBUSY;
			break;
		}
		as = vma->vm_file;
		first = linear_page_index(vma, start);
		last = linear_page_index(vma, min(end, vma->vm_end) - 1);
		start = vma->vm_end;
		if ((flags & (MS_SYNC | MS_ASYNC)) && as && (vma->vm_flags & VM_SHARED)) {
			mapping_get(as);
			up_read(&mm->mmap_lock);
			err = filemap_write_range(as, first, last, flags & MS_SYNC);
			mapping_put(as);
			if (err || start >= end)
				goto out;
			down_read(&mm->mmap_lock);
			vma = find_vma(mm, start);
		} else {
			if (start >= end)
				break;
			vma = find_vma(mm, vma->vm_end);
		}
	}
	up_read(&mm->mmap_lock);
out:
	mm_syscall_exit(mm);
	return err ? err : unmapped;
}

/* ---------------------------------------------------------------- the flusher */

/* Write back every file of the machine once. */
static void flush_all(struct sm_machine *m)
{
	struct file_cache *fc = &m->files;
	struct address_space *as, **list = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&fc->lock);
	list_for_each_entry(as, &fc->mappings, node)
		cap++;
	list = cap ? malloc(cap * sizeof(*list)) : NULL;
	if (list) {
		list_for_each_entry(as, &fc->mappings, node) {
			if (as->shmem)
				continue;
			as->refcount++;
			list[n++] = as;
		}
	}
	pthread_mutex_unlock(&fc->lock);
	for (size_t i = 0; i < n; i++) {
		filemap_write_range(list[i], 0, ~0ul, false);
		mapping_put(list[i]);
	}
	free(list);
	__atomic_fetch_add(&fc->flusher_passes, 1, __ATOMIC_RELAXED);
}

static void *flusher_main(void *arg)
{
	struct sm_machine *m = arg;
	struct file_cache *fc = &m->files;

	sm_rcu_thread_online();
	pthread_mutex_lock(&fc->flusher_lock);
	while (!fc->flusher_stop) {
		struct timespec until;
		unsigned ms = fc->flusher_interval_ms;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += ms / 1000;
		until.tv_nsec += (long)(ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		if (pthread_cond_timedwait(&fc->flusher_wake, &fc->flusher_lock, &until) == 0 ||
		    fc->flusher_stop)
			continue;
		pthread_mutex_unlock(&fc->flusher_lock);
		flush_all(m);
		pthread_mutex_lock(&fc->flusher_lock);
	}
	pthread_mutex_unlock(&fc->flusher_lock);
	return NULL;
}

static void flusher_stop(struct file_cache *fc)
{
	bool running;

	pthread_mutex_lock(&fc->flusher_lock);
	running = fc->flusher_running;
	fc->flusher_stop = true;
	pthread_cond_broadcast(&fc->flusher_wake);
	pthread_mutex_unlock(&fc->flusher_lock);
	if (running)
		pthread_join(fc->flusher, NULL);
	pthread_mutex_lock(&fc->flusher_lock);
	fc->flusher_running = false;
	fc->flusher_stop = false;
	pthread_mutex_unlock(&fc->flusher_lock);
}

/* Precondition: flusher_lock, not running. */
static int flusher_launch(struct sm_machine *m, unsigned interval_ms)
{
	struct file_cache *fc = &m->files;

	fc->flusher_interval_ms = interval_ms ? interval_ms : DEFAULT_FLUSH_INTERVAL_MS;
	if (pthread_create(&fc->flusher, NULL, flusher_main, m))
		return -EAGAIN;
	fc->flusher_running = true;
	return 0;
}

int sm_flusher(struct sm_machine *m, const struct sm_flusher_config *cfg)
{
	struct file_cache *fc;
	int err = 0;

	if (!m)
		return -EINVAL;
	fc = &m->files;
	flusher_stop(fc);
	pthread_mutex_lock(&fc->flusher_lock);
	fc->flusher_configured = true;
	if (cfg)
		err = flusher_launch(m, cfg->interval_ms);
	pthread_mutex_unlock(&fc->flusher_lock);
	return err;
}

void flusher_start_default(struct sm_machine *m)
{
	struct file_cache *fc = &m->files;

	pthread_mutex_lock(&fc->flusher_lock);
	if (!fc->flusher_configured && !fc->flusher_running)
		flusher_launch(m, 0);
	pthread_mutex_unlock(&fc->flusher_lock);
}

void sm_flusher_stats(struct sm_machine *m, struct sm_flusher_stats *st)
{
	st->passes = __atomic_load_n(&m->files.flusher_passes, __ATOMIC_RELAXED);
	st->pages_written = __atomic_load_n(&m->files.pages_written, __ATOMIC_RELAXED);
}

void files_destroy(struct sm_machine *m)
{
	flusher_stop(&m->files);
	pthread_mutex_destroy(&m->files.lock);
	pthread_mutex_destroy(&m->files.flusher_lock);
	pthread_cond_destroy(&m->files.flusher_wake);
}
