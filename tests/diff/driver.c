/*
 * Running one sequence on both sides and reporting.
 *
 * The host child runs the sequence while this process runs it on softmm, so
 * the two halves use two cores. The records are then compared step by step;
 * at the first difference the report gives the step, its op, how the
 * records differ, and every op up to it with its results.
 *
 * If softmm crashes, a signal handler (or the sanitizer's death callback)
 * names the sequence being run, so that it can be replayed.
 *
 * The host rewrites a process's pages behind its back: khugepaged collapses
 * a THP into a fresh copy, the THP shrinker splits one, and ksmd (when some
 * other program switched the host's KSM on) merges MADV_MERGEABLE pages or
 * unmerges them into private copies. Each changes what pagemap reports (a
 * page exclusive in one run, shared in the next). A sequence that differs
 * while one of those counters moved says nothing about softmm, so it runs
 * again; softmm is deterministic, so a real fault of ours fails every try.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "diff.h"

struct diff_driver {
	struct diff_layout lay;
	struct softmm_side *sm;
	struct diff_step *sm_steps;
	const struct diff_step *host_steps;
	char why[16384];
	bool side_failed;    /* the last run: a side could not run the sequence */
};

/* For the crash report: the one thing a signal handler may read. */
static char crash_name[96];

static void print_crash_name(void)
{
	static const char pre[] = "\ndiff_test: crashed running softmm on ";

	if (write(2, pre, sizeof(pre) - 1) < 0 || write(2, crash_name, strlen(crash_name)) < 0 ||
	    write(2, "\n", 1) < 0)
		return;
}

static void on_crash(int sig)
{
	print_crash_name();
	signal(sig, SIG_DFL);
	raise(sig);
}

void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static void install_crash_report(void)
{
	signal(SIGSEGV, on_crash);
	signal(SIGBUS, on_crash);
	signal(SIGABRT, on_crash);
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(print_crash_name);
}

struct diff_driver *driver_open(void)
{
	struct diff_layout lay;
	struct diff_driver *d;

	if (host_start(&lay) < 0) {   /* first: nothing allocated yet */
		fprintf(stderr, "diff_test: cannot start the host side\n");
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->lay = lay;
	d->sm_steps = calloc(DIFF_SLOTS(MAX_STEPS), sizeof(*d->sm_steps));
	d->sm = softmm_open(&lay);
	if (!d->sm_steps || !d->sm) {
		driver_close(d);
		return NULL;
	}
	install_crash_report();
	return d;
}

void driver_close(struct diff_driver *d)
{
	host_stop();
	if (!d)
		return;
	softmm_close(d->sm);
	free(d->sm_steps);
	free(d);
}

const struct diff_layout *driver_layout(struct diff_driver *d)
{
	return &d->lay;
}

const struct diff_step *driver_host_steps(struct diff_driver *d)
{
	return d->host_steps;
}

const struct diff_step *driver_sm_steps(struct diff_driver *d)
{
	return d->sm_steps;
}

static const struct diff_op *op_of_step(const struct diff_op *ops, unsigned n, unsigned step)
{
	return step >= 1 && step <= n ? &ops[step - 1] : NULL;
}

static void print_step(const struct diff_driver *d, const struct diff_op *ops, unsigned step)
{
	static const struct diff_step none = { .ret = 0 };
	const struct diff_step *h = diff_acting(d->host_steps, step);
	const struct diff_step *s = diff_acting(d->sm_steps, step);
	char desc[256], hr[64], sr[64];

	h = h ? h : &none;
	s = s ? s : &none;
	diff_op_format(&ops[step - 1], desc, sizeof(desc));
	diff_ret_format(&ops[step - 1], h->ret, &d->lay, hr, sizeof(hr));
	diff_ret_format(&ops[step - 1], s->ret, &d->lay, sr, sizeof(sr));
	if (h->ret == s->ret)
		printf("  %3u: %s = %s\n", step, desc, hr);
	else
		printf("  %3u: %s = %s (softmm %s)\n", step, desc, hr, sr);
}

static void report(const struct diff_driver *d, const char *name, const struct diff_op *ops,
		   unsigned n, unsigned step)
{
	const struct diff_op *op = op_of_step(ops, n, step);
	char desc[256];

	if (op)
		diff_op_format(op, desc, sizeof(desc));
	else
		snprintf(desc, sizeof(desc), step ? "(after writing every page)" : "(before any op)");
	printf("FAIL %s: step %u of %u: %s\n%s", name, step, n, desc, d->why);
	printf("  layout: W = %#lx, H = %#lx%s\n  ops so far:\n", d->lay.win_base,
	       d->lay.heap_base, d->lay.heap_ok ? "" : " (heap ops skipped)");
	for (unsigned i = 1; i <= step && i <= n; i++)
		print_step(d, ops, i);
}

void driver_report(const struct diff_driver *d, const char *name, const struct diff_op *ops,
		   unsigned n, const struct diff_failure *f)
{
	report(d, name, ops, n, f->step);
}

static void note_failure(struct diff_failure *f, const struct diff_op *ops, unsigned n,
			 unsigned step, const char *why)
{
	const struct diff_op *op = op_of_step(ops, n, step);
	char desc[256];
	size_t len;

	why += strspn(why, " ");
	len = strcspn(why, ":\n");
	f->step = step;
	f->kind = op ? op->kind : OP_KINDS;
	if (len >= sizeof(f->what))
		len = sizeof(f->what) - 1;
	memcpy(f->what, why, len);
	f->what[len] = 0;
	if (op)
		diff_op_format(op, desc, sizeof(desc));
	else
		snprintf(desc, sizeof(desc), "%s", step ? "the end" : "the start");
	snprintf(f->summary, sizeof(f->summary), "%s: %.*s", desc, (int)strcspn(why, "\n"), why);
}

/* For --self-check: a first host run stands in for softmm's. */
static void run_host_again(struct diff_driver *d, const struct diff_op *ops, unsigned n,
			   char *problem, size_t size)
{
	const struct diff_step *first = host_collect(problem, size);

	memcpy(d->sm_steps, first, DIFF_SLOTS(n) * sizeof(*first));
	host_submit(ops, n);
}

unsigned long long host_async_events(void)
{
	static const char *const vmstat[] = { "thp_collapse_alloc", "thp_underused_split_page" };
	static const char *const ksm[] = { "run", "full_scans", "pages_shared", "pages_sharing" };
	unsigned long long h = 0, val;
	char key[64], path[96];
	FILE *f = fopen("/proc/vmstat", "r");

	/* A hash, not a sum: one counter's rise must not cancel another's fall. */
	if (f) {
		while (fscanf(f, "%63s %llu", key, &val) == 2)
			for (unsigned i = 0; i < sizeof(vmstat) / sizeof(vmstat[0]); i++)
				if (!strcmp(key, vmstat[i]))
					h = h * 1000003u + val;
		fclose(f);
	}
	for (unsigned i = 0; i < sizeof(ksm) / sizeof(ksm[0]); i++) {
		snprintf(path, sizeof(path), "/sys/kernel/mm/ksm/%s", ksm[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &val) == 1)
			h = h * 1000003u + val;
		fclose(f);
	}
	return h;
}

static bool run_once(struct diff_driver *d, const struct diff_opts *o, const char *name,
		     const struct diff_op *ops, unsigned n, struct diff_failure *fail)
{
	char host_problem[128], sm_problem[160];

	snprintf(crash_name, sizeof(crash_name), "%s", name);
	host_submit(ops, n);
	if (o->self_check)
		run_host_again(d, ops, n, sm_problem, sizeof(sm_problem));
	else
		softmm_run(d->sm, ops, n, d->sm_steps, sm_problem, sizeof(sm_problem));
	d->host_steps = host_collect(host_problem, sizeof(host_problem));
	d->side_failed = host_problem[0] || sm_problem[0];
	if (host_problem[0] || sm_problem[0]) {
		snprintf(d->why, sizeof(d->why), "%s%s%s%s\n", host_problem[0] ? "host: " : "",
			 host_problem, sm_problem[0] ? "softmm: " : "", sm_problem);
		note_failure(fail, ops, n, n + 1, d->why);
		if (!o->quiet)
			printf("FAIL %s: %s", name, d->why);
		return false;
	}
	for (unsigned i = 0; i < DIFF_RECORDS(n); i++) {
		if (o->verbose && i >= 1 && i <= n)
			print_step(d, ops, i);
		for (unsigned p = 0; p < MAX_PROCS; p++) {
			if (diff_compare_step(DIFF_REC(d->host_steps, i, p), DIFF_REC(d->sm_steps, i, p),
					      op_of_step(ops, n, i), &d->lay, p, d->why,
					      sizeof(d->why)))
				continue;
			note_failure(fail, ops, n, i, d->why);
			if (!o->quiet)
				report(d, name, ops, n, i);
			return false;
		}
	}
	return true;
}

#define DRIVER_TRIES 4

bool driver_run(struct diff_driver *d, const struct diff_opts *o, const char *name,
		const struct diff_op *ops, unsigned n, struct diff_failure *fail)
{
	struct diff_opts quiet = *o;

	quiet.quiet = true;
	for (unsigned try = 1;; try++) {
		unsigned long long before = host_async_events();

		if (run_once(d, &quiet, name, ops, n, fail))
			return true;
		if (host_async_events() == before || try == DRIVER_TRIES)
			break;
		printf("RETRY %s: khugepaged, the THP shrinker or ksmd changed the host's pages "
		       "during the run\n", name);
	}
	if (o->quiet)
		return false;
	if (d->side_failed)
		printf("FAIL %s: %s", name, d->why);
	else
		report(d, name, ops, n, fail->step);
	return false;
}
