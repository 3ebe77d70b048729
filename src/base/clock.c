/* TSC calibration for base/clock.h: one 5 ms measurement per process. */
#include <pthread.h>
#include "base/clock.h"

struct sm_clock sm_clock_state;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void calibrate(void)
{
#if defined(__x86_64__)
	unsigned a, b, c, d;
	uint64_t t0, n0, t1, n1;

	/* Invariant TSC: CPUID 0x80000007, EDX bit 8. */
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000007u));
	if (!(d & (1u << 8))) {
		__atomic_store_n(&sm_clock_state.use_tsc, -1, __ATOMIC_RELEASE);
		return;
	}
	n0 = sm_clock_mono_ns();
	t0 = __builtin_ia32_rdtsc();
	do {
		n1 = sm_clock_mono_ns();
	} while (n1 - n0 < 5000000);
	t1 = __builtin_ia32_rdtsc();
	sm_clock_state.tsc0 = t0;
	sm_clock_state.ns0 = n0;
	sm_clock_state.mult = (uint64_t)((((unsigned __int128)(n1 - n0)) << 32) / (t1 - t0));
	__atomic_store_n(&sm_clock_state.use_tsc, 1, __ATOMIC_RELEASE);
#else
	__atomic_store_n(&sm_clock_state.use_tsc, -1, __ATOMIC_RELEASE);
#endif
}

void sm_clock_calibrate(void)
{
	pthread_once(&once, calibrate);
}
