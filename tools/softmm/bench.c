/*
 * The bench harness: the registry, timing and medians, the command line of
 * `softmm bench`, and the reporter (a table on stdout, or JSON with --json;
 * progress goes to stderr either way). See bench.h for how a bench plugs in.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <softmm.h>
#include "bench.h"

#define DEFAULT_REPS 11
#define QUICK_REPS 3

/* ---- Registry: kept sorted by name, so output order does not depend on link order ---- */

static struct bench *benches;

void bench_register(struct bench *b)
{
	struct bench **pp = &benches;

	while (*pp && strcmp((*pp)->name, b->name) < 0)
		pp = &(*pp)->next;
	b->next = *pp;
	*pp = b;
}

static struct bench *bench_find(const char *name)
{
	for (struct bench *b = benches; b; b = b->next)
		if (!strcmp(b->name, name))
			return b;
	return NULL;
}

/* ---- Timing ---- */

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(const double *v, int n)
{
	double *s, m;

	if (n <= 0)
		return NAN;
	s = malloc(n * sizeof(*s));
	if (!s)
		abort();
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return m;
}

void bench_progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("softmm bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
	va_end(ap);
}

/* ---- The softmm side ---- */

int bench_sm_open(struct bench_sm *s, unsigned long ram_bytes)
{
	struct sm_config cfg = { .ram_bytes = ram_bytes, .max_cpus = 4,
				 .flags = SM_CFG_PREFAULT_RAM };

	return bench_sm_open_cfg(s, &cfg);
}

int bench_sm_open_cfg(struct bench_sm *s, const struct sm_config *cfg)
{
	int err;

	memset(s, 0, sizeof(*s));
	s->m = sm_machine_create(cfg);
	if (!s->m)
		return errno ? -errno : -ENOMEM;
	s->mm = sm_mm_create(s->m);
	if (!s->mm)
		goto fail;
	s->cpu = sm_cpu_create(s->m);
	if (!s->cpu)
		goto fail;
	sm_cpu_switch_mm(s->cpu, s->mm);
	return 0;
fail:
	err = errno ? -errno : -ENOMEM;
	bench_sm_close(s);
	return err;
}

void bench_sm_close(struct bench_sm *s)
{
	if (s->cpu) {
		sm_cpu_switch_mm(s->cpu, NULL);
		sm_cpu_destroy(s->cpu);
	}
	if (s->mm)
		sm_mm_destroy(s->mm);
	if (s->m)
		sm_machine_destroy(s->m);
	memset(s, 0, sizeof(*s));
}

/* ---- Rows ---- */

struct bench_row *bench_row_add(struct bench_report *rep, const struct bench_opts *opts,
				const char *bench, const char *workload, const char *unit,
				bool lower_is_better, enum bench_target kind, double target)
{
	struct bench_row *r;

	if (rep->nrows == (int)(sizeof(rep->rows) / sizeof(rep->rows[0]))) {
		fprintf(stderr, "softmm bench: too many rows\n");
		abort();
	}
	r = &rep->rows[rep->nrows++];
	memset(r, 0, sizeof(*r));
	r->bench = bench;
	snprintf(r->workload, sizeof(r->workload), "%s", workload);
	r->unit = unit;
	r->lower_is_better = lower_is_better;
	r->target_kind = kind;
	r->target = target;
	r->cap = opts->reps;
	for (int s = 0; s < 2; s++) {
		r->samples[s] = calloc(r->cap, sizeof(double));
		if (!r->samples[s])
			abort();
	}
	return r;
}

void bench_row_sample(struct bench_row *row, enum bench_side side, double value)
{
	if (row->nsamples[side] < row->cap)
		row->samples[side][row->nsamples[side]++] = value;
}

void bench_row_fail(struct bench_row *row, enum bench_side side, const char *fmt, ...)
{
	va_list ap;
	int n;

	row->failed[side] = true;
	if (row->error[0])
		return;
	n = snprintf(row->error, sizeof(row->error), "%s: ",
		     side == SIDE_SOFTMM ? "softmm" : "host");
	va_start(ap, fmt);
	vsnprintf(row->error + n, sizeof(row->error) - n, fmt, ap);
	va_end(ap);
	bench_progress("%s/%s: %s", row->bench, row->workload, row->error);
}

bool bench_row_failed(const struct bench_row *row, enum bench_side side)
{
	return row->failed[side];
}

static bool row_ok(const struct bench_row *r)
{
	return !r->failed[SIDE_SOFTMM] && !r->failed[SIDE_HOST];
}

static double row_median(const struct bench_row *r, enum bench_side side)
{
	return bench_median(r->samples[side], r->nsamples[side]);
}

/* softmm speed / host speed: > 1 means softmm is faster, whatever the unit. */
static double row_speedup(const struct bench_row *r)
{
	double sm = row_median(r, SIDE_SOFTMM), host = row_median(r, SIDE_HOST);

	if (!(sm > 0) || !(host > 0))
		return NAN;
	return r->lower_is_better ? host / sm : sm / host;
}

static const char *row_verdict(const struct bench_row *r)
{
	double sm = row_median(r, SIDE_SOFTMM);
	bool pass;

	if (!row_ok(r))
		return "ERROR";
	if (r->target_kind == TARGET_NONE)
		return "info";
	if (r->target_kind == TARGET_SPEEDUP_AT_LEAST)
		pass = row_speedup(r) >= r->target;
	else
		pass = sm <= r->target;
	return pass ? "PASS" : "MISS";
}

static void row_target_text(const struct bench_row *r, char *buf, size_t n)
{
	if (r->target_kind == TARGET_SPEEDUP_AT_LEAST)
		snprintf(buf, n, ">= %gx host", r->target);
	else if (r->target_kind == TARGET_NONE)
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "<= %g %s", r->target, r->unit);
}

/* ---- What ran where ---- */

struct sysinfo_text {
	char kernel[3 * 65 + 8];
	char cpu[128];
	long online_cpus;
	char build[512];
};

static void read_cpu_model(char *buf, size_t n)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, n, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon += 1 + strspn(colon + 1, " \t");
		colon[strcspn(colon, "\n")] = 0;
		snprintf(buf, n, "%s", colon);
		break;
	}
	fclose(f);
}

/* The first line of `file` that holds `key` (and that `pick` accepts), from
 * `key` on, without the newline; false if there is none. `file` is looked for
 * in the build tree that holds this binary: next to it, or one up (bin/). */
static bool read_build_file(const char *file, const char *key, bool (*pick)(const char *),
			    char *out, size_t n)
{
	char path[PATH_MAX], line[4096];
	ssize_t len = readlink("/proc/self/exe", path, sizeof(path) - 64);
	bool found = false;
	char *slash;
	FILE *f;

	if (len <= 0)
		return false;
	path[len] = 0;
	slash = strrchr(path, '/');
	if (!slash)
		return false;
	snprintf(slash + 1, 64, "%s", file);
	f = fopen(path, "r");
	if (!f) {
		snprintf(slash + 1, 64, "../%s", file);
		f = fopen(path, "r");
	}
	while (f && !found && fgets(line, sizeof(line), f)) {
		char *v = strstr(line, key);

		if (v && (!pick || pick(line))) {
			v += strlen(key);
			v[strcspn(v, "\n")] = 0;
			snprintf(out, n, "%s", v);
			found = true;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static bool is_library_source(const char *line)
{
	return strstr(line, "/src/mm/") != NULL;
}

/*
 * The build type: CMake does not tell the compiler, but this binary sits in its
 * build tree, near CMakeCache.txt (the type; empty means the CMakeLists
 * default) and compile_commands.json (the flags libsoftmm was compiled with:
 * optimization, -g, NDEBUG, sanitizers). An installed binary falls back on what
 * its own compiler predefined.
 */
static void read_build_type(char *buf, size_t n)
{
	char type[64] = "", cmd[4096], flags[256] = "";
	size_t used = 0;

	read_build_file("CMakeCache.txt", "CMAKE_BUILD_TYPE:STRING=", NULL, type, sizeof(type));
	if (read_build_file("compile_commands.json", "\"command\": \"", is_library_source,
			    cmd, sizeof(cmd))) {
		for (char *tok = strtok(cmd, " "); tok && used < sizeof(flags); tok = strtok(NULL, " "))
			if (!strncmp(tok, "-O", 2) || !strncmp(tok, "-g", 2) ||
			    !strcmp(tok, "-DNDEBUG") || !strncmp(tok, "-fsanitize", 10))
				used += snprintf(flags + used, sizeof(flags) - used, " %s", tok);
		snprintf(buf, n, "%s, libsoftmm compiled with%s", type[0] ? type : "CMAKE_BUILD_TYPE unset (the CMakeLists default)",
			 used ? flags : " no -O flag");
		return;
	}
	snprintf(buf, n, "%s%s%s, assertions %s%s", type, type[0] ? ": " : "",
#ifdef __OPTIMIZE__
		 "optimized",
#else
		 "not optimized",
#endif
#ifdef NDEBUG
		 "off",
#else
		 "on",
#endif
#if defined(__SANITIZE_ADDRESS__)
		 ", ASan"
#elif defined(__SANITIZE_THREAD__)
		 ", TSan"
#else
		 ""
#endif
		);
}

static void read_sysinfo(struct sysinfo_text *si)
{
	struct utsname u;

	if (uname(&u) == 0)
		snprintf(si->kernel, sizeof(si->kernel), "%s %s %s", u.sysname, u.release, u.machine);
	else
		snprintf(si->kernel, sizeof(si->kernel), "unknown");
	read_cpu_model(si->cpu, sizeof(si->cpu));
	si->online_cpus = sysconf(_SC_NPROCESSORS_ONLN);
	read_build_type(si->build, sizeof(si->build));
}

/* ---- Reporters ---- */

static void fmt_value(char *buf, size_t n, double v, bool lower_is_better)
{
	if (isnan(v))
		snprintf(buf, n, "-");
	else if (lower_is_better)
		snprintf(buf, n, "%.2f", v);
	else if (v >= 1e9)
		snprintf(buf, n, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, n, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, n, "%.1fk", v / 1e3);
	else
		snprintf(buf, n, "%.1f", v);
}

static void print_table(const struct bench_report *rep, const struct bench_opts *opts,
			const struct sysinfo_text *si)
{
	printf("softmm bench: medians of %d reps after 1 warm-up%s.\n"
	       "speedup = softmm speed / host speed (> 1: softmm faster; for times, host time / softmm time)\n\n",
	       opts->reps, opts->quick ? ", --quick sizes" : opts->full ? ", --full sizes" :
	       " (default sizes; --full adds the big ones)");
	printf("%-9s %-28s %-9s %10s %10s %8s  %-14s %s\n",
	       "bench", "workload", "unit", "softmm", "host", "speedup", "target", "result");
	for (int i = 0; i < rep->nrows; i++) {
		const struct bench_row *r = &rep->rows[i];
		char sm[32], host[32], speedup[32], target[48];
		double x = row_speedup(r);

		fmt_value(sm, sizeof(sm), row_median(r, SIDE_SOFTMM), r->lower_is_better);
		fmt_value(host, sizeof(host), row_median(r, SIDE_HOST), r->lower_is_better);
		if (isnan(x))
			snprintf(speedup, sizeof(speedup), "-");
		else
			snprintf(speedup, sizeof(speedup), "%.2fx", x);
		row_target_text(r, target, sizeof(target));
		printf("%-9s %-28s %-9s %10s %10s %8s  %-14s %s\n", r->bench, r->workload,
		       r->unit, sm, host, speedup, target, row_verdict(r));
	}
	printf("\n");
	for (int i = 0; i < rep->nrows; i++) {
		const struct bench_row *r = &rep->rows[i];

		if (r->host_note)
			printf("  %s/%s: host column is %s\n", r->bench, r->workload, r->host_note);
		if (r->error[0])
			printf("  %s/%s: ERROR %s\n", r->bench, r->workload, r->error);
	}
	printf("  host: %s, CPU: %s (%ld online)\n", si->kernel, si->cpu, si->online_cpus);
	printf("  softmm %d.%d, build: %s\n", SOFTMM_VERSION_MAJOR, SOFTMM_VERSION_MINOR, si->build);
}

static void json_string(const char *s)
{
	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_number(double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", stdout);
	else
		printf("%.6g", v);
}

static void json_samples(const struct bench_row *r, enum bench_side side)
{
	putchar('[');
	for (int i = 0; i < r->nsamples[side]; i++) {
		if (i)
			fputs(", ", stdout);
		json_number(r->samples[side][i]);
	}
	putchar(']');
}

static void print_json(const struct bench_report *rep, const struct bench_opts *opts,
		       const struct sysinfo_text *si, bool ok)
{
	printf("{\n  \"tool\": \"softmm bench\",\n  \"softmm_version\": \"%d.%d\",\n",
	       SOFTMM_VERSION_MAJOR, SOFTMM_VERSION_MINOR);
	printf("  \"reps\": %d,\n  \"warmup_reps\": 1,\n  \"quick\": %s,\n  \"full\": %s,\n",
	       opts->reps, opts->quick ? "true" : "false", opts->full ? "true" : "false");
	printf("  \"speedup\": \"softmm speed / host speed; > 1 means softmm is faster\",\n");
	printf("  \"system\": {\"kernel\": ");
	json_string(si->kernel);
	printf(", \"cpu\": ");
	json_string(si->cpu);
	printf(", \"online_cpus\": %ld, \"build\": ", si->online_cpus);
	json_string(si->build);
	printf("},\n  \"results\": [");
	for (int i = 0; i < rep->nrows; i++) {
		const struct bench_row *r = &rep->rows[i];
		char target[48];

		row_target_text(r, target, sizeof(target));
		printf("%s\n    {\"bench\": ", i ? "," : "");
		json_string(r->bench);
		printf(", \"workload\": ");
		json_string(r->workload);
		printf(", \"unit\": ");
		json_string(r->unit);
		printf(", \"higher_is_better\": %s,\n     \"softmm\": ",
		       r->lower_is_better ? "false" : "true");
		json_number(row_median(r, SIDE_SOFTMM));
		printf(", \"host\": ");
		json_number(row_median(r, SIDE_HOST));
		printf(", \"speedup\": ");
		json_number(row_speedup(r));
		printf(",\n     \"target\": {\"kind\": \"%s\", \"value\": ",
		       r->target_kind == TARGET_SPEEDUP_AT_LEAST ? "speedup_at_least" :
		       r->target_kind == TARGET_NONE ? "none" : "softmm_at_most");
		json_number(r->target);
		printf(", \"text\": ");
		json_string(target);
		printf("}, \"result\": \"%s\", \"error\": ", row_verdict(r));
		json_string(r->error[0] ? r->error : NULL);
		printf(", \"host_note\": ");
		json_string(r->host_note);
		printf(",\n     \"samples\": {\"softmm\": ");
		json_samples(r, SIDE_SOFTMM);
		printf(", \"host\": ");
		json_samples(r, SIDE_HOST);
		printf("}}");
	}
	printf("\n  ],\n  \"ok\": %s\n}\n", ok ? "true" : "false");
}

/* ---- The command ---- */

void bench_usage(FILE *f)
{
	fprintf(f, "usage: softmm bench [NAME...] [--reps N] [--json] [--quick | --full]\n"
		   "  Measures each workload on softmm and natively on the host kernel in the\n"
		   "  same run and prints medians, the speedup (softmm speed / host speed) and\n"
		   "  the target's PASS/MISS. With no NAME, runs every bench.\n"
		   "  --reps N   measured repetitions per figure (default %d, --quick %d)\n"
		   "  --json     print JSON instead of the table\n"
		   "  --quick    small sizes, for CI smoke tests (a few seconds)\n"
		   "  --full     also the big sizes (munmap of 16 GiB: needs ~20 GiB of RAM, minutes)\n"
		   "  benches:\n", DEFAULT_REPS, QUICK_REPS);
	for (struct bench *b = benches; b; b = b->next)
		fprintf(f, "    %-8s %s\n", b->name, b->summary);
}

static int parse_reps(const char *s, int *reps)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 1000)
		return -1;
	*reps = (int)v;
	return 0;
}

int bench_main(int argc, char **argv)
{
	static struct bench_report rep;
	struct bench *selected[32];
	struct bench_opts opts = { 0 };
	struct sysinfo_text si;
	int nselected = 0, reps = 0;
	bool ok = true;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json")) {
			opts.json = true;
		} else if (!strcmp(a, "--quick")) {
			opts.quick = true;
		} else if (!strcmp(a, "--full")) {
			opts.full = true;
		} else if (!strcmp(a, "--reps") || !strncmp(a, "--reps=", 7)) {
			const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : "");

			if (parse_reps(v, &reps)) {
				fprintf(stderr, "softmm bench: --reps wants a number from 1 to 1000\n");
				return 2;
			}
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			bench_usage(stdout);
			return 0;
		} else if (a[0] == '-') {
			fprintf(stderr, "softmm bench: unknown option %s\n", a);
			bench_usage(stderr);
			return 2;
		} else {
			struct bench *b = bench_find(a);

			if (!b) {
				fprintf(stderr, "softmm bench: no bench named %s\n", a);
				bench_usage(stderr);
				return 2;
			}
			if (nselected == (int)(sizeof(selected) / sizeof(selected[0])))
				return 2;
			selected[nselected++] = b;
		}
	}
	if (!nselected)
		for (struct bench *b = benches; b && nselected < 32; b = b->next)
			selected[nselected++] = b;
	if (opts.quick && opts.full) {
		fprintf(stderr, "softmm bench: --quick and --full do not go together\n");
		return 2;
	}
	opts.reps = reps ? reps : opts.quick ? QUICK_REPS : DEFAULT_REPS;

	for (int i = 0; i < nselected; i++) {
		uint64_t t0 = bench_now_ns();

		bench_progress("[%d/%d] %s: %s", i + 1, nselected, selected[i]->name,
			       selected[i]->summary);
		selected[i]->run(&opts, &rep);
		bench_progress("[%d/%d] %s done in %.2f s", i + 1, nselected, selected[i]->name,
			       (bench_now_ns() - t0) / 1e9);
	}

	for (int i = 0; i < rep.nrows; i++)
		ok &= row_ok(&rep.rows[i]);
	read_sysinfo(&si);
	if (opts.json)
		print_json(&rep, &opts, &si, ok);
	else
		print_table(&rep, &opts, &si);
	fflush(stdout);
	for (int i = 0; i < rep.nrows; i++)
		for (int s = 0; s < 2; s++)
			free(rep.rows[i].samples[s]);
	return ok ? 0 : 1;
}
