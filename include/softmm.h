/*
 * softmm — Linux's virtual-memory subsystem for user address spaces, as a library.
 *
 * A machine (struct sm_machine) owns simulated physical RAM and a set of CPUs.
 * An address space (struct sm_mm) has VMAs and 4-level x86-64 page tables that
 * live inside that RAM. Threads reach guest memory through an struct sm_cpu,
 * which translates through a per-CPU software TLB and faults like a real CPU.
 *
 * Every system call follows Linux x86-64 semantics: the same flag values as
 * <sys/mman.h>, the same argument checks, and -errno on failure (never a crash).
 *
 * Errors that are specific to the simulation:
 *   - Running out of simulated RAM is -ENOMEM from a system call (MAP_POPULATE,
 *     mremap, page-table allocation) and -EFAULT from an access (sm_read /
 *     sm_write), which a guest would see as SIGSEGV/SIGBUS.
 *   - An access that the protection forbids, or to an unmapped address, is
 *     -EFAULT (the guest's SIGSEGV).
 *   - An access to a page of a file mapping that lies wholly beyond the end
 *     of the file (or whose read from the host failed) is SM_SIGBUS, the
 *     guest's SIGBUS.
 *
 * Threading: any thread may call the system calls on any mm. Each thread that
 * accesses memory uses its own sm_cpu (an sm_cpu is not shared between threads
 * at the same time). sm_mm_destroy and sm_machine_destroy must not race with
 * other calls on the same object.
 */
#ifndef SOFTMM_H
#define SOFTMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SOFTMM_VERSION_MAJOR 0
#define SOFTMM_VERSION_MINOR 1

struct sm_machine;
struct sm_mm;
struct sm_cpu;

/* Machine flags (sm_config.flags). */
#define SM_CFG_POISON_FREED   0x1u  /* fill freed frames with 0x6b and check on alloc */
#define SM_CFG_CHECK_INVARIANTS 0x2u /* run sm_mm_check after every system call (slow) */
#define SM_CFG_PREFAULT_RAM   0x4u  /* back all of RAM in the host at creation */
#define SM_CFG_MUNMAP_ZAP_WRITE_LOCKED 0x8u /* munmap zaps under the write lock (the pre-4.20 way), to compare */

#define SM_CFG_PT_RECLAIM_ON_ZAP 0x40u /* accepted and ignored: MADV_DONTNEED frees the PTE tables
					 * it empties by default now (Linux 6.14) */
#define SM_CFG_NO_PT_RECLAIM_ON_ZAP 0x80u /* MADV_DONTNEED keeps the PTE tables it empties
					    * (Linux before 6.14, or without CONFIG_PT_RECLAIM) */
#define SM_CFG_NO_FORK_BATCH  0x10u /* fork copies PTEs one by one, even within a large folio */
#define SM_CFG_ANON_ORDERS    0x20u /* take anon_orders_* literally (else madvise = 2 MiB only) */
#define SM_CFG_NO_DELAY_RMAP  0x100u /* zap removes a dirty file folio's rmap before the TLB
				       * flush (before Linux 6.2): writes can be lost, to show it */
#define SM_CFG_NO_KSM_REUSE   0x200u /* a write to a KSM page always copies (Linux >= 5.9) */

/*
 * Large anonymous folios: bit n of anon_orders_always allows folios of 2^n
 * pages (n = 2..9: 16 KiB .. 2 MiB) for every anonymous write fault, as
 * /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled = always;
 * anon_orders_madvise allows them in MADV_HUGEPAGE regions (= madvise).
 * Without SM_CFG_ANON_ORDERS the machine behaves like a default Linux with
 * THP=madvise: 2 MiB folios in MADV_HUGEPAGE regions. softmm maps them with
 * PTEs (no PMD mappings yet, so AnonHugePages stays 0).
 */
struct sm_config {
	size_t   ram_bytes;   /* simulated RAM; 0 = 4 GiB. Backed lazily by the host. */
	unsigned max_cpus;    /* most sm_cpu objects alive at once; 0 = 64 */
	unsigned flags;       /* SM_CFG_* */
	unsigned anon_orders_always;
	unsigned anon_orders_madvise;
};

struct sm_machine *sm_machine_create(const struct sm_config *cfg); /* cfg may be NULL; NULL+errno */
void               sm_machine_destroy(struct sm_machine *m);

struct sm_mm *sm_mm_create(struct sm_machine *m);   /* NULL+errno */
void          sm_mm_destroy(struct sm_mm *mm);       /* exit: every frame goes back */

/* System calls. >= 0 on success (an address for mmap, mremap, brk), -errno on failure.
 *
 * sm_mmap supports anonymous private mappings with MAP_FIXED, MAP_FIXED_NOREPLACE,
 * MAP_POPULATE, MAP_NORESERVE, MAP_LOCKED (VM_LOCKED, populated; no mlock limits),
 * MAP_STACK (VM_NOHUGEPAGE, as Linux 6.7+), MAP_32BIT, and MAP_GROWSDOWN (a plain
 * mapping: faults below it do not grow it). Unknown flag bits are ignored, as
 * Linux does for MAP_PRIVATE.
 *
 * File mappings: fd is a host file descriptor of a regular file (others:
 * -ENODEV), MAP_SHARED or MAP_PRIVATE, with Linux's access checks (-EACCES for
 * a file not open for reading, or MAP_SHARED with PROT_WRITE on one not open
 * for writing). softmm keeps its own page cache of the file in simulated RAM,
 * shared by every mm of the machine and filled with pread; guest writes to
 * shared mappings reach the host file by pwrite on sm_msync, when the file's
 * last mapping goes, at sm_mm_destroy, and from a flusher thread (sm_flusher).
 * The host file is read when a page is first needed: host writes to a file
 * that is mapped meanwhile are not seen. MAP_SHARED|MAP_ANONYMOUS is shared
 * memory (an in-memory file; fork keeps it shared). Not supported yet:
 * MAP_DROPPABLE (-EOPNOTSUPP), MAP_HUGETLB (-ENOMEM, as a kernel with no huge
 * pages reserved), device files.
 */
long sm_mmap(struct sm_mm *mm, unsigned long addr, unsigned long len, int prot,
	     int flags, int fd, long offset);
long sm_munmap(struct sm_mm *mm, unsigned long addr, unsigned long len);
/* msync(2): Linux's argument checks and errors (-EINVAL, -ENOMEM for unmapped
 * parts, -EBUSY for MS_INVALIDATE on locked memory). MS_SYNC writes the dirty
 * pages of shared file mappings back and fdatasyncs; MS_ASYNC writes them back
 * too (synchronously: the host's page cache is not softmm's, so only written
 * data is visible to the host's read(2)); MS_INVALIDATE has nothing to drop. */
long sm_msync(struct sm_mm *mm, unsigned long addr, unsigned long len, int flags);
long sm_mprotect(struct sm_mm *mm, unsigned long addr, unsigned long len, int prot);
/* madvise(2): Linux's advice values, checks and errors. MADV_REMOVE on a
 * shared mapping (shared anonymous memory too) punches a hole in its file:
 * fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) on the host file (its
 * error returned as is), then the range's cached pages are unmapped from every
 * mm of the machine and dropped, dirty or not (private copy-on-write copies
 * stay); -EINVAL on private anonymous or VM_LOCKED memory, -EACCES on private
 * file mappings and shared mappings of files opened read-only. Not
 * implemented (-EINVAL): MADV_COLLAPSE, MADV_HWPOISON, MADV_SOFT_OFFLINE,
 * MADV_GUARD_INSTALL/REMOVE. */
long sm_madvise(struct sm_mm *mm, unsigned long addr, unsigned long len, int advice);
long sm_mremap(struct sm_mm *mm, unsigned long old_addr, unsigned long old_len,
	       unsigned long new_len, int flags, unsigned long new_addr);
/* brk(0) and any refused change return the current break, as Linux does. */
long sm_brk(struct sm_mm *mm, unsigned long brk);
/* Where the heap starts (the kernel sets it after the ELF's bss); before any brk. */
long sm_mm_set_brk_base(struct sm_mm *mm, unsigned long start_brk);

struct sm_cpu *sm_cpu_create(struct sm_machine *m);  /* NULL+errno (EAGAIN past max_cpus) */
void           sm_cpu_destroy(struct sm_cpu *cpu);
void           sm_cpu_switch_mm(struct sm_cpu *cpu, struct sm_mm *mm); /* mm may be NULL */

/* Guest accesses through the CPU's current mm: 0, or -EFAULT (unmapped, forbidden by the
 * protection, or no RAM left), or SM_SIGBUS (a file page beyond the end of the file).
 * A partial access may have copied a prefix. */
#define SM_SIGBUS (-4096L)
long sm_read(struct sm_cpu *cpu, unsigned long addr, void *buf, size_t len);
long sm_write(struct sm_cpu *cpu, unsigned long addr, const void *buf, size_t len);

/* fork(2): *child gets a copy of parent's address space (private memory
 * copy-on-write, MADV_DONTFORK ranges left out, MADV_WIPEONFORK ranges
 * empty). 0 or -errno (-ENOMEM). */
long sm_fork(struct sm_mm *parent, struct sm_mm **child);

/*
 * Empty page-table reclaim. MADV_DONTNEED frees the PTE tables it empties, as
 * Linux 6.14 with CONFIG_PT_RECLAIM (SM_CFG_NO_PT_RECLAIM_ON_ZAP: it keeps
 * them). Beyond Linux:
 *  - sm_madvise(mm, addr, len, SM_MADV_PT_RECLAIM) frees every empty PTE
 *    table intersecting the range under the mmap read lock, then the PMD and
 *    PUD tables left empty (those under the write lock, briefly). Holes in
 *    the range are not an error: that is where empty tables linger.
 *  - a background scanner per machine, off by default, reclaims the empty
 *    tables of the mms that opted in with sm_mm_set_pt_reclaim (like a prctl).
 */
#define SM_MADV_PT_RECLAIM 0x534d01   /* collides with no Linux MADV_* value */
long sm_mm_set_pt_reclaim(struct sm_mm *mm, int enable);
struct sm_pt_scanner_config {
	unsigned interval_ms;          /* sleep between passes; 0 = 100 */
	unsigned long pages_per_pass;  /* virtual pages examined per mm per pass; 0 = 2^20 */
};
/* Start (cfg non-NULL) or stop (cfg NULL) the scanner. 0 or -errno. */
int sm_pt_scanner(struct sm_machine *m, const struct sm_pt_scanner_config *cfg);
struct sm_pt_scanner_stats {
	uint64_t passes;
	uint64_t tables_freed;
};
void sm_pt_scanner_stats(struct sm_machine *m, struct sm_pt_scanner_stats *st);

/* The flusher: one thread per machine writing back every dirty file page each
 * interval (Linux's dirty_writeback_centisecs). It starts with the first file
 * mapping, every 5 s, unless configured here first: cfg non-NULL (re)starts it
 * with that interval, NULL stops it for good. 0 or -errno. A file's page cache
 * goes back to free RAM when its last user lets go: usually its last unmap,
 * but a flusher pass in progress may hold it a moment longer. */
struct sm_flusher_config {
	unsigned interval_ms;          /* 0 = 5000 */
};
int sm_flusher(struct sm_machine *m, const struct sm_flusher_config *cfg);
struct sm_flusher_stats {
	uint64_t passes;               /* flusher passes */
	uint64_t pages_written;        /* by anyone: msync, last unmap, exit, flusher */
};
void sm_flusher_stats(struct sm_machine *m, struct sm_flusher_stats *st);

/*
 * KSM (kernel samepage merging). MADV_MERGEABLE / MADV_UNMERGEABLE as Linux;
 * sm_mm_set_ksm_merge_any is prctl(PR_SET_MEMORY_MERGE): every compatible
 * VMA of the mm, present and future, is mergeable (disabling unmerges all).
 * ksmd is a thread per machine, started by run = 1. A write to a KSM page
 * copies it, or reuses it in place when this PTE is its only mapping (Linux
 * 5.1-5.8's reuse_ksm_page; SM_CFG_NO_KSM_REUSE turns that off).
 * A page of a large folio merges after the folio is split into pages, as in
 * Linux (machine stat folios_split). Differences from Linux: a large folio
 * that a fork child maps too is not split (its pages merge once only one mm
 * maps it); no NUMA (merge_across_nodes) and no advisor.
 */
long sm_mm_set_ksm_merge_any(struct sm_mm *mm, int enable);
/* The knobs of /sys/kernel/mm/ksm. run: 0 stop, 1 run ksmd, 2 unmerge all and stop. */
struct sm_ksm_config {
	unsigned run;
	unsigned pages_to_scan;     /* per ksmd wake-up; default 100 */
	unsigned sleep_millisecs;   /* between wake-ups; default 20 */
	unsigned use_zero_pages;    /* 0/1: zero-filled pages map the zero page */
	unsigned max_page_sharing;  /* mappings recorded per KSM page; default 256, at
				     * least 2, changed only while no page is merged
				     * (-EBUSY); 0 leaves it as it is */
};
void sm_ksm_config(struct sm_machine *m, struct sm_ksm_config *cfg);
int  sm_ksm_set(struct sm_machine *m, const struct sm_ksm_config *cfg);   /* 0 or -errno */
/* Run full_scans complete scans now, on the calling thread (ksmd's work,
 * for deterministic tests). Returns the pages scanned or -errno. A page
 * merges in the second scan that sees it unchanged, as with ksmd. */
long sm_ksm_scan(struct sm_machine *m, unsigned full_scans);
/* /sys/kernel/mm/ksm's counters; general_profit in bytes. */
struct sm_ksm_stats {
	uint64_t pages_shared, pages_sharing, pages_unshared, pages_volatile;
	uint64_t pages_scanned, full_scans, ksm_zero_pages;
	int64_t general_profit;
	uint64_t stable_nodes;      /* nodes in the stable tree, stale ones included */
	uint64_t pages_reused;      /* write faults that reused a KSM page (softmm only) */
	uint64_t stable_node_chains, stable_node_dups;
};
void sm_ksm_stats(struct sm_machine *m, struct sm_ksm_stats *st);

/* /proc/<pid>/<name> of this mm: "maps", "smaps", "smaps_rollup", "status", "ksm_stat".
 * Returns the full length (like snprintf; may exceed size) or -errno. */
long sm_proc_read(struct sm_mm *mm, const char *name, char *buf, size_t size);
/* /proc/<pid>/pagemap: one 64-bit entry per page from addr; entries written or -errno. */
long sm_pagemap_read(struct sm_mm *mm, unsigned long addr, uint64_t *entries, size_t n);

/* 0 when every invariant holds, else -EUCLEAN after printing what broke to stderr. */
int sm_mm_check(struct sm_mm *mm);

/* ---- Introspection ---- */

struct sm_machine_stats {
	uint64_t total_frames;      /* frames of simulated RAM */
	uint64_t free_frames;       /* in the buddy allocator and per-CPU lists */
	uint64_t pgtable_frames;    /* page-table pages of every mm */
	uint64_t tlb_shootdowns;    /* flushes that had to reach another CPU */
	uint64_t tlb_local_flushes; /* flushes handled on the calling CPU alone */
	/* KSM (issue 7) */
	uint64_t cow_bytes_copied;  /* bytes copied by copy-on-write faults */
	uint64_t folios_split;      /* large folios split into pages (for KSM) */
	/* munmap (issue 4): its zap runs under the read lock and lets a queued
	 * writer in between PTE tables, keeping the range reserved meanwhile. */
	uint64_t munmap_lock_drops;     /* times a zap let the mmap_lock go for a writer */
	uint64_t munmap_reserve_waits;  /* fixed mappings that waited for such a range */
	/* Page-table reclaim (issue 5): the PTE tables MADV_DONTNEED emptied. */
	uint64_t pt_zap_freed;          /* freed by the zap itself */
	uint64_t pt_zap_rechecked;      /* left to the locked recheck (PMD lock busy) */
	/* MADV_REMOVE (hole punch in the file of a shared mapping). */
	uint64_t punched_pages;         /* page-cache folios a hole punch dropped */
	uint64_t punch_fault_retries;   /* faults whose folio a punch dropped before they
					 * could map it: they backed off and faulted again */
};
void sm_machine_stats(struct sm_machine *m, struct sm_machine_stats *st);

/* mmap_lock instrumentation: hold times of each mode, and waits to acquire it. */
#define SM_LOCK_HIST_BUCKETS 32     /* bucket i counts holds in [2^i, 2^(i+1)) ns; 0 holds < 2 ns */
enum { SM_LOCK_READ = 0, SM_LOCK_WRITE = 1 };
struct sm_lock_stats {
	uint64_t acquisitions[2];
	uint64_t hold_max_ns[2];
	uint64_t hold_total_ns[2];
	uint64_t hold_hist[2][SM_LOCK_HIST_BUCKETS];
	uint64_t wait_max_ns[2];
	uint64_t wait_total_ns[2];
	uint64_t contended[2];     /* acquisitions that had to wait */
};
void sm_mm_lock_stats(struct sm_mm *mm, struct sm_lock_stats *st);
void sm_mm_lock_stats_reset(struct sm_mm *mm);

#ifdef __cplusplus
}
#endif
#endif /* SOFTMM_H */
