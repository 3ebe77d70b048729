/*
 * A cheap monotonic nanosecond clock for lock-hold instrumentation, which
 * runs twice per page fault: the TSC, scaled by a factor calibrated once
 * against CLOCK_MONOTONIC. Where there is no usable TSC it is
 * CLOCK_MONOTONIC itself.
 */
#ifndef SM_BASE_CLOCK_H
#define SM_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

struct sm_clock {
	uint64_t tsc0;       /* TSC at calibration */
	uint64_t ns0;        /* CLOCK_MONOTONIC at calibration */
	uint64_t mult;       /* ns per tick << 32 */
	int use_tsc;
};
extern struct sm_clock sm_clock_state;
void sm_clock_calibrate(void);

static inline uint64_t sm_clock_mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static inline uint64_t sm_now_ns(void)
{
#if defined(__x86_64__)
	if (__atomic_load_n(&sm_clock_state.use_tsc, __ATOMIC_ACQUIRE) == 1) {
		uint64_t d = __builtin_ia32_rdtsc() - sm_clock_state.tsc0;

		return sm_clock_state.ns0 + (uint64_t)(((unsigned __int128)d * sm_clock_state.mult) >> 32);
	}
	if (__atomic_load_n(&sm_clock_state.use_tsc, __ATOMIC_ACQUIRE) == 0)
		sm_clock_calibrate();
#endif
	return sm_clock_mono_ns();
}

#endif
