/*
 * The page cache of host files, and the fault that maps it.
 *
 * Every host file mapped in a machine has one struct address_space, found
 * by (st_dev, st_ino) so that every mm of the machine, and every fd naming
 * the file, shares one copy of each page. A miss allocates a frame and
 * fills it with pread from our own dup of the fd; the folio stays in the
 * cache (one reference) until the file's last user goes. Shared mappings
 * map the cached folio itself and dirty it through the PTE dirty bit
 * (writeback.c collects it); private ones map it read-only and copy on the
 * first write, as anonymous memory.
 *
 * A page wholly beyond the end of the file faults with VM_FAULT_SIGBUS (the
 * access API's SM_SIGBUS); the bytes of the last page past the end read as
 * zeros and are never written back. The size is looked at again (fstat)
 * when a fault lands beyond it, so a file the host grew maps its new pages.
 * Only 4 KiB folios; no read-ahead and no fault-around (Linux maps up to 16
 * cached neighbours on a read fault: its Rss can be larger than ours).
 *
 * Locking: tree_lock guards the index for the instant of a lookup or an
 * insertion and is never held across I/O or another lock; files.lock guards
 * the machine's list of files and their reference counts; a fault that
 * misses reads and inserts under invalidate_lock held for reading, and a
 * fault maps a cached folio only after checking, under the PTE lock, that
 * it is still cached (a hole punch, truncate.c, may have dropped it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "mm/filemap.h"
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"

#define INITIAL_BUCKETS 64ul

void files_init(struct sm_machine *m)
{
	struct file_cache *fc = &m->files;

	pthread_mutex_init(&fc->lock, NULL);
	INIT_LIST_HEAD(&fc->mappings);
	fc->next_shmem_ino = 1;
	pthread_mutex_init(&fc->flusher_lock, NULL);
	pthread_cond_init(&fc->flusher_wake, NULL);
}

struct address_space *mapping_alloc(struct sm_machine *m)
{
	struct address_space *as = calloc(1, sizeof(*as));

	if (!as)
		return NULL;
	as->buckets = malloc(INITIAL_BUCKETS * sizeof(*as->buckets));
	if (!as->buckets) {
		free(as);
		return NULL;
	}
	as->nbuckets = INITIAL_BUCKETS;
	for (unsigned long i = 0; i < as->nbuckets; i++)
		INIT_LIST_HEAD(&as->buckets[i]);
	as->machine = m;
	as->fd = -1;
	as->refcount = 1;
	spin_lock_init(&as->tree_lock);
	pthread_mutex_init(&as->i_mmap_lock, NULL);
	pthread_mutex_init(&as->wb_lock, NULL);
	rwsem_init(&as->invalidate_lock);
	it_init(&as->i_mmap);
	return as;
}

void mapping_free(struct address_space *as)
{
	if (as->fd >= 0)
		close(as->fd);
	pthread_mutex_destroy(&as->i_mmap_lock);
	pthread_mutex_destroy(&as->wb_lock);
	rwsem_destroy(&as->invalidate_lock);
	free(as->buckets);
	free(as->path);
	free(as);
}

/* The name /proc/<pid>/maps shows: what the host resolves the fd to. */
static char *fd_path(int fd)
{
	char link[64], target[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return strdup("");
	target[n] = '\0';
	return strdup(target);
}

/* An existing file gains a user through fd. Our fd is a dup of the first
 * fd that mapped the file: if that one was read-only and this one is not,
 * this one takes its place (dup3 swaps the open file behind our number in
 * one step, under any pread in flight), so that writeback's pwrite and
 * MADV_REMOVE's fallocate can write. Precondition: files.lock. */
static void mapping_add_user(struct address_space *as, int fd, bool writable)
{
	as->refcount++;
	if (writable && !as->fd_writable && dup3(fd, as->fd, O_CLOEXEC) >= 0)
		as->fd_writable = true;
}

struct address_space *filemap_get(struct sm_machine *m, int fd, int *err)
{
	struct file_cache *fc = &m->files;
	struct address_space *as, *fresh;
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	bool writable = fl >= 0 && (fl & O_ACCMODE) == O_RDWR;

	if (fstat(fd, &st)) {
		*err = -errno;
		return NULL;
	}
	pthread_mutex_lock(&fc->lock);
	list_for_each_entry(as, &fc->mappings, node) {
		if (!as->shmem && as->dev == st.st_dev && as->ino == st.st_ino) {
			mapping_add_user(as, fd, writable);
			pthread_mutex_unlock(&fc->lock);
			return as;
		}
	}
	pthread_mutex_unlock(&fc->lock);

	fresh = mapping_alloc(m);
	if (!fresh || (fresh->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0 ||
	    !(fresh->path = fd_path(fd))) {
		*err = fresh && fresh->fd < 0 ? -EMFILE : -ENOMEM;
		if (fresh)
			mapping_free(fresh);
		return NULL;
	}
	fresh->dev = st.st_dev;
	fresh->ino = st.st_ino;
	fresh->size = (unsigned long long)st.st_size;
	fresh->fd_writable = writable;
	/* Someone may have added the file while we were opening it. */
	pthread_mutex_lock(&fc->lock);
	list_for_each_entry(as, &fc->mappings, node) {
		if (!as->shmem && as->dev == st.st_dev && as->ino == st.st_ino) {
			mapping_add_user(as, fd, writable);
			pthread_mutex_unlock(&fc->lock);
			mapping_free(fresh);
			return as;
		}
	}
	list_add_tail(&fresh->node, &fc->mappings);
	pthread_mutex_unlock(&fc->lock);
	flusher_start_default(m);
	return fresh;
}

void mapping_get(struct address_space *as)
{
	pthread_mutex_lock(&as->machine->files.lock);
	as->refcount++;
	pthread_mutex_unlock(&as->machine->files.lock);
}

/* The last user is gone: every folio is clean and unmapped; give them back. */
static void mapping_evict(struct address_space *as)
{
	struct sm_machine *m = as->machine;

	for (unsigned long b = 0; b < as->nbuckets; b++) {
		while (!list_empty(&as->buckets[b])) {
			struct page *p = container_of(as->buckets[b].next, struct page, lru);

			list_del(&p->lru);
			SM_ASSERT(page_ref_count(p) == 1 && page_mapcount(p) == 0,
				  "evicting pfn %lu: refcount %d, mapcount %d", page_to_pfn(m, p),
				  page_ref_count(p), page_mapcount(p));
			p->mapping = NULL;
			folio_put_refs(m, p, 1);
		}
	}
	as->nrpages = 0;
}

void mapping_put(struct address_space *as)
{
	struct file_cache *fc = &as->machine->files;

	pthread_mutex_lock(&fc->lock);
	if (as->refcount > 1) {
		as->refcount--;
		pthread_mutex_unlock(&fc->lock);
		return;
	}
	pthread_mutex_unlock(&fc->lock);
	/* Still ours (refcount 1) while we write back: a new mmap of the file
	 * meanwhile shares this cache instead of reading stale bytes. */
	if (!as->shmem)
		filemap_write_range(as, 0, ~0ul, false);
	pthread_mutex_lock(&fc->lock);
	if (--as->refcount) {
		pthread_mutex_unlock(&fc->lock);
		return;
	}
	list_del(&as->node);
	pthread_mutex_unlock(&fc->lock);
	if (!as->shmem)   /* what a last-instant user dirtied */
		filemap_write_range(as, 0, ~0ul, false);
	mapping_evict(as);
	mapping_free(as);
}

/* ---------------------------------------------------------------- the index */

static struct list_head *bucket(struct address_space *as, unsigned long pgoff)
{
	return &as->buckets[(pgoff ^ (pgoff >> 17)) & (as->nbuckets - 1)];
}

/* Precondition: tree_lock. */
static struct page *index_find(struct address_space *as, unsigned long pgoff)
{
	struct list_head *h = bucket(as, pgoff);
	struct page *p;

	list_for_each_entry(p, h, lru)
		if (p->index == pgoff)
			return p;
	return NULL;
}

/* Precondition: tree_lock. Growing is best effort: a failed malloc keeps
 * the old table, with longer chains. */
static void index_grow(struct address_space *as)
{
	unsigned long n = as->nbuckets * 4;
	struct list_head *old = as->buckets, *nb = malloc(n * sizeof(*nb));
	unsigned long oldn = as->nbuckets;

	if (!nb)
		return;
	for (unsigned long i = 0; i < n; i++)
		INIT_LIST_HEAD(&nb[i]);
	as->buckets = nb;
	as->nbuckets = n;
	for (unsigned long b = 0; b < oldn; b++) {
		while (!list_empty(&old[b])) {
			struct page *p = container_of(old[b].next, struct page, lru);

			list_del(&p->lru);
			list_add_tail(&p->lru, bucket(as, p->index));
		}
	}
	free(old);
}

bool filemap_folio_cached(struct address_space *as, struct page *folio)
{
	bool cached;

	spin_lock(&as->tree_lock);
	cached = index_find(as, folio->index) == folio;
	spin_unlock(&as->tree_lock);
	return cached;
}

/* Precondition: tree_lock. */
static void take_out(struct address_space *as, struct page *p, struct list_head *out)
{
	list_del(&p->lru);
	list_add_tail(&p->lru, out);
	as->nrpages--;
}

void filemap_remove_range(struct address_space *as, unsigned long first, unsigned long last,
			  struct list_head *out)
{
	struct page *p, *n;

	spin_lock(&as->tree_lock);
	if (last - first < as->nbuckets) {
		for (unsigned long i = first; ; i++) {
			p = index_find(as, i);
			if (p)
				take_out(as, p, out);
			if (i == last)
				break;
		}
	} else {
		for (unsigned long b = 0; b < as->nbuckets; b++)
			list_for_each_entry_safe(p, n, &as->buckets[b], lru)
				if (p->index >= first && p->index <= last)
					take_out(as, p, out);
	}
	spin_unlock(&as->tree_lock);
}

struct page *filemap_lookup(struct address_space *as, unsigned long pgoff)
{
	struct page *p;

	spin_lock(&as->tree_lock);
	p = index_find(as, pgoff);
	if (p)
		get_page(p);
	spin_unlock(&as->tree_lock);
	return p;
}

static unsigned long size_pages(unsigned long long size)
{
	return (unsigned long)((size + PAGE_SIZE - 1) >> PAGE_SHIFT);
}

/* Is pgoff inside the file? Looks at the host again when it seems not. */
static bool within_size(struct address_space *as, unsigned long pgoff)
{
	struct stat st;
	bool in;

	spin_lock(&as->tree_lock);
	in = pgoff < size_pages(as->size);
	spin_unlock(&as->tree_lock);
	if (in || as->shmem || fstat(as->fd, &st))
		return in;
	spin_lock(&as->tree_lock);
	as->size = (unsigned long long)st.st_size;
	in = pgoff < size_pages(as->size);
	spin_unlock(&as->tree_lock);
	return in;
}

static int read_page(struct address_space *as, struct page *p, unsigned long pgoff)
{
	char *dst = page_address(as->machine, p);
	size_t done = 0;

	while (done < PAGE_SIZE) {
		ssize_t n = pread(as->fd, dst + done, PAGE_SIZE - done,
				  (off_t)(pgoff << PAGE_SHIFT) + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	memset(dst + done, 0, PAGE_SIZE - done);
	return 0;
}

int filemap_get_folio(struct address_space *as, unsigned long pgoff, struct page **foliop)
{
	struct sm_machine *m = as->machine;
	struct page *p, *fresh;

	if (!within_size(as, pgoff))
		return VM_FAULT_SIGBUS;
	p = filemap_lookup(as, pgoff);
	if (p) {
		*foliop = p;
		return 0;
	}
	/* What we read must not land in the cache after a hole punched
	 * meanwhile: the punch holds this for writing from before its
	 * fallocate until the cache is clean (truncate.c). */
	down_read(&as->invalidate_lock);
	fresh = alloc_pages(m, 0, as->shmem ? __GFP_ZERO : 0);
	if (!fresh) {
		up_read(&as->invalidate_lock);
		return VM_FAULT_OOM;
	}
	if (!as->shmem && read_page(as, fresh, pgoff)) {
		up_read(&as->invalidate_lock);
		put_page(m, fresh);
		return VM_FAULT_SIGBUS;   /* an I/O error: Linux's SIGBUS too */
	}
	fresh->mapping = as;
	fresh->index = pgoff;
	if (as->shmem)
		set_page_flag(fresh, PG_swapbacked);
	spin_lock(&as->tree_lock);
	p = index_find(as, pgoff);
	if (!p) {
		p = fresh;
		fresh = NULL;
		page_ref_add(p, 1);   /* the cache's reference; the caller keeps the first */
		list_add_tail(&p->lru, bucket(as, pgoff));
		if (++as->nrpages > 2 * as->nbuckets)
			index_grow(as);
	} else {
		get_page(p);
	}
	spin_unlock(&as->tree_lock);
	up_read(&as->invalidate_lock);
	if (fresh) {   /* another fault filled it first */
		fresh->mapping = NULL;
		put_page(m, fresh);
	}
	*foliop = p;
	return 0;
}

void filemap_for_each(struct address_space *as, unsigned long first, unsigned long last,
		      void (*fn)(struct address_space *as, struct page *folio, void *arg), void *arg)
{
	unsigned long n = 0, cap;
	struct page **batch;

	/* Few pages asked for: look each up. Otherwise snapshot the index. */
	if (last - first < 256) {
		for (unsigned long i = first; ; i++) {
			struct page *p = filemap_lookup(as, i);

			if (p) {
				fn(as, p, arg);
				put_page(as->machine, p);
			}
			if (i == last)
				break;
		}
		return;
	}
	spin_lock(&as->tree_lock);
	cap = as->nrpages;
	batch = malloc((cap ? cap : 1) * sizeof(*batch));
	if (batch) {
		for (unsigned long b = 0; b < as->nbuckets; b++) {
			struct page *p;

			list_for_each_entry(p, &as->buckets[b], lru) {
				if (p->index < first || p->index > last)
					continue;
				get_page(p);
				batch[n++] = p;
			}
		}
	}
	spin_unlock(&as->tree_lock);
	if (!batch)
		return;
	for (unsigned long i = 0; i < n; i++) {
		fn(as, batch[i], arg);
		put_page(as->machine, batch[i]);
	}
	free(batch);
}

/* ---------------------------------------------------------------- the fault */

/* Another CPU may be writing the source through a shared mapping: under
 * ThreadSanitizer copy as the guest does, with relaxed atomics. */
static void copy_racy_page(void *dst, const void *src)
{
#ifdef SM_TSAN
	for (size_t i = 0; i < PAGE_SIZE; i++)
		__atomic_store_n((char *)dst + i, __atomic_load_n((const char *)src + i, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
#else
	memcpy(dst, src, PAGE_SIZE);
#endif
}

int do_file_fault(struct vm_area_struct *vma, unsigned long addr, unsigned flags, pte_t *pmdp)
{
	struct sm_mm *mm = vma->vm_mm;
	struct sm_machine *m = mm->machine;
	bool write = flags & FAULT_FLAG_WRITE;
	struct page *folio, *copy = NULL;
	spinlock_t *ptl;
	pte_t *ptep, pte;
	int ret;

	ret = filemap_get_folio(vma->vm_file, linear_page_index(vma, addr), &folio);
	if (ret)
		return ret;
	if (write && !(vma->vm_flags & VM_SHARED)) {
		/* Linux's do_cow_fault: the private copy is the first mapping. */
		if (anon_vma_prepare(vma) || !(copy = folio_alloc_anon(m, 0, false))) {
			folio_put_refs(m, folio, 1);
			return VM_FAULT_OOM;
		}
		copy_racy_page(page_address(m, copy), page_address(m, folio));
	}
	ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);
	if (!ptep || !pte_none(ptep_get(ptep))) {
		/* A racing fault won, or the table was reclaimed: retry. */
		if (ptep)
			spin_unlock(ptl);
		if (copy)
			folio_put_refs(m, copy, 1);
		folio_put_refs(m, folio, 1);
		return 0;
	}
	if (copy) {
		folio_add_new_anon_rmap(copy, vma, addr);
		pte = pfn_pte(page_to_pfn(m, copy), vma->vm_page_prot);
		set_pte(ptep, pte_mkdirty(pte_mkwrite(pte_mkyoung(pte))));
		add_mm_counter(mm, MM_ANONPAGES, 1);
		spin_unlock(ptl);
		folio_put_refs(m, folio, 1);
		return 0;
	}
	/*
	 * Linux locks the folio and checks folio->mapping before mapping it,
	 * so that a truncation or hole punch (which takes the folio lock)
	 * cannot leave it mapped. Here the punch first takes the folio out of
	 * the index under tree_lock, then visits every PTE that may map it
	 * under that PTE's lock (truncate.c). Looking at the index under the
	 * PTE lock we hold orders us against both: if the folio is still
	 * there, our PTE lock section precedes the punch's visit to this PTE,
	 * which then finds and zaps what we map; if not, we back off and the
	 * fault starts over, reading the hole. The private copy above needs
	 * no such check: a copy taken before the punch is a COW the punch
	 * leaves alone anyway (Linux's even_cows = false).
	 */
	if (!filemap_folio_cached(vma->vm_file, folio)) {
		spin_unlock(ptl);
		folio_put_refs(m, folio, 1);
		__atomic_fetch_add(&m->punch_fault_retries, 1, __ATOMIC_RELAXED);
		return 0;
	}
	pte = pte_mkyoung(pfn_pte(page_to_pfn(m, folio), vma->vm_page_prot));
	if (write) {
		pte = pte_mkdirty(pte);
		folio_mark_dirty(folio);
	}
	folio_add_file_rmap_ptes(folio, folio, 1);
	add_mm_counter(mm, mm_counter(folio), 1);
	set_pte(ptep, pte);   /* the PTE keeps the lookup's reference */
	spin_unlock(ptl);
	return 0;
}

/* ---------------------------------------------------------------- checking */

int filemap_check(struct sm_machine *m, void (*bad)(void *arg, const char *what), void *arg)
{
	struct address_space *as;
	char what[160];
	int errors = 0;

	pthread_mutex_lock(&m->files.lock);
	list_for_each_entry(as, &m->files.mappings, node) {
		unsigned long n = 0;

		pthread_mutex_lock(&as->i_mmap_lock);
		if (it_check(&as->i_mmap)) {
			snprintf(what, sizeof(what), "file %s: rmap tree broken", as->path);
			bad(arg, what);
			errors++;
		}
		pthread_mutex_unlock(&as->i_mmap_lock);
		spin_lock(&as->tree_lock);
		for (unsigned long b = 0; b < as->nbuckets; b++) {
			struct page *p;

			list_for_each_entry(p, &as->buckets[b], lru) {
				unsigned long pfn = page_to_pfn(m, p);

				n++;
				/* The cache's reference, one per mapping PTE, and
				 * transient ones (faults, writeback, mmu_gather). */
				if (p->mapping != as || page_is_free(m, pfn) ||
				    page_ref_count(p) < 1 + page_mapcount(p) ||
				    folio_order(p) || bucket(as, p->index) != &as->buckets[b]) {
					snprintf(what, sizeof(what),
						 "file %s: cached pfn %lu (index %lu) refcount %d mapcount %d",
						 as->path, pfn, p->index, page_ref_count(p),
						 page_mapcount(p));
					bad(arg, what);
					errors++;
				}
			}
		}
		if (n != as->nrpages) {
			snprintf(what, sizeof(what), "file %s: %lu cached folios, nrpages %lu",
				 as->path, n, as->nrpages);
			bad(arg, what);
			errors++;
		}
		spin_unlock(&as->tree_lock);
	}
	pthread_mutex_unlock(&m->files.lock);
	return errors;
}
