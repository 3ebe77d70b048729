/*
 * Shared pieces of the stress tests: the time budget, the seed, a per-thread
 * random generator, the self-describing guest word, and the pass/fail tally.
 *
 * Every 8-byte word a stress test writes into guest memory names who wrote
 * it and where, so that a word read back proves where it came from:
 *
 *   63..56  magic 0xc5        (never 0x6b, the poison of freed frames)
 *   55..48  mm serial         (which address space wrote it; never 0)
 *   47..28  epoch             (when: a round, or a fork generation)
 *   27..10  word index        (which guest address, relative to the region)
 *    9..0   checksum          (of bits 63..10)
 *
 * A word read back is 0 (a fresh zero page) or a word whose checksum holds,
 * whose index is the address it was read from, and whose serial is the mm
 * it was read through (or that mm's fork parent, from before the fork).
 *
 * Only the public header is used: these tests treat softmm as a black box.
 */
#ifndef STRESS_UTIL_H
#define STRESS_UTIL_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "softmm.h"

#define ST_PAGE_SIZE   4096ul
#define ST_WORDS_PAGE  (ST_PAGE_SIZE / 8)
#define ST_MAGIC       0xc5ull
#define ST_POISON_WORD 0x6b6b6b6b6b6b6b6bull
#define ST_EPOCH_MAX   ((1u << 20) - 1)
#define ST_INDEX_MAX   ((1u << 18) - 1)

/* ---- Time and budget ---- */

static inline double st_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void st_sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* Seconds to run: SOFTMM_STRESS_SECONDS if set, else 60 under SOFTMM_SOAK=1,
 * else the test's default. Iteration counts follow from time, never the
 * reverse, so a sanitizer's slowdown shortens nothing but the work done. */
static inline double st_budget(double dflt)
{
	const char *s = getenv("SOFTMM_STRESS_SECONDS");
	const char *soak = getenv("SOFTMM_SOAK");

	if (s && *s)
		return atof(s) > 0 ? atof(s) : dflt;
	if (soak && *soak && strcmp(soak, "0") != 0)
		return 60.0;
	return dflt;
}

/* The seed: argv[1], else SOFTMM_SEED, else the clock. */
static inline uint64_t st_seed(int argc, char **argv)
{
	const char *s = argc > 1 ? argv[1] : getenv("SOFTMM_SEED");

	if (s && *s)
		return strtoull(s, NULL, 0);
	return (uint64_t)(st_now() * 1e9) ^ ((uint64_t)clock() << 32);
}

/* ---- Random numbers: splitmix64 to seed, xorshift64* to draw ---- */

static inline uint64_t st_mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct st_rng {
	uint64_t s;
};

static inline void st_rng_init(struct st_rng *r, uint64_t seed, uint64_t stream)
{
	r->s = st_mix64(seed ^ st_mix64(stream + 1)) | 1;
}

static inline uint64_t st_rand(struct st_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t st_below(struct st_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)st_rand(r) * n) >> 64);
}

/* True with probability pct/100. */
static inline bool st_chance(struct st_rng *r, unsigned pct)
{
	return st_below(r, 100) < pct;
}

/* ---- The self-describing word ---- */

struct st_word {
	unsigned serial, epoch, index;
};

static inline uint64_t st_word_sum(uint64_t high)
{
	return st_mix64(high) >> 54;    /* 10 bits */
}

static inline uint64_t st_word_make(unsigned serial, unsigned epoch, unsigned index)
{
	uint64_t w = ST_MAGIC << 56 | (uint64_t)(serial & 0xff) << 48 |
		     (uint64_t)(epoch & ST_EPOCH_MAX) << 28 | (uint64_t)(index & ST_INDEX_MAX) << 10;

	return w | st_word_sum(w);
}

/* Decode a nonzero word: false when it is not one of ours at all. */
static inline bool st_word_parse(uint64_t w, struct st_word *out)
{
	if (w >> 56 != ST_MAGIC || (w & 0x3ff) != st_word_sum(w & ~0x3ffull))
		return false;
	out->serial = (unsigned)(w >> 48) & 0xff;
	out->epoch = (unsigned)(w >> 28) & ST_EPOCH_MAX;
	out->index = (unsigned)(w >> 10) & ST_INDEX_MAX;
	return out->serial != 0;
}

static inline const char *st_word_kind(uint64_t w)
{
	struct st_word d;

	if (w == ST_POISON_WORD)
		return "POISON (a freed frame)";
	if (!st_word_parse(w, &d))
		return "garbage";
	return "a stress word";
}

/* ---- Tally ---- */

struct st_tally {
	int passed, failed;
};

static inline void st_result(struct st_tally *t, bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (ok)
		t->passed++;
	else
		t->failed++;
}

static inline int st_finish(const struct st_tally *t)
{
	printf("%d passed, %d failed\n", t->passed, t->failed);
	fflush(stdout);
	return t->failed ? 1 : 0;
}

/* Wait (bounded) for free_frames to come back to `want`: frames freed after
 * an RCU grace period may trail the last sm_mm_destroy a little. */
static inline uint64_t st_wait_free_frames(struct sm_machine *m, uint64_t want, double seconds)
{
	struct sm_machine_stats st;
	double end = st_now() + seconds;

	for (;;) {
		sm_machine_stats(m, &st);
		if (st.free_frames == want || st_now() > end)
			return st.free_frames;
		st_sleep_us(1000);
	}
}

#endif
