/*
 * The host kernel's KSM, as `softmm bench ksm` and diff_test's KSM scenarios
 * drive it: its knobs in /sys/kernel/mm/ksm, and a lock on the machine so
 * that only one of them owns the knobs at a time.
 */
#ifndef SOFTMM_TOOLS_HOST_KSM_H
#define SOFTMM_TOOLS_HOST_KSM_H

/* Held exclusively by whoever sets the host's KSM knobs (they are global),
 * shared by diff sequences: a ksmd at full speed would merge their
 * MADV_MERGEABLE pages under them. */
#define HOST_KSM_LOCK "/tmp/softmm-host-ksm.lock"

/* A knob's value, or -errno. */
long host_ksm_knob(const char *knob);
/* 0, or -errno. */
int host_ksm_set_knob(const char *knob, long v);
/* HOST_KSM_LOCK taken with flock(how): its fd (close to let go), or -1. */
int host_ksm_lock(int how);

#endif
