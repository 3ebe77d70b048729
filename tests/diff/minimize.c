/*
 * Cutting a failing sequence down (delta debugging): drop chunks of ops,
 * halving the chunk size when none can go, while the run still fails at an
 * op of the same kind with the same kind of difference. Ops do not depend on
 * earlier results, so any subset is a valid sequence. Each trial is one host
 * child and one softmm mm, a few milliseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diff.h"

struct cut {
	struct diff_op *ops;
	unsigned *index;    /* each op's step in the original sequence */
	unsigned n;
};

static bool same_failure(const struct diff_failure *a, const struct diff_failure *b)
{
	return a->kind == b->kind && !strcmp(a->what, b->what);
}

/* Does the sequence without [from, from + len) still fail like the original? */
static bool try_without(struct diff_driver *d, const struct cut *c, unsigned from, unsigned len,
			const struct diff_failure *want, struct cut *out)
{
	struct diff_opts quiet = { .quiet = true };
	struct diff_failure got;

	out->n = 0;
	for (unsigned i = 0; i < c->n; i++) {
		if (i >= from && i < from + len)
			continue;
		out->ops[out->n] = c->ops[i];
		out->index[out->n++] = c->index[i];
	}
	return !driver_run(d, &quiet, "a cut of the sequence", out->ops, out->n, &got) &&
	       same_failure(&got, want);
}

static void swap_cuts(struct cut *a, struct cut *b)
{
	struct cut t = *a;

	*a = *b;
	*b = t;
}

static void print_cut(struct diff_driver *d, uint64_t seed, const struct cut *c)
{
	struct diff_opts loud = { 0 };
	struct diff_failure f;

	if (!c->n) {
		printf("minimal: it fails with no ops at all\n");
		return;
	}
	printf("minimal: %u ops; replay: diff_test --seed %#llx --steps %u --keep ", c->n,
	       (unsigned long long)seed, c->index[c->n - 1] + 1);
	for (unsigned i = 0; i < c->n; i++)
		printf("%s%u", i ? "," : "", c->index[i] + 1);
	printf("\n");
	driver_run(d, &loud, "minimal", c->ops, c->n, &f);
}

void diff_minimize(struct diff_driver *d, uint64_t seed, const struct diff_op *ops, unsigned n)
{
	struct diff_opts quiet = { .quiet = true };
	struct diff_failure want;
	struct cut cur = { calloc(n, sizeof(*ops)), calloc(n, sizeof(unsigned)), n };
	struct cut next = { calloc(n, sizeof(*ops)), calloc(n, sizeof(unsigned)), 0 };

	if (!cur.ops || !cur.index || !next.ops || !next.index)
		goto out;
	memcpy(cur.ops, ops, n * sizeof(*ops));
	for (unsigned i = 0; i < n; i++)
		cur.index[i] = i;
	if (driver_run(d, &quiet, "the sequence", ops, n, &want)) {
		printf("minimize: the sequence passes\n");
		goto out;
	}
	cur.n = want.step < n ? want.step : n;   /* nothing after the failing step matters */
	for (unsigned chunk = cur.n / 2 ? cur.n / 2 : 1; chunk >= 1;) {
		bool removed = false;

		for (unsigned from = 0; from < cur.n;) {
			if (try_without(d, &cur, from, chunk, &want, &next)) {
				swap_cuts(&cur, &next);
				removed = true;
			} else {
				from += chunk;
			}
		}
		if (chunk > 1 || !removed)
			chunk /= 2;   /* at single ops, go on while any can go */
	}
	print_cut(d, seed, &cur);
out:
	free(cur.ops);
	free(cur.index);
	free(next.ops);
	free(next.index);
}
