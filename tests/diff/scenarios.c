/*
 * Named fixed sequences for the classic split and merge rules. Each runs on
 * both sides like a random sequence, and the host's final VMA count must be
 * the one the scenario is about, which checks the scenario (and the harness)
 * rather than softmm. Pages are counted from the region's base.
 */
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

#define RW (PROT_READ | PROT_WRITE)
#define MAX_SCENARIO_OPS 16

struct seq {
	struct diff_op ops[MAX_SCENARIO_OPS];
	unsigned n;
};

struct scenario {
	const char *name;
	void (*build)(struct seq *s);
	unsigned vmas;   /* in both regions after the last op, of the proc that ran it */
};

static struct diff_addr page_in(uint8_t region, long page)
{
	return (struct diff_addr){ .region = region, .off = page * (long)DIFF_PAGE };
}

static struct diff_op *add(struct seq *s, uint8_t kind, long page, long npages)
{
	struct diff_op *op = &s->ops[s->n++];

	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->fd = -1;
	op->addr = page_in(REG_WIN, page);
	op->len = (uint64_t)npages * DIFF_PAGE;
	return op;
}

static void map_flags(struct seq *s, long page, long npages, int prot, int flags)
{
	struct diff_op *op = add(s, OP_MMAP, page, npages);

	op->prot = prot;
	op->flags = MAP_PRIVATE | MAP_ANONYMOUS | flags;
}

static void map(struct seq *s, long page, long npages, int prot)
{
	map_flags(s, page, npages, prot, MAP_FIXED);
}

static void protect(struct seq *s, long page, long npages, int prot)
{
	add(s, OP_MPROTECT, page, npages)->prot = prot;
}

static void advise(struct seq *s, long page, long npages, int advice)
{
	add(s, OP_MADVISE, page, npages)->prot = advice;
}

static void remap(struct seq *s, long page, long npages, long new_npages, int flags,
		  long new_page, long back_page)
{
	struct diff_op *op = add(s, OP_MREMAP, page, npages);

	op->len2 = (uint64_t)new_npages * DIFF_PAGE;
	op->flags = flags;
	op->addr2 = page_in(REG_WIN, new_page);
	op->back = page_in(REG_WIN, back_page);
}

static void fill(struct seq *s, long page, long npages)
{
	add(s, OP_WRITE, page, npages)->data_seed = 0x5eed0000u + s->n;
}

static void heap_brk(struct seq *s, long page, long extra_bytes)
{
	struct diff_op *op = add(s, OP_BRK, 0, 0);

	op->addr = page_in(REG_HEAP, page);
	op->addr.off += extra_bytes;
}

static void mprotect_middle_then_back(struct seq *s)
{
	map(s, 0, 8, RW);
	fill(s, 0, 8);
	protect(s, 2, 2, PROT_READ);
	protect(s, 2, 2, RW);
}

static void adjacent_mmaps_merge(struct seq *s)
{
	map(s, 0, 4, RW);
	fill(s, 0, 1);
	map(s, 4, 4, RW);
	fill(s, 4, 1);
}

static void account_keeps_neighbours_apart(struct seq *s)
{
	map(s, 0, 2, PROT_READ);
	protect(s, 0, 2, RW);          /* gains VM_ACCOUNT */
	fill(s, 0, 1);                 /* and an anon_vma */
	protect(s, 0, 2, PROT_READ);   /* so it keeps VM_ACCOUNT */
	map(s, 2, 2, PROT_READ);
}

static void account_dropped_if_never_faulted(struct seq *s)
{
	map(s, 0, 2, PROT_READ);
	protect(s, 0, 2, RW);
	protect(s, 0, 2, PROT_READ);   /* no anon_vma: VM_ACCOUNT goes (Linux 6.5+) */
	map(s, 2, 2, PROT_READ);
}

static void fixed_over_populated(struct seq *s)
{
	map(s, 0, 8, RW);
	fill(s, 0, 8);
	map(s, 2, 2, RW);              /* zero pages, merged back into one VMA */
}

static void fixed_over_populated_other_prot(struct seq *s)
{
	map(s, 0, 8, RW);
	fill(s, 0, 8);
	map(s, 2, 2, PROT_READ);
}

static void mremap_grow_in_place(struct seq *s)
{
	map(s, 0, 4, RW);
	fill(s, 0, 4);
	remap(s, 0, 4, 8, 0, 0, 0);
}

static void mremap_grow_moves(struct seq *s)
{
	map(s, 0, 4, RW);
	fill(s, 0, 4);
	map(s, 4, 1, PROT_READ);
	remap(s, 0, 4, 8, 0, 0, 0);                 /* -ENOMEM: cannot move */
	remap(s, 0, 4, 8, MREMAP_MAYMOVE, 0, 16);   /* moves, and back to page 16 */
}

static void mremap_fixed_move(struct seq *s)
{
	map(s, 0, 4, RW);
	fill(s, 0, 4);
	remap(s, 0, 4, 4, MREMAP_MAYMOVE | MREMAP_FIXED, 8, 0);
}

static void dontunmap_leaves_old_empty(struct seq *s)
{
	map(s, 0, 4, RW);
	fill(s, 0, 4);
	remap(s, 0, 4, 4, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, 8, 0);
	fill(s, 1, 1);
}

static void dontneed_reads_zero(struct seq *s)
{
	map(s, 0, 4, RW);
	fill(s, 0, 4);
	advise(s, 1, 2, MADV_DONTNEED);
	add(s, OP_READ, 0, 4);
}

static void free_keeps_data(struct seq *s)
{
	map(s, 0, 4, RW);
	fill(s, 0, 4);
	advise(s, 0, 4, MADV_FREE);
	add(s, OP_READ, 0, 4);
}

static void brk_grow_shrink_refuse(struct seq *s)
{
	heap_brk(s, 3, 0);
	add(s, OP_WRITE, 0, 3)->addr = page_in(REG_HEAP, 0);
	heap_brk(s, 1, 100);          /* unaligned shrink */
	add(s, OP_BRK, 0, 0)->addr = page_in(REG_ABS, 0);
	heap_brk(s, -1, 0);           /* below the start: refused */
	map(s, 0, 1, RW);
	s->ops[s->n - 1].addr = page_in(REG_HEAP, 5);
	heap_brk(s, 5, 0);            /* onto the mapping: refused */
	heap_brk(s, 4, 1);            /* no page left before it: refused */
	heap_brk(s, 4, 0);            /* one page left: granted */
}

static void mprotect_stops_at_hole(struct seq *s)
{
	map(s, 0, 2, RW);
	map(s, 3, 2, RW);
	protect(s, 0, 5, PROT_READ);  /* -ENOMEM, after changing [0, 2) */
}

static void noreplace_onto_mapping(struct seq *s)
{
	map(s, 0, 4, RW);
	map_flags(s, 2, 4, RW, MAP_FIXED_NOREPLACE);
}

static void munmap_middle_splits(struct seq *s)
{
	map(s, 0, 8, RW);
	fill(s, 0, 8);
	add(s, OP_MUNMAP, 3, 2);
}

static void map_stack_stays_apart(struct seq *s)
{
	map(s, 0, 4, RW);
	map_flags(s, 4, 4, RW, MAP_FIXED | MAP_STACK);   /* VM_NOHUGEPAGE */
}

/*
 * In a fork child, a VMA with the inherited anon_vma and an unfaulted
 * neighbour mapped below it later stay apart; growing the upper one in
 * place extends it alone (Linux merges only the new range, with the VMA it
 * extends and the one after it), not into the neighbour below.
 */
static void mremap_grow_keeps_forked_apart(struct seq *s)
{
	map(s, 4, 4, RW);
	fill(s, 4, 4);
	add(s, OP_FORK, 0, 0);
	map(s, 0, 4, RW);
	s->ops[s->n - 1].proc = 1;
	remap(s, 4, 4, 8, 0, 0, 0);
	s->ops[s->n - 1].proc = 1;
}

static const struct scenario scenarios[] = {
	{ "mprotect_middle_then_back_merges", mprotect_middle_then_back, 1 },
	{ "adjacent_mmaps_merge", adjacent_mmaps_merge, 1 },
	{ "vm_account_keeps_neighbours_apart", account_keeps_neighbours_apart, 2 },
	{ "vm_account_dropped_if_never_faulted", account_dropped_if_never_faulted, 1 },
	{ "map_fixed_over_populated_merges_back", fixed_over_populated, 1 },
	{ "map_fixed_over_populated_other_prot", fixed_over_populated_other_prot, 3 },
	{ "mremap_grows_in_place", mremap_grow_in_place, 1 },
	{ "mremap_grow_blocked_moves", mremap_grow_moves, 2 },
	{ "mremap_fixed_moves", mremap_fixed_move, 1 },
	{ "mremap_dontunmap_leaves_old_empty", dontunmap_leaves_old_empty, 2 },
	{ "madv_dontneed_reads_zero", dontneed_reads_zero, 1 },
	{ "madv_free_keeps_data", free_keeps_data, 1 },
	{ "brk_grow_shrink_refuse", brk_grow_shrink_refuse, 2 },
	{ "mprotect_stops_at_hole", mprotect_stops_at_hole, 2 },
	{ "map_fixed_noreplace_onto_mapping", noreplace_onto_mapping, 1 },
	{ "munmap_middle_splits", munmap_middle_splits, 2 },
	{ "map_stack_stays_apart", map_stack_stays_apart, 2 },
	{ "mremap_grow_keeps_forked_apart", mremap_grow_keeps_forked_apart, 2 },
};

/* The scenario's own claim, checked on the host. */
static bool host_has_vmas(struct diff_driver *d, const struct scenario *sc, const struct seq *s)
{
	unsigned got = DIFF_REC(driver_host_steps(d), s->n, s->ops[s->n - 1].proc)->nvma;

	if (got == sc->vmas)
		return true;
	printf("FAIL scenario %s: the host ends with %u VMAs, the scenario expects %u\n",
	       sc->name, got, sc->vmas);
	return false;
}

void diff_run_scenarios(struct diff_driver *d, const struct diff_opts *o,
			unsigned *passed, unsigned *failed)
{
	for (unsigned i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct scenario *sc = &scenarios[i];
		struct diff_failure f;
		struct seq s = { .n = 0 };
		char name[96];

		sc->build(&s);
		snprintf(name, sizeof(name), "scenario %s", sc->name);
		if (o->verbose)
			printf("%s\n", name);
		if (driver_run(d, o, name, s.ops, s.n, &f) && host_has_vmas(d, sc, &s))
			(*passed)++;
		else
			(*failed)++;
	}
}
