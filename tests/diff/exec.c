/*
 * The executor: runs a sequence of ops through a backend and records what
 * can be observed after each step. It is the only place that knows what an
 * op means, so the host and softmm cannot drift apart in how they run one.
 *
 * Normalizing what is not deterministic:
 *   - mmap or mremap results the kernel placed (no hint, a refused hint,
 *     MREMAP_MAYMOVE) land outside the regions at addresses that differ
 *     between the two sides. They are recorded as RET_ELSEWHERE; an mmap is
 *     then unmapped and an mremap moved back into its region with
 *     MREMAP_FIXED to the op's "back" address, on both sides alike.
 *   - A write that faults may or may not have copied a prefix (softmm.h
 *     allows both). It is redone page by page, which is idempotent, so both
 *     sides end with exactly the pages before the faulting one written.
 *
 * Processes: every executor walks the same steps and asks the backend to
 * enter the proc that runs each part (the op and a full observation for the
 * proc that runs it, then a peek of every other proc, in order). On softmm
 * that switches the CPU to another mm; on the host every process runs this
 * loop, and enter() returns true in the one whose turn it is (host.c passes
 * a token), so each process writes only its own records. What the loop
 * knows about procs (which exist) follows from the ops alone, so it is the
 * same in every executor: a fork is taken to succeed unless this executor
 * saw it fail (a host fork that fails ends the sequence).
 *
 * This file runs inside the host child after the window is chosen, so it
 * allocates nothing: all buffers come from struct diff_work.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include "diff.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

struct exec {
	const struct diff_backend *b;
	const struct diff_layout *lay;
	struct diff_work *w;
	struct diff_step *steps;
	bool big;                       /* the sequence uses the big region */
	unsigned nprocs;                /* made so far, exited ones included */
	bool alive[MAX_PROCS];
	unsigned maps_rec[MAX_PROCS];   /* the record with each proc's latest maps */
};

struct region {
	unsigned long base;
	unsigned npages;
	unsigned first;   /* index of its first page in diff_step.page */
};

static unsigned regions(const struct exec *x, struct region r[3])
{
	unsigned n = 0;

	r[n++] = (struct region){ x->lay->win_base, WIN_PAGES, 0 };
	if (x->lay->heap_ok)
		r[n++] = (struct region){ x->lay->heap_base, HEAP_PAGES, WIN_PAGES };
	if (x->big)
		r[n++] = (struct region){ x->lay->big_base, BIG_PAGES, WIN_PAGES + HEAP_PAGES };
	return n;
}

unsigned long diff_resolve(const struct diff_addr *a, const struct diff_layout *lay)
{
	unsigned long base = a->region == REG_WIN ? lay->win_base :
			     a->region == REG_HEAP ? lay->heap_base :
			     a->region == REG_BIG ? lay->big_base : 0;

	return base + (unsigned long)a->off;
}

bool diff_uses_big(const struct diff_op *ops, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (ops[i].addr.region == REG_BIG || ops[i].addr2.region == REG_BIG)
			return true;
	return false;
}

void diff_records_reset(struct diff_step *steps, unsigned n)
{
	for (size_t i = 0; i < DIFF_SLOTS(n); i++) {
		steps[i].state = PS_NONE;
		steps[i].acted = false;
	}
}

const struct diff_step *diff_acting(const struct diff_step *steps, unsigned step)
{
	for (unsigned p = 0; p < MAX_PROCS; p++)
		if (DIFF_REC(steps, step, p)->acted)
			return DIFF_REC(steps, step, p);
	return NULL;
}

uint64_t diff_hash(const void *p, size_t len)
{
	const unsigned char *c = p;
	uint64_t lane[4] = { 1, 2, 3, 4 }, h = len;
	size_t i = 0;

	for (; i + 32 <= len; i += 32)
		for (int k = 0; k < 4; k++) {
			uint64_t v;

			memcpy(&v, c + i + 8 * k, 8);
			lane[k] = (lane[k] ^ v) * 0x9e3779b97f4a7c15ULL;
		}
	for (; i < len; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	for (int k = 0; k < 4; k++)
		h = diff_mix64(h ^ lane[k]);
	return h;
}

/* Most pages hold zeros: spot them before hashing (0 stands for them). */
static uint64_t page_hash(const unsigned char *page)
{
	uint64_t any = 0, v;

	for (size_t i = 0; i < DIFF_PAGE; i += 8) {
		memcpy(&v, page + i, 8);
		any |= v;
	}
	return any ? diff_hash(page, DIFF_PAGE) : 0;
}

static unsigned long page_align(unsigned long len)
{
	return (len + DIFF_PAGE - 1) & ~(DIFF_PAGE - 1);
}

/* Whether [addr, addr + len) meets a region: results there are compared exactly. */
static bool in_regions(const struct exec *x, unsigned long addr, unsigned long len)
{
	struct region r[3];
	unsigned n = regions(x, r);

	for (unsigned i = 0; i < n; i++)
		if (addr < r[i].base + r[i].npages * DIFF_PAGE && addr + len > r[i].base)
			return true;
	return false;
}

static bool uses_missing_region(const struct exec *x, const struct diff_op *op)
{
	if (!x->lay->heap_ok && (op->kind == OP_BRK || op->addr.region == REG_HEAP))
		return true;
	return !x->lay->big_ok && (op->addr.region == REG_BIG || op->addr2.region == REG_BIG);
}

/* ---- Running one op ---- */

static void add_problem(struct diff_step *st, const char *what)
{
	size_t used = strlen(st->problem);

	if (used + 3 < sizeof(st->problem))
		snprintf(st->problem + used, sizeof(st->problem) - used, "%s%s",
			 used ? "; " : "", what);
}

static long run_mmap(struct exec *x, const struct diff_op *op, struct diff_step *st)
{
	const struct diff_backend *b = x->b;
	long r = b->mmap(b->ctx, diff_resolve(&op->addr, x->lay), op->len, op->prot,
			 op->flags, op->fd, op->offset);

	if (r >= 0 && !in_regions(x, (unsigned long)r, page_align(op->len))) {
		st->aux = b->munmap(b->ctx, (unsigned long)r, op->len);
		r = RET_ELSEWHERE;
	}
	return r;
}

static long run_mremap(struct exec *x, const struct diff_op *op, struct diff_step *st)
{
	const struct diff_backend *b = x->b;
	unsigned long new_len = page_align(op->len2);
	long r = b->mremap(b->ctx, diff_resolve(&op->addr, x->lay), op->len, op->len2,
			   op->flags, diff_resolve(&op->addr2, x->lay));

	if (r >= 0 && !in_regions(x, (unsigned long)r, new_len)) {
		st->aux = b->mremap(b->ctx, (unsigned long)r, new_len, new_len,
				    MREMAP_MAYMOVE | MREMAP_FIXED, diff_resolve(&op->back, x->lay));
		r = RET_ELSEWHERE;
	}
	return r;
}

/* Pseudo-random bytes for a write, the same on both sides. */
static void fill_data(unsigned char *buf, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = diff_mix64(seed + i);

		memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
	}
}

static long run_write(struct exec *x, const struct diff_op *op)
{
	const struct diff_backend *b = x->b;
	unsigned long addr = diff_resolve(&op->addr, x->lay), end = addr + op->len;
	long r;

	fill_data(x->w->data, op->len, op->data_seed);
	r = b->write(b->ctx, addr, x->w->data, op->len);
	if (r == 0)
		return 0;
	for (unsigned long a = addr; a < end;) {
		unsigned long next = (a & ~(DIFF_PAGE - 1)) + DIFF_PAGE;

		if (next > end)
			next = end;
		if (b->write(b->ctx, a, x->w->data + (a - addr), next - a) != 0)
			break;
		a = next;
	}
	return r;
}

static long run_op(struct exec *x, const struct diff_op *op, struct diff_step *st)
{
	const struct diff_backend *b = x->b;
	unsigned long addr = diff_resolve(&op->addr, x->lay);
	long r;

	if (uses_missing_region(x, op))
		return RET_SKIPPED;
	if ((op->kind == OP_READ || op->kind == OP_WRITE) && op->len > DATA_MAX) {
		add_problem(st, "harness: an access longer than DATA_MAX");
		return -E2BIG;
	}
	switch (op->kind) {
	case OP_MMAP:     return run_mmap(x, op, st);
	case OP_MUNMAP:   return b->munmap(b->ctx, addr, op->len);
	case OP_MPROTECT: return b->mprotect(b->ctx, addr, op->len, op->prot);
	case OP_MADVISE:  return b->madvise(b->ctx, addr, op->len, op->prot);
	case OP_MREMAP:   return run_mremap(x, op, st);
	case OP_BRK:      return b->brk(b->ctx, addr);
	case OP_WRITE:    return run_write(x, op);
	case OP_FORK:     return x->nprocs < MAX_PROCS ? b->fork(b->ctx, x->nprocs) : -EAGAIN;
	case OP_EXIT:     return op->proc ? b->exit(b->ctx) : -EINVAL;
	case OP_READ:
		r = b->read(b->ctx, addr, x->w->data, op->len);
		if (r == 0)
			st->data_hash = diff_hash(x->w->data, op->len);
		return r;
	}
	return -ENOSYS;
}

/* ---- Observing: maps and smaps ---- */

static unsigned long parse_hex(const char **p)
{
	unsigned long v = 0;

	for (;; (*p)++) {
		char c = **p;

		if (c >= '0' && c <= '9')
			v = v * 16 + (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (unsigned long)(c - 'a' + 10);
		else
			return v;
	}
}

/* A maps or smaps header line "start-end perms ...": its range, if it is one. */
static bool parse_range(const char *line, unsigned long *start, unsigned long *end)
{
	const char *p = line;

	if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
		return false;
	*start = parse_hex(&p);
	if (*p++ != '-')
		return false;
	*end = parse_hex(&p);
	return *p == ' ';
}

static size_t line_len(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return (size_t)((nl ? nl : end) - p);
}

/* Read /proc/<name> into w->proc; its length, or 0 with a problem noted. */
static size_t read_proc(struct exec *x, const char *name, struct diff_step *st)
{
	long n = x->b->proc_read(x->b->ctx, name, x->w->proc, sizeof(x->w->proc));
	char msg[64];

	if (n >= 0 && (size_t)n < sizeof(x->w->proc))
		return (size_t)n;
	snprintf(msg, sizeof(msg), "reading %s: %ld", name, n);
	add_problem(st, msg);
	return 0;
}

static void copy_text(char *dst, size_t size, const char *src, size_t len, struct diff_step *st)
{
	if (len >= size) {
		add_problem(st, "a line too long to record");
		len = size - 1;
	}
	memcpy(dst, src, len);
	dst[len] = 0;
}

static void read_maps(struct exec *x, struct diff_step *st)
{
	size_t len = read_proc(x, "maps", st);
	const char *p = x->w->proc, *end = p + len;
	unsigned long s, e;

	for (; p < end; p += line_len(p, end) + 1) {
		if (!parse_range(p, &s, &e) || !in_regions(x, s, e - s))
			continue;
		if (st->nvma == MAX_VMAS) {
			add_problem(st, "more VMAs than pages");
			return;
		}
		copy_text(st->vma[st->nvma++].line, LINE_MAX_LEN, p, line_len(p, end), st);
	}
}

static unsigned parse_kb(const char *p)
{
	unsigned v = 0;

	while (*p == ' ')
		p++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (unsigned)(*p++ - '0');
	return v;
}

/* Take Rss, Anonymous and VmFlags of the region VMAs, whose headers must be
 * the maps lines already recorded, in order. */
static void read_smaps(struct exec *x, struct diff_step *st)
{
	size_t len = read_proc(x, "smaps", st);
	const char *p = x->w->proc, *end = p + len;
	struct diff_vma *cur = NULL;
	unsigned seen = 0;
	unsigned long s, e;

	for (; p < end; p += line_len(p, end) + 1) {
		size_t n = line_len(p, end);

		if (parse_range(p, &s, &e)) {
			cur = NULL;
			if (!in_regions(x, s, e - s))
				continue;
			if (seen < st->nvma && strlen(st->vma[seen].line) == n &&
			    !memcmp(st->vma[seen].line, p, n))
				cur = &st->vma[seen];
			else
				add_problem(st, "smaps headers differ from maps lines");
			seen++;
		} else if (cur && !strncmp(p, "Rss:", 4)) {
			cur->rss_kb = parse_kb(p + 4);
		} else if (cur && !strncmp(p, "Anonymous:", 10)) {
			cur->anon_kb = parse_kb(p + 10);
		} else if (cur && !strncmp(p, "AnonHugePages:", 14)) {
			cur->anon_huge_kb = parse_kb(p + 14);
		} else if (cur && !strncmp(p, "VmFlags:", 8)) {
			copy_text(cur->vmflags, VMFLAGS_MAX_LEN, p + 9, n > 9 ? n - 9 : 0, st);
		}
	}
	if (seen != st->nvma)
		add_problem(st, "smaps and maps list different VMAs");
}

/* ---- Observing: pages ---- */

/* Which pages lie in a VMA that allows reading (on x86: any permission) or
 * writing, from the recorded maps lines. */
static void accessible_pages(const struct diff_step *maps, const struct region *r, bool write,
			     bool *acc)
{
	memset(acc, 0, r->npages * sizeof(*acc));
	for (unsigned i = 0; i < maps->nvma; i++) {
		const char *line = maps->vma[i].line;
		const char *perms = strchr(line, ' ') + 1;
		unsigned long s, e;

		parse_range(line, &s, &e);
		if (write ? perms[1] != 'w' : !strncmp(perms, "---", 3))
			continue;
		for (unsigned long a = s; a < e; a += DIFF_PAGE)
			if (a >= r->base && a < r->base + r->npages * DIFF_PAGE)
				acc[(a - r->base) / DIFF_PAGE] = true;
	}
}

/* Probe pages [p, q) of a region: record which read (and their hashes), or
 * which take a write of their part of w->pages. */
static void probe_run(struct exec *x, struct diff_step *st, const struct region *r,
		      unsigned p, unsigned q, bool write)
{
	const struct diff_backend *b = x->b;

	while (p < q) {
		unsigned char *buf = x->w->pages + (size_t)(r->first + p) * DIFF_PAGE;
		unsigned long addr = r->base + p * DIFF_PAGE;
		size_t len = (q - p) * DIFF_PAGE;
		size_t n = (write ? b->write_prefix(b->ctx, addr, buf, len) :
				    b->read_prefix(b->ctx, addr, buf, len)) / DIFF_PAGE;

		for (size_t i = 0; i < n; i++, p++) {
			st->page[r->first + p] |= write ? PG_WRITABLE : PG_READABLE;
			if (!write)
				st->hash[r->first + p] = page_hash(buf + i * DIFF_PAGE);
		}
		p++;   /* the page that faulted, or past the end */
	}
}

/* Probe every page; with trust_maps only the runs that maps says allow it.
 *
 * The big region (the COW tests) is read without disturbing it: a page that
 * pagemap (read just before) shows absent is not touched, since a read
 * would map the zero page there, and a THP could no longer be had; it reads
 * as zeros if maps allows reading it, on both sides. Writes probe all. */
static void probe_pages(struct exec *x, const struct diff_step *maps, struct diff_step *st,
			bool write)
{
	struct region r[3];
	bool acc[BIG_PAGES];
	unsigned nr = regions(x, r);

	for (unsigned i = 0; i < nr; i++) {
		bool gentle = r[i].first == WIN_PAGES + HEAP_PAGES && !write;
		unsigned p = 0, q;

		if (x->b->trust_maps || gentle)
			accessible_pages(maps, &r[i], write, acc);
		else
			memset(acc, 1, sizeof(acc));
		for (unsigned k = 0; gentle && k < r[i].npages; k++)
			if (acc[k] && !(st->pm[r[i].first + k] & PM_PRESENT_F)) {
				acc[k] = false;
				st->page[r[i].first + k] |= PG_READABLE;   /* hash 0: zeros */
			}
		while (p < r[i].npages) {
			for (q = p; q < r[i].npages && acc[q]; q++)
				;
			probe_run(x, st, &r[i], p, q, write);
			p = q + 1;
		}
	}
}

/* Present, swapped, file and exclusively-mapped bits of every page (before
 * the probes, which map the zero page where nothing was). */
static void read_pagemap(struct exec *x, struct diff_step *st)
{
	struct region r[3];
	unsigned nr = regions(x, r);

	for (unsigned i = 0; i < nr; i++) {
		uint64_t *e = x->w->pagemap;
		long err = x->b->pagemap(x->b->ctx, r[i].base, e, r[i].npages);

		if (err) {
			add_problem(st, "reading pagemap failed");
			return;
		}
		for (unsigned p = 0; p < r[i].npages; p++)
			st->pm[r[i].first + p] = (e[p] >> 63 & 1 ? PM_PRESENT_F : 0) |
						 (e[p] >> 62 & 1 ? PM_SWAP_F : 0) |
						 (e[p] >> 61 & 1 ? PM_FILE_F : 0) |
						 (e[p] >> 56 & 1 ? PM_EXCLUSIVE_F : 0);
	}
}

static void check(struct exec *x, struct diff_step *st)
{
	char msg[160] = "";

	x->b->check(x->b->ctx, msg, sizeof(msg));
	if (msg[0])
		add_problem(st, msg);
}

static void observe(struct exec *x, unsigned proc, unsigned rec)
{
	struct diff_step *st = DIFF_REC(x->steps, rec, proc);

	st->state = PS_FULL;
	check(x, st);
	read_maps(x, st);
	read_smaps(x, st);
	read_pagemap(x, st);
	probe_pages(x, st, st, false);
	x->maps_rec[proc] = rec;
}

/* Another proc's op cannot change this one's maps, only (through a bug) its
 * pages; its invariants are checked at its own next op. */
static void peek(struct exec *x, unsigned proc, unsigned rec)
{
	struct diff_step *st = DIFF_REC(x->steps, rec, proc);

	st->state = PS_PEEK;
	read_pagemap(x, st);
	probe_pages(x, DIFF_REC(x->steps, x->maps_rec[proc], proc), st, false);
}

/* Write a page-sized pattern, the proc's own, to every page that takes it;
 * how many did. */
static long write_all_pages(struct exec *x, unsigned proc, const struct diff_step *maps,
			    struct diff_step *st)
{
	struct region r[3];
	unsigned nr = regions(x, r);
	long written = 0;

	for (unsigned i = 0; i < nr; i++)
		for (unsigned p = r[i].first; p < r[i].first + r[i].npages; p++)
			fill_data(x->w->pages + p * DIFF_PAGE, DIFF_PAGE, p + proc * 0x10000ULL);
	probe_pages(x, maps, st, true);
	for (unsigned p = 0; p < TOTAL_PAGES; p++)
		written += st->page[p] & PG_WRITABLE ? 1 : 0;
	return written;
}

static struct diff_step *clear_step(struct exec *x, unsigned rec, unsigned proc)
{
	struct diff_step *st = DIFF_REC(x->steps, rec, proc);
	size_t npages = x->big ? TOTAL_PAGES : WIN_PAGES + HEAP_PAGES;

	st->acted = false;
	st->big = x->big;
	st->ret = st->aux = 0;
	st->data_hash = 0;
	st->nvma = 0;
	st->problem[0] = 0;
	memset(st->page, 0, npages);
	memset(st->pm, 0, npages);
	memset(st->hash, 0, npages * sizeof(st->hash[0]));
	return st;
}

/* Run one op in its proc, then let every proc look at itself. */
static void run_step(struct exec *x, const struct diff_op *op, unsigned rec)
{
	unsigned acting = op->proc < MAX_PROCS && x->alive[op->proc] ? op->proc : 0;
	bool skipped = acting != op->proc;
	bool can_fork = op->kind == OP_FORK && !skipped && x->nprocs < MAX_PROCS;
	bool can_exit = op->kind == OP_EXIT && !skipped && acting != 0;
	/* As another process sees it: a fork that fails on the host ends the sequence. */
	bool forked = can_fork, exited = can_exit;
	unsigned child = x->nprocs;

	if (x->b->enter(x->b->ctx, acting)) {
		struct diff_step *st = clear_step(x, rec, acting);
		long r = skipped ? RET_SKIPPED : run_op(x, op, st);

		forked = can_fork && (r == 0 || r == DIFF_FORK_CHILD);
		exited = can_exit && r == 0;
		if (r != DIFF_FORK_CHILD) {   /* else: the host's new process, whose turn comes */
			st->acted = true;
			st->ret = forked ? RET_FORKED + (long)child : r;
			if (exited)
				st->state = PS_FULL;   /* nothing is left to observe */
			else
				observe(x, acting, rec);
		}
	}
	if (forked) {
		x->alive[child] = true;
		x->nprocs = child + 1;
		if (x->b->enter(x->b->ctx, child)) {
			clear_step(x, rec, child);
			observe(x, child, rec);
		}
	}
	if (exited)
		x->alive[acting] = false;
	for (unsigned p = 0; p < x->nprocs; p++)
		if (x->alive[p] && p != acting && !(forked && p == child) &&
		    x->b->enter(x->b->ctx, p)) {
			clear_step(x, rec, p);
			peek(x, p, rec);
		}
}

void diff_run(const struct diff_backend *b, const struct diff_layout *lay,
	      const struct diff_op *ops, unsigned n, struct diff_step *steps,
	      struct diff_work *w)
{
	struct exec x = { .b = b, .lay = lay, .w = w, .steps = steps,
			  .big = diff_uses_big(ops, n), .nprocs = 1, .alive = { true } };

	if (b->enter(b->ctx, 0)) {
		clear_step(&x, 0, 0);
		observe(&x, 0, 0);
	}
	for (unsigned i = 0; i < n; i++)
		run_step(&x, &ops[i], i + 1);
	/* Every proc writes its pattern, then every proc looks: no write may show
	 * anywhere but in the proc that made it. */
	for (unsigned p = 0; p < x.nprocs; p++)
		if (x.alive[p] && b->enter(b->ctx, p)) {
			struct diff_step *last = clear_step(&x, n + 1, p);

			last->ret = write_all_pages(&x, p, DIFF_REC(steps, x.maps_rec[p], p), last);
		}
	for (unsigned p = 0; p < x.nprocs; p++)
		if (x.alive[p] && b->enter(b->ctx, p))
			observe(&x, p, n + 1);
	/* One more turn each, as a barrier: the host's processes exit after the
	 * loop, and none may drop its pages before the last proc has looked. */
	for (unsigned p = 0; p < x.nprocs; p++)
		if (x.alive[p])
			b->enter(b->ctx, p);
}
