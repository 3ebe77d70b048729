/* What every public entry point does on the way in and out. */
#ifndef SM_MM_API_H
#define SM_MM_API_H

#include <stdio.h>
#include "base/rcu.h"
#include "mm/mm_types.h"

static inline void mm_syscall_enter(struct sm_mm *mm)
{
	(void)mm;
	sm_rcu_thread_online();
}

/* With SM_CFG_CHECK_INVARIANTS every call ends with the checker. */
static inline void mm_syscall_exit(struct sm_mm *mm)
{
	if (unlikely(mm->machine->flags & SM_CFG_CHECK_INVARIANTS))
		SM_ASSERT(sm_mm_check(mm) == 0, "invariants broken after a system call");
}

#endif
