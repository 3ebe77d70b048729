/*
 * Differential test of softmm against the host kernel: what the parts share.
 *
 * A sequence is a list of struct diff_op generated from a seed (gen.c). An op
 * is described once, with its addresses relative to a region: the window (a
 * fixed range of WIN_PAGES pages that nothing else in the host child uses) or
 * the heap (HEAP_PAGES pages from the host's start_brk, for brk). exec.c runs
 * a sequence through a struct diff_backend, of which there are two:
 *   host.c    raw system calls in a child forked for the sequence,
 *   softmm.c  the sm_* calls on a fresh sm_mm of one long-lived machine.
 * After every step exec.c fills a struct diff_step: the return values, the
 * region's lines of maps with Rss, Anonymous and VmFlags from smaps, and every
 * page's readability and content hash. compare.c compares the two records
 * step by step; driver.c ties it together; main.c is the command line.
 *
 * Processes: a sequence starts with one (proc 0); OP_FORK makes the next
 * one, a child of the op's proc, and later ops name the proc they run in.
 * Each step has one record per proc (DIFF_REC): the proc that ran the op
 * gets a full observation, the others a peek (their pagemap flags and page
 * contents: their maps cannot change by another process's op). On the host
 * the procs are real processes (host.c); on softmm, mms made by sm_fork.
 * cow.c holds the named copy-on-write tests (Linux's selftests/mm/cow.c),
 * which use the big region, 2 MiB aligned, for transparent huge pages.
 */
#ifndef DIFF_H
#define DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIFF_PAGE        4096UL
#define WIN_PAGES        128u   /* 512 KiB: no 2 MiB block fits, so no THP on the host */
#define HEAP_PAGES       32u
#define BIG_PAGES        1024u  /* 4 MiB: a THP and room to move half of one */
#define TOTAL_PAGES      (WIN_PAGES + HEAP_PAGES + BIG_PAGES)
#define MAX_PROCS        4u
/* Straddles a 2^44 boundary: the window crosses PGD, PUD and PMD boundaries. */
#define WIN_BASE         (0x300000000000UL - 64 * DIFF_PAGE)
/* Only the COW tests use it (exec.c observes it only then), 2 MiB aligned. */
#define BIG_BASE         0x280000000000UL
#define REGION_GUARD     (16 * DIFF_PAGE)  /* kept unmapped around each region */
#define MAX_STEPS        1000u
#define MAX_VMAS         (WIN_PAGES + HEAP_PAGES + 32)
#define LINE_MAX_LEN     112
#define VMFLAGS_MAX_LEN  72
#define DATA_MAX         (8 * DIFF_PAGE)   /* longest read/write op */
#define PROC_BUF_SIZE    (1u << 20)

/* Normalized results. */
#define RET_ELSEWHERE    1L  /* the kernel placed it outside the regions */
#define RET_SKIPPED      2L  /* the op needs a region the host could not give, or a proc
				that does not exist (any more) */
/* A backend's fork as seen in the new process (the host's forks are real). */
#define DIFF_FORK_CHILD  3L
/* A fork's recorded result: this plus the child's proc number. */
#define RET_FORKED       0x100L

enum diff_region { REG_ABS, REG_WIN, REG_HEAP, REG_BIG };

struct diff_addr {
	uint8_t region;   /* enum diff_region */
	int64_t off;      /* from the region's base (REG_ABS: the value itself) */
};

enum diff_op_kind {
	OP_MMAP, OP_MUNMAP, OP_MPROTECT, OP_MADVISE, OP_MREMAP, OP_BRK, OP_READ, OP_WRITE,
	OP_FORK,   /* the proc forks; the child is proc <number of procs so far> */
	OP_EXIT,   /* the proc exits (never proc 0; only in the COW tests) */
	OP_KINDS
};

struct diff_op {
	uint8_t kind;            /* enum diff_op_kind */
	uint8_t proc;            /* which process runs it */
	struct diff_addr addr;   /* mmap addr, old_addr, brk, access address */
	struct diff_addr addr2;  /* mremap new_addr */
	struct diff_addr back;   /* where a kernel-placed mremap result is moved back to */
	uint64_t len;            /* len, old_len */
	uint64_t len2;           /* mremap new_len */
	int32_t prot;            /* prot, madvise advice */
	int32_t flags;           /* mmap or mremap flags */
	int32_t fd;
	int64_t offset;
	uint64_t data_seed;      /* contents of a write */
};

/* Where the regions are; the same on both sides. */
struct diff_layout {
	unsigned long win_base;
	unsigned long heap_base;  /* the host's start_brk */
	unsigned long big_base;
	bool heap_ok;             /* the host child could reset its heap to an empty one */
	bool big_ok;              /* the big region was free in the host */
};

enum { PG_READABLE = 1, PG_WRITABLE = 2 };
/* pagemap bits, as recorded (the PFN is not compared) */
enum { PM_PRESENT_F = 1, PM_SWAP_F = 2, PM_FILE_F = 4, PM_EXCLUSIVE_F = 8 };
/* What a record holds. */
enum { PS_NONE, PS_PEEK, PS_FULL };

struct diff_vma {
	char line[LINE_MAX_LEN];        /* the maps line, without its newline */
	char vmflags[VMFLAGS_MAX_LEN];  /* smaps VmFlags */
	uint32_t rss_kb, anon_kb;
	uint32_t anon_huge_kb;          /* AnonHugePages: recorded, not compared (softmm
					   maps large folios with PTEs only) */
};

/* One proc's observations after one step. Record 0 is the empty start,
 * record i follows ops[i-1], and record n + 1 follows a write to every page
 * by every proc in turn (ret: the pages written). A peek fills state, page,
 * hash and pm; a full record all of it. */
struct diff_step {
	uint8_t state;           /* PS_*; PS_NONE: no such proc at this step */
	bool acted;              /* this proc ran the step's op (ret, aux, data_hash) */
	bool big;                /* the big region's pages are recorded */
	long ret;
	long aux;                /* the clean-up after a kernel-placed result */
	uint64_t data_hash;      /* of the bytes a read op returned */
	uint32_t nvma;
	char problem[200];       /* this side's own inconsistency, "" if none */
	uint8_t page[TOTAL_PAGES];   /* PG_*, window pages, heap pages, big pages */
	uint8_t pm[TOTAL_PAGES];     /* PM_*_F, read before the pages are probed */
	uint64_t hash[TOTAL_PAGES];
	struct diff_vma vma[MAX_VMAS];
};

#define DIFF_RECORDS(nops) ((nops) + 2)
/* Records are stored step-major: every proc's record of step 0, then of step 1... */
#define DIFF_SLOTS(nops) (DIFF_RECORDS(nops) * MAX_PROCS)
#define DIFF_REC(steps, rec, proc) (&(steps)[(size_t)(rec) * MAX_PROCS + (proc)])

/*
 * One way to run system calls and touch memory. Memory calls return 0 or
 * -EFAULT; the *_prefix calls take a page-aligned range and return how many
 * bytes precede the first page that faults.
 */
struct diff_backend {
	void *ctx;
	/* Pages outside every accessible VMA of maps count as unreadable without a
	 * probe: right on the host, whose kernel is the reference; softmm probes all. */
	bool trust_maps;
	long (*mmap)(void *ctx, unsigned long addr, unsigned long len, int prot, int flags,
		     int fd, long offset);
	long (*munmap)(void *ctx, unsigned long addr, unsigned long len);
	long (*mprotect)(void *ctx, unsigned long addr, unsigned long len, int prot);
	long (*madvise)(void *ctx, unsigned long addr, unsigned long len, int advice);
	long (*mremap)(void *ctx, unsigned long old_addr, unsigned long old_len,
		       unsigned long new_len, int flags, unsigned long new_addr);
	long (*brk)(void *ctx, unsigned long brk);
	long (*read)(void *ctx, unsigned long addr, void *buf, size_t len);
	long (*write)(void *ctx, unsigned long addr, const void *buf, size_t len);
	size_t (*read_prefix)(void *ctx, unsigned long addr, void *buf, size_t len);
	size_t (*write_prefix)(void *ctx, unsigned long addr, const void *buf, size_t len);
	/* /proc/<pid>/<name>: the length (> size when truncated) or -errno. */
	long (*proc_read)(void *ctx, const char *name, char *buf, size_t size);
	/* After each step: "" or what is inconsistent inside this side. */
	void (*check)(void *ctx, char *problem, size_t size);
	/* /proc/<pid>/pagemap entries of n pages from addr: 0 or -errno. */
	long (*pagemap)(void *ctx, unsigned long addr, uint64_t *entries, size_t n);
	/* Make proc the one the calls act on. false: this executor does not run
	 * it (the host: another process does, and this one waits its turn). */
	bool (*enter)(void *ctx, unsigned proc);
	/* fork the current proc into proc child: 0 (DIFF_FORK_CHILD in the new
	 * process, where the host's fork returns too) or -errno. */
	long (*fork)(void *ctx, unsigned child);
	/* The current proc exits: 0 or -errno. */
	long (*exit)(void *ctx);
};

/* Scratch memory for exec.c; no allocation happens while a sequence runs. */
struct diff_work {
	uint64_t pagemap[TOTAL_PAGES];
	char proc[PROC_BUF_SIZE];
	unsigned char pages[TOTAL_PAGES * DIFF_PAGE];
	unsigned char data[DATA_MAX];
};

/* gen.c */
void diff_generate(uint64_t seed, struct diff_op *ops, unsigned n);
uint64_t diff_mix64(uint64_t x);
int diff_op_format(const struct diff_op *op, char *buf, size_t size);
int diff_ret_format(const struct diff_op *op, long ret, const struct diff_layout *lay,
		    char *buf, size_t size);

/* exec.c */
unsigned long diff_resolve(const struct diff_addr *a, const struct diff_layout *lay);
bool diff_uses_big(const struct diff_op *ops, unsigned n);
void diff_records_reset(struct diff_step *steps, unsigned n);
/* The record of the proc that ran op step (1..n), or NULL. */
const struct diff_step *diff_acting(const struct diff_step *steps, unsigned step);
uint64_t diff_hash(const void *p, size_t len);
void diff_run(const struct diff_backend *b, const struct diff_layout *lay,
	      const struct diff_op *ops, unsigned n, struct diff_step *steps,
	      struct diff_work *w);

/* compare.c: false and a description in why at the first difference.
 * op is the step's op, NULL for the first and last records; proc whose
 * records these are. */
bool diff_compare_step(const struct diff_step *host, const struct diff_step *sm,
		       const struct diff_op *op, const struct diff_layout *lay, unsigned proc,
		       char *why, size_t size);

/* host.c: a fork server started before anything else in the process. */
int host_start(struct diff_layout *lay);
void host_submit(const struct diff_op *ops, unsigned n);
const struct diff_step *host_collect(char *problem, size_t size);
void host_stop(void);

/* softmm.c */
struct softmm_side;
struct softmm_side *softmm_open(const struct diff_layout *lay);
void softmm_run(struct softmm_side *s, const struct diff_op *ops, unsigned n,
		struct diff_step *steps, char *problem, size_t size);
void softmm_close(struct softmm_side *s);

/* driver.c */
struct diff_opts {
	bool verbose;   /* print every step */
	bool quiet;     /* print nothing (the minimizer's trials) */
	bool self_check; /* the host against itself: is the harness deterministic? */
};
/* What went wrong, to tell one failure from another. */
struct diff_failure {
	unsigned step;          /* 0: before the first op; n + 1: the final write */
	uint8_t kind;           /* of the op at that step */
	char what[48];          /* the first words of the description */
	char summary[320];      /* the op and the first line of the description */
};
struct diff_driver;
struct diff_driver *driver_open(void);
/* true when host and softmm agree; otherwise a report and *fail. */
bool driver_run(struct diff_driver *d, const struct diff_opts *o, const char *name,
		const struct diff_op *ops, unsigned n, struct diff_failure *fail);
/* A hash of the host's counters for khugepaged, the THP shrinker and ksmd:
 * when it moved during a run, the host rewrote pages behind the test's back
 * (driver.c). driver_run already reruns a failing sequence when it did. */
unsigned long long host_async_events(void);
/* Print the report of a failure that a quiet driver_run kept to itself. */
void driver_report(const struct diff_driver *d, const char *name, const struct diff_op *ops,
		   unsigned n, const struct diff_failure *f);
/* The host's records of the last run. */
const struct diff_step *driver_host_steps(struct diff_driver *d);
const struct diff_step *driver_sm_steps(struct diff_driver *d);
const struct diff_layout *driver_layout(struct diff_driver *d);
void driver_close(struct diff_driver *d);

/* minimize.c: cut a failing sequence down to the ops that still fail the same
 * way; prints them and the --keep list that replays them. */
void diff_minimize(struct diff_driver *d, uint64_t seed, const struct diff_op *ops, unsigned n);

/* scenarios.c: the named fixed sequences; counts passes and failures. */
void diff_run_scenarios(struct diff_driver *d, const struct diff_opts *o,
			unsigned *passed, unsigned *failed);

/* cow.c: the copy-on-write tests; counts passes and failures (skips pass). */
void diff_run_cow_tests(struct diff_driver *d, const struct diff_opts *o,
			unsigned *passed, unsigned *failed);

/* vmpte.c: VmPTE growth and MADV_DONTNEED's give-back, host against softmm. */
void diff_run_vmpte_tests(struct diff_driver *d, const struct diff_opts *o,
			  unsigned *passed, unsigned *failed);

/* files.c: file and shared mappings against the host with real files (run in
 * this process, not through the fork server); counts passes and failures. */
void diff_run_file_tests(const struct diff_opts *o, unsigned *passed, unsigned *failed);

/* ksm.c: KSM merging against the host's ksmd (its knobs set for the test and
 * put back); counts passes and failures (a host without KSM passes). */
void diff_run_ksm_tests(const struct diff_opts *o, unsigned *passed, unsigned *failed);

/* compare.c: print where two text logs of one scenario part, and both. */
void diff_log_report(const char *kind, const char *name, const char *host_log,
		     const char *sm_log);

#endif
