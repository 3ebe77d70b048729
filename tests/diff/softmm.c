/*
 * The softmm backend: the same ops on a fresh sm_mm per sequence; its procs
 * are the mms that sm_fork makes, one CPU switching between them.
 *
 * One machine (small RAM, freed frames poisoned) and one CPU live across all
 * sequences. Each sequence gets a new mm with its heap starting where the
 * host child's does, so every address is the same on both sides. After each
 * step sm_mm_check must pass; after the mm is destroyed every frame must be
 * back in the allocator.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "softmm.h"
#include "diff.h"

#define SOFTMM_RAM (256UL << 20)

struct softmm_side {
	struct sm_machine *m;
	struct sm_cpu *cpu;
	struct sm_mm *mm;                  /* the current proc's */
	struct sm_mm *procs[MAX_PROCS];
	struct diff_layout lay;
	uint64_t free_frames;   /* with no mm alive */
	struct diff_work *work;
};

static long sm_mmap_(void *ctx, unsigned long addr, unsigned long len, int prot, int flags,
		     int fd, long offset)
{
	return sm_mmap(((struct softmm_side *)ctx)->mm, addr, len, prot, flags, fd, offset);
}

static long sm_munmap_(void *ctx, unsigned long addr, unsigned long len)
{
	return sm_munmap(((struct softmm_side *)ctx)->mm, addr, len);
}

static long sm_mprotect_(void *ctx, unsigned long addr, unsigned long len, int prot)
{
	return sm_mprotect(((struct softmm_side *)ctx)->mm, addr, len, prot);
}

static long sm_madvise_(void *ctx, unsigned long addr, unsigned long len, int advice)
{
	return sm_madvise(((struct softmm_side *)ctx)->mm, addr, len, advice);
}

static long sm_mremap_(void *ctx, unsigned long old_addr, unsigned long old_len,
		       unsigned long new_len, int flags, unsigned long new_addr)
{
	return sm_mremap(((struct softmm_side *)ctx)->mm, old_addr, old_len, new_len, flags,
			 new_addr);
}

static long sm_brk_(void *ctx, unsigned long brk)
{
	return sm_brk(((struct softmm_side *)ctx)->mm, brk);
}

static long sm_read_(void *ctx, unsigned long addr, void *buf, size_t len)
{
	return sm_read(((struct softmm_side *)ctx)->cpu, addr, buf, len);
}

static long sm_write_(void *ctx, unsigned long addr, const void *buf, size_t len)
{
	return sm_write(((struct softmm_side *)ctx)->cpu, addr, buf, len);
}

/* Page by page: softmm may copy part of a page range before a fault. */
static size_t sm_read_prefix(void *ctx, unsigned long addr, void *buf, size_t len)
{
	size_t done = 0;

	for (; done < len; done += DIFF_PAGE)
		if (sm_read_(ctx, addr + done, (unsigned char *)buf + done, DIFF_PAGE))
			break;
	return done;
}

static size_t sm_write_prefix(void *ctx, unsigned long addr, const void *buf, size_t len)
{
	size_t done = 0;

	for (; done < len; done += DIFF_PAGE)
		if (sm_write_(ctx, addr + done, (const unsigned char *)buf + done, DIFF_PAGE))
			break;
	return done;
}

static long sm_proc_read_(void *ctx, const char *name, char *buf, size_t size)
{
	return sm_proc_read(((struct softmm_side *)ctx)->mm, name, buf, size);
}

static void sm_check_(void *ctx, char *problem, size_t size)
{
	int r = sm_mm_check(((struct softmm_side *)ctx)->mm);

	if (r)
		snprintf(problem, size, "sm_mm_check: %d (details on stderr)", r);
}

static long sm_pagemap_(void *ctx, unsigned long addr, uint64_t *entries, size_t n)
{
	long r = sm_pagemap_read(((struct softmm_side *)ctx)->mm, addr, entries, n);

	return r < 0 ? r : (size_t)r == n ? 0 : -EIO;
}

static bool sm_enter_(void *ctx, unsigned proc)
{
	struct softmm_side *s = ctx;

	if (s->mm != s->procs[proc]) {
		s->mm = s->procs[proc];
		sm_cpu_switch_mm(s->cpu, s->mm);
	}
	return true;
}

static long sm_fork_(void *ctx, unsigned child)
{
	struct softmm_side *s = ctx;

	return sm_fork(s->mm, &s->procs[child]);
}

static long sm_exit_(void *ctx)
{
	struct softmm_side *s = ctx;

	for (unsigned p = 0; p < MAX_PROCS; p++)
		if (s->procs[p] == s->mm)
			s->procs[p] = NULL;
	sm_cpu_switch_mm(s->cpu, NULL);
	sm_mm_destroy(s->mm);
	s->mm = NULL;
	return 0;
}

static uint64_t free_frames(struct sm_machine *m)
{
	struct sm_machine_stats st;

	sm_machine_stats(m, &st);
	return st.free_frames;
}

struct softmm_side *softmm_open(const struct diff_layout *lay)
{
	struct sm_config cfg = { .ram_bytes = SOFTMM_RAM, .max_cpus = 4,
				 .flags = SM_CFG_POISON_FREED };
	struct softmm_side *s = calloc(1, sizeof(*s));

	if (!s || !(s->work = malloc(sizeof(*s->work))))
		goto fail;
	s->lay = *lay;
	s->m = sm_machine_create(&cfg);
	if (!s->m)
		goto fail;
	s->cpu = sm_cpu_create(s->m);
	if (!s->cpu)
		goto fail;
	s->free_frames = free_frames(s->m);
	return s;
fail:
	perror("diff_test: softmm");
	softmm_close(s);
	return NULL;
}

void softmm_run(struct softmm_side *s, const struct diff_op *ops, unsigned n,
		struct diff_step *steps, char *problem, size_t size)
{
	struct diff_backend b = {
		.ctx = s, .trust_maps = false,
		.mmap = sm_mmap_, .munmap = sm_munmap_, .mprotect = sm_mprotect_,
		.madvise = sm_madvise_, .mremap = sm_mremap_, .brk = sm_brk_,
		.read = sm_read_, .write = sm_write_,
		.read_prefix = sm_read_prefix, .write_prefix = sm_write_prefix,
		.proc_read = sm_proc_read_, .check = sm_check_, .pagemap = sm_pagemap_,
		.enter = sm_enter_, .fork = sm_fork_, .exit = sm_exit_,
	};
	uint64_t after;
	long r;

	problem[0] = 0;
	s->mm = sm_mm_create(s->m);
	if (!s->mm) {
		snprintf(problem, size, "sm_mm_create: %s", strerror(errno));
		return;
	}
	r = s->lay.heap_ok ? sm_mm_set_brk_base(s->mm, s->lay.heap_base) : 0;
	if (r < 0)
		snprintf(problem, size, "sm_mm_set_brk_base: %ld", r);
	sm_cpu_switch_mm(s->cpu, s->mm);
	s->procs[0] = s->mm;
	diff_records_reset(steps, n);
	diff_run(&b, &s->lay, ops, n, steps, s->work);
	sm_cpu_switch_mm(s->cpu, NULL);
	for (unsigned p = 0; p < MAX_PROCS; p++) {
		if (s->procs[p])
			sm_mm_destroy(s->procs[p]);
		s->procs[p] = NULL;
	}
	s->mm = NULL;
	after = free_frames(s->m);
	if (after != s->free_frames && !problem[0])
		snprintf(problem, size, "leak: %lld frames not freed after sm_mm_destroy",
			 (long long)(s->free_frames - after));
}

void softmm_close(struct softmm_side *s)
{
	if (!s)
		return;
	if (s->cpu)
		sm_cpu_destroy(s->cpu);
	if (s->m)
		sm_machine_destroy(s->m);
	free(s->work);
	free(s);
}
