/*
 * Calibration of base/clock.h's TSC clock, without stalling anyone.
 *
 * The first read of the clock takes an anchor, a (TSC, CLOCK_MONOTONIC)
 * pair; reads go on returning CLOCK_MONOTONIC until CALIBRATE_NS later, when
 * the first reader to notice takes a second pair, computes the scale, and
 * publishes mode SM_CLOCK_TSC. Each pair is the best of a few tries: the one
 * whose two TSC reads bracketing clock_gettime lie closest together, so that
 * a preemption in the middle of a sample cannot skew the scale. Over 20 ms a
 * sample error of ~100 ns is a scale error of 5 ppm.
 *
 * Without an invariant TSC (CPUID 0x80000007 EDX bit 8: constant rate across
 * P-states and halts), or off x86-64, the clock stays CLOCK_MONOTONIC.
 */
#include <pthread.h>
#include "base/clock.h"

#define CALIBRATE_NS   20000000ull   /* anchor to second sample */
#define SAMPLE_TRIES   8

struct sm_clock sm_clock;

static pthread_once_t anchor_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
static bool tsc_invariant(void)
{
	unsigned a, b, c, d;

	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0));
	if (a < 0x80000007u)
		return false;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000007u), "c"(0));
	return d & (1u << 8);
}

/* A (TSC, CLOCK_MONOTONIC) pair taken as nearly at once as we can. */
static void clock_sample(uint64_t *tsc, uint64_t *ns)
{
	uint64_t best = UINT64_MAX;

	/* A TSC that never moves forward still leaves a sample, refused later. */
	*tsc = 0;
	*ns = 0;
	for (int i = 0; i < SAMPLE_TRIES; i++) {
		uint64_t t0 = __builtin_ia32_rdtsc();
		uint64_t n = sm_clock_monotonic_ns();
		uint64_t t1 = __builtin_ia32_rdtsc();

		if (t1 >= t0 && t1 - t0 < best) {
			best = t1 - t0;
			*tsc = t0 + (t1 - t0) / 2;
			*ns = n;
		}
	}
}
#endif

static void clock_anchor(void)
{
#if defined(__x86_64__)
	if (tsc_invariant()) {
		clock_sample(&sm_clock.tsc0, &sm_clock.ns0);
		__atomic_store_n(&sm_clock.mode, SM_CLOCK_MEASURING, __ATOMIC_RELEASE);
		return;
	}
#endif
	__atomic_store_n(&sm_clock.mode, SM_CLOCK_MONOTONIC, __ATOMIC_RELEASE);
}

#if defined(__x86_64__)
/* Precondition: mode == SM_CLOCK_SWITCHING, set by this thread. */
static void clock_switch_to_tsc(void)
{
	uint64_t tsc, ns, ticks, nsecs;
	int mode = SM_CLOCK_MONOTONIC;

	clock_sample(&tsc, &ns);
	ticks = tsc - sm_clock.tsc0;
	nsecs = ns - sm_clock.ns0;
	/* Refuse a TSC that runs backwards or outside 50 MHz .. 20 GHz. */
	if (tsc > sm_clock.tsc0 && ticks / 20 <= nsecs && nsecs / 20 <= ticks) {
		sm_clock.mult = (uint64_t)(((unsigned __int128)nsecs << 32) / ticks);
		mode = SM_CLOCK_TSC;
	}
	__atomic_store_n(&sm_clock.mode, mode, __ATOMIC_RELEASE);
}
#endif

uint64_t sm_clock_slow_ns(void)
{
	int mode = __atomic_load_n(&sm_clock.mode, __ATOMIC_ACQUIRE);
	uint64_t now;

	if (mode == SM_CLOCK_UNSET) {
		pthread_once(&anchor_once, clock_anchor);
		mode = __atomic_load_n(&sm_clock.mode, __ATOMIC_ACQUIRE);
	}
	now = sm_clock_monotonic_ns();
#if defined(__x86_64__)
	if (mode == SM_CLOCK_MEASURING && now - sm_clock.ns0 >= CALIBRATE_NS &&
	    __atomic_compare_exchange_n(&sm_clock.mode, &mode, SM_CLOCK_SWITCHING, false,
					__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		clock_switch_to_tsc();
#endif
	return now;
}
