/*
 * test_gaptree — the VMA tree against a brute-force model.
 *
 * The model is a sorted array of ranges answered by linear scans with 128-bit
 * arithmetic, so it shares neither the tree's pruning nor its wrap-around
 * reasoning. The randomized test prints its seed; GT_SEED=<n> replays one.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "base/gaptree.h"

#define PAGE 4096UL
#define SPACE (1UL << 47)
#define MANY 65530

struct iv {
	unsigned long tag;
	struct gt_node node;
};

static struct iv *iv_of(struct gt_node *n)
{
	return n ? (struct iv *)((char *)n - offsetof(struct iv, node)) : NULL;
}

/* ---- random numbers (splitmix64: tiny, seedable, good enough) ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static unsigned long rnd_below(unsigned long n)
{
	return rnd() % n;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ---- the model ---- */

struct model {
	struct iv **iv;		/* sorted by start */
	size_t n, cap;
};

typedef unsigned __int128 u128;

static void model_init(struct model *m, size_t cap)
{
	m->iv = calloc(cap, sizeof(*m->iv));
	assert_non_null(m->iv);
	m->n = 0;
	m->cap = cap;
}

static size_t model_rank(const struct model *m, unsigned long start)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (m->iv[mid]->node.start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool model_overlaps(const struct model *m, unsigned long start, unsigned long end)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->iv[i]->node.start < end && start < m->iv[i]->node.end)
			return true;
	return false;
}

static void model_add(struct model *m, struct iv *v)
{
	size_t i = model_rank(m, v->node.start);

	assert_true(m->n < m->cap);
	memmove(&m->iv[i + 1], &m->iv[i], (m->n - i) * sizeof(*m->iv));
	m->iv[i] = v;
	m->n++;
}

static void model_del(struct model *m, size_t i)
{
	memmove(&m->iv[i], &m->iv[i + 1], (m->n - i - 1) * sizeof(*m->iv));
	m->n--;
}

static struct iv *model_find(const struct model *m, unsigned long addr)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->iv[i]->node.end > addr)
			return m->iv[i];
	return NULL;
}

static struct iv *model_intersection(const struct model *m, unsigned long s, unsigned long e)
{
	if (s >= e)	/* an empty range intersects nothing */
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (m->iv[i]->node.start < e && s < m->iv[i]->node.end)
			return m->iv[i];
	return NULL;
}

struct query {
	unsigned long len, low, high, mask, off;
};

/* Free range i of the model (0..n): below node i, or above the last one. */
static void model_free_range(const struct model *m, size_t i, u128 *lo, u128 *hi)
{
	*lo = i ? m->iv[i - 1]->node.end : 0;
	*hi = i < m->n ? (u128)m->iv[i]->node.start : (u128)1 << 64;
}

static bool clip(const struct query *q, u128 *lo, u128 *hi)
{
	if (*lo < q->low)
		*lo = q->low;
	if (*hi > q->high)
		*hi = q->high;
	return *lo + q->len <= *hi;
}

static int model_gap(const struct model *m, const struct query *q, bool topdown,
		     unsigned long *out)
{
	u128 align = (u128)q->mask + 1;

	for (size_t k = 0; k <= m->n; k++) {
		size_t i = topdown ? m->n - k : k;
		u128 lo, hi, a;

		model_free_range(m, i, &lo, &hi);
		if (!clip(q, &lo, &hi))
			continue;
		if (topdown) {
			u128 top = hi - q->len;

			if (top < q->off)
				continue;
			a = (top - q->off) / align * align + q->off;
			if (a < lo)
				continue;
		} else {
			a = lo <= q->off ? q->off : (lo - q->off + align - 1) / align * align + q->off;
			if (a + q->len > hi)
				continue;
		}
		*out = (unsigned long)a;
		return 0;
	}
	return -ENOMEM;
}

/* ---- comparing tree and model ---- */

static void expect_same_node(struct gt_node *got, struct iv *want, const char *what,
			     unsigned long a, unsigned long b)
{
	if (iv_of(got) != want)
		fail_msg("%s(%#lx, %#lx): tree %p, model %p", what, a, b, (void *)iv_of(got),
			 (void *)want);
}

static void check_gap_query(const struct gt_root *t, const struct model *m,
			    const struct query *q, bool topdown)
{
	unsigned long got = 0, want = 0;
	int rc = topdown ? gt_find_gap_topdown(t, q->len, q->low, q->high, q->mask, q->off, &got)
			 : gt_find_gap_bottomup(t, q->len, q->low, q->high, q->mask, q->off, &got);
	int want_rc = model_gap(m, q, topdown, &want);

	if (rc != want_rc || (rc == 0 && got != want))
		fail_msg("%s len %#lx window [%#lx, %#lx) mask %#lx off %#lx: tree %d/%#lx, model %d/%#lx",
			 topdown ? "topdown" : "bottomup", q->len, q->low, q->high, q->mask,
			 q->off, rc, got, want_rc, want);
	if (rc == 0) {
		assert_true(got >= q->low && got + q->len <= q->high && got + q->len > got);
		assert_int_equal(got & q->mask, q->off);
		assert_null(gt_find_intersection(t, got, got + q->len));
	}
}

/* An address near something interesting: a node edge, or anywhere. */
static unsigned long pick_addr(const struct model *m)
{
	if (m->n && rnd_below(4)) {
		const struct gt_node *n = &m->iv[rnd_below(m->n)]->node;
		unsigned long base = rnd_below(2) ? n->start : n->end;

		return base + rnd_below(3 * PAGE) - PAGE - 1 + rnd_below(3);
	}
	return rnd_below(SPACE);
}

static unsigned long pick_len(const struct model *m)
{
	switch (rnd_below(6)) {
	case 0:
	case 1:
		return (1 + rnd_below(16)) * PAGE;
	case 2:
	case 3: {	/* exactly some node's gap, or just around it */
		if (!m->n)
			return PAGE;
		unsigned long gap = m->iv[rnd_below(m->n)]->node.gap;
		long delta[] = { 0, 0, 1, -1, (long)PAGE, -(long)PAGE };
		unsigned long len = gap + delta[rnd_below(6)];

		return len && len < (1UL << 62) ? len : PAGE;
	}
	case 4:
		return 1 + rnd_below(100000);
	default:
		return (1UL << (20 + rnd_below(24)));
	}
}

static void pick_query(const struct model *m, struct query *q)
{
	static const unsigned long masks[] = { PAGE - 1, PAGE - 1, (1UL << 16) - 1,
					       (1UL << 21) - 1, (1UL << 30) - 1 };

	q->len = pick_len(m);
	q->mask = masks[rnd_below(5)];
	q->off = rnd_below(3) ? 0 : (rnd_below(2) ? rnd_below(q->mask + 1) & ~(PAGE - 1)
						  : rnd_below(q->mask + 1));
	q->low = rnd_below(3) ? pick_addr(m) : 0;
	q->high = rnd_below(3) ? pick_addr(m) : SPACE;
	if (q->low > q->high) {
		unsigned long x = q->low;

		q->low = q->high;
		q->high = x;
	}
}

static void check_everything(const struct gt_root *t, const struct model *m)
{
	assert_int_equal(gt_check(t), 0);
	assert_int_equal(t->count, m->n);
	expect_same_node(gt_first(t), m->n ? m->iv[0] : NULL, "first", 0, 0);
	expect_same_node(gt_last(t), m->n ? m->iv[m->n - 1] : NULL, "last", 0, 0);
	for (int i = 0; i < 6; i++) {
		unsigned long a = pick_addr(m), b = pick_addr(m);

		expect_same_node(gt_find(t, a), model_find(m, a), "find", a, 0);
		if (a > b) {
			unsigned long x = a;

			a = b;
			b = x;
		}
		expect_same_node(gt_find_intersection(t, a, b), model_intersection(m, a, b),
				 "intersection", a, b);
	}
	for (int i = 0; i < 8; i++) {
		struct query q;

		pick_query(m, &q);
		check_gap_query(t, m, &q, true);
		check_gap_query(t, m, &q, false);
	}
}

/* ---- randomized mutation ---- */

static unsigned long cluster[8];

static void random_range(const struct gt_root *t, unsigned long *start, unsigned long *end)
{
	unsigned long len = (1 + rnd_below(rnd_below(8) ? 16 : 1024)) * PAGE;
	unsigned long base = cluster[rnd_below(8)];

	switch (rnd_below(4)) {
	case 0:	/* where mmap would put it below a base: tight packing, zero gaps */
		if (gt_find_gap_topdown(t, len, 0, base + (1UL << 24), PAGE - 1, 0, start) == 0)
			break;
		/* fall through */
	case 1:
		*start = rnd_below(SPACE - len) & ~(PAGE - 1);
		break;
	default:
		*start = (base + rnd_below(1UL << 24)) & ~(PAGE - 1);
		break;
	}
	if (!rnd_below(8)) {	/* byte-granular edges catch alignment slips */
		*start += rnd_below(PAGE);
		len -= rnd_below(PAGE);
	}
	*end = *start + len;
}

static void step_insert(struct gt_root *t, struct model *m, struct iv *pool, size_t *used)
{
	struct iv *v = &pool[*used];
	bool overlaps;
	int rc;

	random_range(t, &v->node.start, &v->node.end);
	overlaps = model_overlaps(m, v->node.start, v->node.end);
	rc = gt_insert(t, &v->node);
	assert_int_equal(rc, overlaps ? -EEXIST : 0);
	if (!overlaps) {
		model_add(m, v);
		(*used)++;
	}
}

static void step_erase(struct gt_root *t, struct model *m)
{
	size_t i = rnd_below(m->n);

	gt_erase(t, &m->iv[i]->node);
	model_del(m, i);
}

/* Move one node's edges within its neighbours, as split/merge/expand do. */
static void step_update(struct gt_root *t, struct model *m)
{
	size_t i = rnd_below(m->n);
	struct gt_node *n = &m->iv[i]->node;
	unsigned long floor = i ? m->iv[i - 1]->node.end : 0;
	/* The last node grows a little at a time, keeping the space above it in play. */
	unsigned long ceil = i + 1 < m->n ? m->iv[i + 1]->node.start : n->end + (1UL << 24);

	if (rnd_below(2))
		n->start = floor + rnd_below(n->end - floor);
	if (rnd_below(2))
		n->end = n->start + 1 + rnd_below(ceil - n->start);
	gt_update(t, n);
}

static void test_random(void **state)
{
	const char *env = getenv("GT_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
	const size_t steps = 6000, target = 1200;
	struct iv *pool = calloc(steps, sizeof(*pool));
	struct gt_root t;
	struct model m;
	size_t used = 0;

	(void)state;
	printf("test_random: GT_SEED=%" PRIu64 "\n", seed);
	rng_state = seed;
	for (int i = 0; i < 8; i++)
		cluster[i] = rnd_below(SPACE - (1UL << 26));
	gt_init(&t);
	model_init(&m, steps);
	for (size_t s = 0; s < steps; s++) {
		unsigned long r = rnd_below(100);

		if (!m.n || r < (m.n < target ? 60 : 40))
			step_insert(&t, &m, pool, &used);
		else if (r < 85)
			step_erase(&t, &m);
		else
			step_update(&t, &m);
		check_everything(&t, &m);
	}
	free(m.iv);
	free(pool);
}

/* ---- edge cases ---- */

static void insert_range(struct gt_root *t, struct iv *v, unsigned long start,
			 unsigned long end)
{
	v->node.start = start;
	v->node.end = end;
	assert_int_equal(gt_insert(t, &v->node), 0);
}

static void test_empty(void **state)
{
	struct gt_root t;
	unsigned long a;

	(void)state;
	gt_init(&t);
	assert_int_equal(gt_check(&t), 0);
	assert_null(gt_first(&t));
	assert_null(gt_last(&t));
	assert_null(gt_find(&t, 0));
	assert_null(gt_find(&t, ~0UL));
	assert_null(gt_find_intersection(&t, 0, ~0UL));
	assert_int_equal(gt_find_gap_topdown(&t, PAGE, 0, SPACE, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, SPACE - PAGE);
	assert_int_equal(gt_find_gap_bottomup(&t, PAGE, 0, SPACE, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0);
	assert_int_equal(gt_find_gap_topdown(&t, PAGE, 0x1000, 0x1fff, PAGE - 1, 0, &a), -ENOMEM);
	assert_int_equal(gt_find_gap_bottomup(&t, 1, 5, 5, PAGE - 1, 0, &a), -ENOMEM);
	/* The whole address space, up to the last byte. */
	assert_int_equal(gt_find_gap_topdown(&t, PAGE, 0, ~0UL, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, ~0UL - 2 * PAGE + 1);
}

static void test_exact_gap(void **state)
{
	struct iv v[3];
	struct gt_root t;
	unsigned long a;

	(void)state;
	gt_init(&t);
	insert_range(&t, &v[0], 0x1000, 0x2000);
	insert_range(&t, &v[1], 0x3000, 0x4000);
	insert_range(&t, &v[2], 0x9000, 0xa000);
	/* [0x2000, 0x3000) is exactly one page; [0x4000, 0x9000) is five. */
	assert_int_equal(gt_find_gap_topdown(&t, PAGE, 0x1000, 0x4000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x2000);
	assert_int_equal(gt_find_gap_bottomup(&t, PAGE, 0x1000, 0x9000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x2000);
	assert_int_equal(gt_find_gap_bottomup(&t, 5 * PAGE, 0, 0x10000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x4000);
	assert_int_equal(gt_find_gap_topdown(&t, 5 * PAGE, 0, 0xe000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x4000);
	assert_int_equal(gt_find_gap_topdown(&t, 5 * PAGE + 1, 0, 0xe000, PAGE - 1, 0, &a),
			 -ENOMEM);
	/* The first node's gap starts at 0. */
	assert_int_equal(gt_find_gap_bottomup(&t, PAGE, 0, 0x10000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0);
	assert_int_equal(v[0].node.gap, 0x1000);
	assert_int_equal(v[2].node.gap, 0x5000);
}

static void test_window_edges(void **state)
{
	struct iv v[2];
	struct gt_root t;
	unsigned long a;

	(void)state;
	gt_init(&t);
	insert_range(&t, &v[0], 0x10000, 0x20000);
	insert_range(&t, &v[1], 0x40000, 0x50000);
	/* A gap straddling low: only its part above low counts. */
	assert_int_equal(gt_find_gap_bottomup(&t, 0x8000, 0x39000, 0x60000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x50000);
	assert_int_equal(gt_find_gap_bottomup(&t, 0x8000, 0x38000, 0x60000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x38000);
	/* A gap straddling high, ending exactly at high. */
	assert_int_equal(gt_find_gap_topdown(&t, 0x8000, 0, 0x28000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x20000);
	assert_int_equal(gt_find_gap_topdown(&t, 0x8000, 0, 0x27fff, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x8000);
	/* The window is exactly one gap. */
	assert_int_equal(gt_find_gap_topdown(&t, 0x20000, 0x20000, 0x40000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x20000);
	assert_int_equal(gt_find_gap_bottomup(&t, 0x20000, 0x20000, 0x40000, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, 0x20000);
	assert_int_equal(gt_find_gap_topdown(&t, 0x20000, 0x20001, 0x40000, PAGE - 1, 0, &a),
			 -ENOMEM);
	/* Alignment with an offset: 64K-aligned plus 0x3000. */
	assert_int_equal(gt_find_gap_topdown(&t, PAGE, 0, 0x40000, 0xffff, 0x3000, &a), 0);
	assert_int_equal(a, 0x33000);
	assert_int_equal(gt_find_gap_bottomup(&t, PAGE, 0x11000, 0x40000, 0xffff, 0x3000, &a), 0);
	assert_int_equal(a, 0x23000);
	/* The space above the last node, right up to the top of the address space. */
	assert_int_equal(gt_find_gap_bottomup(&t, PAGE, 0x41000, ~0UL, 0x1fffff, 0, &a), 0);
	assert_int_equal(a, 0x200000);
}

static void test_top_of_space(void **state)
{
	struct iv v[2];
	struct gt_root t;
	unsigned long a;

	(void)state;
	gt_init(&t);
	insert_range(&t, &v[0], ~0UL - 4 * PAGE + 1, ~0UL);
	insert_range(&t, &v[1], ~0UL - 8 * PAGE + 1, ~0UL - 6 * PAGE + 1);
	assert_int_equal(gt_check(&t), 0);
	assert_ptr_equal(gt_find(&t, ~0UL - 1), &v[0].node);
	assert_null(gt_find(&t, ~0UL));
	assert_int_equal(gt_find_gap_topdown(&t, 2 * PAGE, 0, ~0UL, PAGE - 1, 0, &a), 0);
	assert_int_equal(a, ~0UL - 6 * PAGE + 1);
	assert_int_equal(gt_find_gap_topdown(&t, 3 * PAGE, ~0UL - 9 * PAGE, ~0UL, PAGE - 1, 0, &a),
			 -ENOMEM);
	assert_int_equal(gt_find_gap_bottomup(&t, 2 * PAGE, ~0UL - 8 * PAGE, ~0UL, PAGE - 1, 0, &a),
			 0);
	assert_int_equal(a, ~0UL - 6 * PAGE + 1);
}

static void test_overlap_rejected(void **state)
{
	static const unsigned long bad[][2] = {
		{ 0x10000, 0x20000 }, { 0x0f000, 0x10001 }, { 0x1ffff, 0x30000 },
		{ 0x11000, 0x12000 }, { 0x08000, 0x28000 }, { 0x10000, 0x10001 },
		{ 0x2ffff, 0x30001 },
	};
	struct iv v[3], probe;
	struct gt_root t;

	(void)state;
	gt_init(&t);
	insert_range(&t, &v[0], 0x10000, 0x20000);
	insert_range(&t, &v[1], 0x30000, 0x40000);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		probe.node.start = bad[i][0];
		probe.node.end = bad[i][1];
		assert_int_equal(gt_insert(&t, &probe.node), -EEXIST);
		assert_int_equal(t.count, 2);
		assert_int_equal(gt_check(&t), 0);
	}
	/* Touching is not overlapping. */
	insert_range(&t, &v[2], 0x20000, 0x30000);
	assert_int_equal(v[1].node.gap, 0);
	assert_int_equal(v[2].node.gap, 0);
	assert_int_equal(gt_check(&t), 0);
}

static void test_update_and_erase(void **state)
{
	struct iv v[3];
	struct gt_root t;

	(void)state;
	gt_init(&t);
	insert_range(&t, &v[0], 0x10000, 0x20000);
	insert_range(&t, &v[1], 0x30000, 0x40000);
	insert_range(&t, &v[2], 0x50000, 0x60000);
	v[1].node.start = 0x28000;
	v[1].node.end = 0x48000;
	gt_update(&t, &v[1].node);
	assert_int_equal(gt_check(&t), 0);
	assert_int_equal(v[1].node.gap, 0x8000);
	assert_int_equal(v[2].node.gap, 0x8000);
	gt_erase(&t, &v[1].node);
	assert_int_equal(gt_check(&t), 0);
	assert_int_equal(v[2].node.gap, 0x30000);
	assert_ptr_equal(gt_next(&v[0].node), &v[2].node);
	assert_ptr_equal(gt_prev(&v[2].node), &v[0].node);
	gt_erase(&t, &v[0].node);
	assert_int_equal(v[2].node.gap, 0x50000);
	gt_erase(&t, &v[2].node);
	assert_null(t.root);
	assert_int_equal(gt_check(&t), 0);
}

static void test_check_catches_corruption(void **state)
{
	struct iv v[3];
	struct gt_root t;

	(void)state;
	gt_init(&t);
	insert_range(&t, &v[0], 0x10000, 0x20000);
	insert_range(&t, &v[1], 0x30000, 0x40000);
	insert_range(&t, &v[2], 0x50000, 0x60000);
	fprintf(stderr, "(three gt_check complaints expected below)\n");
	v[2].node.gap++;
	assert_int_equal(gt_check(&t), -EUCLEAN);
	v[2].node.gap--;
	t.root->subtree_max_gap = 0;
	assert_int_equal(gt_check(&t), -EUCLEAN);
	gt_update(&t, t.root);
	assert_int_equal(gt_check(&t), 0);
	t.count++;
	assert_int_equal(gt_check(&t), -EUCLEAN);
	t.count--;
	assert_int_equal(gt_check(&t), 0);
}

/* ---- 65,530 nodes: correctness at scale and per-op cost ---- */

/* VMA-like: 1-16 pages each, half of them touching, a few big holes. */
static void layout_many(struct iv *v, size_t n)
{
	unsigned long addr = 0x10000000;

	for (size_t i = 0; i < n; i++) {
		unsigned long r = rnd_below(100);

		addr += (r < 50 ? 0 : r < 95 ? 1 + rnd_below(15) : 256) * PAGE;
		v[i].node.start = addr;
		addr += (1 + rnd_below(16)) * PAGE;
		v[i].node.end = addr;
	}
}

static void shuffle(struct iv **p, size_t n)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rnd_below(i + 1);
		struct iv *x = p[i];

		p[i] = p[j];
		p[j] = x;
	}
}

static double time_gap_searches(const struct gt_root *t, unsigned long top, bool topdown,
				unsigned long mask, int rounds)
{
	unsigned long sink = 0, a;
	double t0 = now_ns();

	for (int i = 0; i < rounds; i++) {
		unsigned long len = (1UL << rnd_below(9)) * PAGE;
		unsigned long high = 0x10000000 + rnd_below(top - 0x10000000);
		int rc = topdown ? gt_find_gap_topdown(t, len, 0, high, mask, 0, &a)
				 : gt_find_gap_bottomup(t, len, rnd_below(high), SPACE, mask, 0, &a);

		sink += rc == 0 ? a : 1;
	}
	assert_true(sink != 42);
	return (now_ns() - t0) / rounds;
}

static void test_many_nodes(void **state)
{
	struct iv *v = calloc(MANY, sizeof(*v));
	struct iv **order = calloc(MANY, sizeof(*order));
	struct model m = { order, MANY, MANY };
	struct gt_root t;
	unsigned long top;
	double t0, insert_ns, erase_ns, find_ns, td_ns, bu_ns, td2m_ns, total;
	const int rounds = 100000;

	(void)state;
	rng_state = 0x5eed;
	layout_many(v, MANY);
	top = v[MANY - 1].node.end;
	for (size_t i = 0; i < MANY; i++)
		order[i] = &v[i];
	shuffle(order, MANY);
	gt_init(&t);
	t0 = now_ns();
	for (size_t i = 0; i < MANY; i++)
		assert_int_equal(gt_insert(&t, &order[i]->node), 0);
	insert_ns = (now_ns() - t0) / MANY;
	assert_int_equal(gt_check(&t), 0);
	assert_int_equal(t.count, MANY);

	/* The model wants address order; spot-check the searches against it. */
	for (size_t i = 0; i < MANY; i++)
		order[i] = &v[i];
	for (int i = 0; i < 200; i++) {
		struct query q = { (1UL << rnd_below(9)) * PAGE, rnd_below(top), 0,
				   i % 2 ? PAGE - 1 : (1UL << 21) - 1, 0 };

		q.high = q.low + rnd_below(top - q.low + 1);
		check_gap_query(&t, &m, &q, true);
		check_gap_query(&t, &m, &q, false);
	}

	t0 = now_ns();
	for (int i = 0; i < rounds; i++) {
		unsigned long addr = 0x10000000 + rnd_below(top - 0x10000000);
		struct gt_node *n = gt_find(&t, addr);

		assert_true(n && n->end > addr);
	}
	find_ns = (now_ns() - t0) / rounds;

	t0 = now_ns();
	td_ns = time_gap_searches(&t, top, true, PAGE - 1, rounds);
	total = now_ns() - t0;
	bu_ns = time_gap_searches(&t, top, false, PAGE - 1, rounds);
	td2m_ns = time_gap_searches(&t, top, true, (1UL << 21) - 1, rounds);

	shuffle(order, MANY);
	t0 = now_ns();
	for (size_t i = 0; i < MANY; i++)
		gt_erase(&t, &order[i]->node);
	erase_ns = (now_ns() - t0) / MANY;
	assert_null(t.root);
	assert_int_equal(gt_check(&t), 0);

	printf("gaptree at %d nodes, ns/op: insert %.0f  erase %.0f  find %.0f  "
	       "gap topdown %.0f  bottomup %.0f  topdown 2M-aligned %.0f\n",
	       MANY, insert_ns, erase_ns, find_ns, td_ns, bu_ns, td2m_ns);
	/* Loose: a linear scan would take seconds; sanitizers slow this a few times. */
	assert_true(total < 5e9);
	free(order);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_exact_gap),
		cmocka_unit_test(test_window_edges),
		cmocka_unit_test(test_top_of_space),
		cmocka_unit_test(test_overlap_rejected),
		cmocka_unit_test(test_update_and_erase),
		cmocka_unit_test(test_check_catches_corruption),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_many_nodes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
