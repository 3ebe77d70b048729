/*
 * replay: runs a libFuzzer target without libFuzzer, so that every build (gcc
 * included) runs the fuzz target as a regression test.
 *
 *   fuzz_syscalls_replay [--random N] [--seed S] [--verbose] [FILE|DIR]...
 *
 * Runs each FILE, each file in each DIR, then N random inputs; random input i
 * is generated from seed S + i (S is printed; without --seed it comes from the
 * clock). --verbose names each input before running it. An abort() names the
 * input that caused it; a sanitizer names it too when its options say
 * abort_on_error=1 (the Makefile's do).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LEN 1024   /* random inputs; files may be longer */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char current[512];
static bool verbose;

static void on_abort(int sig)
{
	static const char msg[] = "replay: aborted while running ";

	(void)!write(2, msg, sizeof(msg) - 1);
	(void)!write(2, current, strlen(current));
	(void)!write(2, "\n", 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void run(const uint8_t *data, size_t size)
{
	if (verbose)
		fprintf(stderr, "replay: %s\n", current);
	LLVMFuzzerTestOneInput(data, size);
}

static int run_file(const char *path)
{
	static uint8_t buf[1 << 20];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	snprintf(current, sizeof(current), "%s (%zu bytes)", path, n);
	run(buf, n);
	return 0;
}

/* A directory's regular files; 0 files when it does not exist. */
static int run_path(const char *path, unsigned *nr_files)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[4096];
	int err = 0;

	if (!d) {
		if (errno == ENOENT)
			return 0;
		if (errno != ENOTDIR)
			return -1;
		++*nr_files;
		return run_file(path);
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		++*nr_files;
		err |= run_file(sub);
	}
	closedir(d);
	return err;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void run_random(uint64_t seed, unsigned n)
{
	static uint8_t buf[MAX_LEN];

	for (unsigned i = 0; i < n; i++) {
		uint64_t s = seed + i;
		size_t len = 1 + splitmix64(&s) % MAX_LEN;

		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)splitmix64(&s);
		snprintf(current, sizeof(current), "random input %u of --seed %llu (%zu bytes)", i,
			 (unsigned long long)seed, len);
		run(buf, len);
	}
}

int main(int argc, char **argv)
{
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	unsigned nr_random = 0, nr_files = 0;
	int err = 0;

	signal(SIGABRT, on_abort);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--random") && i + 1 < argc)
			nr_random = (unsigned)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--verbose"))
			verbose = true;
		else if (argv[i][0] == '-') {
			fprintf(stderr, "usage: %s [--random N] [--seed S] [--verbose] [FILE|DIR]...\n",
				argv[0]);
			return 2;
		}
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--random") || !strcmp(argv[i], "--seed"))
			i++;
		else if (argv[i][0] != '-' && run_path(argv[i], &nr_files))
			err = 1;
	}
	if (nr_random)
		printf("replay: %u random inputs, --seed %llu\n", nr_random, (unsigned long long)seed);
	fflush(stdout);
	run_random(seed, nr_random);
	printf("replay: %u files and %u random inputs passed\n", nr_files, nr_random);
	return err;
}
