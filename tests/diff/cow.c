/*
 * Copy-on-write after fork: the scenarios of Linux's selftests/mm/cow.c that
 * need nothing but fork, mprotect, madvise and mremap, as named tests.
 *
 * Each test is an op sequence in the big region, run on both sides like any
 * other (so every step is also compared, pagemap bits included), and then
 * its claims are checked on the host's records and on softmm's alike:
 *   - after one side writes, the other still reads what it read at the fork;
 *   - a page that one side has copied is exclusively mapped (pagemap bit 56)
 *     on both sides; one that neither has written is mapped twice;
 *   - after the child exits, every page the parent maps is exclusive again.
 *
 * The memory is (a) 4 KiB pages, (b) a PTE-mapped 2 MiB THP (the host maps
 * it with a PMD on the first touch; mprotect of one page and back splits
 * that, as cow.c does; softmm maps large folios with PTEs from the start),
 * (c) the first half of one whose second half mremap moved away, (d) the one
 * PTE left of one after MADV_DONTNEED of the rest. Each runs with and
 * without the "mprotect optimization": the writer does mprotect(PROT_READ)
 * and back to read-write first, which would make an exclusive page writable
 * without a fault, and must not make a shared one so.
 *
 * Where the host gives no THP (AnonHugePages is not 2048 kB after
 * populating, or not 0 after the split), the test is skipped, not failed.
 * The host's THPs are also touched behind the test's back: khugepaged
 * collapses a PTE-mapped THP into a fresh copy (CI saw the parent and the
 * child both map page 8 exclusively, a copy nobody wrote), and the
 * underused-THP shrinker splits one. When either moved its /proc/vmstat
 * counter during a test, the host's records say nothing about COW and the
 * test runs again; softmm is deterministic here, so a real fault of ours
 * fails every try.
 *
 * Not ported: vmsplice, io_uring fixed buffers and GUP pins (softmm has no
 * pipes, io_uring or pin API; the host's results for R/O pins also depend on
 * the kernel's unsharing rules and need gup_test, which needs privileges);
 * swap-out variants (no swap in softmm); PMD-mapped THPs (softmm has no PMD
 * mappings); hugetlb, KSM and the non-anonymous tests (no file or shared
 * mappings in softmm); MADV_COLLAPSE (not in softmm).
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include "diff.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define RW (PROT_READ | PROT_WRITE)
#define THP_PAGES 512u
#define MAX_COW_OPS 16
#define WRITE_PAGES 8u   /* DATA_MAX */

enum memory { MEM_SMALL, MEM_PTE_THP, MEM_MREMAPPED_THP, MEM_SINGLE_PTE, MEM_KINDS };
static const char *const memory_names[MEM_KINDS] = {
	"4k_pages", "pte_mapped_thp", "partly_mremapped_thp", "single_pte_of_thp",
};

struct cow_seq {
	struct diff_op ops[MAX_COW_OPS];
	unsigned n;
	unsigned first, npages;       /* the pages under test, from the big base */
	unsigned populated, split;    /* records whose AnonHugePages the host must show */
	unsigned forked, written, exited;
	unsigned parent_writes;       /* else the child writes */
};

static struct diff_op *add(struct cow_seq *s, uint8_t kind, unsigned page, unsigned npages)
{
	struct diff_op *op = &s->ops[s->n++];

	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->fd = -1;
	op->addr = (struct diff_addr){ .region = REG_BIG, .off = (int64_t)page * (int64_t)DIFF_PAGE };
	op->len = (uint64_t)npages * DIFF_PAGE;
	return op;
}

static void set_up_memory(struct cow_seq *s, enum memory mem)
{
	struct diff_op *op;

	if (mem == MEM_SMALL) {
		op = add(s, OP_MMAP, 0, WRITE_PAGES);
		op->prot = RW;
		op->flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
		add(s, OP_WRITE, 0, WRITE_PAGES)->data_seed = 0xc0;
		s->npages = WRITE_PAGES;
		return;
	}
	op = add(s, OP_MMAP, 0, THP_PAGES);
	op->prot = RW;
	op->flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
	add(s, OP_MADVISE, 0, THP_PAGES)->prot = MADV_HUGEPAGE;
	add(s, OP_MADVISE, 0, THP_PAGES)->prot = MADV_POPULATE_WRITE;
	s->populated = s->n;
	add(s, OP_MPROTECT, 1, 1)->prot = PROT_READ;   /* PTE-map it */
	add(s, OP_MPROTECT, 1, 1)->prot = RW;
	s->split = s->n;
	add(s, OP_WRITE, 0, WRITE_PAGES)->data_seed = 0xc1;
	add(s, OP_WRITE, THP_PAGES / 2 - 4, WRITE_PAGES)->data_seed = 0xc2;
	s->npages = THP_PAGES;
	if (mem == MEM_MREMAPPED_THP) {
		op = add(s, OP_MREMAP, THP_PAGES / 2, THP_PAGES / 2);
		op->len2 = op->len;
		op->flags = MREMAP_MAYMOVE | MREMAP_FIXED;
		op->addr2 = (struct diff_addr){ .region = REG_BIG,
						.off = (int64_t)(THP_PAGES + THP_PAGES / 2) * (int64_t)DIFF_PAGE };
		s->npages = THP_PAGES / 2;
	} else if (mem == MEM_SINGLE_PTE) {
		add(s, OP_MADVISE, 1, THP_PAGES - 1)->prot = MADV_DONTNEED;
		s->npages = 1;
	}
}

/* fork; the writer (optionally after mprotect read-only and back) writes the
 * first pages under test; the child exits. */
static void build(struct cow_seq *s, enum memory mem, bool parent_writes, bool mprotect_first)
{
	uint8_t writer = parent_writes ? 0 : 1;
	unsigned nwrite;

	memset(s, 0, sizeof(*s));
	set_up_memory(s, mem);
	nwrite = s->npages < WRITE_PAGES ? s->npages : WRITE_PAGES;
	s->parent_writes = parent_writes;
	add(s, OP_FORK, 0, 0);
	s->forked = s->n;
	if (mprotect_first) {
		add(s, OP_MPROTECT, 0, s->npages)->prot = PROT_READ;
		s->ops[s->n - 1].proc = writer;
		add(s, OP_MPROTECT, 0, s->npages)->prot = RW;
		s->ops[s->n - 1].proc = writer;
	}
	add(s, OP_WRITE, 0, nwrite)->data_seed = 0xfeed;
	s->ops[s->n - 1].proc = writer;
	s->written = s->n;
	add(s, OP_EXIT, 0, 0)->proc = 1;
	s->exited = s->n;
}

/* ---- The claims, checked on one side's records ---- */

struct verdict {
	char why[256];
};

static bool fail(struct verdict *v, const char *fmt, unsigned page, unsigned rec, unsigned proc)
{
	char what[160];

	snprintf(what, sizeof(what), fmt, page);
	snprintf(v->why, sizeof(v->why), "%s (record %u, proc %u)", what, rec, proc);
	return false;
}

static const struct diff_vma *vma_at(const struct diff_step *st, unsigned long addr)
{
	for (unsigned i = 0; i < st->nvma; i++) {
		unsigned long start, end;

		if (sscanf(st->vma[i].line, "%lx-%lx", &start, &end) == 2 && addr >= start && addr < end)
			return &st->vma[i];
	}
	return NULL;
}

/* Did the host give a THP and PTE-map it? Else the test says nothing. */
static bool host_has_pte_mapped_thp(const struct diff_step *steps, const struct cow_seq *s,
				    const struct diff_layout *lay)
{
	const struct diff_vma *populated, *split;

	if (!s->populated)
		return true;
	populated = vma_at(DIFF_REC(steps, s->populated, 0), lay->big_base);
	split = vma_at(DIFF_REC(steps, s->split, 0), lay->big_base);
	return populated && split && populated->anon_huge_kb == 2048 &&
	       split->anon_huge_kb == 0 && split->rss_kb >= 2048;
}

static bool check_side(const struct diff_step *steps, const struct cow_seq *s,
		       struct verdict *v)
{
	unsigned writer = s->parent_writes ? 0 : 1, other = 1 - writer;
	unsigned nwrite = s->npages < WRITE_PAGES ? s->npages : WRITE_PAGES;
	unsigned base = WIN_PAGES + HEAP_PAGES + s->first;

	for (unsigned i = 0; i < s->npages; i++) {
		unsigned pg = base + i;
		bool written = i < nwrite;
		const struct diff_step *fw = DIFF_REC(steps, s->forked, writer);
		const struct diff_step *fo = DIFF_REC(steps, s->forked, other);
		const struct diff_step *ww = DIFF_REC(steps, s->written, writer);
		const struct diff_step *wo = DIFF_REC(steps, s->written, other);
		const struct diff_step *parent = DIFF_REC(steps, s->exited, 0);

		if (!(fw->pm[pg] & PM_PRESENT_F) || !(fo->pm[pg] & PM_PRESENT_F))
			return fail(v, "page %u is not present in both after fork", i, s->forked, 0);
		if ((fw->pm[pg] | fo->pm[pg]) & PM_EXCLUSIVE_F)
			return fail(v, "page %u is exclusive right after fork", i, s->forked, 0);
		if (fw->hash[pg] != fo->hash[pg])
			return fail(v, "page %u differs between parent and child at fork", i,
				    s->forked, 1);
		if (wo->hash[pg] != fo->hash[pg])
			return fail(v, "page %u: the other side sees the write", i, s->written, other);
		if (written && ww->hash[pg] == fw->hash[pg])
			return fail(v, "page %u: the writer does not see its write", i, s->written,
				    writer);
		if (written && (!(ww->pm[pg] & PM_EXCLUSIVE_F) || !(wo->pm[pg] & PM_EXCLUSIVE_F)))
			return fail(v, "page %u: copied but not exclusive on both sides", i,
				    s->written, writer);
		if (!written && ((ww->pm[pg] | wo->pm[pg]) & PM_EXCLUSIVE_F))
			return fail(v, "page %u: still shared but exclusive", i, s->written, writer);
		if (!(parent->pm[pg] & PM_EXCLUSIVE_F))
			return fail(v, "page %u: not exclusive in the parent after the child exits",
				    i, s->exited, 0);
		if (parent->hash[pg] != DIFF_REC(steps, s->written, 0)->hash[pg])
			return fail(v, "page %u: the parent's data changed at the child's exit", i,
				    s->exited, 0);
	}
	return true;
}

#define COW_TRIES 4

void diff_run_cow_tests(struct diff_driver *d, const struct diff_opts *o,
			unsigned *passed, unsigned *failed)
{
	const struct diff_layout *lay = driver_layout(d);
	struct diff_opts quiet = *o;

	quiet.quiet = true;

	for (unsigned mem = 0; mem < MEM_KINDS; mem++)
		for (unsigned dir = 0; dir < 2; dir++)
			for (unsigned mp = 0; mp < 2; mp++) {
				struct cow_seq s;
				struct diff_failure f;
				struct verdict hv = { "" }, sv = { "" };
				char name[128];
				bool ok;

				snprintf(name, sizeof(name), "cow %s: %s writes%s", memory_names[mem],
					 dir ? "child" : "parent",
					 mp ? ", after mprotect read-only and back" : "");
				if (!lay->big_ok) {
					printf("SKIP %s: the big region is taken in the host\n", name);
					(*passed)++;
					continue;
				}
				build(&s, mem, dir == 0, mp);
				if (o->verbose)
					printf("%s\n", name);
				for (unsigned try = 1;; try++) {
					unsigned long long before = host_async_events();

					ok = driver_run(d, &quiet, name, s.ops, s.n, &f);
					if (host_async_events() == before || try == COW_TRIES)
						break;
					printf("RETRY %s: khugepaged, the THP shrinker or ksmd changed host pages during the test\n",
					       name);
				}
				if (!ok && !o->quiet)
					driver_report(d, name, s.ops, s.n, &f);
				if (!host_has_pte_mapped_thp(driver_host_steps(d), &s, lay)) {
					printf("SKIP %s: the host gave no PTE-mapped THP\n", name);
					(*passed)++;
					continue;
				}
				if (!check_side(driver_host_steps(d), &s, &hv))
					printf("FAIL %s: on the host: %s\n", name, hv.why);
				if (!check_side(driver_sm_steps(d), &s, &sv))
					printf("FAIL %s: on softmm: %s\n", name, sv.why);
				if (ok && !hv.why[0] && !sv.why[0])
					(*passed)++;
				else
					(*failed)++;
			}
}
