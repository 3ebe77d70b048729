/*
 * softmm: the command. Dispatches a subcommand to its file; each subcommand
 * takes argv from its own name on and returns the process's exit status.
 */
#include <stdio.h>
#include <string.h>
#include <softmm.h>
#include "bench.h"

static int help_main(int argc, char **argv);

static const struct subcommand {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv);
} subcommands[] = {
	{ "bench", "measure softmm against the host kernel, side by side", bench_main },
	{ "help",  "show this help, or a subcommand's: softmm help bench", help_main },
};

#define NR_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

static void usage(FILE *f)
{
	fprintf(f, "softmm %d.%d: Linux's user-address-space VM as a library\n"
		   "usage: softmm COMMAND [ARGS...]\n",
		SOFTMM_VERSION_MAJOR, SOFTMM_VERSION_MINOR);
	for (size_t i = 0; i < NR_SUBCOMMANDS; i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
}

static int help_main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "bench")) {
		bench_usage(stdout);
		return 0;
	}
	usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return help_main(argc - 1, argv + 1);
	for (size_t i = 0; i < NR_SUBCOMMANDS; i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].main(argc - 1, argv + 1);
	fprintf(stderr, "softmm: no command named %s\n", argv[1]);
	usage(stderr);
	return 2;
}
