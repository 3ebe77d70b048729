/*
 * A cheap monotonic nanosecond clock for intervals: lock hold and wait times,
 * read twice per mmap_lock hold on the page-fault path.
 *
 * On x86-64 with an invariant TSC it is the TSC scaled to nanoseconds by a
 * factor measured against CLOCK_MONOTONIC once per process (about 10 ns a
 * read, against about 25 ns for the vDSO's clock_gettime). Elsewhere, and for
 * the first 20 ms after the process's first read, while the factor is being
 * measured, it is CLOCK_MONOTONIC itself. Calibration never stalls a caller:
 * the first read anchors a (TSC, CLOCK_MONOTONIC) pair, and the first read
 * 20 ms later takes a second pair and switches to the TSC (clock.c).
 *
 * For intervals only: the scaled TSC drifts from CLOCK_MONOTONIC by a few
 * parts per million, and a read on another CPU may lag by the host's TSC skew,
 * so take `end > start ? end - start : 0`.
 *
 * State: sm_clock is the process's one piece of global state in base/, a fact
 * about the host rather than about any simulated machine. Its fields are
 * written before `mode` is published with release semantics, and read after
 * an acquire load of `mode`.
 */
#ifndef SM_BASE_CLOCK_H
#define SM_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>
#include "base/compiler.h"

enum sm_clock_mode {
	SM_CLOCK_UNSET,       /* nobody has read the clock yet */
	SM_CLOCK_MEASURING,   /* anchored; CLOCK_MONOTONIC until CALIBRATE_NS passed */
	SM_CLOCK_SWITCHING,   /* one thread is computing the factor */
	SM_CLOCK_TSC,         /* tsc0, ns0 and mult are final */
	SM_CLOCK_MONOTONIC,   /* no usable TSC: CLOCK_MONOTONIC for good */
};

struct sm_clock {
	int mode;             /* atomic: enum sm_clock_mode */
	uint64_t tsc0;        /* TSC at the anchor; final once mode >= MEASURING */
	uint64_t ns0;         /* CLOCK_MONOTONIC at the anchor; likewise */
	uint64_t mult;        /* nanoseconds per tick << 32; final once mode == TSC */
};
extern struct sm_clock sm_clock;

uint64_t sm_clock_slow_ns(void);

static inline uint64_t sm_clock_monotonic_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Nanoseconds since an arbitrary point, never earlier than a previous read
 * on the same CPU. */
static inline uint64_t sm_now_ns(void)
{
#if defined(__x86_64__)
	if (likely(__atomic_load_n(&sm_clock.mode, __ATOMIC_ACQUIRE) == SM_CLOCK_TSC)) {
		int64_t ticks = (int64_t)(__builtin_ia32_rdtsc() - sm_clock.tsc0);

		return sm_clock.ns0 + (uint64_t)(int64_t)(((__int128)ticks * (__int128)sm_clock.mult) >> 32);
	}
#endif
	return sm_clock_slow_ns();
}

#endif
