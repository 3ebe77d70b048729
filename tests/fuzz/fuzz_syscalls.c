/*
 * fuzz_syscalls: the input bytes are a program of system calls on a new address
 * space (and, after a fork, its child): mmap, munmap, mprotect, madvise, mremap,
 * brk, guest reads and writes, fork and exit, /proc reads. After every call
 * sm_mm_check must pass; after exit every frame must be back in the allocator.
 * Any failure is an abort(), which libFuzzer (or replay.c without it) reports
 * with the input. SOFTMM_FUZZ_TRACE=1 prints each call and its result.
 *
 * Input: byte 0 picks one of eight machine configurations (large-folio orders,
 * the munmap variant, fork batching). Then each call is an opcode byte followed
 * by its arguments, read from the stream on demand; a stream that runs dry reads
 * as zeros. Bit 4 of the opcode runs the call on the child when there is one.
 * Addresses are biased into small windows where calls collide:
 *   - just below where the first hint-less mmap lands (probed, not assumed),
 *   - around the initial break, for brk and mappings next to the heap,
 *   - across 2^39, so that one range spans PGD, PUD and PMD boundaries,
 *   - the last address a call returned,
 * and sometimes wild (any 64-bit value, or an edge such as TASK_SIZE).
 * Lengths are mostly a few pages, sometimes 2 MiB multiples, sometimes wild;
 * flags, protections and advice are mostly valid values, sometimes raw bits.
 *
 * Oracles besides sm_mm_check and the frame count: a write that succeeds reads
 * back equal; sm_proc_read truncates like snprintf.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <softmm.h>

#define PAGE          4096ul
#define RAM_BYTES     (16ul << 20)
#define NR_CONFIGS    8
#define TASK_SIZE_X86 ((1ul << 47) - PAGE)
#define MAX_IO        (4 * PAGE + 64)
#define PROC_BUF      (256u << 10)
#define PAGEMAP_MAX   1024u

#ifndef MAP_UNINITIALIZED
#define MAP_UNINITIALIZED 0x4000000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

struct input {
	const uint8_t *p;
	size_t n;
};

/* A machine and its two CPUs serve every input of its configuration: destroying a
 * machine waits for an RCU grace period, which would cap the fuzzer at tens of
 * inputs a second. Each input still starts with every frame free and a new mm. */
struct machine {
	struct sm_machine *m;
	struct sm_cpu *cpu[2];
};

struct world {
	struct machine machines[NR_CONFIGS];
	struct sm_machine *m;
	struct sm_mm *mm[2];       /* parent, child (NULL until a fork) */
	struct sm_cpu *cpu[2];     /* cpu[i] runs mm[i] */
	unsigned long mmap_top;    /* just above the first hint-less mmap */
	unsigned long brk0;        /* the initial break */
	unsigned long last;        /* the last address a call returned */
	uint8_t io[MAX_IO], back[MAX_IO];
	char proc[PROC_BUF + 1];  /* + a canary byte */
	uint64_t pagemap[PAGEMAP_MAX];
};

enum op {
	OP_MMAP, OP_MUNMAP, OP_MPROTECT, OP_MADVISE, OP_MREMAP, OP_BRK,
	OP_READ, OP_WRITE, OP_FORK, OP_PROC, OP_MMAP2, OP_WRITE2, OP_KSM, NR_OPS
};

static uint8_t get8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t get64(struct input *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)get8(in) << (8 * i);
	return v;
}

static uint32_t get32(struct input *in)
{
	return (uint32_t)get64(in);
}

static void check(struct world *w, const char *after)
{
	for (int i = 0; i < 2; i++) {
		if (w->mm[i] && sm_mm_check(w->mm[i])) {
			fprintf(stderr, "fuzz_syscalls: sm_mm_check failed on mm %d after %s\n", i, after);
			abort();
		}
	}
}

/* SOFTMM_FUZZ_TRACE=1 in the environment prints every call and its result. */
static bool tracing(void)
{
	static int on = -1;

	if (on < 0)
		on = getenv("SOFTMM_FUZZ_TRACE") != NULL;
	return on;
}

#define trace(t, ret, fmt, ...) do {							\
	if (tracing())									\
		fprintf(stderr, (ret) < 0 ? "%s" fmt " = %ld\n" : "%s" fmt " = %#lx\n",	\
			(t) ? "child: " : "", __VA_ARGS__, (long)(ret));			\
} while (0)

static unsigned long pick_addr(struct world *w, struct input *in)
{
	static const unsigned long edges[] = {
		0, PAGE, 0x10000, TASK_SIZE_X86 - PAGE, TASK_SIZE_X86, 1ul << 47,
		-PAGE, (1ul << 32) - PAGE, 0x7ffffffff000ul - (2ul << 20),
	};
	uint8_t sel = get8(in);
	unsigned long page = get8(in), addr;

	switch (sel >> 5) {
	case 0: case 1: case 2:  /* below the mmap base, reaching a little above it */
		addr = w->mmap_top - 224 * PAGE + page * PAGE;
		break;
	case 3:                  /* around the break */
		addr = w->brk0 - 32 * PAGE + page * PAGE;
		break;
	case 4:                  /* across 2^39: PGD, PUD and PMD boundaries */
		addr = (1ul << 39) - 128 * PAGE + page * PAGE;
		break;
	case 5: case 6:          /* near the last address a call returned */
		addr = w->last + (page & 0x7f) * PAGE - ((page & 0x80) ? 64 * PAGE : 0);
		break;
	default:
		addr = (sel & 1) ? get64(in) : edges[page % (sizeof(edges) / sizeof(edges[0]))];
		break;
	}
	if ((sel & 0x1f) == 0x1f)  /* now and then, not page aligned */
		addr += 1 + get8(in) * 16;
	return addr;
}

static unsigned long pick_len(struct input *in)
{
	uint8_t sel = get8(in);
	unsigned long len;

	switch (sel >> 6) {
	case 0: case 1:
		len = (sel & 0x3f) * PAGE;        /* 0 .. 63 pages */
		break;
	case 2:
		len = (1 + (sel & 3)) << 21;       /* 2 .. 8 MiB, for large folios */
		if (sel & 4)
			len -= PAGE;
		break;
	default:
		len = (sel & 1) ? get64(in) : (unsigned long)(sel & 0x3f) * 16 + 1;
		break;
	}
	return len;
}

static int pick_prot(struct input *in)
{
	uint8_t sel = get8(in);

	if (sel & 0x80)
		return (int)get32(in);
	return (sel & 7) | ((sel & 0x40) ? PROT_GROWSDOWN : 0) | ((sel & 0x20) ? PROT_GROWSUP : 0);
}

static int pick_mmap_flags(struct input *in, int *fd, long *offset)
{
	static const int extra[] = {
		MAP_FIXED, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_POPULATE, MAP_NORESERVE,
		MAP_LOCKED, MAP_STACK, MAP_GROWSDOWN, MAP_HUGETLB, MAP_SYNC,
		MAP_UNINITIALIZED, MAP_32BIT, MAP_NONBLOCK, MAP_DENYWRITE, MAP_EXECUTABLE,
		MAP_FIXED,
	};
	uint8_t sel = get8(in);
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;

	*fd = -1;
	*offset = 0;
	if (sel == 0xff) {                  /* raw bits */
		flags = (int)get32(in);
		*fd = (int)get32(in);
		*offset = (long)get64(in);
		return flags;
	}
	for (int i = 0; i < (sel & 3); i++)
		flags |= extra[get8(in) & 15];
	switch ((sel >> 2) & 7) {
	case 1:
		flags = (flags & ~MAP_PRIVATE) | MAP_SHARED;
		break;
	case 2:
		flags = (flags & ~MAP_PRIVATE) | MAP_SHARED_VALIDATE;
		break;
	case 3:                             /* a file mapping */
		flags &= ~MAP_ANONYMOUS;
		*fd = get8(in) & 3;
		break;
	case 4:
		*offset = (long)(get8(in) * PAGE);
		break;
	}
	return flags;
}

static int pick_advice(struct input *in)
{
	uint8_t sel = get8(in);

	if (sel < 0xe0)
		return sel % 26;             /* MADV_NORMAL .. MADV_COLLAPSE */
	if (sel < 0xe8)
		return 100 + (sel & 1);      /* MADV_HWPOISON, MADV_SOFT_OFFLINE */
#ifdef SM_MADV_PT_RECLAIM
	if (sel < 0xf0)
		return SM_MADV_PT_RECLAIM;
#endif
	return (int)get32(in);
}

static int pick_mremap_flags(struct input *in)
{
	static const int table[] = {
		0, MREMAP_MAYMOVE, MREMAP_MAYMOVE, MREMAP_MAYMOVE | MREMAP_FIXED,
		MREMAP_MAYMOVE | MREMAP_DONTUNMAP, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
		MREMAP_FIXED, MREMAP_DONTUNMAP,
	};
	uint8_t sel = get8(in);

	return sel >= 0xf8 ? (int)get32(in) : table[sel & 7];
}

static void remember(struct world *w, long ret)
{
	if (ret >= 0 && (unsigned long)ret >= PAGE)
		w->last = (unsigned long)ret;
}

static void do_io(struct world *w, int t, struct input *in, bool write, uint8_t fill)
{
	unsigned long addr = pick_addr(w, in);
	uint8_t sel = get8(in);
	size_t len = sel & 0x80 ? (size_t)(sel & 0x7f) * 37 % MAX_IO : (size_t)(sel & 7) * PAGE / 2;
	long ret;

	if (!len)
		len = 1;
	if (!write) {
		ret = sm_read(w->cpu[t], addr, w->io, len);
		trace(t, ret, "read(%#lx, %zu)", addr, len);
	} else {
		memset(w->io, fill, len);
		ret = sm_write(w->cpu[t], addr, w->io, len);
		trace(t, ret, "write(%#lx, %zu)", addr, len);
		/* What was written reads back, unless the range is write-only. */
		if (!ret && !sm_read(w->cpu[t], addr, w->back, len) && memcmp(w->io, w->back, len)) {
			fprintf(stderr, "fuzz_syscalls: wrote %zu bytes at %#lx, read back others\n",
				len, addr);
			abort();
		}
	}
	/* SM_SIGBUS: a file mapping's page beyond the end of its file. */
	if (ret && ret != -EFAULT && ret != SM_SIGBUS) {
		fprintf(stderr, "fuzz_syscalls: sm_%s returned %ld, not 0, -EFAULT or SM_SIGBUS\n",
			write ? "write" : "read", ret);
		abort();
	}
}

/* Forks the parent, or makes the child exit when there is one. */
static long do_fork(struct world *w)
{
	long ret;

	if (w->mm[1]) {
		sm_cpu_switch_mm(w->cpu[1], NULL);
		sm_mm_destroy(w->mm[1]);
		w->mm[1] = NULL;
		return 1;
	}
	ret = sm_fork(w->mm[0], &w->mm[1]);
	if (ret)
		w->mm[1] = NULL;
	else
		sm_cpu_switch_mm(w->cpu[1], w->mm[1]);
	return ret;
}

/* A /proc file, or pagemap, of the mm; sizes from 0 bytes up. */
static void do_proc(struct world *w, int t, struct input *in)
{
	static const char *const names[] = { "maps", "smaps", "smaps_rollup", "status",
					     "pagemap", "nosuchfile", "", "maps" };
	uint8_t sel = get8(in);
	const char *name = names[sel & 7];
	unsigned long addr;
	size_t size, n;
	long ret;

	if (sel & 0x40) {
		n = (size_t)get8(in) * 4 % PAGEMAP_MAX;
		addr = pick_addr(w, in);
		ret = sm_pagemap_read(w->mm[t], addr, w->pagemap, n);
		trace(t, ret, "pagemap(%#lx, %zu)", addr, n);
		if (ret > (long)n) {
			fprintf(stderr, "fuzz_syscalls: pagemap returned %ld of %zu entries\n", ret, n);
			abort();
		}
		return;
	}
	size = (sel & 0x80) ? PROC_BUF : get8(in);
	memset(w->proc, 0x55, size + 1);
	ret = sm_proc_read(w->mm[t], name, w->proc, size);
	trace(t, ret, "proc_read(\"%s\", %zu)", name, size);
	if (ret >= 0 && size && strnlen(w->proc, size) != ((size_t)ret < size ? (size_t)ret : size - 1)) {
		fprintf(stderr, "fuzz_syscalls: %s: returned %ld for a buffer of %zu, wrote %zu\n",
			name, ret, size, strnlen(w->proc, size));
		abort();
	}
	if (ret >= 0 && w->proc[size] != 0x55) {
		fprintf(stderr, "fuzz_syscalls: %s wrote past a buffer of %zu\n", name, size);
		abort();
	}
}

static const char *const op_names[NR_OPS] = {
	"mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
	"read", "write", "fork/exit", "proc", "mmap", "write", "ksm",
};

static void run_op(struct world *w, struct input *in, unsigned *nr_writes)
{
	uint8_t code = get8(in);
	int t = (code & 0x10) && w->mm[1] ? 1 : 0;
	struct sm_mm *mm = w->mm[t];
	enum op op = (code & 0x0f) % NR_OPS;
	unsigned long addr, len, new_len, new_addr;
	int prot, flags, fd;
	long offset, ret;

	switch (op) {
	case OP_MMAP:
	case OP_MMAP2:
		addr = (code & 0x20) ? 0 : pick_addr(w, in);
		len = pick_len(in);
		prot = pick_prot(in);
		flags = pick_mmap_flags(in, &fd, &offset);
		ret = sm_mmap(mm, addr, len, prot, flags, fd, offset);
		trace(t, ret, "mmap(%#lx, %#lx, %#x, %#x, %d, %#lx)", addr, len, prot, flags, fd, offset);
		remember(w, ret);
		break;
	case OP_MUNMAP:
		addr = pick_addr(w, in);
		len = pick_len(in);
		ret = sm_munmap(mm, addr, len);
		trace(t, ret, "munmap(%#lx, %#lx)", addr, len);
		break;
	case OP_MPROTECT:
		addr = pick_addr(w, in);
		len = pick_len(in);
		prot = pick_prot(in);
		ret = sm_mprotect(mm, addr, len, prot);
		trace(t, ret, "mprotect(%#lx, %#lx, %#x)", addr, len, prot);
		break;
	case OP_MADVISE:
		addr = pick_addr(w, in);
		len = pick_len(in);
		flags = pick_advice(in);
		ret = sm_madvise(mm, addr, len, flags);
		trace(t, ret, "madvise(%#lx, %#lx, %d)", addr, len, flags);
		break;
	case OP_MREMAP:
		addr = pick_addr(w, in);
		len = pick_len(in);
		new_len = pick_len(in);
		flags = pick_mremap_flags(in);
		new_addr = pick_addr(w, in);
		ret = sm_mremap(mm, addr, len, new_len, flags, new_addr);
		trace(t, ret, "mremap(%#lx, %#lx, %#lx, %#x, %#lx)", addr, len, new_len, flags, new_addr);
		remember(w, ret);
		break;
	case OP_BRK:
		addr = (code & 0x20) ? 0 : w->brk0 + (unsigned long)(int8_t)get8(in) * PAGE +
						((code & 0x40) ? get8(in) : 0);
		ret = sm_brk(mm, addr);
		trace(t, ret, "brk(%#lx)", addr);
		break;
	case OP_READ:
	case OP_WRITE:
	case OP_WRITE2:
		do_io(w, t, in, op != OP_READ, (uint8_t)(++*nr_writes));
		break;
	case OP_FORK:
		ret = do_fork(w);
		trace(0, ret, "%s", "fork/exit");
		break;
	case OP_PROC:
		do_proc(w, t, in);
		break;
	case OP_KSM: {
		/* A full KSM scan (pages merge on the second that sees them
		 * unchanged), with zero pages or not; or merge-any switched. */
		struct sm_ksm_config kc;

		if (code & 0x20) {
			ret = sm_mm_set_ksm_merge_any(mm, (code & 0x40) != 0);
			trace(t, ret, "ksm_merge_any(%d)", (code & 0x40) != 0);
			break;
		}
		sm_ksm_config(w->m, &kc);
		kc.use_zero_pages = (code & 0x40) != 0;
		sm_ksm_set(w->m, &kc);
		ret = sm_ksm_scan(w->m, 1);
		trace(t, ret, "ksm_scan(zero pages %d)", (code & 0x40) != 0);
		break;
	}
	case NR_OPS:
		break;
	}
	check(w, op_names[op]);
}

/* Eight configurations from the low three bits of the selector. */
static void machine_config(struct sm_config *cfg, unsigned sel)
{
	*cfg = (struct sm_config){ .ram_bytes = RAM_BYTES, .max_cpus = 4,
				   .flags = SM_CFG_POISON_FREED };
	if (sel & 1) {
		cfg->flags |= SM_CFG_ANON_ORDERS;
		cfg->anon_orders_always = 1u << 2 | 1u << 4;
		cfg->anon_orders_madvise = 1u << 9 | 1u << 3;
	}
	if (sel & 2)
		cfg->flags |= SM_CFG_MUNMAP_ZAP_WRITE_LOCKED;
	if (sel & 4)
		cfg->flags |= SM_CFG_NO_FORK_BATCH;
}

static void die(const char *what)
{
	perror(what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct world *w;
	struct input in = { data, size };
	struct sm_machine_stats before, after;
	struct sm_config cfg;
	struct machine *mc;
	unsigned nr_writes = 0;
	long probe;

	if (!w && !(w = calloc(1, sizeof(*w))))
		die("calloc");
	mc = &w->machines[get8(&in) % NR_CONFIGS];
	if (!mc->m) {
		machine_config(&cfg, (unsigned)(mc - w->machines));
		if (!(mc->m = sm_machine_create(&cfg)))
			die("sm_machine_create");
		for (int i = 0; i < 2; i++)
			if (!(mc->cpu[i] = sm_cpu_create(mc->m)))
				die("sm_cpu_create");
	}
	memset(&w->m, 0, offsetof(struct world, io) - offsetof(struct world, m));
	w->m = mc->m;
	w->cpu[0] = mc->cpu[0];
	w->cpu[1] = mc->cpu[1];
	sm_machine_stats(w->m, &before);
	if (!(w->mm[0] = sm_mm_create(w->m)))
		die("sm_mm_create");
	sm_cpu_switch_mm(w->cpu[0], w->mm[0]);

	probe = sm_mmap(w->mm[0], 0, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (probe < 0 || sm_munmap(w->mm[0], (unsigned long)probe, PAGE))
		die("probe mmap");
	w->mmap_top = w->last = (unsigned long)probe + PAGE;
	w->brk0 = (unsigned long)sm_brk(w->mm[0], 0);

	while (in.n)
		run_op(w, &in, &nr_writes);

	for (int i = 1; i >= 0; i--) {
		sm_cpu_switch_mm(w->cpu[i], NULL);
		sm_mm_destroy(w->mm[i]);
	}
	sm_machine_stats(w->m, &after);
	if (after.free_frames != before.free_frames || after.pgtable_frames != before.pgtable_frames) {
		fprintf(stderr, "fuzz_syscalls: after exit %llu frames free, %llu page tables; "
				"%llu and %llu before\n",
			(unsigned long long)after.free_frames, (unsigned long long)after.pgtable_frames,
			(unsigned long long)before.free_frames, (unsigned long long)before.pgtable_frames);
		abort();
	}
	return 0;
}
