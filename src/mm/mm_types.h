/*
 * The machine-independent VM's data structures, and the rules for touching
 * them. Every field says which lock protects it.
 *
 * Lock order (take top to bottom; never the reverse):
 *
 *   ksm->mutex               mutex; ksmd's trees and rmap items (ksm.h)
 *   pt_scanner.lock          mutex; the scanner's list of opted-in mms (pt_reclaim.c)
 *   mm->mmap_lock            rwsem; sleeping. Protects the VMA tree and VMA fields.
 *     mm->munmap_reserved.lock  mutex; munmap's detached ranges (munmap.c); only
 *                            the page-table locks below are taken under it;
 *                            never held while waiting for the mmap_lock
 *     mapping->invalidate_lock  rwsem; held for writing by a hole punch
 *                            (truncate.c), for reading by a fault filling the
 *                            page cache (filemap.c); nothing above it is taken
 *                            under it
 *     mapping->wb_lock       mutex; one writeback of a file at a time (writeback.c);
 *                            also held by a hole punch, under invalidate_lock
 *       mapping->i_mmap_lock mutex; the file rmap, the interval tree of the
 *                            VMAs mapping a file (file_rmap.c); also held by
 *                            fork's and mremap's copy and move of file PTEs
 *     anon_vma->lock         spinlock; the anon_vma's chain list
 *       mm->page_table_lock  spinlock; populating PGD and PUD entries
 *         PMD lock           spinlock in the PMD table's struct page (pmd_lockptr):
 *                            populating or clearing PMD entries (installing/freeing
 *                            a PTE table)
 *           PTE lock         spinlock in the PTE table's struct page (pte_lockptr):
 *                            every change of a leaf entry, folio rmap updates
 *             folio mapcount lock  spinlock in a large folio's head (its ptl):
 *                            the page mapcounts and large_mapcount (rmap.c)
 *             zone->lock     spinlock; buddy free lists
 *             mapping->tree_lock  spinlock; a file's page cache index and size,
 *                            never held while taking another lock (filemap.c)
 *             machine->files.lock mutex; the machine's files and their refcounts
 *                            (filemap.c); taken with none of the file locks
 *                            above held, except by the checker, which takes
 *                            i_mmap_lock and tree_lock under it
 *             ksm->mmlist_lock  spinlock; the list of mms ksmd scans
 *             cpu->flush_lock   (hw/) a CPU's TLB-flush mailbox
 *
 * A PTE may change without its lock in exactly one way: the CPU walker sets
 * the accessed and dirty bits with compare-and-swap. Code that rewrites a
 * PTE under the lock therefore uses atomic exchange or bit operations.
 *
 * Page-table pages are freed only after a TLB shootdown and an RCU grace
 * period (mmu_gather.c), so lockless walkers never read a freed table.
 */
#ifndef SM_MM_TYPES_H
#define SM_MM_TYPES_H

#include <pthread.h>
#include <softmm.h>
#include "base/compiler.h"
#include "base/list.h"
#include "base/spinlock.h"
#include "base/rwsem.h"
#include "base/gaptree.h"
#include "base/interval_tree.h"
#include "hw/cpu.h"
#include "hw/pmap.h"
#include "hw/ram.h"

/* ---------------------------------------------------------------- frames */

/* struct page flags: atomic bit operations (page_flags.h). */
enum pageflags {
	PG_buddy,          /* free, head of a buddy block of `order` */
	PG_pgtable,        /* a page-table page */
	PG_head,           /* head of a folio of order >= 1 */
	PG_tail,           /* tail page of a large folio */
	PG_anon_exclusive, /* anon page mapped by exactly one mm's PTE(s) may be reused on write */
	PG_dirty,
	PG_swapbacked,     /* anon, not lazyfree */
	PG_lazyfree,       /* MADV_FREE: may be discarded while clean */
	PG_reserved,       /* never allocated: frame 0, the zero page */
	PG_zero,           /* the shared zero page */
	PG_pcp,            /* free, on a per-CPU list */
	PG_poisoned,       /* free and filled with poison (SM_CFG_POISON_FREED) */
};

/*
 * One per frame, 64 bytes. For a folio, the head page carries the folio's
 * state; tail pages carry their own mapcount (and, in page 1, the folio's
 * total mapcount for large folios).
 */
struct page {
	uint32_t flags;            /* atomic bit ops */
	int32_t refcount;          /* atomic; 0 = free */
	int32_t mapcount;          /* PTEs mapping this page; atomic (order 0) or under
				    * the folio mapcount lock (large folios) */
	uint8_t order;             /* folio order (head) / buddy order (PG_buddy) */
	uint8_t pad0[3];
	void *mapping;             /* anon: anon_vma | PAGE_MAPPING_ANON; PTE lock of a mapping PTE
				    * (and the folio's own serialization) for changes;
				    * page cache: its struct address_space, set before insertion */
	unsigned long index;       /* anon: linear page index in the anon_vma's space (vm_pgoff based);
				    * page cache: the page offset in the file */
	struct list_head lru;      /* buddy/pcp free lists (zone->lock or owner CPU);
				    * mmu_gather batches while being freed;
				    * page cache: its hash chain (mapping->tree_lock) */
	spinlock_t ptl;            /* PG_pgtable: the table's lock (PTE or PMD lock);
				    * large folio head: its mapcount lock */
	int32_t large_mapcount;    /* page 1 of a large folio: PTEs mapping any of its pages */
	unsigned long private;     /* PG_pgtable: non-none entries (for reclaim and checking) */
};

_Static_assert(sizeof(struct page) <= 64, "per-frame metadata is at most 64 bytes");

#define PAGE_MAPPING_ANON 0x1ul

static inline bool test_bit_flag(const struct page *p, int bit)
{
	return (__atomic_load_n(&p->flags, __ATOMIC_RELAXED) >> bit) & 1;
}
static inline void set_page_flag(struct page *p, int bit)
{
	__atomic_fetch_or(&p->flags, 1u << bit, __ATOMIC_RELAXED);
}
static inline void clear_page_flag(struct page *p, int bit)
{
	__atomic_fetch_and(&p->flags, ~(1u << bit), __ATOMIC_RELAXED);
}

/* A folio is named by its head page; the struct is a view, not storage. */
struct folio;
static inline struct folio *page_folio_head(struct page *head) { return (struct folio *)head; }

/* ---------------------------------------------------------------- zone */

#define MAX_ORDER 10
#define NR_ORDERS (MAX_ORDER + 1)

struct free_area {
	struct list_head list;     /* zone->lock */
	unsigned long nr;          /* zone->lock */
};

struct zone {
	spinlock_t lock;
	struct free_area area[NR_ORDERS];   /* lock */
	unsigned long free_pages;           /* atomic; includes per-CPU lists */
	unsigned long managed;              /* immutable: frames the allocator owns */
};

/* Per-CPU list of order-0 frames: touched only by the owning CPU's thread. */
#define PCP_HIGH 512
#define PCP_BATCH 64
struct per_cpu_pages {
	struct list_head list;
	unsigned count;
};

/* ---------------------------------------------------------------- rmap */

struct anon_vma {
	struct anon_vma *root;     /* immutable */
	spinlock_t lock;           /* chain list */
	int refcount;              /* atomic: VMAs chained + folios pointing here */
	struct list_head chain;    /* anon_vma_chain.same_anon_vma; lock */
	unsigned long num_active_vmas;   /* lock */
};

struct anon_vma_chain {
	struct vm_area_struct *vma;
	struct anon_vma *anon_vma;
	struct list_head same_vma;       /* vma->anon_vma_chain; mmap_lock write */
	struct list_head same_anon_vma;  /* anon_vma->chain; anon_vma->lock */
};

/* ---------------------------------------------------------------- VMAs */

/* Linux's vm_flags values, so that masks and merge rules read the same. */
#define VM_NONE       0x00000000ul
#define VM_READ       0x00000001ul
#define VM_WRITE      0x00000002ul
#define VM_EXEC       0x00000004ul
#define VM_SHARED     0x00000008ul
#define VM_MAYREAD    0x00000010ul
#define VM_MAYWRITE   0x00000020ul
#define VM_MAYEXEC    0x00000040ul
#define VM_MAYSHARE   0x00000080ul
#define VM_GROWSDOWN  0x00000100ul
#define VM_LOCKED     0x00002000ul
#define VM_SEQ_READ   0x00008000ul
#define VM_RAND_READ  0x00010000ul
#define VM_DONTCOPY   0x00020000ul
#define VM_DONTEXPAND 0x00040000ul
#define VM_ACCOUNT    0x00100000ul
#define VM_NORESERVE  0x00200000ul
#define VM_WIPEONFORK 0x02000000ul
#define VM_DONTDUMP   0x04000000ul
#define VM_SOFTDIRTY  0x08000000ul
#define VM_HUGEPAGE   0x20000000ul
#define VM_NOHUGEPAGE 0x40000000ul
#define VM_MERGEABLE  0x80000000ul

#define VM_ACCESS_FLAGS (VM_READ | VM_WRITE | VM_EXEC)
/* Flags that do not prevent two VMAs from merging (Linux's VM_IGNORE_MERGE). */
#define VM_IGNORE_MERGE VM_SOFTDIRTY

struct vm_area_struct {
	struct gt_node vm_node;          /* start/end; in mm->mm_mt; mmap_lock write */
	struct sm_mm *vm_mm;             /* immutable */
	unsigned long vm_flags;          /* mmap_lock write (read lock to read) */
	pte_t vm_page_prot;              /* derived from vm_flags; same lock */
	unsigned long vm_pgoff;          /* mmap_lock write */
	struct anon_vma *anon_vma;       /* set once under mmap_lock read + page_table_lock
					  * (anon_vma_prepare), else mmap_lock write */
	struct list_head anon_vma_chain; /* anon_vma_chain.same_vma; mmap_lock write or
					  * mm->page_table_lock during anon_vma_prepare */
	bool detached;                   /* removed from the tree; mmap_lock write */
	struct vm_area_struct *next_detached;  /* munmap's list of detached VMAs; its owner */
	/* File mappings (filemap.c): the file, one reference per VMA, set
	 * before the VMA is linked and kept until it is freed; NULL for
	 * anonymous memory. shared_rb is the VMA's node in the file rmap
	 * (pgoff range), under vm_file->i_mmap_lock. */
	struct address_space *vm_file;
	struct it_node shared_rb;
	bool in_file_rmap;               /* i_mmap_lock */
};

#define vm_start vm_node.start
#define vm_end   vm_node.end

static inline unsigned long vma_pages(const struct vm_area_struct *v)
{
	return (v->vm_end - v->vm_start) >> PAGE_SHIFT;
}

static inline struct vm_area_struct *node_vma(struct gt_node *n)
{
	return n ? container_of(n, struct vm_area_struct, vm_node) : NULL;
}

/* ---------------------------------------------------------------- mm */

/*
 * Ranges that a munmap detached and is still zapping after it let the
 * mmap_lock go (munmap.c): no new mapping may land there until it is done.
 * The tree holds the detached VMAs themselves (vm_node). It changes under
 * the mmap_lock (either mode) and `lock`, so holding the mmap_lock for
 * writing, or `lock`, is enough to read it.
 */
struct munmap_reserved {
	pthread_mutex_t lock;            /* after mm->mmap_lock */
	pthread_cond_t released;         /* broadcast when ranges leave the tree */
	struct gt_root vmas;             /* detached vm_area_structs; see above */
};

enum { MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES, NR_MM_COUNTERS };

#define TASK_SIZE ((1ul << 47) - PAGE_SIZE)
#define DEFAULT_MAX_MAP_COUNT 65530

struct sm_mm {
	struct sm_machine *machine;      /* immutable */
	struct pmap pmap;                /* root table, asid, cpumask */
	struct rwsem mmap_lock;
	struct gt_root mm_mt;            /* VMAs; mmap_lock (write to change) */
	int map_count;                   /* mmap_lock write */
	spinlock_t page_table_lock;      /* PGD/PUD population; anon_vma_prepare */

	long rss[NR_MM_COUNTERS];        /* atomic */
	long pgtables_bytes;             /* atomic: PUD, PMD and PTE tables (VmPTE) */
	unsigned long hiwater_rss;       /* atomic max */
	unsigned long hiwater_vm;        /* mmap_lock write */
	unsigned long total_vm, data_vm, exec_vm, stack_vm, locked_vm;  /* mmap_lock write */

	unsigned long mmap_base;         /* immutable */
	unsigned long task_size;         /* immutable */
	unsigned long start_brk, brk;    /* mmap_lock write */
	bool brk_set;                    /* start_brk chosen; mmap_lock write */

	long rcu_pending_tables;         /* atomic: tables waiting for a grace period */

	/* munmap's detached VMAs whose zap dropped the mmap_lock (munmap.c). */
	struct munmap_reserved munmap_reserved;

	struct list_head pt_scan_node;   /* machine->pt_scanner.mms; pt_scanner.lock */
	bool pt_scan;                    /* opted in to the scanner; pt_scanner.lock */
	unsigned long pt_scan_cursor;    /* next address to scan; pt_scanner.lock */

	/* KSM (ksm.h) */
	struct ksm_mm_slot *ksm_slot;    /* on ksmd's list; ksm->mmlist_lock to change */
	bool ksm_merge_any;              /* PR_SET_MEMORY_MERGE; mmap_lock write */
	long ksm_merging_pages;          /* atomic: this mm's rmap items on stable nodes */
	long ksm_rmap_items;             /* atomic */
	long ksm_zero_pages;             /* atomic: PTEs KSM pointed at the zero page */
};

/* ---------------------------------------------------------------- machine */

struct address_space;

/* The machine's host files (filemap.c) and their flusher (writeback.c). */
struct file_cache {
	pthread_mutex_t lock;            /* mappings, each one's refcount */
	struct list_head mappings;       /* address_space.node */
	unsigned long next_shmem_ino;    /* lock */
	pthread_mutex_t flusher_lock;    /* everything below but the statistics */
	pthread_cond_t flusher_wake;
	pthread_t flusher;
	bool flusher_running, flusher_stop, flusher_configured;
	unsigned flusher_interval_ms;
	uint64_t flusher_passes, pages_written;   /* atomic */
};

struct sm_cpu {
	struct hw_cpu *hw;               /* translation state; owner thread */
	struct sm_machine *machine;      /* immutable */
	struct sm_mm *mm;                /* owner thread */
	struct per_cpu_pages pcp;        /* owner thread */
};

/* The background page-table reclaim scanner (pt_reclaim.c). */
struct pt_scanner {
	pthread_mutex_t lock;            /* everything below but the statistics */
	pthread_cond_t wake;
	pthread_t thread;
	bool running, stop;
	unsigned interval_ms;
	unsigned long pages_per_pass;
	struct list_head mms;            /* sm_mm.pt_scan_node */
	uint64_t passes, tables_freed;   /* atomic */
};

struct sm_machine {
	struct ram ram;                  /* immutable */
	struct page *pages;              /* frame metadata, one per frame; immutable pointer */
	struct zone zone;
	struct hw_cpus cpus;
	unsigned flags;                  /* SM_CFG_*; immutable */
	unsigned long zero_pfn;          /* immutable */
	uint32_t next_asid;              /* atomic */
	int max_map_count;               /* immutable */
	bool munmap_zap_write_locked;    /* immutable: SM_CFG_MUNMAP_ZAP_WRITE_LOCKED */
	bool fork_batch;                 /* immutable: !SM_CFG_NO_FORK_BATCH */
	bool pt_reclaim_on_zap;          /* immutable: !SM_CFG_NO_PT_RECLAIM_ON_ZAP */
	unsigned anon_orders_always;     /* immutable: folio orders for every anon fault */
	unsigned anon_orders_madvise;    /* immutable: ... in VM_HUGEPAGE VMAs */
	long nr_mms;                     /* atomic */
	long pgtable_frames;             /* atomic */
	struct pt_scanner pt_scanner;
	/* KSM */
	struct ksm *ksm;                 /* immutable pointer (ksm.h) */
	uint64_t cow_bytes_copied;       /* atomic */
	uint64_t folios_split;           /* atomic */
	/* File mappings (filemap.c, writeback.c). */
	bool delay_rmap;                 /* immutable: !SM_CFG_NO_DELAY_RMAP */
	struct file_cache files;

	/* munmap (munmap.c) */
	uint64_t munmap_lock_drops;      /* atomic: zaps that let a waiting writer in */
	uint64_t munmap_reserve_waits;   /* atomic: mappings that waited for a detached range */

	/* Page-table reclaim on zap (memory.c, pt_reclaim.c) */
	uint64_t pt_zap_freed;           /* atomic: tables the zap freed itself */
	uint64_t pt_zap_rechecked;       /* atomic: ... left to the locked recheck */

	/* MADV_REMOVE (truncate.c, filemap.c) */
	uint64_t punched_pages;          /* atomic: cache folios hole punches dropped */
	uint64_t punch_fault_retries;    /* atomic: faults that found theirs dropped */
};

static inline struct page *pfn_to_page(struct sm_machine *m, unsigned long pfn)
{
	return &m->pages[pfn];
}
static inline unsigned long page_to_pfn(struct sm_machine *m, const struct page *p)
{
	return (unsigned long)(p - m->pages);
}
static inline void *page_address(struct sm_machine *m, const struct page *p)
{
	return pfn_to_virt(&m->ram, page_to_pfn(m, p));
}

/* The sm_cpu the calling thread last used on this machine, if any: frees
 * and allocations go through its per-CPU list, and a TLB flush targeting
 * only it needs no cross-thread handshake. */
struct sm_cpu *this_cpu(struct sm_machine *m);
/* Make c the calling thread's CPU for this_cpu() (on switch and on faults). */
void sm_cpu_bind_thread(struct sm_cpu *c);

static inline void add_mm_counter(struct sm_mm *mm, int member, long value)
{
	long now = __atomic_add_fetch(&mm->rss[member], value, __ATOMIC_RELAXED);

	(void)now;
}
static inline long get_mm_counter(struct sm_mm *mm, int member)
{
	return __atomic_load_n(&mm->rss[member], __ATOMIC_RELAXED);
}
long get_mm_rss(struct sm_mm *mm);
void update_hiwater_rss(struct sm_mm *mm);

#endif
