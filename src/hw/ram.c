/*
 * The RAM arena. MAP_NORESERVE keeps a 4 GiB machine cheap until it is
 * used; prefaulting is for benchmarks that want to measure steady-state
 * faults rather than the host's first touch of each frame.
 */
#include <errno.h>
#include <sys/mman.h>
#include "hw/ram.h"

int ram_init(struct ram *r, size_t bytes, bool prefault)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

	bytes &= PAGE_MASK;
	if (bytes < 64 * PAGE_SIZE)
		return -EINVAL;
	if (prefault)
		flags |= MAP_POPULATE;
	r->base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (r->base == MAP_FAILED)
		return -ENOMEM;
	/* Back the arena with host THPs where the host allows (as emulators
	 * back guest RAM): every simulated access and page-table walk then
	 * costs the host one TLB entry per 2 MiB, and timings stop depending
	 * on how the host happened to place 4 KiB pages. Advice only. */
	madvise(r->base, bytes, MADV_HUGEPAGE);
	r->nr_frames = bytes >> PAGE_SHIFT;
	return 0;
}

void ram_destroy(struct ram *r)
{
	if (r->base)
		munmap(r->base, r->nr_frames << PAGE_SHIFT);
	r->base = NULL;
}
