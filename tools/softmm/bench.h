/*
 * The bench harness: timing, medians, a registry of benches, and the reporter.
 *
 * Every figure is measured twice in the same run, on softmm and natively on the
 * host kernel (the same workload with real mmap/munmap/loads/stores in this
 * process), as the median of several repetitions after one untimed warm-up.
 * A bench is one file that defines a struct bench and says BENCH_REGISTER; it
 * adds one row per figure to the report and feeds it samples. The reporter
 * prints the rows as a table or as JSON with the speedup (softmm speed / host
 * speed, > 1 = softmm faster) and the target's PASS or MISS.
 *
 * A workload that fails (a call returns -errno) marks its row as an error; the
 * command then exits nonzero. A missed target is a result, not an error.
 */
#ifndef SOFTMM_TOOL_BENCH_H
#define SOFTMM_TOOL_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PAGE_4K 4096ul

struct bench_opts {
	int reps;		/* measured repetitions, after one warm-up */
	bool quick;		/* small sizes, for CI smoke tests */
	bool full;		/* the big sizes too (a bench says which in its progress) */
	bool json;
};

enum bench_side { SIDE_SOFTMM = 0, SIDE_HOST = 1 };

/* How a row's softmm figure is judged. */
enum bench_target {
	TARGET_SPEEDUP_AT_LEAST,	/* softmm speed / host speed >= target */
	TARGET_VALUE_AT_MOST,		/* softmm's figure <= target, in the row's unit */
	TARGET_NONE,			/* a figure reported for information, not judged */
};

struct bench_row {
	const char *bench;		/* "faults" */
	char workload[64];		/* "anon write fault" */
	const char *unit;		/* "faults/s", "ns" */
	bool lower_is_better;		/* a time per operation rather than a rate */
	enum bench_target target_kind;
	double target;
	const char *host_note;		/* what the host column measures, if not the same workload */
	double *samples[2];		/* per side, in the order measured */
	int nsamples[2];
	int cap;
	bool failed[2];		/* per side: the workload returned an error */
	char error[192];		/* the first error, "softmm: ..." or "host: ..." */
};

struct bench_report {
	struct bench_row rows[64];
	int nrows;
};

struct bench {
	const char *name;		/* the command-line name: "faults" */
	const char *summary;		/* one line for `softmm help` */
	void (*run)(const struct bench_opts *opts, struct bench_report *rep);
	struct bench *next;
};

void bench_register(struct bench *b);
#define BENCH_REGISTER(b)						\
	static void __attribute__((constructor)) bench_register_##b(void) \
	{ bench_register(&(b)); }

struct bench_row *bench_row_add(struct bench_report *rep, const struct bench_opts *opts,
				const char *bench, const char *workload, const char *unit,
				bool lower_is_better, enum bench_target kind, double target);
void bench_row_sample(struct bench_row *row, enum bench_side side, double value);
/* Marks the row failed; the first error of a row is kept. */
void bench_row_fail(struct bench_row *row, enum bench_side side, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool bench_row_failed(const struct bench_row *row, enum bench_side side);

struct sm_config;
/* The softmm side of a bench: a machine, one mm, one CPU switched to it. */
struct bench_sm {
	struct sm_machine *m;
	struct sm_mm *mm;
	struct sm_cpu *cpu;
};
/* RAM is backed in the host at creation (SM_CFG_PREFAULT_RAM): the first touch of
 * a simulated frame would otherwise cost a host page fault, which is not what a
 * bench measures. 0 or -errno. */
int bench_sm_open(struct bench_sm *s, unsigned long ram_bytes);
/* The same with the caller's machine configuration (flags, folio orders) as given. */
int bench_sm_open_cfg(struct bench_sm *s, const struct sm_config *cfg);
void bench_sm_close(struct bench_sm *s);

uint64_t bench_now_ns(void);			/* CLOCK_MONOTONIC */
double bench_median(const double *v, int n);	/* NAN when n == 0 */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* `softmm bench [NAME...] [--reps N] [--json] [--quick|--full]`; the process's exit status. */
int bench_main(int argc, char **argv);
void bench_usage(FILE *f);

#endif
