/*
 * The random sequence generator, and how an op and its result are printed.
 *
 * An op depends only on the seed, never on earlier results, so a sequence can
 * be replayed from its seed, run by two executors, and cut down by the
 * minimizer. Addresses are page offsets into a region, half of them on a
 * 4-page grid so that ranges meet edge to edge and VMAs split and merge.
 * About one op in ten is made invalid on purpose (unaligned, zero or
 * overflowing lengths, unknown flags or advice, bad flag combinations).
 * Every range stays inside its region, and the overflowing lengths wrap the
 * address space, so that no call can reach the host child's own mappings.
 *
 * About one op in fifty forks (at most MAX_PROCS - 1 times a sequence), in
 * any proc; after that each op runs in a proc picked at random, and every
 * proc lives to the end.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include "diff.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef PROT_SEM
#define PROT_SEM 0x8
#endif
#define MAP_TYPE_MASK 0x0f

struct rng {
	uint64_t state;
};

uint64_t diff_mix64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t next(struct rng *r)
{
	r->state += 0x9e3779b97f4a7c15ULL;
	return diff_mix64(r->state);
}

static unsigned below(struct rng *r, unsigned n)
{
	return (unsigned)(next(r) % n);
}

static bool chance(struct rng *r, unsigned percent)
{
	return below(r, 100) < percent;
}

static uint64_t pick(struct rng *r, const uint64_t *v, unsigned n)
{
	return v[below(r, n)];
}
#define PICK(r, arr) pick(r, arr, sizeof(arr) / sizeof((arr)[0]))

static unsigned region_pages(uint8_t region)
{
	return region == REG_HEAP ? HEAP_PAGES : WIN_PAGES;
}

/* A page in [0, limit), often on the 4-page grid. */
static unsigned pick_page(struct rng *r, unsigned limit)
{
	if (limit >= 4 && chance(r, 50))
		return below(r, limit / 4) * 4;
	return below(r, limit);
}

/* A length in pages, 1..max, mostly short. */
static unsigned pick_npages(struct rng *r, unsigned max)
{
	unsigned cap = chance(r, 85) ? 8 : max;

	if (cap > max)
		cap = max;
	if (cap >= 4 && chance(r, 40))
		return (below(r, cap / 4) + 1) * 4;
	return below(r, cap) + 1;
}

struct range {
	unsigned page, npages;
};

static struct range pick_range(struct rng *r, uint8_t region)
{
	struct range g;

	g.page = pick_page(r, region_pages(region));
	g.npages = pick_npages(r, region_pages(region) - g.page);
	return g;
}

static struct diff_addr at_page(uint8_t region, unsigned page)
{
	return (struct diff_addr){ .region = region, .off = (int64_t)page * (int64_t)DIFF_PAGE };
}

static uint8_t pick_region(struct rng *r)
{
	return chance(r, 12) ? REG_HEAP : REG_WIN;
}

static int pick_prot(struct rng *r)
{
	static const uint64_t prots[] = {
		PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE,
		PROT_READ | PROT_WRITE, PROT_READ, PROT_READ, PROT_NONE, PROT_NONE,
		PROT_WRITE, PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC, PROT_EXEC,
	};
	return (int)PICK(r, prots);
}

/* Lengths the kernel must refuse: each wraps the address space from any region. */
static uint64_t pick_overflow_len(struct rng *r)
{
	static const uint64_t lens[] = {
		~0UL, ~0UL - DIFF_PAGE + 1, ~0UL - DIFF_PAGE + 2, ~0UL - 16 * DIFF_PAGE + 1,
	};
	return PICK(r, lens);
}

static void gen_mmap(struct rng *r, struct diff_op *op)
{
	uint8_t region = pick_region(r);
	struct range g = pick_range(r, region);
	unsigned how = below(r, 100);

	op->kind = OP_MMAP;
	op->addr = at_page(region, g.page);
	op->len = g.npages * DIFF_PAGE;
	op->prot = pick_prot(r);
	op->flags = MAP_PRIVATE | MAP_ANONYMOUS;
	op->fd = -1;
	if (how < 55)
		op->flags |= MAP_FIXED;
	else if (how < 72)
		op->flags |= MAP_FIXED_NOREPLACE;
	else if (how < 92 && g.npages < region_pages(region) - g.page && chance(r, 20))
		op->addr.off += below(r, DIFF_PAGE - 1) + 1;   /* a hint rounds up */
	else if (how >= 92)
		op->addr = (struct diff_addr){ .region = REG_ABS, .off = 0 };
	if (chance(r, 12))
		op->flags |= MAP_POPULATE;
	if (chance(r, 8))
		op->flags |= MAP_NORESERVE;
	if (chance(r, 4))
		op->flags |= MAP_STACK;
	if (chance(r, 4))
		op->fd = (int)below(r, 8);      /* ignored with MAP_ANONYMOUS */
	if (chance(r, 4))
		op->offset = (int64_t)(below(r, 16) * DIFF_PAGE); /* ignored too */
}

static void break_mmap(struct rng *r, struct diff_op *op)
{
	static const uint64_t unknown_bits[] = { 0x200, 0x400, 0x200000, 0x800000, 0x2000000 };

	switch (below(r, 11)) {
	case 0: op->len = 0; break;
	case 1: op->len = pick_overflow_len(r); break;
	case 2: op->flags |= MAP_FIXED; op->addr.off += below(r, DIFF_PAGE - 1) + 1; break;
	case 3: op->offset = below(r, DIFF_PAGE - 1) + 1; break;
	case 4: op->flags &= ~MAP_TYPE_MASK; break;                     /* no type */
	case 5: op->flags = (op->flags & ~MAP_TYPE_MASK) | MAP_SHARED_VALIDATE; break;
	case 6: op->flags = (op->flags & ~MAP_TYPE_MASK) | (int)(4 + below(r, 4)); break;
	case 7: op->flags |= (int)PICK(r, unknown_bits); break;         /* ignored by Linux */
	case 8: op->flags &= ~MAP_ANONYMOUS; op->fd = -1; break;        /* -EBADF */
	case 9: op->prot |= chance(r, 50) ? 0x10 : 0x80000000; break;  /* prot is not checked */
	default:   /* with no huge pages reserved (MAP_NORESERVE would succeed) */
		op->flags = (op->flags & ~(MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_NORESERVE)) |
			    MAP_HUGETLB;
		op->offset = 0;
		op->addr = (struct diff_addr){ .region = REG_ABS, .off = 0 };
		break;
	}
}

/* munmap, mprotect and madvise share the shape (addr, len, one int). */
static void gen_range_op(struct rng *r, struct diff_op *op, uint8_t kind)
{
	uint8_t region = pick_region(r);
	struct range g = pick_range(r, region);

	op->kind = kind;
	op->addr = at_page(region, g.page);
	op->len = g.npages * DIFF_PAGE;
	if (chance(r, 5))
		op->len -= below(r, DIFF_PAGE - 1) + 1;   /* an unaligned length rounds up */
}

static void break_range_op(struct rng *r, struct diff_op *op)
{
	switch (below(r, 3)) {
	case 0: op->len = 0; break;
	case 1: op->len = pick_overflow_len(r); break;
	default: op->addr.off += below(r, DIFF_PAGE - 1) + 1; break;
	}
}

static void gen_mprotect(struct rng *r, struct diff_op *op)
{
	gen_range_op(r, op, OP_MPROTECT);
	op->prot = pick_prot(r);
	if (chance(r, 2))
		op->prot |= PROT_SEM;   /* accepted and ignored on x86 */
}

static void break_mprotect(struct rng *r, struct diff_op *op)
{
	static const uint64_t bad[] = { 0x10, 0x80, PROT_GROWSDOWN, PROT_GROWSDOWN | PROT_GROWSUP };

	if (chance(r, 50))
		op->prot |= (int)PICK(r, bad);
	else
		break_range_op(r, op);
}

static void gen_madvise(struct rng *r, struct diff_op *op)
{
	static const uint64_t common[] = {
		MADV_DONTNEED, MADV_DONTNEED, MADV_DONTNEED, MADV_FREE, MADV_FREE,
		MADV_WILLNEED, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_DONTFORK,
		MADV_DOFORK, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_POPULATE_WRITE,
		MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_WIPEONFORK, MADV_KEEPONFORK,
	};
	static const uint64_t rare[] = {
		MADV_DONTDUMP, MADV_DODUMP, MADV_COLD,
		MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_REMOVE, 24 /* MADV_DONTNEED_LOCKED */,
	};

	gen_range_op(r, op, OP_MADVISE);
	op->prot = (int)(chance(r, 85) ? PICK(r, common) : PICK(r, rare));
}

static void break_madvise(struct rng *r, struct diff_op *op)
{
	static const uint64_t invalid[] = { 5, 6, 7, 26, 50, 99, 104, 1000, (uint64_t)-1 };

	if (chance(r, 50))
		op->prot = (int)PICK(r, invalid);
	else
		break_range_op(r, op);
}

/* A page where npages fit before the region's end. */
static struct diff_addr fitting_page(struct rng *r, uint8_t region, unsigned npages)
{
	return at_page(region, pick_page(r, region_pages(region) - npages + 1));
}

static void gen_mremap(struct rng *r, struct diff_op *op)
{
	uint8_t region = pick_region(r);
	struct range g = pick_range(r, region);
	unsigned room = region_pages(region) - g.page, new_pages;

	op->kind = OP_MREMAP;
	op->addr = at_page(region, g.page);
	op->len = g.npages * DIFF_PAGE;
	switch (below(r, 6)) {
	case 0:  /* shrink in place */
		new_pages = g.npages > 1 ? below(r, g.npages - 1) + 1 : 1;
		op->flags = chance(r, 50) ? MREMAP_MAYMOVE : 0;
		break;
	case 1:  /* grow in place or fail */
		new_pages = g.npages + below(r, room - g.npages + 1);
		break;
	case 2:  /* grow, may move */
		new_pages = g.npages + below(r, room - g.npages + 1);
		op->flags = MREMAP_MAYMOVE;
		break;
	case 3:  /* move to a fixed place, any size */
		new_pages = pick_npages(r, region_pages(region));
		op->flags = MREMAP_MAYMOVE | MREMAP_FIXED;
		op->addr2 = fitting_page(r, region, new_pages);
		break;
	default: /* leave the old range mapped and empty */
		new_pages = g.npages;
		op->flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
		if (chance(r, 70)) {
			op->flags |= MREMAP_FIXED;
			op->addr2 = fitting_page(r, region, new_pages);
		}
		break;
	}
	op->len2 = new_pages * DIFF_PAGE;
	op->back = fitting_page(r, region, new_pages);
}

static void break_mremap(struct rng *r, struct diff_op *op)
{
	switch (below(r, 9)) {
	case 0: op->addr.off += below(r, DIFF_PAGE - 1) + 1; break;
	case 1: op->len2 = 0; break;
	case 2: op->flags |= chance(r, 50) ? 8 : 0x40; break;
	case 3: op->flags = MREMAP_FIXED; break;
	case 4: op->flags = MREMAP_DONTUNMAP; break;
	case 5: op->flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP; op->len2 = op->len + DIFF_PAGE; break;
	case 6:
		op->flags |= MREMAP_MAYMOVE | MREMAP_FIXED;
		op->addr2 = at_page(op->addr.region, 0);
		op->addr2.off += 1 + below(r, DIFF_PAGE - 1);
		break;
	case 7: op->len = 0; op->flags |= MREMAP_MAYMOVE; break;
	default: op->len2 = pick_overflow_len(r); break;
	}
}

static void gen_brk(struct rng *r, struct diff_op *op)
{
	unsigned how = below(r, 100);

	op->kind = OP_BRK;
	op->addr = at_page(REG_HEAP, below(r, HEAP_PAGES));   /* grow or shrink */
	if (how < 10)
		op->addr = (struct diff_addr){ .region = REG_ABS, .off = 0 };   /* query */
	else if (how < 25)
		op->addr.off += below(r, DIFF_PAGE - 1) + 1;                      /* unaligned */
	else if (how < 32)
		op->addr.off = -(int64_t)((below(r, 3) + 1) * DIFF_PAGE);         /* below start */
	else if (how < 38)
		op->addr.off = 0;                                                 /* empty heap */
}

static void gen_access(struct rng *r, struct diff_op *op, uint8_t kind)
{
	uint8_t region = pick_region(r);
	uint64_t size = region_pages(region) * DIFF_PAGE;
	uint64_t off = next(r) % size, len;

	if (chance(r, 30))
		off &= ~(DIFF_PAGE - 1);
	len = chance(r, 3) ? 0 : 1 + next(r) % (4 * DIFF_PAGE);
	if (chance(r, 40))
		len = 1 + next(r) % 64;
	if (off + len > size)
		len = size - off;
	op->kind = kind;
	op->addr = (struct diff_addr){ .region = region, .off = (int64_t)off };
	op->len = len;
	op->data_seed = next(r);
}

static void gen_op(struct rng *r, struct diff_op *op)
{
	static const uint8_t weights[OP_KINDS] = {
		[OP_MMAP] = 18, [OP_MUNMAP] = 10, [OP_MPROTECT] = 14, [OP_MADVISE] = 14,
		[OP_MREMAP] = 10, [OP_BRK] = 6, [OP_READ] = 12, [OP_WRITE] = 16,
	};
	unsigned w = below(r, 100), kind = 0;
	bool invalid = chance(r, 10);

	while (w >= weights[kind]) {
		w -= weights[kind];
		kind++;
	}
	memset(op, 0, sizeof(*op));
	op->fd = -1;
	switch (kind) {
	case OP_MMAP:     gen_mmap(r, op); if (invalid) break_mmap(r, op); break;
	case OP_MUNMAP:   gen_range_op(r, op, OP_MUNMAP); if (invalid) break_range_op(r, op); break;
	case OP_MPROTECT: gen_mprotect(r, op); if (invalid) break_mprotect(r, op); break;
	case OP_MADVISE:  gen_madvise(r, op); if (invalid) break_madvise(r, op); break;
	case OP_MREMAP:   gen_mremap(r, op); if (invalid) break_mremap(r, op); break;
	case OP_BRK:      gen_brk(r, op); break;
	default:          gen_access(r, op, (uint8_t)kind); break;
	}
}

#define FORK_PERCENT 2

void diff_generate(uint64_t seed, struct diff_op *ops, unsigned n)
{
	struct rng r = { .state = seed };
	unsigned nprocs = 1;

	for (unsigned i = 0; i < n; i++) {
		uint8_t proc = nprocs > 1 ? (uint8_t)below(&r, nprocs) : 0;

		if (nprocs < MAX_PROCS && chance(&r, FORK_PERCENT)) {
			memset(&ops[i], 0, sizeof(ops[i]));
			ops[i].kind = OP_FORK;
			ops[i].fd = -1;
			nprocs++;
		} else {
			gen_op(&r, &ops[i]);
		}
		ops[i].proc = proc;
	}
}

/* ---- Printing ---- */

static bool near(unsigned long v, unsigned long base, unsigned pages)
{
	return v + REGION_GUARD >= base && v <= base + pages * DIFF_PAGE + REGION_GUARD;
}

static int format_rel(const char *base, long off, char *buf, size_t size)
{
	if (off < 0)
		return snprintf(buf, size, "%s-%#lx", base, (unsigned long)-off);
	return snprintf(buf, size, "%s+%#lx", base, (unsigned long)off);
}

struct name {
	long value;
	const char *name;
};

static int format_addr(const struct diff_addr *a, char *buf, size_t size)
{
	const char *base = a->region == REG_WIN ? "W" : a->region == REG_HEAP ? "H" :
			   a->region == REG_BIG ? "B" : NULL;

	if (!base)
		return snprintf(buf, size, "%#lx", (unsigned long)a->off);
	return format_rel(base, (long)a->off, buf, size);
}

/* Names of the set bits; what no name covers is printed in hex. */
static void format_bits(long v, const struct name *names, unsigned n, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < n && used < size; i++) {
		if (names[i].value && (v & names[i].value) == names[i].value) {
			used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "|" : "",
						 names[i].name);
			v &= ~names[i].value;
		}
	}
	if ((v || !used) && used < size)
		snprintf(buf + used, size - used, "%s%#lx", used ? "|" : "", (unsigned long)v);
}

#define NAME(x) { x, #x }
static const struct name mmap_flags[] = {
	NAME(MAP_SHARED_VALIDATE), NAME(MAP_SHARED), NAME(MAP_PRIVATE), NAME(MAP_ANONYMOUS),
	NAME(MAP_FIXED), NAME(MAP_FIXED_NOREPLACE), NAME(MAP_POPULATE), NAME(MAP_NORESERVE),
	NAME(MAP_STACK), NAME(MAP_HUGETLB),
};
static const struct name prot_bits[] = {
	NAME(PROT_READ), NAME(PROT_WRITE), NAME(PROT_EXEC), NAME(PROT_SEM),
	NAME(PROT_GROWSDOWN), NAME(PROT_GROWSUP),
};
static const struct name mremap_flags[] = {
	NAME(MREMAP_MAYMOVE), NAME(MREMAP_FIXED), NAME(MREMAP_DONTUNMAP),
};
static const struct name advice_names[] = {
	NAME(MADV_NORMAL), NAME(MADV_RANDOM), NAME(MADV_SEQUENTIAL), NAME(MADV_WILLNEED),
	NAME(MADV_DONTNEED), NAME(MADV_FREE), NAME(MADV_REMOVE), NAME(MADV_DONTFORK),
	NAME(MADV_DOFORK), NAME(MADV_MERGEABLE), NAME(MADV_UNMERGEABLE), NAME(MADV_HUGEPAGE),
	NAME(MADV_NOHUGEPAGE), NAME(MADV_DONTDUMP), NAME(MADV_DODUMP), NAME(MADV_WIPEONFORK),
	NAME(MADV_KEEPONFORK), NAME(MADV_COLD), NAME(MADV_POPULATE_READ),
	NAME(MADV_POPULATE_WRITE), { 24, "MADV_DONTNEED_LOCKED" },
};

static int format_advice(int advice, char *buf, size_t size)
{
	for (unsigned i = 0; i < sizeof(advice_names) / sizeof(advice_names[0]); i++)
		if (advice_names[i].value == advice)
			return snprintf(buf, size, "%s", advice_names[i].name);
	return snprintf(buf, size, "%d", advice);
}

#define BITS(v, names, buf) format_bits(v, names, sizeof(names) / sizeof(names[0]), buf, sizeof(buf))

static int format_op(const struct diff_op *op, char *buf, size_t size);

/* Ops of procs other than 0 say whose they are. */
int diff_op_format(const struct diff_op *op, char *buf, size_t size)
{
	int n = op->proc ? snprintf(buf, size, "[proc %u] ", op->proc) : 0;

	if (n < 0 || (size_t)n >= size)
		return n;
	return n + format_op(op, buf + n, size - (size_t)n);
}

static int format_op(const struct diff_op *op, char *buf, size_t size)
{
	char a[48], a2[48], back[48], bits[160], prot[80];

	format_addr(&op->addr, a, sizeof(a));
	format_addr(&op->addr2, a2, sizeof(a2));
	format_addr(&op->back, back, sizeof(back));
	BITS(op->prot, prot_bits, prot);
	if (op->prot == 0)
		snprintf(prot, sizeof(prot), "PROT_NONE");
	switch (op->kind) {
	case OP_MMAP:
		BITS(op->flags, mmap_flags, bits);
		return snprintf(buf, size, "mmap(%s, %#lx, %s, %s, %d, %#lx)", a,
				(unsigned long)op->len, prot, bits, op->fd, (unsigned long)op->offset);
	case OP_MUNMAP:
		return snprintf(buf, size, "munmap(%s, %#lx)", a, (unsigned long)op->len);
	case OP_MPROTECT:
		return snprintf(buf, size, "mprotect(%s, %#lx, %s)", a, (unsigned long)op->len, prot);
	case OP_MADVISE:
		format_advice(op->prot, bits, sizeof(bits));
		return snprintf(buf, size, "madvise(%s, %#lx, %s)", a, (unsigned long)op->len, bits);
	case OP_MREMAP:
		BITS(op->flags, mremap_flags, bits);
		if (op->flags == 0)
			snprintf(bits, sizeof(bits), "0");
		return snprintf(buf, size, "mremap(%s, %#lx, %#lx, %s, %s) [back to %s]", a,
				(unsigned long)op->len, (unsigned long)op->len2, bits,
				op->flags & MREMAP_FIXED ? a2 : "0", back);
	case OP_BRK:
		return snprintf(buf, size, "brk(%s)", a);
	case OP_READ:
		return snprintf(buf, size, "read(%s, %#lx)", a, (unsigned long)op->len);
	case OP_WRITE:
		return snprintf(buf, size, "write(%s, %#lx, data %#llx)", a, (unsigned long)op->len,
				(unsigned long long)op->data_seed);
	case OP_FORK:
		return snprintf(buf, size, "fork()");
	case OP_EXIT:
		return snprintf(buf, size, "exit()");
	}
	return snprintf(buf, size, "op %d?", op->kind);
}

/* An address in a region as W+off / H+off, an error by name. */
int diff_ret_format(const struct diff_op *op, long ret, const struct diff_layout *lay,
		    char *buf, size_t size)
{
	unsigned long v = (unsigned long)ret;
	bool is_addr = op->kind == OP_MMAP || op->kind == OP_MREMAP || op->kind == OP_BRK;

	if (ret < 0 && ret > -4096) {
		const char *e = strerrorname_np((int)-ret);
		return snprintf(buf, size, "-%s", e ? e : "?");
	}
	if (op->kind == OP_FORK && ret >= RET_FORKED)
		return snprintf(buf, size, "proc %ld", ret - RET_FORKED);
	if (ret == RET_ELSEWHERE && op->kind != OP_BRK)
		return snprintf(buf, size, "elsewhere");
	if (ret == RET_SKIPPED)
		return snprintf(buf, size, "skipped");
	if (is_addr && near(v, lay->win_base, WIN_PAGES))
		return format_rel("W", (long)(v - lay->win_base), buf, size);
	if (is_addr && near(v, lay->heap_base, HEAP_PAGES))
		return format_rel("H", (long)(v - lay->heap_base), buf, size);
	if (is_addr && near(v, lay->big_base, BIG_PAGES))
		return format_rel("B", (long)(v - lay->big_base), buf, size);
	return snprintf(buf, size, is_addr ? "%#lx" : "%ld", ret);
}
