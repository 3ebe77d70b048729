/*
 * diff_test: softmm against the host kernel.
 *
 *   diff_test                       the scenarios, the COW tests, the VmPTE
 *                                   tests and the file scenarios (files.c),
 *                                   then 1000 sequences of 200 steps
 *   --sequences N --steps M         how many, how long
 *   --base-seed B                   sequence i uses seed mix(B + i); B is printed
 *   --seed S                        run the one sequence of seed S (no scenarios)
 *   --keep 3,17,42                  with --seed: only these steps (1-based)
 *   --minimize                      with --seed: cut the failing sequence down
 *   --verbose                       print every op and its result
 *   --self-check                    the host against itself instead of softmm, to
 *                                   show the harness itself is deterministic
 *
 * Exits nonzero on any mismatch; the last line is "N passed, N failed".
 * Nothing may be printed before driver_open(): stdio would grow the heap
 * that the host children inherit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include "diff.h"
#include "host_ksm.h"

#define REPORTS_IN_FULL 5

struct args {
	unsigned sequences, steps;
	uint64_t base_seed, seed;
	bool have_base, have_seed, minimize, verbose, self_check;
	const char *keep;
};

static int usage(void)
{
	fprintf(stderr, "usage: diff_test [--sequences N] [--steps M] [--base-seed B] "
			"[--seed S [--keep LIST] [--minimize]] [--verbose] [--self-check]\n");
	return 2;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!s)
		return false;
	*v = strtoull(s, &end, 0);
	return *end == 0 && end != s;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	*a = (struct args){ .sequences = 1000, .steps = 200 };
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = argv[i + 1];
		uint64_t v;

		if (!strcmp(arg, "--verbose")) {
			a->verbose = true;
		} else if (!strcmp(arg, "--self-check")) {
			a->self_check = true;
		} else if (!strcmp(arg, "--minimize")) {
			a->minimize = true;
		} else if (!strcmp(arg, "--keep") && val) {
			a->keep = val;
			i++;
		} else if (parse_u64(val, &v) && !strcmp(arg, "--sequences")) {
			a->sequences = (unsigned)v;
			i++;
		} else if (parse_u64(val, &v) && !strcmp(arg, "--steps") && v && v <= MAX_STEPS) {
			a->steps = (unsigned)v;
			i++;
		} else if (parse_u64(val, &v) && !strcmp(arg, "--base-seed")) {
			a->base_seed = v;
			a->have_base = true;
			i++;
		} else if (parse_u64(val, &v) && !strcmp(arg, "--seed")) {
			a->seed = v;
			a->have_seed = true;
			i++;
		} else {
			return -1;
		}
	}
	return (a->keep || a->minimize) && !a->have_seed ? -1 : 0;
}

/* Keep only the listed steps (1-based, ascending) of a generated sequence. */
static unsigned apply_keep(const char *list, struct diff_op *ops, unsigned n)
{
	unsigned kept = 0;

	for (const char *p = list; *p;) {
		char *end;
		unsigned long step = strtoul(p, &end, 10);

		if (end == p || step < 1 || step > n)
			return 0;
		ops[kept++] = ops[step - 1];
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return 0;
	}
	return kept;
}

static uint64_t random_base_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return diff_mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)getpid());
}

static int replay_seed(struct diff_driver *d, const struct args *a, unsigned *passed)
{
	static struct diff_op ops[MAX_STEPS];
	struct diff_opts o = { .verbose = a->verbose, .self_check = a->self_check };
	struct diff_failure f;
	unsigned n = a->steps;
	char name[64];

	diff_generate(a->seed, ops, n);
	if (a->keep && !(n = apply_keep(a->keep, ops, n))) {
		fprintf(stderr, "diff_test: bad --keep list\n");
		return -1;
	}
	if (a->minimize) {
		diff_minimize(d, a->seed, ops, n);
		return 0;
	}
	snprintf(name, sizeof(name), "seed %#llx", (unsigned long long)a->seed);
	if (!driver_run(d, &o, name, ops, n, &f))
		return 0;
	(*passed)++;
	return 0;
}

static void run_sequences(struct diff_driver *d, const struct args *a, unsigned *passed,
			  unsigned *failed)
{
	static struct diff_op ops[MAX_STEPS];

	for (unsigned i = 0; i < a->sequences; i++) {
		uint64_t seed = diff_mix64(a->base_seed + i);
		struct diff_opts o = { .verbose = a->verbose, .self_check = a->self_check,
				       .quiet = *failed >= REPORTS_IN_FULL };
		struct diff_failure f;
		char name[64];

		snprintf(name, sizeof(name), "seed %#llx", (unsigned long long)seed);
		diff_generate(seed, ops, a->steps);
		if (driver_run(d, &o, name, ops, a->steps, &f)) {
			(*passed)++;
			continue;
		}
		(*failed)++;
		if (o.quiet)
			printf("FAIL %s at step %u: %s\n", name, f.step, f.summary);
		else
			printf("  replay: diff_test --seed %#llx --steps %u --verbose  "
			       "(--minimize to cut it down)\n", (unsigned long long)seed, a->steps);
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	struct diff_driver *d;
	struct args a;
	unsigned passed = 0, failed = 0;
	struct timespec t0, t1;
	int rc = 0;

	if (parse_args(argc, argv, &a) < 0)
		return usage();
	d = driver_open();
	if (!d)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (a.have_seed) {
		rc = replay_seed(d, &a, &passed);
		failed = a.minimize ? 0 : 1 - passed;
	} else {
		struct diff_opts o = { .verbose = a.verbose, .self_check = a.self_check };

		if (!a.have_base)
			a.base_seed = random_base_seed();
		printf("diff_test: base seed %#llx, %u sequences of %u steps\n",
		       (unsigned long long)a.base_seed, a.sequences, a.steps);
		fflush(stdout);
		diff_run_scenarios(d, &o, &passed, &failed);
		diff_run_cow_tests(d, &o, &passed, &failed);
		diff_run_vmpte_tests(d, &o, &passed, &failed);
		diff_run_file_tests(&o, &passed, &failed);
		diff_run_ksm_tests(&o, &passed, &failed);
		int lock = host_ksm_lock(LOCK_SH);

		run_sequences(d, &a, &passed, &failed);
		if (lock >= 0)
			close(lock);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	driver_close(d);
	printf("diff_test: %.1f s\n", (double)(t1.tv_sec - t0.tv_sec) +
				      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	printf("%u passed, %u failed\n", passed, failed);
	return rc < 0 ? 2 : failed ? 1 : 0;
}
