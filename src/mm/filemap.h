/*
 * Host files mapped into guests: the page cache (filemap.c), the file rmap
 * (file_rmap.c), writeback (writeback.c) and shared anonymous memory
 * (shmem.c). Linux counterparts: struct address_space, mm/filemap.c,
 * mm/page-writeback.c, the i_mmap interval tree, mm/shmem.c.
 */
#ifndef SM_MM_FILEMAP_H
#define SM_MM_FILEMAP_H

#include <sys/types.h>
#include "base/rwsem.h"
#include "mm/mm_types.h"

/*
 * One per host file (device and inode) mapped anywhere in the machine, or
 * per shared anonymous mapping (shmem: no host file). Its page cache holds
 * order-0 folios in simulated RAM, each with one reference for the cache;
 * a PTE mapping one holds one more. The object lives while VMAs map it (one
 * reference each) or someone works on it (msync, the flusher); when the
 * last reference goes its dirty folios are written back and the cache is
 * dropped, so a later mapping reads what the host file then holds.
 */
struct address_space {
	struct sm_machine *machine;      /* immutable */
	dev_t dev;                       /* immutable: st_dev (shmem: 00:01) */
	ino_t ino;                       /* immutable */
	int fd;                          /* our dup of the host fd; -1 for shmem. The number
					  * never changes; a writable fd mapping the file later
					  * takes its place (dup3) if ours was read-only */
	bool fd_writable;                /* machine->files.lock */
	bool shmem;                      /* immutable */
	char *path;                      /* immutable: the name maps shows */
	long refcount;                   /* machine->files.lock */
	struct list_head node;           /* machine->files.mappings; files.lock */

	spinlock_t tree_lock;            /* the index, nrpages, size */
	struct list_head *buckets;       /* hash of pgoff -> folio, chained by page->lru */
	unsigned long nbuckets, nrpages;
	unsigned long long size;         /* i_size as last seen */

	pthread_mutex_t i_mmap_lock;
	struct it_root i_mmap;           /* VMAs by pgoff range; i_mmap_lock */

	pthread_mutex_t wb_lock;         /* one writeback at a time */

	/* Linux's mapping->invalidate_lock: held for writing while a hole is
	 * punched (truncate.c), for reading by a fault that fills the cache
	 * (filemap_get_folio's miss), so that no folio read before the punch
	 * enters the cache after it. */
	struct rwsem invalidate_lock;
};

/* The file behind an open host fd, with a reference; NULL and *err on failure. */
struct address_space *filemap_get(struct sm_machine *m, int fd, int *err);
/* A new in-memory file of size bytes (MAP_SHARED|MAP_ANONYMOUS). */
struct address_space *shmem_file_setup(struct sm_machine *m, unsigned long size, int *err);
void mapping_get(struct address_space *as);
/* An unlinked address_space with refcount 1, or NULL; and its undoing. */
struct address_space *mapping_alloc(struct sm_machine *m);
void mapping_free(struct address_space *as);
/* The last put writes back, drops the page cache and closes the host fd. */
void mapping_put(struct address_space *as);

/*
 * page->mapping is read without the folio's owner's locks: ksmd turns an
 * anonymous page into a KSM page (and a write fault turns it back) while
 * another mm's zap may be looking. Both name anonymous memory, so the answer
 * is the same either way; the load is atomic so that it is no data race.
 */
static inline unsigned long folio_mapping_word(const struct page *head)
{
	return (unsigned long)__atomic_load_n(&head->mapping, __ATOMIC_RELAXED);
}

static inline bool page_in_cache(const struct page *head)
{
	unsigned long mapping = folio_mapping_word(head);

	return mapping && !(mapping & PAGE_MAPPING_ANON);
}

/* The RSS counter a folio mapped by a PTE counts in. */
static inline int mm_counter(const struct page *head)
{
	if (folio_mapping_word(head) & PAGE_MAPPING_ANON)
		return MM_ANONPAGES;
	return test_bit_flag(head, PG_swapbacked) ? MM_SHMEMPAGES : MM_FILEPAGES;
}

static inline void folio_mark_dirty(struct page *head)
{
	if (!test_bit_flag(head, PG_dirty))
		set_page_flag(head, PG_dirty);
}

/* The page-cache folio at pgoff with a reference for the caller: 0, or
 * VM_FAULT_SIGBUS (wholly beyond end of file, or the host read failed) or
 * VM_FAULT_OOM. */
int filemap_get_folio(struct address_space *as, unsigned long pgoff, struct page **foliop);
/* The cached folio at pgoff, with a reference, or NULL (no I/O). */
struct page *filemap_lookup(struct address_space *as, unsigned long pgoff);
/* Take the cached folios of [first, last] out of the index onto *out,
 * chained by their lru link, each still holding the cache's reference. */
void filemap_remove_range(struct address_space *as, unsigned long first, unsigned long last,
			  struct list_head *out);
/* Call fn on every cached folio whose index is in [first, last], under no
 * lock but with a reference held across the call. */
void filemap_for_each(struct address_space *as, unsigned long first, unsigned long last,
		      void (*fn)(struct address_space *as, struct page *folio, void *arg), void *arg);

/* Fault on a none PTE of a file VMA (the mmap_lock held for reading, no PTE
 * lock): maps the cache folio, or for a write to a private mapping a copy.
 * 0 or VM_FAULT_*. */
int do_file_fault(struct vm_area_struct *vma, unsigned long addr, unsigned flags, pte_t *pmdp);

/* file_rmap.c. Preconditions: mmap_lock held for writing (the VMA's range
 * is stable); they take i_mmap_lock. */
void file_rmap_link(struct vm_area_struct *vma);
void file_rmap_unlink(struct vm_area_struct *vma);
/* Change a VMA's range and offset, moving its node if it is linked. */
void file_rmap_set_range(struct vm_area_struct *vma, unsigned long start, unsigned long end,
			 unsigned long pgoff);
/* Call fn on each VMA mapping page pgoff of as, under i_mmap_lock. */
void file_rmap_walk(struct address_space *as, unsigned long pgoff,
		    bool (*fn)(struct vm_area_struct *vma, unsigned long addr, void *arg), void *arg);
/* Call fn on each VMA mapping a page of [first, last], with the addresses
 * [start, end) of its part that does, under i_mmap_lock. */
void file_rmap_walk_range(struct address_space *as, unsigned long first, unsigned long last,
			  void (*fn)(struct vm_area_struct *vma, unsigned long start,
				     unsigned long end, void *arg),
			  void *arg);

/* truncate.c */
/* fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) over the pages
 * [first, last] of the file: the host file's blocks (its error returned as
 * is), then the cached folios, unmapped from every mm and dropped, dirty or
 * not. Precondition: the caller keeps as alive (a VMA's reference). */
long mapping_punch_hole(struct address_space *as, unsigned long first, unsigned long last);

/* writeback.c */
/* Write-protect and clean every PTE mapping the folio (flushing the TLBs);
 * true if one was dirty. */
bool folio_mkclean(struct sm_machine *m, struct address_space *as, struct page *folio);
/* Write back the dirty folios of [first, last] (page offsets); with sync,
 * also fdatasync. 0 or -errno (the first error). */
int filemap_write_range(struct address_space *as, unsigned long first, unsigned long last, bool sync);
/* sm_mm_destroy: write back what this mm's shared file VMAs dirtied. */
void mm_writeback_shared(struct sm_mm *mm);
void flusher_start_default(struct sm_machine *m);
void files_init(struct sm_machine *m);
void files_destroy(struct sm_machine *m);

/* Whether folio is the cached folio at its index (a punched hole took it
 * out otherwise). Takes tree_lock. */
bool filemap_folio_cached(struct address_space *as, struct page *folio);

/* check.c's view: problems found in the page cache of m's files. */
int filemap_check(struct sm_machine *m, void (*bad)(void *arg, const char *what), void *arg);

#endif
