/* Creating and destroying mappings; shared by mmap, munmap, brk and mremap. */
#ifndef SM_MM_MMAP_H
#define SM_MM_MMAP_H

#include "mm/mm_types.h"

#define DEFAULT_MAP_WINDOW ((1ul << 47) - PAGE_SIZE)
#define MMAP_MIN_ADDR 65536ul

void vm_stat_account(struct sm_mm *mm, unsigned long flags, long npages);
unsigned long get_unmapped_area(struct sm_mm *mm, unsigned long addr, unsigned long len,
				unsigned long flags);
/* Map [addr, addr+len) with vm_flags, replacing what is there.
 * Precondition: mmap_lock held for writing. Returns addr or -errno. */
long mmap_region(struct sm_mm *mm, unsigned long addr, unsigned long len,
		 unsigned long vm_flags, unsigned long pgoff);
/* The same for a file (its reference passes to the VMA, or is dropped on
 * failure); VM_SHARED without a file makes a shmem file. */
struct address_space;
long mmap_region_file(struct sm_mm *mm, unsigned long addr, unsigned long len,
		      unsigned long vm_flags, unsigned long pgoff, struct address_space *file);
/* Unmap [start, start+len). With `unlock` the mmap_lock (held for writing
 * on entry) is downgraded after the VMAs are detached and released on
 * return (also on error). Returns 0 or -errno. */
long do_vmi_munmap(struct sm_mm *mm, unsigned long start, unsigned long len, bool unlock);
/* How populate_range faults: as mmap's MAP_POPULATE (write faults where the
 * mapping is private and writable), or MADV_POPULATE_READ / _WRITE. */
enum populate_mode { POPULATE_MMAP, POPULATE_READ, POPULATE_WRITE };
/* Fault in [start, end). Precondition: mmap_lock read. */
long populate_range(struct sm_mm *mm, unsigned long start, unsigned long end, enum populate_mode mode);

#endif
