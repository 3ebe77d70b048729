/*
 * Guest memory accesses: sm_read and sm_write, the CPU's load/store path.
 *
 * Per page: enter an access (hw/tlb.c's protocol), translate through the
 * TLB or the walker, copy, leave. A translation that needs the VM (no PTE,
 * a write to a read-only PTE) leaves the access first, takes the mmap_lock
 * for reading and runs the fault handler, then retries: a CPU never holds a
 * lock inside an access, so TLB shootdowns never wait on a lock.
 *
 * Under ThreadSanitizer guest bytes are copied with relaxed atomics: two
 * guest threads racing on guest memory is the guest's business, while a
 * copy racing with the VM reusing a frame is exactly what TSan should catch.
 */
#include <errno.h>
#include <string.h>
#include "base/rcu.h"
#include "mm/memory.h"
#include "mm/vma.h"

static void guest_copy(void *dst, const void *src, size_t n)
{
#ifdef SM_TSAN
	for (size_t i = 0; i < n; i++)
		__atomic_store_n((char *)dst + i,
				 __atomic_load_n((const char *)src + i, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
#else
	memcpy(dst, src, n);
#endif
}

/* Resolve a miss that the walker could not: 0 to retry, -EFAULT or SM_SIGBUS. */
static long access_fault(struct sm_cpu *cpu, unsigned long addr, bool write)
{
	struct sm_mm *mm = cpu->mm;
	struct vm_area_struct *vma;
	long ret = -EFAULT;

	sm_cpu_bind_thread(cpu);
	sm_rcu_thread_online();
	down_read(&mm->mmap_lock);
	vma = vma_lookup(mm, addr);
	if (vma && vma_access_ok(vma, write)) {
		int fault = handle_mm_fault(vma, addr, write ? FAULT_FLAG_WRITE : 0);

		ret = !fault ? 0 : (fault & VM_FAULT_SIGBUS) ? SM_SIGBUS : -EFAULT;
	}
	up_read(&mm->mmap_lock);
	if (ret == 0)
		update_hiwater_rss(mm);
	return ret;
}

/* Translate and copy one piece inside one page. */
static long access_page(struct sm_cpu *cpu, unsigned long addr, char *buf, size_t n, bool write)
{
	struct hw_cpu *hw = cpu->hw;
	struct sm_mm *mm = cpu->mm;

	for (;;) {
		char *host;
		long err;

		tlb_enter(hw);
		host = tlb_lookup(hw, mm->pmap.asid, addr, write);
		if (unlikely(!host))
			host = tlb_fill(hw, &mm->machine->ram, &mm->pmap, addr, write);
		if (likely(host)) {
			if (write)
				guest_copy(host, buf, n);
			else
				guest_copy(buf, host, n);
			tlb_exit(hw);
			return 0;
		}
		tlb_exit(hw);
		err = access_fault(cpu, addr, write);
		if (err)
			return err;
	}
}

static long access_range(struct sm_cpu *cpu, unsigned long addr, char *buf, size_t len, bool write)
{
	if (!cpu || !cpu->mm)
		return -EFAULT;
	if (addr >= TASK_SIZE || len > TASK_SIZE - addr)
		return -EFAULT;
	while (len) {
		size_t n = min(len, PAGE_SIZE - offset_in_page(addr));
		long err = access_page(cpu, addr, buf, n, write);

		if (err)
			return err;
		addr += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* The TLB-hit path of a small read that stays in one page, inlined so that
 * an 8-byte guest load costs a few nanoseconds. */
static inline bool read_fast(struct sm_cpu *cpu, unsigned long addr, void *buf, size_t len)
{
	struct hw_cpu *hw = cpu->hw;
	char *host;

	if (unlikely(!cpu->mm || len > PAGE_SIZE - offset_in_page(addr) || addr >= TASK_SIZE))
		return false;
	tlb_enter(hw);
	host = tlb_lookup(hw, cpu->mm->pmap.asid, addr, false);
	if (likely(host)) {
#ifdef SM_TSAN
		guest_copy(buf, host, len);
#else
		if (len == 8)
			memcpy(buf, host, 8);
		else
			memcpy(buf, host, len);
#endif
	}
	tlb_exit(hw);
	return host != NULL;
}

long sm_read(struct sm_cpu *cpu, unsigned long addr, void *buf, size_t len)
{
	if (likely(cpu && read_fast(cpu, addr, buf, len)))
		return 0;
	return access_range(cpu, addr, buf, len, false);
}

long sm_write(struct sm_cpu *cpu, unsigned long addr, const void *buf, size_t len)
{
	return access_range(cpu, addr, (char *)buf, len, true);
}
